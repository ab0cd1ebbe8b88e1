"""What the gate is set to: the mode and thresholds of embedding_gate.settings (overridable
per transaction by roles that may change them), and each model's blank reference and
calibration."""

import json
import math

from . import queries
from .checks import Thresholds, blank_reference

MODES = ("flag", "quarantine", "reject")

# a recheck calibrates a model from its stored rows once it has this many (and none from
# its stored rows yet, or twice as many rows as that one)
CALIBRATION_ROWS = 50


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
    found = {r["model"]: blank_reference(r["reference"], r["mean"]) for r in rows}
    return [found.get(m) for m in models]
