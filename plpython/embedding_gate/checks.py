"""The checks: pure numpy, no database. A batch of n vectors is an (n, d) array and each
measure is one vectorised pass over it."""

import math
from dataclasses import dataclass, replace

import numpy as np

CODES = ("nan_or_inf", "low_norm", "low_variance", "sparse", "blank_like", "duplicate_vector")

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
    # blank_like: cosine similarity to the model's embedding of empty text, at or above
    blank_similarity: float

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
        return f"like the model's embedding of empty text (cosine {v.blank_similarity[i]:.3f})"
    if code == "duplicate_vector":
        return f"same embedding as chunk {v.duplicate_of[i]!r}, whose content differs"
    raise ValueError(f"unknown issue code {code!r}")


def evaluate(vectors: np.ndarray, t: Thresholds, references=None, duplicate_of=None) -> Verdicts:
    """Run the checks on an (n, d) array of vectors (any float dtype or byte order).
    references: per vector, its model's unit-length embedding of empty text, or None (no
    blank_like check); duplicate_of: per vector, the id of an earlier row with the same
    embedding and other content, or None (the database finds those, by index)."""
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"expected an (n, d) array of vectors, got shape {x.shape}")
    n, d = x.shape
    norm, variance, near_zero_ratio = np.empty(n), np.empty(n), np.empty(n)
    nonfinite = np.empty(n, dtype=np.int64)
    # blank_like: the dot product of each row with its model's unit reference (k models)
    refs, which = _reference_matrix(references, n, d)
    dot = np.full(n, np.nan)
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
        if refs is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                # (rows, k); einsum's own loop, 2.5x faster than `@` on reference BLAS
                dots = np.einsum("ij,kj->ik", block, refs)
            w = which[rows]
            dot[rows] = np.where(w >= 0, dots[np.arange(len(w)), np.maximum(w, 0)], np.nan)
    bad = nonfinite > 0
    # a vector with NaN/Inf has no meaningful norm or variance: only nan_or_inf applies
    norm[bad] = np.nan
    variance[bad] = np.nan
    ok = ~bad
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = dot / norm
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
        ]
    )
    return Verdicts(norm, variance, near_zero_ratio, nonfinite, codes, d, similarity, duplicate_of)


def _reference_matrix(references, n: int, d: int):
    """The distinct reference vectors among the rows' as a (k, d) array, and per row the
    index of its reference (-1: none, or one of another dimension, which set_blank_reference
    refuses); (None, ...) when no row has one."""
    which = np.full(n, -1, dtype=np.int64)
    if references is None:
        return None, which
    distinct: dict = {}
    for i, reference in enumerate(references):
        if reference is not None and len(reference) == d:
            which[i] = distinct.setdefault(id(reference), (len(distinct), reference))[0]
    if not distinct:
        return None, which
    return np.array([reference for _, reference in distinct.values()]), which


def unit_reference(values) -> "np.ndarray | None":
    """A blank reference as a float64 unit vector; None when it cannot be one."""
    r = np.asarray(values, dtype=np.float64)
    norm = np.linalg.norm(r) if r.size and np.isfinite(r).all() else 0.0
    return r / norm if norm > 0 else None
