"""preview_thresholds(): what proposed thresholds would do, before anyone applies them."""

import math

import numpy as np

from .checks import CODES, evaluate
from .scans import scan
from .settings import current_settings, references_for

# percentiles shown by preview_thresholds()
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)


def preview(plpy, proposed: dict) -> list:
    """The distribution of each measure over the stored embeddings and how many the current
    and the proposed thresholds flag. Changes nothing."""
    for name, value in proposed.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            plpy.error(f"{name} is {value!r}, expected a non-negative number", sqlstate="22023")
    _, now = current_settings(plpy)
    new = now.with_values(**proposed)
    measured: dict = {"norm": [], "variance": [], "ratio": [], "similarity": []}
    flagged_now, flagged_new = [], []
    dim = None
    for _, _, x, models, duplicates in scan(plpy):
        references = references_for(plpy, models)
        a, b = evaluate(x, now, references, duplicates), evaluate(x, new, references, duplicates)
        dim = x.shape[1]
        measured["norm"].append(b.norm)
        measured["variance"].append(b.variance)
        measured["ratio"].append(b.near_zero_ratio)
        measured["similarity"].append(b.blank_similarity)
        flagged_now.append(a.codes)
        flagged_new.append(b.codes)
    n = sum(len(c) for c in flagged_now)
    now_codes = np.concatenate(flagged_now) if n else np.zeros((0, len(CODES)), dtype=bool)
    new_codes = np.concatenate(flagged_new) if n else np.zeros((0, len(CODES)), dtype=bool)

    def spread(key):
        values = np.concatenate(measured[key]) if n else np.empty(0)
        values = values[np.isfinite(values)]
        if not len(values):
            return None
        return [float(p) for p in np.percentile(values, PERCENTILES)]

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
    ]
    out = [
        _preview_row(code, *row[:4], n, now_codes[:, k], new_codes[:, k], row[4])
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
            now_codes.any(axis=1),
            new_codes.any(axis=1),
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
    flagged_new = int(new.sum())
    row.update(
        {
            "flagged_now": int(now.sum()),
            "flagged_proposed": flagged_new,
            "flagged_proposed_pct": 100.0 * flagged_new / n if n else 0.0,
            "note": note,
        }
    )
    return row
