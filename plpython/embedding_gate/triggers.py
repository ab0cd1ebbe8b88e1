"""The triggers on chunks: the statement-level insert trigger, the row-level update trigger,
and what each mode does with a flagged row."""

import json

import numpy as np

from . import queries
from .checks import CODES, Thresholds, Verdicts, evaluate
from .codec import from_vector_bytes, from_vector_text
from .settings import (
    CALIBRATION_ROWS,
    current_settings,
    judged_then_calibrated,
    overrides_of,
    references_for,
)

# SQLSTATE of a rejected embedding (class QG: quality gate); embedding_gate_reject raises it
REJECTED_SQLSTATE = "QG001"

# how many transition-table rows one numpy batch holds (768-d: 3 MiB of float32 per 1,000)
BATCH_ROWS = 4096

# the table the triggers guard, as listeners and reports name it
TABLE = "public.chunks"

# what a verdict writes on a chunk (NULL when clean)
VERDICT_COLUMNS = (
    "quality_issues",
    "quality_reason",
    "quality_norm",
    "quality_variance",
    "quality_near_zero_ratio",
    "quality_blank_similarity",
    "quality_duplicate_of",
)


class Rejected(Exception):
    """Raised inside the package once a rejection is recorded: stop checking."""


def check_inserted(plpy) -> None:
    """Statement-level AFTER INSERT trigger on chunks, transition table `inserted`: check
    every new embedding in vectorised batches; write back only what is flagged, tell
    listeners when anything was, and add the statement's rows to the summary's total."""
    mode, t = current_settings(plpy, overrides_of(plpy, TABLE))
    feeds = queries.run(plpy, queries.CHUNKS_FEED)[0]["ok"]

    def check(rows, tally) -> None:
        stored = [r for r in rows if r["v"] is not None]
        if stored:
            x = from_vector_bytes([r["v"] for r in stored])
            models = [r["model"] for r in stored]
            # the statement's vectors join their models' calibrations (before they are
            # judged where a model has none: a bulk load is judged with the calibration
            # its own rows give)
            verdicts, first = judged_then_calibrated(
                plpy, x, t, models, [r["duplicate_of"] for r in stored], feeds
            )
            ids = [r["chunk_id"] for r in stored]
            apply_verdicts(plpy, ids, [r["had_issues"] for r in stored], verdicts, mode)
            tally.add(verdicts.codes)
            for model in first:
                judge_earlier(plpy, model, t)
        raw = [r for r in rows if r["v"] is None and r["raw"] is not None]
        if raw:
            tally.add(_check_raw(plpy, raw, mode, t))

    def finish(inserted: int) -> None:
        queries.run(plpy, queries.ADD_CHUNKS, ["bigint"], [inserted])

    run_statement(plpy, queries.INSERTED, TABLE, mode, check, finish)


# the rows stored before a model's first calibration are fewer than CALIBRATION_ROWS (every
# row of chunks feeds it); the bound only guards against a table whose feeding was off
EARLIER_ROWS = 10 * CALIBRATION_ROWS


def judge_earlier(plpy, model: str, t: Thresholds) -> None:
    """Judge once, in flag mode (they are stored already), the chunks of `model` that
    earlier statements stored before its first calibration, now that it has one."""
    rows = queries.run(plpy, queries.EARLIER, ["text", "integer"], [model, EARLIER_ROWS])
    if rows:
        v = evaluate(
            from_vector_bytes([r["v"] for r in rows]),
            t,
            references_for(plpy, [r["model"] for r in rows]),
            [r["duplicate_of"] for r in rows],
        )
        apply_verdicts(
            plpy, [r["chunk_id"] for r in rows], [r["had_issues"] for r in rows], v, "flag"
        )


def run_statement(plpy, sql: str, table: str, mode: str, check, finish) -> None:
    """The loop of the statement-level triggers, on chunks and on attached tables alike:
    read the statement's rows from its transition table (sql) in batches, check(rows,
    tally) each, then finish(rows read) and tell listeners what the tally found. A
    rejection stops it: the statement fails anyway."""
    tally = Tally()
    read = 0
    # not a prepared plan: the transition table exists only for this trigger call
    cursor = plpy.cursor(sql)
    try:
        while rows := cursor.fetch(BATCH_ROWS):
            read += len(rows)
            check(rows, tally)
    except Rejected:
        cursor.close()
        return
    finish(read)
    tally.notify(plpy, mode, table)


class Tally:
    """What one statement's checks found, for listeners: rows checked, flagged per code."""

    def __init__(self):
        self.checked = 0
        self.per_code = np.zeros(len(CODES), dtype=np.int64)
        self.flagged = 0

    def add(self, codes: np.ndarray) -> None:
        self.checked += len(codes)
        self.per_code += codes.sum(axis=0)
        self.flagged += int(codes.any(axis=1).sum())

    def notify(self, plpy, mode: str, table: str = TABLE) -> None:
        """NOTIFY embedding_gate with a small JSON payload when rows were flagged; a clean
        statement sends nothing (and costs nothing)."""
        if not self.flagged:
            return
        payload = {
            "table": table,
            "mode": mode,
            "checked": self.checked,
            "flagged": self.flagged,
            "flagged_share": round(self.flagged / self.checked, 4),
            "issues": {c: int(n) for c, n in zip(CODES, self.per_code, strict=True) if n},
        }
        queries.run(plpy, queries.NOTIFY, ["text"], [json.dumps(payload)])


def apply_verdicts(plpy, ids, had_issues, verdicts: Verdicts, mode: str) -> None:
    """Write the verdicts of rows stored in chunks: act on the flagged ones, and clear the
    quality columns of clean rows that carry old ones."""
    flagged = verdicts.flagged
    stale = [i for i, had, f in zip(ids, had_issues, flagged, strict=True) if had and not f]
    if stale:
        queries.run(plpy, queries.CLEAR, ["text[]"], [stale])
    idx = np.flatnonzero(flagged)
    if len(idx):
        _act(plpy, mode, [ids[i] for i in idx], verdicts, idx)


def _check_raw(plpy, rows, mode: str, t: Thresholds) -> np.ndarray:
    """Rows written to embedding_raw. Those pgvector can hold are moved into `embedding`
    (the update trigger then checks them again, sets their quality columns and tells
    listeners), unless the mode quarantines or rejects them; NaN/Inf ones stay raw, flagged
    nan_or_inf. Returns the codes of the rows acted on here."""
    if len({len(r["raw"]) for r in rows}) != 1:
        plpy.error(
            "embedding_raw vectors of different dimensions in one statement", sqlstate="22000"
        )
    x = np.array([r["raw"] for r in rows], dtype=np.float64)
    # promoted rows are checked again, duplicates included, by the update trigger
    v = evaluate(x, t, references_for(plpy, [r["model"] for r in rows]))
    bad = v.codes[:, 0]
    act = np.flatnonzero(v.flagged & (bad | (mode != "flag")))
    promote = np.flatnonzero(~bad & ~np.isin(np.arange(len(rows)), act))
    if len(promote):
        queries.run(plpy, queries.PROMOTE_RAW, ["text[]"], [[rows[i]["chunk_id"] for i in promote]])
    if len(act):
        _act(plpy, mode, [rows[i]["chunk_id"] for i in act], v, act)
    return v.codes[act]


def _verdict_params(ids, verdicts: Verdicts, idx) -> list:
    """The parameters of queries.FLAG and queries.QUARANTINE (VERDICT_TYPES)."""
    measured = [verdicts.measured(i) for i in idx]
    return [
        list(ids),
        [",".join(verdicts.issues(i)) for i in idx],
        [verdicts.reason(i) for i in idx],
        *([m[k] for m in measured] for k in range(4)),
        [verdicts.duplicate_of[i] for i in idx],
    ]


def _act(plpy, mode: str, ids, verdicts: Verdicts, idx) -> None:
    """Apply the mode to flagged rows already in chunks: flag, quarantine or reject."""
    idx = list(idx)
    if mode == "reject":
        reject(plpy, list(ids), [verdicts.reason(i) for i in idx])
    sql = queries.QUARANTINE if mode == "quarantine" else queries.FLAG
    queries.run(plpy, sql, queries.VERDICT_TYPES, _verdict_params(ids, verdicts, idx))


def reject(plpy, ids: list, reasons: list, table: "str | None" = None) -> None:
    """Record why the statement must fail, naming the rows and reasons (chunks, or rows of
    an attached `table`), and stop. The PL/pgSQL trigger embedding_gate_reject raises it
    when the statement's row work is done, with REJECTED_SQLSTATE: PL/Python would prefix
    the message and append a traceback."""
    if table is None and not queries.run(plpy, queries.CHUNKS_REJECTS)[0]["ok"]:
        plpy.error(
            f"reject mode on {TABLE}: the embedding gate's trigger embedding_gate_reject is"
            " gone from it, and without it the gate cannot fail the statement",
            hint="create it again: DELETE FROM embedding_gate._sources WHERE name ="
            " '012_reject_trigger.sql', then embedding-gate db upgrade (or alembic upgrade head)",
            sqlstate="55000",
        )
    noun = "chunk" if table is None else "row"
    shown = "\n".join(f"{noun} {i}: {r}" for i, r in list(zip(ids, reasons, strict=True))[:20])
    more = f"\n... and {len(ids) - 20} more" if len(ids) > 20 else ""
    where = "" if table is None else f" of {table}"
    message = f'embedding of {noun} "{ids[0]}"{where} rejected: {reasons[0]}'
    if len(ids) > 1:
        message += f" (and {len(ids) - 1} more)"
    payload = json.dumps(
        {"message": message, "detail": shown + more, "sqlstate": REJECTED_SQLSTATE}
    )
    queries.run(plpy, queries.REJECT, ["text"], [payload])
    raise Rejected


def check_updated(plpy, TD) -> str:
    """Row-level BEFORE UPDATE OF embedding, embedding_raw trigger: check the new embedding
    and set the quality columns; in quarantine mode the update is skipped (the row keeps
    its previous embedding) and the new vector goes to embedding_quarantine."""
    new = TD["new"]
    if new["embedding"] is not None:
        x = from_vector_text(new["embedding"])
    elif new["embedding_raw"] is not None:
        x = np.array(new["embedding_raw"], dtype=np.float64)
        if np.isfinite(x).all():  # pgvector can hold it: store it as a vector
            raw = new["embedding_raw"]
            new["embedding"] = queries.run(plpy, queries.RAW_AS_VECTOR, ["real[]"], [raw])[0]["v"]
            new["embedding_raw"] = None
    else:
        for col in (*VERDICT_COLUMNS, "quality_checked_at"):
            new[col] = None
        return "MODIFY"
    mode, t = current_settings(plpy, overrides_of(plpy, TABLE))
    duplicate_of = None
    if new["embedding"] is not None:
        found = queries.run(
            plpy,
            queries.DUPLICATE_ROW,
            queries.DUPLICATE_ROW_TYPES,
            [new["embedding"], new["content"], new["created_at"], new["chunk_id"]],
        )
        duplicate_of = found[0]["chunk_id"]
    v = evaluate(
        x.reshape(1, -1), t, references_for(plpy, [new["embedding_model"]]), [duplicate_of]
    )
    if v.flagged[0] and mode == "reject":
        try:
            reject(plpy, [new["chunk_id"]], [v.reason(0)])
        except Rejected:
            pass  # the row is written flagged; embedding_gate_reject then fails the statement
    elif v.flagged[0]:
        # one notification per flagged row (PostgreSQL folds identical ones of a transaction)
        tally = Tally()
        tally.add(v.codes)
        tally.notify(plpy, mode)
    if v.flagged[0] and mode == "quarantine":
        norm, variance, ratio, similarity = v.measured(0)
        queries.run(
            plpy,
            queries.QUARANTINE_ROW,
            queries.QUARANTINE_ROW_TYPES,
            [
                new["chunk_id"],
                new["doc_id"],
                new["chunk_index"],
                new["content"],
                new["drop"],
                new["metadata"],
                [float(a) for a in x],
                v.issues(0),
                v.reason(0),
                norm,
                variance,
                ratio,
                new["embedding_model"],
                similarity,
                duplicate_of,
            ],
        )
        return "SKIP"
    if v.flagged[0]:
        new["quality_issues"] = v.issues(0)
        new["quality_reason"] = v.reason(0)
        (
            new["quality_norm"],
            new["quality_variance"],
            new["quality_near_zero_ratio"],
            new["quality_blank_similarity"],
        ) = v.measured(0)
        new["quality_duplicate_of"] = duplicate_of
    else:
        for col in VERDICT_COLUMNS:
            new[col] = None
    new["quality_checked_at"] = queries.run(plpy, queries.NOW)[0]["now"]
    return "MODIFY"
