"""The checks of plpython/embedding_gate/checks.py as plain Python, without a database."""

import numpy as np
import pytest
from embedding_gate import checks as gate
from embedding_gate.codec import from_vector_text

from tests.cases import CASES, DEFAULTS, D, alternating, one_hot
from tests.helpers import vec


@pytest.mark.parametrize("name", list(CASES))
def test_default_thresholds_flag_exactly_the_expected_codes(name):
    """Each boundary case gets exactly its codes, no more."""
    vector, expected = CASES[name]
    v = gate.evaluate(np.asarray(vector).reshape(1, -1), DEFAULTS)
    assert v.issues(0) == expected


def test_nan_and_inf_are_counted_in_any_row_of_any_block():
    """The count of NaN/Inf components is exact wherever the row sits among clean ones, and
    finite values whose sum of squares overflows float64 are not NaN/Inf."""
    n = gate.EVAL_BLOCK_ROWS * 2 + 7
    x = np.random.default_rng(3).standard_normal((n, D))
    x[5, [0, 7, 9]] = np.nan
    x[gate.EVAL_BLOCK_ROWS + 1, [1, 2]] = [np.inf, -np.inf]
    x[n - 1] *= 1e200  # finite; its squares are not
    v = gate.evaluate(x, DEFAULTS)
    expected = np.zeros(n, dtype=np.int64)
    expected[5], expected[gate.EVAL_BLOCK_ROWS + 1] = 3, 2
    assert np.array_equal(v.nonfinite, expected)
    assert np.array_equal(np.flatnonzero(v.codes[:, 0]), [5, gate.EVAL_BLOCK_ROWS + 1])
    assert v.issues(n - 1) == [] and v.norm[n - 1] == np.inf


def test_a_value_exactly_at_the_threshold_does_not_fire():
    """All comparisons are strict: norm == min_norm, variance == min_variance and
    ratio == max_near_zero_ratio pass (values exact in binary floating point)."""
    t = DEFAULTS.with_values(min_norm=0.5, min_variance=0.25, max_near_zero_ratio=0.5)
    at_norm = one_hot(0.5)  # norm exactly 0.5
    at_variance = alternating(0.5)  # variance exactly 0.25
    half_zero = np.concatenate([np.zeros(D // 2), alternating(0.5)[: D // 2]])  # ratio 0.5
    v = gate.evaluate(np.stack([at_norm, at_variance, half_zero]), t)
    assert v.norm[0] == 0.5 and "low_norm" not in v.issues(0)
    assert v.variance[1] == 0.25 and v.issues(1) == []
    assert v.near_zero_ratio[2] == 0.5 and "sparse" not in v.issues(2)


def test_nan_or_inf_is_the_only_code_and_names_the_count():
    """A vector with NaN/Inf has no meaningful norm or variance: only nan_or_inf."""
    x = np.zeros((2, D))
    x[0, 3] = np.nan
    x[1, [1, 2]] = [np.inf, -np.inf]
    v = gate.evaluate(x, DEFAULTS)
    assert v.issues(0) == ["nan_or_inf"] and v.issues(1) == ["nan_or_inf"]
    assert v.reason(0) == f"NaN or Inf in 1 of {D} components"
    assert v.reason(1) == f"NaN or Inf in 2 of {D} components"
    assert v.measured(0)[:2] == (None, None)


def test_reasons_carry_the_measured_values():
    """Readable reasons in the reference pipeline's style: `norm too low (0.0234)`."""
    x = one_hot(0.0234)
    v = gate.evaluate(x.reshape(1, -1), DEFAULTS)
    assert v.reason(0).split("; ") == [
        "norm too low (0.0234)",
        "variance too low (7.12e-07)",
        "too many near-zero components (99.9%)",
    ]


def test_pgvector_text_decodes_to_the_exact_float32_values():
    """A row trigger reads pgvector's text form: what pgvector-python writes (the tests' and
    the loader's one way) comes back as the same float32 values."""
    x = np.array([0.1, -2.5, 1e-7, 3.4e38], dtype=np.float32)
    assert np.array_equal(from_vector_text(vec(x)), x)


def test_with_values_replaces_only_the_given_thresholds():
    t = DEFAULTS.with_values(min_norm=0.5, blank_similarity=None)
    assert (t.min_norm, t.blank_similarity, t.min_variance) == (0.5, 0.35, 0.001)


def test_preview_percentiles_are_exact_up_to_the_sample_and_bounded_beyond():
    """preview_thresholds keeps a uniform sample of each measure: every value while they
    fit (exact percentiles), at most `size` of them after, close to the true percentiles."""
    from embedding_gate.preview import PERCENTILES, Reservoir

    rng = np.random.default_rng(4)
    small = Reservoir(1000)
    values = rng.random(900)
    for block in np.array_split(values, 7):
        small.add(block)
    assert small.percentiles() == [float(p) for p in np.percentile(values, PERCENTILES)]
    big = Reservoir(2000)
    values = np.r_[rng.normal(size=50_000), np.nan]
    for block in np.array_split(values, 23):
        big.add(block)
    assert len(big.values) == 2000 and big.seen == 50_000
    assert np.allclose(
        big.percentiles()[1:-1], np.percentile(values[:-1], PERCENTILES)[1:-1], atol=0.1
    )
    assert Reservoir(10).percentiles() is None


def _unit(x):
    return x / np.linalg.norm(x)


def test_blank_like_takes_the_highest_cosine_over_the_models_references():
    """Several references a model (empty text, punctuation, unknown characters): the
    similarity is the highest, and the reason names that reference's kind."""
    rng = np.random.default_rng(24)
    blank, dot, unk = (_unit(rng.standard_normal(D)) for _ in range(3))
    ref = gate.blank_reference(blank, np.zeros(D), [("punctuation", dot), ("unknown", unk)])
    x = np.array([_unit(dot + 0.3 * rng.standard_normal(D) / np.sqrt(D)), _unit(unk), blank])
    x = np.vstack([x, _unit(rng.standard_normal(D))])
    v = gate.evaluate(x, DEFAULTS, [ref] * len(x))
    assert [v.issues(i) for i in range(4)] == [["blank_like"]] * 3 + [[]]
    assert "embedding of punctuation alone" in v.reason(0)
    assert "characters its tokenizer does not know" in v.reason(1)
    assert "embedding of empty text" in v.reason(2)
    alone = gate.evaluate(x, DEFAULTS, [gate.blank_reference(blank, np.zeros(D))] * len(x))
    assert alone.issues(0) == alone.issues(1) == []  # the empty text alone misses them


def test_model_mismatch_fires_on_the_silent_dimensions_only_above_the_threshold():
    """A model whose rows never vary on some dimensions: a vector that does is flagged
    model_mismatch, with the measured deviation; one that varies elsewhere is not; without a
    spread nothing is measured."""
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((200, D)) / np.sqrt(D)
    rows[:, [5, 77]] = 0.001  # two silent dimensions
    mean, spread = rows.mean(axis=0), rows.std(axis=0)
    ref = gate.blank_reference(None, mean, [], spread)
    assert list(ref.silent) == [5, 77]
    own = rows[0].copy()
    stranger = own.copy()
    stranger[77] += 0.01  # 0.01 / median spread (about 0.036): deviation about 0.28
    near = own.copy()
    near[77] += 1e-5  # 0.0003 of the median spread: below 0.001
    v = gate.evaluate(np.array([own, stranger, near]), DEFAULTS, [ref] * 3)
    assert [v.issues(i) for i in range(3)] == [[], ["model_mismatch"], []]
    assert v.silent_deviation[1] == pytest.approx(0.01 / np.median(spread), rel=1e-3)
    assert "silent dimensions" in v.reason(1)
    blank = _unit(rng.standard_normal(D))
    no_spread = gate.evaluate(np.array([stranger]), DEFAULTS, [gate.blank_reference(blank, mean)])
    assert no_spread.issues(0) == [] and np.isnan(no_spread.silent_deviation[0])
