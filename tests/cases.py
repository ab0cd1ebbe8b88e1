"""Vectors at and around each check's default threshold, with the codes they must get.

Shared by the unit tests of plpython/embedding_gate/checks.py and the database tests, which
run the same cases through the real trigger. d = 768 throughout.
"""

import numpy as np
from embedding_gate.checks import Thresholds

D = 768

# The defaults of the contract (DESIGN.md): the database's settings hold them (a test reads
# them back); the checks themselves have none.
DEFAULTS = Thresholds(
    min_norm=0.1,
    min_variance=0.001,
    near_zero_epsilon=0.001,
    max_near_zero_ratio=0.9,
    blank_similarity=0.35,
    max_silent_deviation=0.001,
)
_rng = np.random.default_rng(7)


def one_hot(value: float, index: int = 0) -> np.ndarray:
    x = np.zeros(D, dtype=np.float32)
    x[index] = value
    return x


def alternating(a: float) -> np.ndarray:
    """+a, -a, ...: mean 0, population variance a**2, norm a * sqrt(D)."""
    return np.tile(np.array([a, -a], dtype=np.float32), D // 2)


def near_zero(count: int) -> np.ndarray:
    """`count` components at 0.0005 (near zero), the rest at +-0.5 (not)."""
    x = alternating(0.5)
    x[:count] = 0.0005
    return x


def _at_epsilon() -> np.ndarray:
    """692 components at exactly 0.001 in float64 terms: abs(x) < eps is strict."""
    x = alternating(0.5).astype(np.float64)
    x[:692] = 0.001
    return x


def unit_random() -> np.ndarray:
    x = _rng.standard_normal(D).astype(np.float32)
    return x / np.linalg.norm(x)


# name -> (vector, expected codes in CODES order)
CASES = {
    # low_norm: L2 norm < 0.1. A dense vector, so only the norm is small
    # (+-c vectors: norm c * sqrt(D); their variance c**2 is far below 0.001 too)
    "norm_just_below_0.1": (alternating(0.0999 / np.sqrt(D)), ["low_norm", "low_variance"]),
    "norm_just_above_0.1": (alternating(0.1001 / np.sqrt(D)), ["low_variance"]),
    # low_variance: population variance < 0.001 (alternating +-a has variance a**2)
    "variance_just_below_0.001": (alternating(np.sqrt(0.000999)), ["low_variance"]),
    "variance_just_above_0.001": (alternating(np.sqrt(0.001001)), []),
    # sparse: more than 90% of components with abs(x) < 0.001; 691/768 = 0.8997, 692/768 = 0.9010
    "near_zero_691_of_768": (near_zero(691), []),
    "near_zero_692_of_768": (near_zero(692), ["sparse"]),
    "components_at_epsilon_are_not_near_zero": (_at_epsilon(), []),
    # several at once, and the classic degenerate shapes
    "zero_vector": (np.zeros(D, dtype=np.float32), ["low_norm", "low_variance", "sparse"]),
    "constant_vector": (np.full(D, 0.5, dtype=np.float32), ["low_variance"]),
    "tiny_constant_vector": (
        np.full(D, 0.0001, dtype=np.float32),
        ["low_norm", "low_variance", "sparse"],
    ),
    "one_hot_vector": (one_hot(1.0), ["sparse"]),
    "unit_random_768": (unit_random(), []),
    "huge_values_1e30": (unit_random() * np.float32(1e30), []),
    "huge_constant_1e30": (np.full(D, 1e30, dtype=np.float32), ["low_variance"]),
}
