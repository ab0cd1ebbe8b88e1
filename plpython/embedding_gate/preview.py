"""preview_thresholds(): what proposed thresholds would do, before anyone applies them."""

import math

import numpy as np

from .checks import CODES, evaluate
from .scans import every_embedding
from .settings import current_settings, references_for

# percentiles shown by preview_thresholds()
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)
# the percentiles are exact up to this many finite values of a measure, and beyond it come
# from a uniform sample of this size: the backend's memory stays bounded at any table size
# (10,000,000 rows kept whole took 945 MB)
SAMPLE = 1_000_000


class Reservoir:
    """A uniform sample of at most `size` of the values added (Algorithm R, by blocks)."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seen = size, 0
        self.values = np.empty(0)
        self.rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        room = self.size - len(self.values)
        if room > 0:
            self.values = np.concatenate([self.values, values[:room]])
            self.seen += min(room, len(values))
            values = values[room:]
        if len(values):
            # value k of the stream replaces a random slot with probability size / (k + 1)
            k = self.seen + np.arange(len(values))
            slots = (self.rng.random(len(values)) * (k + 1)).astype(np.int64)
            keep = slots < self.size
            self.values[slots[keep]] = values[keep]
            self.seen += len(values)

    def percentiles(self) -> "list | None":
        if not len(self.values):
            return None
        return [float(p) for p in np.percentile(self.values, PERCENTILES)]


def preview(plpy, proposed: dict) -> list:
    """The distribution of each measure over the stored embeddings and how many the current
    and the proposed thresholds flag. Changes nothing."""
    for name, value in proposed.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            plpy.error(f"{name} is {value!r}, expected a non-negative number", sqlstate="22023")
    _, now = current_settings(plpy)
    new = now.with_values(**proposed)
    measured = {
        key: Reservoir(SAMPLE) for key in ("norm", "variance", "ratio", "similarity", "deviation")
    }
    # per code, then "any": how many embeddings the current and the proposed thresholds flag
    now_counts = np.zeros(len(CODES) + 1, dtype=np.int64)
    new_counts = np.zeros(len(CODES) + 1, dtype=np.int64)
    n = 0
    dim = None
    # the global settings and the proposal, on every table (a table's own overrides aside)
    for _, _, _, x, models, duplicates in every_embedding(plpy):
        references = references_for(plpy, models)
        a, b = evaluate(x, now, references, duplicates), evaluate(x, new, references, duplicates)
        dim = x.shape[1]
        n += len(x)
        measured["norm"].add(b.norm)
        measured["variance"].add(b.variance)
        measured["ratio"].add(b.near_zero_ratio)
        measured["similarity"].add(b.blank_similarity)
        measured["deviation"].add(b.silent_deviation)
        now_counts += np.append(a.codes.sum(axis=0), a.flagged.sum())
        new_counts += np.append(b.codes.sum(axis=0), b.flagged.sum())

    def spread(key):
        return measured[key].percentiles()

    unit_variance = f"{1 / dim:.4g}" if dim else "1/d"
    # per code in CODES order: measure, current and proposed threshold, spread, note
    rows = [
        ("NaN/Inf components", None, None, None, "always on: pgvector cannot hold NaN or Inf"),
        (
            "norm",
            now.min_norm,
            new.min_norm,
            spread("norm"),
            "flags norm < threshold; normalising models give norm 1.0",
        ),
        (
            "variance",
            now.min_variance,
            new.min_variance,
            spread("variance"),
            f"flags variance < threshold; a unit-normalised {dim or 'd'}-d vector has variance"
            f" about 1/d = {unit_variance}",
        ),
        (
            "near_zero_ratio",
            now.max_near_zero_ratio,
            new.max_near_zero_ratio,
            spread("ratio"),
            f"flags a share of abs(x) < near_zero_epsilon above threshold; near_zero_epsilon"
            f" {now.near_zero_epsilon:g} -> {new.near_zero_epsilon:g}",
        ),
        (
            "cosine to the embedding of empty text, the model's mean removed",
            now.blank_similarity,
            new.blank_similarity,
            spread("similarity"),
            "flags that cosine >= threshold; only chunks whose model has a blank reference and"
            " a calibration (embedding_gate.blank_references, model_calibrations); ordinary"
            " text sits near 0 whatever the model",
        ),
        (
            "identical embedding, other content",
            None,
            None,
            None,
            "always on: flags a chunk whose embedding equals an earlier chunk's",
        ),
        (
            "deviation on the model's silent dimensions, in units of its median spread",
            now.max_silent_deviation,
            new.max_silent_deviation,
            spread("deviation"),
            "flags a deviation > threshold; only rows whose model has a calibration from its"
            " rows (embedding_gate.model_calibrations.spread); its own rows sit below 0.0001",
        ),
    ]
    out = [
        _preview_row(code, *row[:4], n, now_counts[k], new_counts[k], row[4])
        for k, (code, row) in enumerate(zip(CODES, rows, strict=True))
    ]
    out.append(
        _preview_row(
            "any",
            "low quality",
            None,
            None,
            None,
            n,
            now_counts[-1],
            new_counts[-1],
            "chunks with at least one issue",
        )
    )
    return out


def _preview_row(code, measure, current, proposed, spread, n, now, new, note) -> dict:
    row = {
        "check_code": code,
        "measure": measure,
        "current_threshold": current,
        "proposed_threshold": proposed,
        "embeddings": n,
    }
    row.update(
        {f"p{p}": v for p, v in zip(PERCENTILES, spread or [None] * len(PERCENTILES), strict=True)}
    )
    flagged_new = int(new)
    row.update(
        {
            "flagged_now": int(now),
            "flagged_proposed": flagged_new,
            "flagged_proposed_pct": 100.0 * flagged_new / n if n else 0.0,
            "note": note,
        }
    )
    return row
