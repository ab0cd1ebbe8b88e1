"""The checks: pure numpy, no database. A batch of n vectors is an (n, d) array and each
measure is one vectorised pass over it."""

import math
from dataclasses import dataclass, replace

import numpy as np

CODES = (
    "nan_or_inf",
    "low_norm",
    "low_variance",
    "sparse",
    "blank_like",
    "duplicate_vector",
    "model_mismatch",
)

# model_mismatch: a model's silent dimensions are those whose spread over its rows is below
# this share of its median spread (all-MiniLM-L6-v2: 3 of 384, all-mpnet-base-v2: 4 of 768,
# at 1e-33 to 6e-7 against a median of 0.03-0.04)
SILENT_SPREAD = 1e-3

# rows evaluate() converts to float64 at a time (768-d: 1.5 MiB, stays in cache)
EVAL_BLOCK_ROWS = 256


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of the checks. Their defaults live in one place, the column defaults
    of embedding_gate.settings: this class has none."""

    min_norm: float
    min_variance: float
    near_zero_epsilon: float
    max_near_zero_ratio: float
    # blank_like: cosine similarity to the model's embedding of empty text (or another of
    # its references of degenerate text), the model's mean removed, at or above
    blank_similarity: float
    # model_mismatch: the largest deviation from the model's mean on its silent dimensions,
    # in units of its median spread, above
    max_silent_deviation: float

    def with_values(self, **values) -> "Thresholds":
        """A copy with the given thresholds replaced (None keeps the current one)."""
        return replace(self, **{k: float(v) for k, v in values.items() if v is not None})


@dataclass
class Verdicts:
    """What the checks found for a batch of n vectors (one entry per vector)."""

    norm: np.ndarray  # float64, NaN where not finite
    variance: np.ndarray  # float64, NaN where not finite
    near_zero_ratio: np.ndarray  # float64
    nonfinite: np.ndarray  # int: count of NaN/Inf components
    codes: np.ndarray  # bool (n, len(CODES)), column order of CODES
    dim: int  # d, the vectors' dimension
    blank_similarity: np.ndarray  # float64, NaN where the model has no reference
    duplicate_of: list  # the earlier row with the same embedding and other content, or None
    noun: str = "chunk"  # what a row is called in reasons: "row" on attached tables
    blank_kind: list = None  # per vector, the kind of its most similar reference
    # model_mismatch: per vector, its largest deviation on its model's silent dimensions
    # (in units of the model's median spread), NaN where not measured
    silent_deviation: np.ndarray = None

    @property
    def flagged(self) -> np.ndarray:
        return self.codes.any(axis=1)

    def issues(self, i: int) -> list:
        return [code for code, hit in zip(CODES, self.codes[i], strict=True) if hit]

    def reason(self, i: int) -> str:
        return "; ".join(describe(code, self, i) for code in self.issues(i))

    def measured(self, i: int) -> tuple:
        """norm, variance, near-zero ratio, similarity to the blank reference of vector i;
        None where not finite or not measured."""
        return tuple(
            _finite_or_none(a[i])
            for a in (self.norm, self.variance, self.near_zero_ratio, self.blank_similarity)
        )


def _finite_or_none(x) -> "float | None":
    x = float(x)
    return x if math.isfinite(x) else None


def describe(code: str, v: Verdicts, i: int) -> str:
    """A readable reason for one code, with the measured value."""
    if code == "nan_or_inf":
        return f"NaN or Inf in {int(v.nonfinite[i])} of {v.dim} components"
    if code == "low_norm":
        return f"norm too low ({v.norm[i]:.4g})"
    if code == "low_variance":
        return f"variance too low ({v.variance[i]:.4g})"
    if code == "sparse":
        return f"too many near-zero components ({v.near_zero_ratio[i]:.1%})"
    if code == "blank_like":
        kind = REFERENCE_KINDS.get(v.blank_kind[i] if v.blank_kind else "blank", "empty text")
        return (
            f"like the model's embedding of {kind} (cosine {v.blank_similarity[i]:.3f},"
            " the model's mean removed)"
        )
    if code == "duplicate_vector":
        return f"same embedding as {v.noun} {v.duplicate_of[i]!r}, whose content differs"
    if code == "model_mismatch":
        return (
            "unlike the rows of its model: it varies where they never do (deviation"
            f" {v.silent_deviation[i]:.3g} of their spread on their silent dimensions)"
        )
    raise ValueError(f"unknown issue code {code!r}")


# what a model's reference embeds, as reasons name it (blank_references.kind)
REFERENCE_KINDS = {
    "blank": "empty text",
    "punctuation": "punctuation alone",
    "unknown": "characters its tokenizer does not know",
}


@dataclass(frozen=True)
class BlankReference:
    """A model's references of degenerate text (its embedding of empty text, and of
    punctuation alone or of characters its tokenizer does not know where recorded), as
    blank_like compares with them: the model's mean embedding (its calibration) removed.
    Anisotropic models put every text near one common direction (unrelated texts at cosine
    0.7-1.0 for the e5 family); without it, blank text stands apart again."""

    directions: np.ndarray  # (k, d): unit (reference - mean), float64
    mean: np.ndarray  # float64
    offsets: np.ndarray  # (k,): mean . direction
    mean_square: float  # mean . mean
    kinds: tuple = ("blank",)  # per direction, a key of REFERENCE_KINDS
    # model_mismatch's fingerprint: the dimensions where the model's rows never vary, their
    # mean there, and the model's median spread (None: no spread recorded)
    silent: "np.ndarray | None" = None
    silent_mean: "np.ndarray | None" = None
    scale: float = 0.0
    # how many rows the calibration is over, and whether the writes keep it (a spread)
    sample_size: int = 0
    kept: bool = False

    @property
    def direction(self) -> np.ndarray:
        return self.directions[0]


def blank_reference(
    reference, mean, others=(), spread=None, sample_size=0
) -> "BlankReference | None":
    """The references of blank_like and model_mismatch for a model: its embedding of empty
    text (None: it has none), its other references of degenerate text (others: (kind,
    vector) pairs), its mean embedding and its per-dimension spread (None: not recorded);
    None when they make neither a direction (not finite, other shapes, equal) nor a
    fingerprint."""
    m = np.asarray(mean, dtype=np.float64)
    if m.ndim != 1 or not np.isfinite(m).all():
        return None
    silent, silent_mean, scale = None, None, 0.0
    if spread is not None:
        sd = np.asarray(spread, dtype=np.float64)
        if sd.shape == m.shape and np.isfinite(sd).all() and np.median(sd) > 0:
            scale = float(np.median(sd))
            silent = np.flatnonzero(sd < SILENT_SPREAD * scale)
            silent_mean = m[silent]
            if not len(silent):
                silent = None
    pairs = ([] if reference is None else [("blank", reference)]) + list(others)
    directions, kinds = [], []
    for kind, vector in pairs:
        r = np.asarray(vector, dtype=np.float64)
        if r.shape != m.shape or not np.isfinite(r).all():
            continue
        length = np.linalg.norm(r - m)
        if length > 0:
            directions.append((r - m) / length)
            kinds.append(kind)
    if not directions and silent is None:
        return None
    d = np.array(directions).reshape(len(directions), len(m))
    return BlankReference(
        d,
        m,
        d @ m,
        float(m @ m),
        tuple(kinds),
        silent,
        silent_mean,
        scale,
        int(sample_size or 0),
        spread is not None,
    )


def evaluate(vectors: np.ndarray, t: Thresholds, references=None, duplicate_of=None) -> Verdicts:
    """Run the checks on an (n, d) array of vectors (any float dtype or byte order).
    references: per vector, its model's BlankReference, or None (no blank_like check);
    duplicate_of: per vector, the id of an earlier row with the same embedding and other
    content, or None (the database finds those, by index)."""
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected an (n, d) array of vectors, got shape {x.shape}")
    n, d = x.shape
    norm, variance, near_zero_ratio = np.empty(n), np.empty(n), np.empty(n)
    nonfinite = np.empty(n, dtype=np.int64)
    # blank_like: each row's dot products with its model's direction and mean (k models)
    refs, which = _reference_matrix(references, n, d)
    similarity = np.full(n, np.nan)
    nearest = np.zeros(n, dtype=np.int64)  # per row, its most similar reference
    if refs is not None and len(refs[1]):
        x32 = x.astype(np.float32, copy=False)
        matrix32 = refs[0].astype(np.float32)
    deviation = np.full(n, np.nan)
    if refs is not None:
        found = refs[5]
        for j, r in enumerate(found):
            if r.silent is not None:
                mine = np.flatnonzero(which == j)
                if len(mine):
                    # (the few silent columns first: no copy of the rows)
                    seen = x[:, r.silent] if len(mine) == n else x[np.ix_(mine, r.silent)]
                    with np.errstate(invalid="ignore", over="ignore"):
                        gap = np.abs(seen.astype(np.float64) - r.silent_mean)
                        deviation[mine] = gap.max(axis=1) / r.scale
    # float64 in blocks that stay in cache: one pass each, no (n, d) temporaries
    for start in range(0, n, EVAL_BLOCK_ROWS):
        block = x[start : start + EVAL_BLOCK_ROWS].astype(np.float64)
        rows = slice(start, start + len(block))
        with np.errstate(invalid="ignore", over="ignore"):
            squares = np.einsum("ij,ij->i", block, block)
            # two-pass population variance: exact 0 for constant vectors of any magnitude
            centred = block - block.mean(axis=1, keepdims=True)
            variance[rows] = np.einsum("ij,ij->i", centred, centred) / d
        norm[rows] = np.sqrt(squares)
        # a row with NaN/Inf has a non-finite sum of squares: count its components only
        # then (a finite row whose sum overflows is counted too, and finds none)
        unsure = ~np.isfinite(squares)
        nonfinite[rows] = 0
        if unsure.any():
            nonfinite[start + np.flatnonzero(unsure)] = d - np.count_nonzero(
                np.isfinite(block[unsure]), axis=1
            )
        near_zero_ratio[rows] = np.count_nonzero(np.abs(block) < t.near_zero_epsilon, axis=1) / d
        if refs is not None and len(refs[1]):
            matrix, owner, offsets, mean_squares, _, _ = refs
            k = len(mean_squares)
            w = which[rows]
            mine = owner[None, :] == w[:, None]  # (rows, directions): the row's model's
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                # (rows, directions + k) in float32, on the vectors as stored: einsum's
                # own loop, 2.5x faster than `@` on reference BLAS, and float32 2.3x faster
                # than float64 (5 references a model cost what 1 did); a dot product
                # beyond float32's range is not finite, and so is not measured
                dots = np.einsum("ij,kj->ik", x32[rows], matrix32).astype(np.float64)
                # cos(x - mean, reference - mean) = (x.dir - mean.dir) / |x - mean|, the
                # highest over the model's references
                scores = np.where(mine, dots[:, :-k] - offsets, -np.inf)
                best = scores.argmax(axis=1)
                along = scores[np.arange(len(w)), best]
                nearest[rows] = best
                pick = np.arange(len(w)), np.maximum(w, 0)
                off = squares - 2 * dots[:, -k:][pick] + mean_squares[np.maximum(w, 0)]
                cosine = along / np.sqrt(np.maximum(off, 0))
            measured = (w >= 0) & np.isfinite(along) & np.isfinite(cosine)
            similarity[rows] = np.where(measured, cosine, np.nan)
    bad = nonfinite > 0
    # a vector with NaN/Inf has no meaningful norm or variance: only nan_or_inf applies
    norm[bad] = np.nan
    variance[bad] = np.nan
    ok = ~bad
    similarity[bad] = np.nan
    deviation[bad] = np.nan
    duplicate_of = list(duplicate_of) if duplicate_of is not None else [None] * n
    duplicate = np.array([d is not None for d in duplicate_of], dtype=bool)
    codes = np.column_stack(
        [
            bad,
            ok & (norm < t.min_norm),
            ok & (variance < t.min_variance),
            ok & (near_zero_ratio > t.max_near_zero_ratio),
            ok & (similarity >= t.blank_similarity),
            ok & duplicate,
            # (a vector like one of the model's degenerate references is the model's own:
            # blank_like's, not a stranger)
            ok & (deviation > t.max_silent_deviation) & ~(similarity >= t.blank_similarity),
        ]
    )
    kinds = refs[4] if refs is not None else ("blank",)
    return Verdicts(
        norm,
        variance,
        near_zero_ratio,
        nonfinite,
        codes,
        d,
        similarity,
        duplicate_of,
        blank_kind=[kinds[j] for j in nearest],
        silent_deviation=deviation,
    )


def _reference_matrix(references, n: int, d: int):
    """The distinct BlankReferences among the rows' as one (directions + k, d) array: the
    directions of the k models, then their k means; which model owns each direction, each
    direction's offset (mean . direction), each model's mean . mean; and per row the index
    of its model (-1: none, or one of another dimension). (None, ...) when no row has one."""
    which = np.full(n, -1, dtype=np.int64)
    if references is None:
        return None, which
    distinct: dict = {}
    for i, reference in enumerate(references):
        if reference is not None and len(reference.mean) == d:
            which[i] = distinct.setdefault(id(reference), (len(distinct), reference))[0]
    if not distinct:
        return None, which
    found = [reference for _, reference in distinct.values()]
    owner = np.concatenate(
        [np.full(len(r.directions), j, dtype=np.int64) for j, r in enumerate(found)]
    )
    matrix = np.vstack([r.directions for r in found] + [np.array([r.mean for r in found])])
    offsets = np.concatenate([r.offsets for r in found])
    mean_squares = np.array([r.mean_square for r in found])
    kinds = tuple(kind for r in found for kind in r.kinds) or ("blank",)
    return (matrix, owner, offsets, mean_squares, kinds, found), which
