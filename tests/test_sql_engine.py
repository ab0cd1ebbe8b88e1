"""The SQL engine's checks (sql/idempotent/004_sql_checks.sql, issue 25) against the PL/Python
engine's (plpython/embedding_gate/checks.py): the same vectors through both, the same codes,
the measured values equal within TOLERANCE.

The PL/Python side is evaluate() itself, with each model's references read from the same
database by the engine's own code (settings.references_for, its query, through a stand-in
for plpy), so both engines judge with the same calibrations and references.

Where the two cannot agree exactly: blank_like's cosine is a sum of float4 products in both
engines, in another order and form (numpy: x.u - mean.u over |x|^2 - 2 x.mean + mean.mean;
SQL: (x - mean).(r - mean) over the two norms), so it agrees to 5e-8 to 5e-7 (measured,
docs/internals.md), and a vector whose cosine lies within TOLERANCE["similarity"] of
blank_similarity may get blank_like from one engine only. The variance is a
float4-accumulated two-pass in SQL against float64 in numpy: equal to about 1e-8 relative
(up to 6e-8). Codes are required to be equal except where the PL/Python engine's measure
lies within the tolerance of its threshold (`at_edge`); the tests count those and require
that there are none in their data. Reasons: each row's is describe() of the SQL engine's own
measures (the engines' cosines can round to different third digits).

The last part runs the SQL engine's triggers on chunks (sql/engine_sql/, applied by no
deployment yet) in place of the PL/Python ones and requires the same stored verdicts,
quarantine rows, notifications and rejections for the same statements.
"""

import json
import os
import re

import numpy as np
import psycopg
import pytest
from embedding_gate import checks as gate
from embedding_gate import settings as gate_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from psycopg.rows import dict_row

from tests.cases import CASES, DEFAULTS, D, alternating, one_hot
from tests.helpers import ROOT, vec

# how far the engines' measures may differ (relative for norm and variance, absolute for
# the cosine); the near-zero share and the silent deviation are computed by the same float64
# operations in both and must be equal
TOLERANCE = {"norm": 1e-12, "variance": 1e-5, "similarity": 1e-5, "deviation": 1e-12}

FUZZ = settings(
    max_examples=int(os.environ.get("SQL_ENGINE_EXAMPLES", "150")),
    deadline=None,
    database=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    suppress_health_check=list(HealthCheck),
)

THRESHOLD_ORDER = (
    "min_norm",
    "min_variance",
    "near_zero_epsilon",
    "max_near_zero_ratio",
    "blank_similarity",
    "max_silent_deviation",
)


class _Plpy:
    """Enough of plpy for settings.references_for: its statement, run by psycopg. plpy
    gives a real[] as the float4 values exactly, psycopg as the floats of their shortest
    decimal text: the real[] columns are put back to float4 (the others travel as JSON
    text in the engine's query, and stay so)."""

    REAL_ARRAYS = ("reference", "mean", "spread")

    def __init__(self, conn):
        self.conn = conn

    def prepare(self, sql, types):
        return re.sub(r"\$(\d+)", r"%(p\1)s", sql)

    def execute(self, sql, args):
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, {f"p{i + 1}": a for i, a in enumerate(args)})
            rows = cur.fetchall()
        for row in rows:
            for k in self.REAL_ARRAYS:
                if row.get(k) is not None:
                    row[k] = np.array(row[k], dtype=np.float32).astype(np.float64).tolist()
        return rows


def plpython_verdicts(db, x, t, models=None, duplicates=None):
    """evaluate() on x with the references the PL/Python engine would read for `models`."""
    refs = None if models is None else gate_settings.references_for(_Plpy(db), list(models))
    return gate.evaluate(x, t, refs, duplicates)


def sql_verdicts(db, x, t, models=None, duplicates=None, kind="vector"):
    """The SQL engine's rows for x: one dict per row, in order."""
    args = [getattr(t, k) for k in THRESHOLD_ORDER]
    if kind == "raw":
        literal = [[None if np.isnan(v) else float(v) for v in row] for row in x]
        rows = db.execute(
            "SELECT c.*, " + REASON + " FROM embedding_gate._sql_checks_raw(%s::real[],"
            " %s::text[], %s, %s, %s, %s, %s, %s) AS c",
            [x.shape[1], literal, models, *args],
        )
    else:
        texts = [_halfvec_text(r) if kind == "halfvec" else vec(r) for r in x]
        rows = db.execute(
            "SELECT c.*, "
            + REASON
            + " FROM embedding_gate._sql_checks(%s::text[]::public."
            + kind
            + "[], %s::text[], %s::text[], %s, %s, %s, %s, %s, %s) AS c",
            [x.shape[1], texts, models, duplicates, *args],
        )
    cols = [c.name for c in rows.description]
    out = [dict(zip(cols, r, strict=True)) for r in rows.fetchall()]
    assert [r["ord"] for r in out] == list(range(1, len(x) + 1))
    return out


# the SQL engine's reason for a row of _sql_checks (the dimension its first parameter)
REASON = (
    "embedding_gate._sql_reason(c.issues, c.nonfinite, %s, c.norm, c.variance,"
    " c.near_zero_ratio, c.similarity, c.similar_kind, c.silent_deviation, c.duplicate_of)"
    " AS reason"
)


def _halfvec_text(row) -> str:
    return "[" + ",".join(repr(float(v)) for v in np.asarray(row, dtype=np.float16)) + "]"


def _nan(a) -> float:
    return np.nan if a is None else a


def _finite(a) -> "float | None":
    a = float(a)
    return a if np.isfinite(a) else None


def at_edge(v, i, t, code) -> bool:
    """Whether the PL/Python measure behind `code` for row i lies within the tolerance of
    its threshold, where the engines may disagree."""
    if code == "low_norm":
        return abs(v.norm[i] - t.min_norm) <= TOLERANCE["norm"] * max(abs(t.min_norm), 1e-300)
    if code == "low_variance":
        return abs(v.variance[i] - t.min_variance) <= TOLERANCE["variance"] * t.min_variance
    if code in ("blank_like", "model_mismatch"):
        s = v.blank_similarity[i]
        near = np.isfinite(s) and abs(s - t.blank_similarity) <= TOLERANCE["similarity"]
        return bool(near)
    return False


def compare(db, x, t=DEFAULTS, models=None, duplicates=None, kind="vector", edges_allowed=0):
    """Both engines on x: the same codes (but at a threshold's edge) and measures."""
    x = np.asarray(x)
    widened = x.astype(np.float16) if kind == "halfvec" else x
    if kind == "vector":
        widened = x.astype(np.float32)
    v = plpython_verdicts(db, widened, t, models, duplicates)
    rows = sql_verdicts(db, widened, t, models, duplicates, kind)
    edges = 0
    for i, r in enumerate(rows):
        expected = v.issues(i)
        where = f"row {i}: {widened[i][:6]}..., PL/Python {expected}, SQL {r['issues']}"
        if r["issues"] != expected:
            differ = set(expected) ^ set(r["issues"])
            assert all(at_edge(v, i, t, c) for c in differ), where
            edges += 1
        assert r["nonfinite"] == int(v.nonfinite[i]), where
        norm, variance, ratio, similarity = v.measured(i)
        _close(r["norm"], norm, rel=TOLERANCE["norm"], what="norm " + where)
        _close(r["variance"], variance, rel=TOLERANCE["variance"], what="variance " + where)
        assert r["near_zero_ratio"] == ratio, "near-zero share " + where
        _close(r["similarity"], similarity, abs_=TOLERANCE["similarity"], what="cosine " + where)
        deviation = None if v.silent_deviation is None else _finite(v.silent_deviation[i])
        _close(r["silent_deviation"], deviation, rel=TOLERANCE["deviation"], what="dev " + where)
        if "blank_like" in expected and "blank_like" in r["issues"]:
            assert r["similar_kind"] == v.blank_kind[i], where
        assert r["duplicate_of"] == v.duplicate_of[i], where
        # the reason: describe()'s text of the SQL engine's own measures (they may round
        # otherwise than the PL/Python engine's at the last digit shown: 0.9975 +- 1e-6)
        mine = _one_row_verdicts(
            r["issues"],
            *(_nan(r[k]) for k in ("norm", "variance", "near_zero_ratio", "similarity")),
            r["similar_kind"],
            _nan(r["silent_deviation"]),
            r["duplicate_of"],
            r["nonfinite"],
            widened.shape[1],
        )
        assert r["reason"] == (mine.reason(0) or None), where
    assert edges <= edges_allowed, f"{edges} rows at a threshold's edge"
    return v, rows


def _close(got, expected, rel=0.0, abs_=0.0, what=""):
    if expected is None:
        assert got is None, f"{what}: SQL {got}, PL/Python not measured"
        return
    assert got is not None, f"{what}: SQL not measured, PL/Python {expected}"
    assert abs(got - expected) <= max(rel * abs(expected), abs_), (
        f"{what}: SQL {got!r}, PL/Python {expected!r}"
    )


# --- the contract's cases ---------------------------------------------------------------


def test_the_contracts_cases_get_the_same_codes_and_measures(db):
    """tests/cases.py, every case at the default thresholds, as one batch and one by one."""
    x = np.stack([np.asarray(v, dtype=np.float32) for v, _ in CASES.values()])
    v, rows = compare(db, x)
    for i, (name, (_, expected)) in enumerate(CASES.items()):
        assert rows[i]["issues"] == expected, name
    for i in range(len(x)):
        compare(db, x[i : i + 1])


def test_values_exactly_at_a_threshold_pass_in_both(db):
    """The strict comparisons of test_checks, and near-zero components at exactly epsilon
    where epsilon is a float4 (0.5, 2^-10) and where it is not (0.001)."""
    t = DEFAULTS.with_values(min_norm=0.5, min_variance=0.25, max_near_zero_ratio=0.5)
    half_zero = np.concatenate([np.zeros(D // 2), alternating(0.5)[: D // 2]])
    compare(db, np.stack([one_hot(0.5), alternating(0.5), half_zero]), t)
    for eps in (0.5, 2.0**-10, 0.001, 1e-45, 1e-50, 0.0, 3e38, 1e39):
        e32 = np.float32(eps) if eps < 3.5e38 else np.float32(3e38)
        x = np.stack(
            [
                np.full(D, e32),
                np.full(D, -e32),
                np.full(D, np.nextafter(e32, np.float32(0))),
                np.full(D, np.nextafter(e32, np.float32(np.inf))),
                alternating(0.5),
            ]
        ).astype(np.float32)
        compare(db, x, DEFAULTS.with_values(near_zero_epsilon=eps))


def test_float32_extremes(db):
    """The largest and smallest float4s, mixed signs, huge constants: the SQL engine takes
    its float8 path where float4 sums could overflow, and pgvector refuses nothing."""
    big = np.finfo(np.float32).max
    tiny = np.finfo(np.float32).smallest_subnormal
    rng = np.random.default_rng(11)
    x = np.stack(
        [
            np.full(D, big),
            np.full(D, -big),
            alternating(big),
            np.where(rng.random(D) < 0.5, big, -big),
            np.full(D, tiny),
            alternating(tiny),
            np.full(D, np.finfo(np.float32).tiny),
            rng.standard_normal(D) * np.float32(1e36),
            np.full(D, 1e30) + rng.standard_normal(D) * np.float32(1e24),
            np.full(D, 1e6) + np.arange(D) % 2 * np.float32(0.0625),
            np.full(D, 3.0) + rng.standard_normal(D) * np.float32(1e-6),
        ]
    ).astype(np.float32)
    compare(db, x)


# --- property-based --------------------------------------------------------------------

DIMS = st.sampled_from([1, 2, 3, 7, 16, 64, 384, 768])
any_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
thresholds = st.builds(
    lambda a, b, c, d: DEFAULTS.with_values(
        min_norm=a, min_variance=b, near_zero_epsilon=c, max_near_zero_ratio=d
    ),
    st.sampled_from([0.1, 0.0, 1.0, 1e-20, 1e30]) | st.floats(0, 1e3),
    st.sampled_from([0.001, 0.0, 0.25, 1e-30]) | st.floats(0, 1e3),
    st.sampled_from([0.001, 0.0, 0.5, 2.0**-10, 1e-45, 1e31]) | st.floats(0, 10),
    st.sampled_from([0.9, 0.0, 0.5, 1.0]) | st.floats(0, 1),
)


def _shaped(d):
    """Vectors of dimension d: any float4s, constant ones, scaled unit vectors, sparse ones
    with components around epsilon, alternating ones (finite: what pgvector holds)."""
    return _vectors(d).map(lambda x: np.clip(x, -FLOAT4_MAX, FLOAT4_MAX))


def _scaled(seed, d, k):
    with np.errstate(over="ignore"):  # beyond float4: clipped to its largest
        return (np.random.default_rng(seed).standard_normal(d) / np.sqrt(d) * k).astype(np.float32)


FLOAT4_MAX = np.finfo(np.float32).max


def _vectors(d):
    seeds = st.integers(0, 2**32 - 1)
    scales = st.sampled_from([1.0, 1e-3, 1e-20, 1e-40, 1e10, 1e30, 1e37, 3e38])
    return st.one_of(
        hnp.arrays(np.float32, d, elements=any_float32),
        st.builds(lambda c: np.full(d, c, dtype=np.float32), any_float32),
        st.builds(lambda s, k: _scaled(s, d, k), seeds, scales),
        st.builds(
            lambda s, share, around: _sparse(np.random.default_rng(s), d, share, around),
            seeds,
            st.floats(0, 1),
            st.sampled_from([0.001, 2.0**-10, 0.5]),
        ),
        st.builds(lambda a: np.tile(np.float32([a, -a]), d)[:d], any_float32),
    )


def _sparse(rng, d, share, around):
    x = (rng.standard_normal(d) * 0.5).astype(np.float32)
    near = rng.random(d) < share
    e = np.float32(around)
    edge = rng.choice([e, -e, np.nextafter(e, np.float32(0)), np.nextafter(e, np.float32(1)), 0])
    x[near] = np.float32(edge)
    return x


batches = DIMS.flatmap(lambda d: st.lists(_shaped(d), min_size=1, max_size=6))


@FUZZ
@given(batches, thresholds)
def test_generated_vectors_get_the_same_verdicts(db, batch, t):
    compare(db, np.stack(batch), t)


# --- NaN and Inf: embedding_raw -----------------------------------------------------------


def test_nan_and_inf_rows_get_nan_or_inf_alone_with_the_count(db):
    """Raw rows (real[], as embedding_raw holds them): NaN, +-Inf and NULL components are
    counted; the finite raw rows beside them are checked as vectors."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, D)) / np.sqrt(D)
    x[0, 3] = np.nan
    x[1, [1, 2]] = [np.inf, -np.inf]
    x[2, :] = np.nan
    x[3, :700] = 0.0  # finite, sparse
    x[3, 5] = np.inf
    x[5, :] = 0.0  # finite: low_norm, low_variance, sparse
    v, rows = compare(db, x.astype(np.float32).astype(np.float64), kind="raw")
    assert [r["issues"] for r in rows[:4]] == [["nan_or_inf"]] * 4
    assert [r["nonfinite"] for r in rows[:4]] == [1, 2, D, 1]
    assert rows[4]["issues"] == [] and rows[5]["issues"] == ["low_norm", "low_variance", "sparse"]


@FUZZ
@given(
    st.integers(1, 16).flatmap(
        lambda d: st.lists(
            hnp.arrays(
                np.float32, d, elements=st.floats(width=32, allow_nan=True, allow_infinity=True)
            ),
            min_size=1,
            max_size=5,
        )
    ),
    thresholds,
)
def test_generated_raw_rows_get_the_same_verdicts(db, rows, t):
    compare(db, np.stack(rows).astype(np.float64), t, kind="raw")


# --- halfvec ---------------------------------------------------------------------------


@FUZZ
@given(batches, thresholds)
def test_halfvec_gets_the_same_verdicts(db, batch, t):
    x = np.stack(batch)
    with np.errstate(over="ignore"):
        half = x.astype(np.float16)
    half = np.where(np.isfinite(half), half, np.float16(0))  # halfvec holds finite values
    compare(db, half, t, kind="halfvec")


# --- blank_like, duplicate_vector, model_mismatch: a model's references ---------------------

MODEL = "model-α"


def _unit(x):
    return x / np.linalg.norm(x)


def record_model(db, d, rng, anisotropic=0.0):
    """A calibration (mean and spread, silent dimensions among them) and references of
    three kinds for MODEL, written as the gate stores them."""
    shared = _unit(rng.standard_normal(d))
    mean = (anisotropic * shared + rng.standard_normal(d) * 0.01).astype(np.float32)
    spread = np.abs(rng.normal(0.03, 0.005, d)).astype(np.float32)
    spread[[1, d // 3, d // 2]] = [1e-33, 3e-8, 6e-7]  # silent, as real models have
    blank, dot, unk = (_unit(rng.standard_normal(d) + anisotropic * shared) for _ in range(3))
    db.execute(
        "INSERT INTO embedding_gate.model_calibrations (model, mean, spread, sample_size, source)"
        " VALUES (%s, %s::real[], %s::real[], 200, 'given')",
        [MODEL, mean.tolist(), spread.tolist()],
    )
    db.execute(
        "INSERT INTO embedding_gate.blank_references (model, reference) VALUES (%s, %s::real[])",
        [MODEL, blank.astype(np.float32).tolist()],
    )
    for text, kind, r in (("?", "punctuation", dot), ("𓀀", "unknown", unk)):
        db.execute(
            "INSERT INTO embedding_gate.degenerate_references (model, text, kind, reference)"
            " VALUES (%s, %s, %s, %s::real[])",
            [MODEL, text, kind, r.astype(np.float32).tolist()],
        )
    return mean, spread, (blank, dot, unk)


def model_rows(rng, d, mean, spread, refs, n):
    """Vectors around the model: its references with noise of every level (cosines from 1
    down through the threshold), its own rows (the mean, the silent dimensions kept),
    strangers on the silent dimensions by a range of deviations, random unit vectors."""
    silent = np.flatnonzero(spread < 1e-3 * np.median(spread))
    scale = np.median(spread)
    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            r = refs[k % 3]
            noise = rng.standard_normal(d) * rng.choice([0.0, 0.02, 0.05, 0.1, 0.2, 0.5])
            x = _unit(r + noise)
        elif kind == 1:
            x = mean + rng.standard_normal(d) * spread
            x[silent] = mean[silent]
        elif kind == 2:
            x = mean + rng.standard_normal(d) * spread
            x[silent] = mean[silent]
            x[silent[k % len(silent)]] += scale * rng.choice([1e-5, 1e-4, 5e-3, 0.1, 1.0])
        else:
            x = _unit(rng.standard_normal(d))
        out.append(x.astype(np.float32))
    return np.stack(out)


@pytest.mark.parametrize("anisotropic", [0.0, 0.9])
@pytest.mark.parametrize("d", [64, 768])
def test_blank_like_and_model_mismatch_agree(db, d, anisotropic):
    """A model with a calibration, a spread and three references: the same similarity (to
    1e-5), the same nearest reference's kind, the same silent deviation, the same codes;
    rows without a model, of another model, or of another dimension are not checked."""
    rng = np.random.default_rng(d + int(anisotropic * 10))
    mean, spread, refs = record_model(db, d, rng, anisotropic)
    x = model_rows(rng, d, mean, spread, refs, 96)
    models = [MODEL] * len(x)
    models[3], models[7] = None, "unknown-model"
    duplicates = [None] * len(x)
    duplicates[1], duplicates[2] = "c-1", "c-2"
    v, rows = compare(db, x, DEFAULTS, models, duplicates)
    issues = [set(r["issues"]) for r in rows]
    assert sum("blank_like" in i for i in issues) >= 10
    assert sum("model_mismatch" in i for i in issues) >= 5
    assert {r["similar_kind"] for r in rows if "blank_like" in r["issues"]} == {
        "blank",
        "punctuation",
        "unknown",
    }
    assert rows[3]["similarity"] is None and rows[7]["similarity"] is None
    # a row of another dimension than the model's mean: not checked (which = -1 in numpy)
    other = np.stack([_unit(rng.standard_normal(d + 1)).astype(np.float32)])
    _, rows = compare(db, other, DEFAULTS, [MODEL])
    assert rows[0]["similarity"] is None and rows[0]["silent_deviation"] is None


@FUZZ
@given(
    st.integers(0, 2**32 - 1), st.sampled_from([0.2, 0.35, 0.5, 0.9]), st.sampled_from([1e-4, 1e-3])
)
def test_generated_model_rows_get_the_same_verdicts(db, seed, similarity, deviation):
    """The same, over generated models and thresholds (a model's references and calibration
    replaced each time)."""
    for table in ("model_calibrations", "blank_references", "degenerate_references"):
        db.execute(f"DELETE FROM embedding_gate.{table} WHERE model = %s", [MODEL])
    rng = np.random.default_rng(seed)
    d = int(rng.choice([16, 64, 384]))
    mean, spread, refs = record_model(db, d, rng, float(rng.choice([0.0, 0.5, 0.9])))
    x = model_rows(rng, d, mean, spread, refs, 24)
    t = DEFAULTS.with_values(blank_similarity=similarity, max_silent_deviation=deviation)
    compare(db, x, t, [MODEL] * len(x), edges_allowed=0)


def test_a_model_without_usable_references_is_measured_as_in_numpy(db):
    """A mean with NaN (no checks), references of another dimension or equal to the mean
    (left out), a spread with a zero median (no fingerprint)."""
    rng = np.random.default_rng(9)
    d = 32
    mean = (rng.standard_normal(d) * 0.01).astype(np.float32)
    db.execute(
        "INSERT INTO embedding_gate.model_calibrations (model, mean, spread, sample_size, source)"
        " VALUES ('zero-spread', %s::real[], %s::real[], 200, 'given'),"
        " ('nan-mean', %s::real[], NULL, 200, 'given')",
        [mean.tolist(), np.zeros(d).tolist(), [float("nan")] + mean[1:].tolist()],
    )
    db.execute(
        "INSERT INTO embedding_gate.blank_references (model, reference) VALUES"
        " ('zero-spread', %s::real[]), ('nan-mean', %s::real[])",
        [mean.tolist(), _unit(rng.standard_normal(d)).tolist()],
    )
    db.execute(
        "INSERT INTO embedding_gate.degenerate_references (model, text, kind, reference)"
        " VALUES ('zero-spread', '?', 'punctuation', %s::real[]),"
        " ('zero-spread', '-', 'punctuation', %s::real[])",
        [_unit(rng.standard_normal(d + 1)).tolist(), _unit(rng.standard_normal(d)).tolist()],
    )
    x = np.stack([_unit(rng.standard_normal(d)).astype(np.float32) for _ in range(8)])
    compare(db, x, DEFAULTS, ["zero-spread"] * 4 + ["nan-mean"] * 4)


# --- reasons -------------------------------------------------------------------------------


def _one_row_verdicts(codes, norm, variance, ratio, similarity, kind, deviation, dup, n, d):
    return gate.Verdicts(
        np.array([norm]),
        np.array([variance]),
        np.array([ratio]),
        np.array([n]),
        np.array([[c in codes for c in gate.CODES]]),
        d,
        np.array([similarity]),
        [dup],
        blank_kind=[kind],
        silent_deviation=np.array([deviation]),
    )


ids = st.text(
    # (PostgreSQL's text holds no NUL)
    st.characters(min_codepoint=1, max_codepoint=0x17F)
    | st.sampled_from(["'", '"', "\\", "한", "𓀀"]),
    max_size=12,
)


@FUZZ
@given(
    st.floats(0, allow_infinity=False) | st.sampled_from([5e-324, 1e-5, 9.9995e-5, 0.0234]),
    st.floats(0, allow_infinity=False) | st.sampled_from([0.0, 1e-310, 7.12e-07, 999.95]),
    st.floats(0, 1) | st.sampled_from([0.0005, 0.9995, 0.00049999]),
    st.floats(-1.5, 1.5) | st.sampled_from([0.3505, -0.0005, 0.9995]),
    st.sampled_from(["blank", "punctuation", "unknown"]),
    st.floats(0, allow_infinity=False) | st.sampled_from([0.0015, 1e-3, 9.995]),
    ids,
)
def test_reasons_read_as_describe_writes_them(db, norm, variance, ratio, sim, kind, dev, dup):
    """Every code's text, with measures of any size, and ids with quotes, backslashes and
    control characters, as Python formats them (.4g, .1%, .3f, .3g, repr)."""
    codes = [c for c in gate.CODES]
    v = _one_row_verdicts(codes, norm, variance, ratio, sim, kind, dev, dup, 3, 768)
    got = db.execute(
        "SELECT embedding_gate._sql_reason(%s::text[], 3, 768, %s, %s, %s, %s, %s, %s, %s)",
        [codes, norm, variance, ratio, sim, kind, dev, dup],
    ).fetchone()[0]
    assert got == v.reason(0)
    got = db.execute(
        "SELECT embedding_gate._sql_reason(ARRAY['duplicate_vector'], 0, 768, NULL, NULL,"
        " NULL, NULL, NULL, NULL, %s, 'row')",
        [dup],
    ).fetchone()[0]
    v.noun = "row"
    assert got == gate.describe("duplicate_vector", v, 0)


# --- a real model's vectors ----------------------------------------------------------------


@pytest.fixture(scope="module")
def model_vectors():
    """A real model's vectors, embedded once for the module on first use: the degenerate
    texts, the English and Korean paragraphs, its references, the loader's calibration
    sentences. all-MiniLM-L6-v2 (bundled, 384-d) takes about 8 s to load and embed them,
    all-mpnet-base-v2 (`make models`, 768-d) about 18 s."""
    cache: dict = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = _embed(name)
        return cache[name]

    return get


def _embed(name: str) -> dict:
    import embedding_server
    from loader.calibration import SENTENCES
    from tests.texts import DEGENERATE, ENGLISH, KOREAN

    encode, _ = getattr(embedding_server, name)()
    degenerate = [t for texts in DEGENERATE.values() for t in texts]
    references = ["", "?", "-", "*", "𓀀"]
    texts = degenerate + list(ENGLISH) + list(KOREAN) + references + list(SENTENCES)
    x = np.array(encode(texts), dtype=np.float32)
    k = len(degenerate) + len(ENGLISH) + len(KOREAN)
    return {
        "rows": x[:k],
        "references": x[k : k + len(references)],
        "sample": x[k + len(references) :],
    }


@pytest.mark.parametrize("calibration", ["rows", "sample"])
@pytest.mark.parametrize("name", ["minilm", "mpnet"])
def test_a_real_models_vectors_get_the_same_verdicts(db, model_vectors, name, calibration):
    """The model's own vectors (degenerate texts among them) and strangers, with its
    references recorded and its calibration from its rows (mean and spread: model_mismatch
    measured) or from the loader's sentences (a mean only)."""
    vectors = model_vectors(name)
    rows, refs = vectors["rows"], vectors["references"]
    basis = rows if calibration == "rows" else vectors["sample"]
    spread = basis.std(axis=0) if calibration == "rows" else None
    db.execute(
        "INSERT INTO embedding_gate.model_calibrations (model, mean, spread, sample_size, source)"
        " VALUES (%s, %s::real[], %s::real[], %s, 'given')",
        [
            name,
            basis.mean(axis=0).tolist(),
            None if spread is None else spread.tolist(),
            len(basis),
        ],
    )
    db.execute(
        "INSERT INTO embedding_gate.blank_references (model, reference) VALUES (%s, %s)",
        [name, refs[0].tolist()],
    )
    for text, kind, r in zip("?-*", ["punctuation"] * 3, refs[1:4], strict=True):
        db.execute(
            "INSERT INTO embedding_gate.degenerate_references (model, text, kind, reference)"
            " VALUES (%s, %s, %s, %s)",
            [name, text, kind, r.tolist()],
        )
    rng = np.random.default_rng(1)
    strangers = rng.standard_normal((20, rows.shape[1])).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)
    x = np.vstack([rows, refs, strangers])
    v, sql = compare(db, x, DEFAULTS, [name] * len(x))
    flagged = {c for r in sql for c in r["issues"]}
    assert "blank_like" in flagged
    assert ("model_mismatch" in flagged) == (calibration == "rows")


# --- the SQL engine's triggers on chunks (sql/engine_sql/) ----------------------------------

SQL_ENGINE = ROOT / "sql" / "engine_sql"


# the files of sql/engine_sql/ that put its triggers on chunks (the others, its halfvec_bytes,
# scans and attached tables' triggers, are for a deployment of the SQL engine)
TRIGGER_FILES = (
    "001_settings.sql",
    "008_notify.sql",
    "009_calibration.sql",
    "010_insert_trigger.sql",
    "011_update_trigger.sql",
    "019_judge_chunks.sql",
)


def install_sql_engine(db):
    """The SQL engine's triggers on chunks in place of the PL/Python ones."""
    for name in TRIGGER_FILES:
        db.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))


VERDICT = (
    "SELECT chunk_id, quality_issues, quality_reason, quality_norm, quality_variance,"
    " quality_near_zero_ratio, quality_blank_similarity, quality_duplicate_of,"
    " embedding IS NOT NULL, embedding_raw IS NOT NULL FROM chunks ORDER BY chunk_id"
)
QUARANTINED = (
    "SELECT chunk_id, quality_issues, quality_reason, quality_norm, quality_variance,"
    " quality_near_zero_ratio, quality_blank_similarity, quality_duplicate_of,"
    " embedding_raw IS NOT NULL FROM embedding_quarantine ORDER BY chunk_id"
)


def _trigger_rows(rng):
    """The contract's cases, NaN/Inf and finite raw rows, two chunks of one embedding with
    different content, a model's blank-like and stranger rows."""
    rows = [(f"case:{name}", name, vec(x), None, None) for name, (x, _) in CASES.items()]
    bad = np.full(D, 0.01)
    bad[3] = np.nan
    rows.append(("raw:nan", "n", None, "{" + ",".join(map(str, bad)) + "}", None))
    rows.append(("raw:zero", "z", None, "{" + ",".join(["0"] * D) + "}", None))
    twin = vec(_unit(rng.standard_normal(D)))
    rows += [("twin:1", "first", twin, None, None), ("twin:2", "second", twin, None, None)]
    return rows


def _write(db, rows, mode):
    with db.transaction():
        db.execute("SELECT set_config('embedding_gate.mode', %s, true)", [mode])
        for chunk_id, content, embedding, raw, model in rows:
            db.execute(
                "INSERT INTO chunks (chunk_id, doc_id, content, embedding, embedding_raw,"
                " embedding_model) VALUES (%s, 'd1', %s, %s::vector, %s::real[], %s)",
                [chunk_id, content, embedding, raw, model],
            )


def _states(db):
    return db.execute(VERDICT).fetchall(), db.execute(QUARANTINED).fetchall()


def _same_states(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[:3] == y[:3] and x[5] == y[5] and x[7:] == y[7:], (x, y)
        for got, expected, tolerance in ((y[3], x[3], 1e-12), (y[4], x[4], 1e-5)):
            assert (got is None) == (expected is None), (x, y)
            if got is not None:
                assert abs(got - expected) <= tolerance * abs(expected), (x, y)
        assert (y[6] is None) == (x[6] is None) and (
            y[6] is None or abs(y[6] - x[6]) <= TOLERANCE["similarity"]
        ), (x, y)


@pytest.mark.parametrize("mode", ["flag", "quarantine"])
def test_the_sql_insert_trigger_stores_what_the_plpython_one_does(doc, mode):
    """The same statements through chunks' PL/Python insert trigger, then (the rows gone)
    through the SQL engine's: the same quality columns and quarantine rows, the same
    notifications."""
    rng = np.random.default_rng(3)
    mean, spread, refs = record_model(doc, D, rng)
    rows = _trigger_rows(rng)
    for k, x in enumerate(model_rows(rng, D, mean, spread, refs, 12)):
        rows.append((f"model:{k:02d}", f"m{k}", vec(x), None, MODEL))
    doc.execute("LISTEN embedding_gate")
    states, notes = [], []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            install_sql_engine(doc)
        _write(doc, rows, mode)
        states.append(_states(doc))
        notes.append([json.loads(n.payload) for n in doc.notifies(timeout=0.5, stop_after=None)])
        doc.execute("DELETE FROM chunks")
        doc.execute("DELETE FROM embedding_quarantine")
    (plpython, plpython_q), (sql, sql_q) = states
    assert any(r[1] for r in plpython) or plpython_q
    _same_states(plpython, sql)
    _same_states(plpython_q, sql_q)
    assert notes[0] == notes[1] and notes[0]


def test_the_sql_insert_trigger_rejects_as_the_plpython_one_does(doc):
    """Reject mode: the same SQLSTATE, message and detail, and nothing stored."""
    rows = [
        ("r:1", "a", vec(np.zeros(D)), None, None),
        ("r:2", "b", vec(_unit(np.arange(D) + 1.0)), None, None),
        ("r:3", "c", vec(one_hot(1.0)), None, None),
    ]
    errors = []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            install_sql_engine(doc)
        with pytest.raises(psycopg.Error) as e:
            with doc.transaction():
                doc.execute("SET LOCAL embedding_gate.mode = 'reject'")
                doc.execute(
                    "INSERT INTO chunks (chunk_id, doc_id, content, embedding)"
                    " SELECT * FROM ROWS FROM (unnest(%s::text[]), unnest(%s::text[]),"
                    " unnest(%s::text[]), unnest(%s::text[]::vector[]))",
                    [[r[0] for r in rows], ["d1"] * 3, [r[1] for r in rows], [r[2] for r in rows]],
                )
        d = e.value.diag
        errors.append((e.value.sqlstate, d.message_primary, d.message_detail))
        assert doc.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    assert errors[0] == errors[1] and errors[0][0] == "QG001"


def _update_to(db, rows, mode):
    """Each row's embedding (or embedding_raw) updated to its vector, one statement a row."""
    with db.transaction():
        db.execute("SELECT set_config('embedding_gate.mode', %s, true)", [mode])
        for chunk_id, _, embedding, raw, model in rows:
            db.execute(
                "UPDATE chunks SET embedding = %s::vector, embedding_raw = %s::real[],"
                " embedding_model = %s WHERE chunk_id = %s",
                [embedding, raw, model, chunk_id],
            )


@pytest.mark.parametrize("mode", ["flag", "quarantine"])
def test_the_sql_update_trigger_stores_what_the_plpython_one_does(doc, mode):
    """Updates of stored rows to the same vectors as above, through each engine's update
    trigger: the same quality columns, the same rows kept or quarantined, the same
    notifications."""
    rng = np.random.default_rng(4)
    mean, spread, refs = record_model(doc, D, rng)
    rows = _trigger_rows(rng)
    for k, x in enumerate(model_rows(rng, D, mean, spread, refs, 8)):
        rows.append((f"model:{k:02d}", f"m{k}", vec(x), None, MODEL))
    clean = vec(alternating(0.05))
    doc.execute("LISTEN embedding_gate")
    states, notes = [], []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            install_sql_engine(doc)
        _write(doc, [(r[0], r[1], clean, None, None) for r in rows], "flag")
        doc.notifies(timeout=0.2, stop_after=None)
        _update_to(doc, rows, mode)
        states.append(_states(doc))
        notes.append([json.loads(n.payload) for n in doc.notifies(timeout=0.5, stop_after=None)])
        doc.execute("DELETE FROM chunks")
        doc.execute("DELETE FROM embedding_quarantine")
    (plpython, plpython_q), (sql, sql_q) = states
    assert any(r[1] for r in plpython) or plpython_q
    _same_states(plpython, sql)
    _same_states(plpython_q, sql_q)
    assert notes[0] == notes[1] and notes[0]


def test_the_sql_update_trigger_rejects_as_the_plpython_one_does(doc):
    errors = []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            install_sql_engine(doc)
        _write(doc, [("u:1", "a", vec(alternating(0.05)), None, None)], "flag")
        with pytest.raises(psycopg.Error) as e:
            with doc.transaction():
                doc.execute("SET LOCAL embedding_gate.mode = 'reject'")
                doc.execute("UPDATE chunks SET embedding = %s::vector", [vec(np.zeros(D))])
        d = e.value.diag
        errors.append((e.value.sqlstate, d.message_primary, d.message_detail))
        assert doc.execute("SELECT quality_issues FROM chunks").fetchall() == [(None,)]
        doc.execute("DELETE FROM chunks")
    assert errors[0] == errors[1] and errors[0][0] == "QG001"


# --- attached tables: sql/engine_sql/014_check_attached.sql and 026_check_existing.sql in
# place of the PL/Python _check_attached() and _check_existing() -----------------------------

ATTACH_FILES = (
    "001_settings.sql",
    "008_notify.sql",
    "014_check_attached.sql",
    "026_check_existing.sql",
)
ATTACHED_VERDICTS = (
    "SELECT row_id, issues, reason, norm, variance, blank_similarity, near_zero_ratio,"
    " duplicate_of, embedding_model, content_length, content_preview"
    " FROM embedding_gate.verdicts WHERE table_oid = 'items'::regclass ORDER BY row_id"
)
ATTACHED_QUARANTINE = (
    "SELECT row_id, issues, reason, norm, variance, blank_similarity, near_zero_ratio,"
    " duplicate_of, embedding_model, content_length, content_preview, row - 'emb'"
    " FROM embedding_gate.quarantine WHERE table_oid = 'items'::regclass ORDER BY row_id"
)


def _same_attached(a, b):
    """Rows of ATTACHED_VERDICTS or ATTACHED_QUARANTINE: equal but the measures, which agree
    within the tolerances."""
    assert len(a) == len(b), (a, b)
    for x, y in zip(a, b, strict=True):
        assert x[:3] == y[:3] and x[6:] == y[6:], (x, y)
        for got, expected, tolerance in ((y[3], x[3], 1e-12), (y[4], x[4], 1e-5)):
            assert (got is None) == (expected is None), (x, y)
            if got is not None:
                assert abs(got - expected) <= tolerance * abs(expected), (x, y)
        assert (y[5] is None) == (x[5] is None) and (
            y[5] is None or abs(y[5] - x[5]) <= TOLERANCE["similarity"]
        ), (x, y)


def _attached_case_rows(rng, mean, spread, refs):
    """(id, body, vector) rows: the contract's cases, a vector repeated with other text (a
    duplicate) and with the same text (not one), a model's rows."""
    rows = [(f"case:{name}", name, vec(x)) for name, (x, _) in CASES.items()]
    twin = vec(_unit(rng.standard_normal(D)))
    rows += [("twin:1", "first", twin), ("twin:2", "second", twin), ("twin:3", "first", twin)]
    rows += [
        (f"model:{k:02d}", f"m{k}", vec(x))
        for k, x in enumerate(model_rows(rng, D, mean, spread, refs, 10))
    ]
    return rows


def _through_both_engines(db, column, rows, mode, model=MODEL, model_column=False):
    """The same rows through one attached table under each engine's functions: stored before
    attach (attach's check), inserted in one statement, then every row's vector replaced by
    the next one's; per engine what attach found, the verdicts after it and at the end, the
    quarantine, the notifications, the table's counts, its ids and the models'
    calibrations."""
    half = len(rows) // 2
    db.execute("LISTEN embedding_gate")
    states = []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            for name in ATTACH_FILES:
                db.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))
        db.execute(f"CREATE TABLE items (id text PRIMARY KEY, body text, m text, emb {column})")
        db.cursor().executemany(
            f"INSERT INTO items VALUES (%s, %s, %s, %s::{column})", [r[:4] for r in rows[:half]]
        )
        attached = db.execute(
            "SELECT checked, low_quality FROM embedding_gate.attach('items', 'emb',"
            " content_column => 'body', model => %s, model_column => %s)",
            [None if model_column else model, "m" if model_column else None],
        ).fetchone()
        checked = db.execute(ATTACHED_VERDICTS).fetchall()
        db.execute(
            "SELECT embedding_gate.set_table_settings('items', %s)", [json.dumps({"mode": mode})]
        )
        db.notifies(timeout=0.2, stop_after=None)
        rest = rows[half:]
        db.execute(
            "INSERT INTO items SELECT * FROM ROWS FROM (unnest(%s::text[]), unnest(%s::text[]),"
            f" unnest(%s::text[]), unnest(%s::text[]::{column}[]))",
            [[r[k] for r in rest] for k in range(4)],
        )
        kept = [r[0] for r in db.execute("SELECT id FROM items ORDER BY id").fetchall()]
        db.execute(
            "UPDATE items AS i SET emb = n.emb FROM (SELECT id, lead(emb) OVER (ORDER BY id)"
            " AS emb FROM items) AS n WHERE n.id = i.id AND n.emb IS NOT NULL"
        )
        notes = [json.loads(n.payload) for n in db.notifies(timeout=0.5, stop_after=None)]
        listed = db.execute(
            "SELECT embedded, flagged, quarantined FROM embedding_gate.attached"
            " WHERE table_name = 'public.items'"
        ).fetchone()
        calibrations = db.execute(
            "SELECT model, sample_size, source, spread IS NOT NULL"
            " FROM embedding_gate.model_calibrations ORDER BY model"
        ).fetchall()
        states.append(
            (
                attached,
                checked,
                db.execute(ATTACHED_VERDICTS).fetchall(),
                db.execute(ATTACHED_QUARANTINE).fetchall(),
                notes,
                listed,
                kept,
                calibrations,
            )
        )
        db.execute("SELECT embedding_gate.detach('items', drop_quarantined => true)")
        db.execute("DROP TABLE items")
        # (the next engine starts from the calibrations as they were)
        db.execute("DELETE FROM embedding_gate._calibration_deltas")
        db.execute("DELETE FROM embedding_gate.model_calibrations WHERE source = 'stored rows'")
    plpython, sql = states
    assert plpython[0] == sql[0] and plpython[0][1] > 0
    for k in (1, 2, 3):
        _same_attached(plpython[k], sql[k])
    assert plpython[2] or plpython[3]
    assert plpython[4] == sql[4] and plpython[4]
    assert plpython[5:] == sql[5:]
    return plpython


@pytest.mark.parametrize("mode", ["flag", "quarantine"])
def test_the_sql_attached_trigger_stores_what_the_plpython_one_does(db, mode):
    """vector(768), a model given at attach: the contract's cases, duplicates, a model's rows."""
    rng = np.random.default_rng(5)
    mean, spread, refs = record_model(db, D, rng)
    rows = [(i, b, None, x) for i, b, x in _attached_case_rows(rng, mean, spread, refs)]
    _through_both_engines(db, f"vector({D})", rows, mode)


@pytest.mark.parametrize("layout", ["halfvec", "unconstrained"])
def test_the_sql_attached_trigger_agrees_on_halfvec_and_unconstrained_columns(db, layout):
    """halfvec(768) (the cases within float16's range), and an unconstrained vector column
    holding two dimensions with a model column (rows of the model, of another, of none)."""
    rng = np.random.default_rng(6)
    mean, spread, refs = record_model(db, D, rng)
    rows = [(i, b, MODEL, x) for i, b, x in _attached_case_rows(rng, mean, spread, refs)]
    if layout == "halfvec":
        rows = [r for r in rows if not r[0].startswith("case:huge")]
        _through_both_engines(db, f"halfvec({D})", rows, "flag")
        return
    small = [_unit(rng.standard_normal(8)) for _ in range(6)] + [np.zeros(8), np.ones(8)]
    rows += [(f"small:{k}", f"s{k}", None, vec(x)) for k, x in enumerate(small)]
    rows += [("other:1", "o", "another-model", vec(_unit(rng.standard_normal(D))))]
    rows.sort(key=lambda r: r[0][::-1])  # the dimensions interleaved
    _through_both_engines(db, "vector", rows, "flag", model_column=True)


def test_the_sql_attached_trigger_calibrates_a_model_as_the_plpython_one_does(db):
    """A model with a blank reference and no calibration: the rows written, ten a statement,
    give it one at its 100th row, the rows before it are judged then, and both engines end
    with the same verdicts and calibration."""
    rng = np.random.default_rng(62)
    reference = _unit(rng.standard_normal(D))
    db.execute("SELECT set_blank_reference('fresh-model', %s)", [vec(reference)])
    rows = [
        (f"r{i:03d}", f"text {i}", None, vec(_unit(rng.standard_normal(D)))) for i in range(120)
    ]
    for i in (12, 57, 113):
        blank = _unit(reference + rng.standard_normal(D) * 0.01)
        rows[i] = (f"r{i:03d}", " ", None, vec(blank))
    db.execute("LISTEN embedding_gate")
    states = []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            for name in ATTACH_FILES:
                db.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))
        db.execute(f"CREATE TABLE items (id text PRIMARY KEY, body text, m text, emb vector({D}))")
        db.execute(
            "SELECT * FROM embedding_gate.attach('items', 'emb', content_column => 'body',"
            " model => 'fresh-model')"
        )
        for k in range(0, len(rows), 10):
            part = rows[k : k + 10]
            db.execute(
                "INSERT INTO items SELECT * FROM ROWS FROM (unnest(%s::text[]),"
                " unnest(%s::text[]), unnest(%s::text[]), unnest(%s::text[]::vector[]))",
                [[r[j] for r in part] for j in range(4)],
            )
        notes = [json.loads(n.payload) for n in db.notifies(timeout=0.5, stop_after=None)]
        calibration = db.execute(
            "SELECT sample_size, source, spread IS NOT NULL, mean FROM"
            " embedding_gate.model_calibrations WHERE model = 'fresh-model'"
        ).fetchone()
        states.append((db.execute(ATTACHED_VERDICTS).fetchall(), notes, calibration))
        db.execute("SELECT embedding_gate.detach('items')")
        db.execute("DROP TABLE items")
        db.execute("DELETE FROM embedding_gate._calibration_deltas")
        db.execute("DELETE FROM embedding_gate.model_calibrations")
    (plpython, plpython_notes, plpython_c), (sql, sql_notes, sql_c) = states
    assert [r[0] for r in plpython] == ["r012", "r057", "r113"]
    _same_attached(plpython, sql)
    assert plpython_notes == sql_notes
    assert plpython_c[:3] == sql_c[:3] == (100, "stored rows", True)  # (at the 100th row)
    assert np.allclose(plpython_c[3], sql_c[3], rtol=0, atol=1e-6)


def test_the_sql_attached_trigger_rejects_as_the_plpython_one_does(db):
    errors = []
    for engine in ("plpython", "sql"):
        if engine == "sql":
            for name in ATTACH_FILES:
                db.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))
        db.execute(f"CREATE TABLE items (id int PRIMARY KEY, body text, emb vector({D}))")
        db.execute("SELECT * FROM embedding_gate.attach('items', 'emb', content_column => 'body')")
        db.execute("SELECT embedding_gate.set_table_settings('items', '{\"mode\": \"reject\"}')")
        with pytest.raises(psycopg.Error) as e:
            db.execute(
                "INSERT INTO items SELECT i, 't' || i, %s::vector FROM generate_series(1, 25) AS i",
                [vec(np.zeros(D))],
            )
        d = e.value.diag
        errors.append((e.value.sqlstate, d.message_primary, d.message_detail, d.table_name))
        assert db.execute("SELECT count(*) FROM items").fetchone() == (0,)
        db.execute("SELECT embedding_gate.detach('items')")
        db.execute("DROP TABLE items")
    assert errors[0] == errors[1] and errors[0][0] == "QG001"


def test_the_sql_scan_of_an_attached_table_measures_what_the_plpython_one_does(db):
    """embedding_gate._sql_scan_attached (sql/engine_sql/026_scan_attached.sql) against the
    PL/Python engine's scan of the same table (embedding_measures): the same rows, models,
    codes (duplicates kept in the order of the writes, whatever the ids' order) and measures;
    a sample is a subset of the rows, judged alike; a role that may not read the table gets
    nothing, one under a row-level security policy its own rows."""
    rng = np.random.default_rng(7)
    mean, spread, refs = record_model(db, D, rng)
    rows = [(i, b, None, x) for i, b, x in _attached_case_rows(rng, mean, spread, refs)]
    db.execute(f"CREATE TABLE items (id text PRIMARY KEY, body text, m text, emb vector({D}))")
    db.execute(
        "SELECT * FROM embedding_gate.attach('items', 'emb', content_column => 'body',"
        " model => %s)",
        [MODEL],
    )
    # one statement a row, ids against the order of the writes: 'twin:3' (same text as
    # 'twin:1') written first, then 'twin:2' and 'twin:1'
    for r in sorted(rows, key=lambda r: r[0], reverse=True):
        db.execute("INSERT INTO items VALUES (%s, %s, %s, %s::vector)", r)
    plpython = db.execute(
        "SELECT row_id, embedding_model, issues, norm, variance, near_zero_ratio,"
        " blank_similarity, silent_deviation FROM embedding_measures()"
        " WHERE table_name = 'public.items' ORDER BY row_id"
    ).fetchall()
    for name in (
        "001_settings.sql",
        "008_notify.sql",
        "014_check_attached.sql",
        "026_scan_attached.sql",
    ):
        db.execute((SQL_ENGINE / name).read_text(encoding="utf-8"))
    scan = (
        "SELECT * FROM embedding_gate._sql_scan_attached('items',"
        " embedding_gate._sql_table_settings('items'), %s) ORDER BY row_id"
    )
    sql = db.execute(scan, [None]).fetchall()
    assert [r[:3] for r in plpython] == [r[:3] for r in sql]
    assert any("duplicate_vector" in r[2] for r in sql)
    for x, y in zip(plpython, sql, strict=True):
        for k, tolerance in ((3, 1e-12), (4, 1e-5)):
            assert abs(x[k] - y[k]) <= tolerance * abs(x[k]), (x, y)
        assert x[5] == y[5] and (x[6] is None) == (y[6] is None), (x, y)
        assert x[6] is None or abs(x[6] - y[6]) <= TOLERANCE["similarity"], (x, y)
        assert (x[7] is None) == (y[7] is None), (x, y)
        assert x[7] is None or abs(x[7] - y[7]) <= TOLERANCE["deviation"] * abs(x[7]), (x, y)
    sample = db.execute(scan, [7]).fetchall()
    by_id = {r[0]: r for r in sql}
    assert len(sample) == 7 and all(by_id[r[0]] == r for r in sample)
    # as a role that may not read it: nothing; under a policy: its rows only
    db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scan_reader')"
        " THEN CREATE ROLE scan_reader; END IF; END $$"
    )
    db.execute("SET ROLE scan_reader")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(scan, [None])
    db.execute("RESET ROLE")
    db.execute("GRANT SELECT ON items TO scan_reader")
    db.execute("ALTER TABLE items ENABLE ROW LEVEL SECURITY")
    db.execute("CREATE POLICY mine ON items FOR SELECT TO scan_reader USING (id LIKE 'case:%')")
    db.execute("SET ROLE scan_reader")
    seen = db.execute(scan, [None]).fetchall()
    db.execute("RESET ROLE")
    assert [r[0] for r in seen] == [r[0] for r in sql if r[0].startswith("case:")]
