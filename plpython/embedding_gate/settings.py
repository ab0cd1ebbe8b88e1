"""What the gate is set to: the mode and thresholds of embedding_gate.settings (overridable
per transaction by roles that may change them), and each model's blank reference and
calibration."""

import json
import math
import random

import numpy as np

from . import queries
from .checks import Thresholds, blank_reference

MODES = ("flag", "quarantine", "reject")

# A model's calibration from its rows needs this many of them: the gate records the mean of
# the rows it has seen once there are this many (and a recheck, from the stored rows, where
# the model has none from its stored rows yet, or twice as many rows as that one). Measured
# (bench/bench_models.py, 50 random draws of k rows): the highest ordinary paragraph's
# similarity was 0.47-0.48 at k = 10, 0.41 at 25, 0.30-0.34 at 50 (the threshold is 0.35),
# 0.25-0.30 at 100, with every degenerate text caught from k = 50 on.
CALIBRATION_ROWS = 100
# Once the writes have given a model a calibration over this many rows, a statement adds
# its vectors to it only one time in SETTLED_SHARE, at random (an unbiased sample of the
# statements): each addition is a row of 2 d floats (6 KB at 768-d), as much again as a
# single-row insert writes, and the mean moves little by then.
SETTLED_ROWS = 10_000
SETTLED_SHARE = 100


def current_settings(plpy, table_overrides=None) -> "tuple[str, Thresholds]":
    """Mode and thresholds: the settings table, then an attached table's own overrides
    (table_overrides, set by its owner), then per transaction
    `SET LOCAL embedding_gate.<name> = ...` where the calling role may change the settings."""
    found = queries.run(plpy, queries.SETTINGS)
    if not found:
        plpy.error(
            "embedding_gate.settings has no row: the embedding gate has no mode or thresholds"
            " to check this write with",
            hint="put the defaults back (then set what differed): INSERT INTO"
            " embedding_gate.settings DEFAULT VALUES",
            sqlstate="55000",
        )
    row = found[0]
    values = dict(row)
    values.update((k, v) for k, v in (table_overrides or {}).items() if k in values)
    overridden = []
    for name in row.keys():
        text = queries.run(plpy, queries.OVERRIDE, ["text"], [name])[0]["v"]
        if text:  # NULL when never set, '' after RESET
            overridden.append((name, text))
    if overridden:
        if not queries.run(plpy, queries.CALLER_MAY_TUNE)[0]["ok"]:
            names = ", ".join(f"embedding_gate.{n}" for n, _ in overridden)
            plpy.error(
                f"this role may not override the embedding gate's settings ({names})",
                hint="overrides need UPDATE on embedding_gate.settings; RESET them",
                sqlstate="42501",
            )
        for name, text in overridden:
            values[name] = _parse_override(plpy, name, text)
    mode = values.pop("mode")
    return mode, Thresholds(**{k: float(v) for k, v in values.items()})


def overrides_of(plpy, table: str) -> dict:
    """A table's own overrides of the settings (set by its owner with
    embedding_gate.set_table_settings), {} where it has none."""
    found = queries.run(plpy, queries.OVERRIDES, ["text"], [table])
    return json.loads(found[0]["overrides"]) if found else {}


def _parse_override(plpy, name: str, text: str):
    if name == "mode":
        if text not in MODES:
            plpy.error(
                f"embedding_gate.mode is {text!r}, expected one of {', '.join(MODES)}",
                sqlstate="22023",
            )
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        plpy.error(
            f"embedding_gate.{name} is {text!r}, expected a non-negative number",
            sqlstate="22023",
        )
    return value


def references_for(plpy, models: list) -> list:
    """Per row, its model's BlankReference (one object per model), or None where the row
    names no model, or its model has no blank reference or no calibration yet (then
    blank_like is not checked: a model's common direction is unknown, and for an
    anisotropic model every chunk would look blank)."""
    wanted = sorted({m for m in models if m is not None})
    if not wanted:
        return [None] * len(models)
    rows = queries.run(plpy, queries.REFERENCES, ["text[]"], [wanted])
    found = {
        r["model"]: blank_reference(
            r["reference"],
            r["mean"],
            [
                (kind, json.loads(text))
                for kind, text in zip(r["kinds"] or [], r["others"] or [], strict=True)
            ],
            r["spread"],
            r["sample_size"],
        )
        for r in rows
    }
    return [found.get(m) for m in models]


def calibrate(plpy, x, models: list, feeds: bool, keep=None) -> list:
    """Add a statement's vectors (x, (n, d), finite ones only; keep: a mask of the rows to
    add, None: all) to their models' calibrations (embedding_gate._add_calibration), where
    the table feeds them (its owner may tune the gate: a model's calibration serves every
    table of that model, and another owner's rows must not move it). Returns the models
    whose first calibration this recorded."""
    if not feeds or not len(x):
        return []
    labels = np.array(models, dtype=object)
    first = []
    for model in sorted({m for m in models if m is not None}):
        mine = labels == model
        if keep is not None:
            mine &= keep
        n = int(mine.sum())
        if not n:
            continue
        y = (x if n == len(x) else x[mine]).astype(np.float32, copy=False)
        # in float32, numpy's own loops (a cast to float64 cost as much again); a row with
        # NaN/Inf makes the sums so, and then only the finite rows are added
        with np.errstate(invalid="ignore", over="ignore"):
            total = y.sum(axis=0, dtype=np.float32)
            squares = np.einsum("ij,ij->j", y, y)
            if not (np.isfinite(total).all() and np.isfinite(squares).all()):
                y = y[np.isfinite(y.sum(axis=1, dtype=np.float64))]
                n = len(y)
                if not n:
                    continue
                total = y.sum(axis=0, dtype=np.float32)
                squares = np.einsum("ij,ij->j", y, y)
        found = queries.run(
            plpy,
            queries.ADD_CALIBRATION,
            queries.ADD_CALIBRATION_TYPES,
            # (as float4, which they become: a value below its range is 0, not an error)
            [
                model,
                x.shape[1],
                n,
                total.astype(np.float32).tolist(),
                squares.astype(np.float32, copy=False).tolist(),
                CALIBRATION_ROWS,
            ],
        )
        if found[0]["first"]:
            first.append(model)
    return first


def judged_then_calibrated(plpy, x, t, models: list, duplicates, feeds: bool):
    """evaluate() a statement's new vectors and add them to their models' calibrations:
    first, for a model without a calibration yet (so that a bulk load is judged with the
    one its own rows give), and after judging for the others, leaving out the vectors
    flagged model_mismatch (another model's vectors must not blur the fingerprint they
    fail). Returns (verdicts, the models whose first calibration this recorded)."""
    from .checks import CODES, evaluate

    references = references_for(plpy, models)
    new = [m for m, r in zip(models, references, strict=True) if m is not None and r is None]
    if feeds and not new and random.randrange(SETTLED_SHARE):
        # a statement of settled models only (their calibrations kept by the writes, over
        # SETTLED_ROWS or more) adds nothing, 99 times in 100
        feeds = not all(r is None or (r.kept and r.sample_size >= SETTLED_ROWS) for r in references)
    first = []
    if new and feeds:
        fresh = np.isin(np.array(models, dtype=object), list(set(new)))
        first = calibrate(plpy, x, models, feeds, keep=fresh)
        references = references_for(plpy, models)
    v = evaluate(x, t, references, duplicates)
    if feeds:
        keep = ~v.codes[:, CODES.index("model_mismatch")]
        if new:
            keep &= ~fresh
        calibrate(plpy, x, models, feeds, keep=keep)
    return v, first
