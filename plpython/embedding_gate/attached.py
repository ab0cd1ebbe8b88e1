"""Tables attached with embedding_gate.attach(): the checks on a table the gate did not
create (a framework's, or anyone's). The gate adds no column to it: what it finds goes to
embedding_gate.verdicts, keyed by (table, row id), and quarantined rows to
embedding_gate.quarantine as jsonb.

The statements here name the table's own columns, so they are built per table from the
registry (embedding_gate.attached_tables), every name quoted with quote_ident; values still
travel only as parameters.

The trigger runs as the gate's owner, so nothing here may run code the table's owner
controls: it reads the statement's transition tables and, for duplicate_vector and the
scans, the table itself, only while its id, content and model columns are of built-in
types and its embedding of pgvector's (embedding_gate._refusal(), asked on every use: a
column's type can change after attach), and never where a row-level security policy would
be evaluated (the functions set row_security = off, so such a read fails rather than run
a policy; the trigger skips the duplicate probe there). It never writes the table: quarantine
mode's move out of it is the writer's own statement trigger, restore() runs as the owner.
"""

import json
from dataclasses import dataclass

import numpy as np

from . import queries
from .checks import Verdicts, evaluate
from .codec import from_halfvec_bytes, from_vector_bytes
from .settings import (
    CALIBRATION_ROWS,
    current_settings,
    judged_then_calibrated,
    references_for,
)
from .triggers import BATCH_ROWS, Tally, reject, run_statement

# how much of a row's content a verdict keeps, in characters
PREVIEW_CHARS = 100

# the statement trigger that carries out a mode after the check (sql/idempotent/026)
COMPANIONS = {
    "reject": ("embedding_gate_raise_rejected", "fail the statement"),
    "quarantine": ("embedding_gate_move_quarantined", "move the flagged rows out"),
}


@dataclass(frozen=True)
class Table:
    """An attached table, as the registry describes it."""

    oid: int
    name: str  # schema-qualified, quoted where needed: public.langchain_pg_embedding
    id_column: str
    id_type: str  # format_type() of the id column, e.g. "character varying"
    embedding_column: str
    embedding_type: str  # vector or halfvec
    content_column: "str | None"
    model: "str | None"
    model_column: "str | None"
    # the gate reads every row without a row-level security policy being evaluated
    readable: bool
    row_key: int  # the key of its counts (embedding_gate._row_counts)


@dataclass(frozen=True)
class Statements:
    """The statements of one attached table. The transition tables of the gate's triggers
    are gate_new (and gate_old for UPDATE)."""

    inserted: str  # the rows of an INSERT
    updated: str  # the rows of an UPDATE whose embedding, model or content changed
    vanished: str  # ids an UPDATE changed away from
    update_delta: str  # rows with an embedding an UPDATE added (or removed, negative)
    twins: str  # the stored rows with one of the hashes $1, in groups of two or more
    scan_first: str  # the first $1 stored rows in id order
    scan_after: str  # the next $1 stored rows after id $2
    sample: str  # $1 stored rows drawn at random
    calibrate: str  # each model's mean over its stored rows, where due ($1 rows, model $2)
    orphans: str  # drop the verdicts of rows no longer in the table (table oid $1)
    # of the rows a scan judged (ids $1, xmin as it read them $2), those still as it read
    # them, locked FOR SHARE unless another transaction holds them (lock_judged), or where
    # the gate's owner may not lock them, only compared (still_judged)
    lock_judged: str
    still_judged: str
    with_verdicts: str  # of ids $2, the verdicts stored (table oid $1)


def lookup(plpy, oid) -> "tuple[Table, dict] | tuple[None, None]":
    """The attached table with this oid and its overrides of the settings, or (None, None)."""
    found = queries.run(plpy, queries.ATTACHED, ["oid"], [oid])
    if not found:
        return None, None
    r = found[0]
    if r["problem"]:
        plpy.error(
            f"the embedding gate will not read {r['name']}: {r['problem']}",
            hint="change the column back, or detach the table:"
            f" SELECT embedding_gate.detach('{r['name']}')",
            sqlstate="42804",
        )
    overrides = json.loads(r["overrides"])
    table = Table(**{k: r[k] for k in Table.__dataclass_fields__})
    if table.embedding_column is None or table.id_column is None:
        what = "embedding" if table.embedding_column is None else "id"
        plpy.error(
            f"the {what} column attached on {table.name} was dropped",
            hint=f"detach it: SELECT embedding_gate.detach('{table.name}')",
            sqlstate="55000",
        )
    return table, overrides


_statements: dict = {}


def statements(plpy, table: Table) -> Statements:
    """The table's statements, built once per session."""
    if table not in _statements:
        _statements[table] = _build(plpy.quote_ident, table)
    return _statements[table]


def _build(q, table: Table) -> Statements:
    kind = table.embedding_type

    def as_bytes(row):
        return f"embedding_gate.{kind}_bytes({row}.{q(table.embedding_column)})"

    def as_hash(row):
        return f"embedding_gate.{kind}_hash({row}.{q(table.embedding_column)})"

    ident, emb = q(table.id_column), q(table.embedding_column)
    content = f"i.{q(table.content_column)}::text" if table.content_column else "NULL::text"
    model = f"i.{q(table.model_column)}::text" if table.model_column else "NULL::text"
    # the hash feeds duplicate_vector, which needs the content to tell texts apart
    digest = as_hash("i") if table.content_column else "NULL::bigint"
    select = (
        f"SELECT i.{ident}::text AS row_id, {as_bytes('i')} AS v, {model} AS model,"
        f" {content} AS content, {digest} AS h"
    )
    changed = [f"{as_bytes('o')} IS DISTINCT FROM {as_bytes('i')}"]
    for column in (table.model_column, table.content_column):
        if column:
            changed.append(f"o.{q(column)}::text IS DISTINCT FROM i.{q(column)}::text")
    # (a scan also reads each row's version, xmin, to write only verdicts of vectors that
    # are still there when it writes)
    stored = f"{select}, i.xmin::text AS x FROM {table.name} AS i WHERE i.{emb} IS NOT NULL"
    judged = (
        f"SELECT t.{ident}::text AS row_id FROM {table.name} AS t"
        " JOIN unnest($1::text[], $2::text[]) AS k(row_id, x)"
        f" ON t.{ident} = k.row_id::{table.id_type} WHERE t.xmin::text = k.x"
        f" ORDER BY t.{ident}"
    )
    return Statements(
        inserted=f"{select} FROM gate_new AS i",
        updated=(
            f"{select} FROM gate_new AS i LEFT JOIN gate_old AS o ON o.{ident} = i.{ident}"
            f" WHERE o.{ident} IS NULL OR " + " OR ".join(changed)
        ),
        vanished=(
            f"SELECT o.{ident}::text AS row_id FROM gate_old AS o"
            f" WHERE NOT EXISTS (SELECT FROM gate_new AS i WHERE i.{ident} = o.{ident})"
        ),
        update_delta=(
            f"SELECT (SELECT pg_catalog.count(*) FROM gate_new AS i WHERE i.{emb} IS NOT NULL)"
            f" - (SELECT pg_catalog.count(*) FROM gate_old AS i WHERE i.{emb} IS NOT NULL) AS n"
        ),
        # per hash of the batch, one descent of the hash index that stops at a second row
        # (nothing hashed again, no vector read); then the rare rows of those hashes whole
        twins=(
            f"SELECT {as_hash('t')} AS h, t.{ident}::text AS row_id,"
            f" t.{q(table.content_column or table.id_column)}::text AS content,"
            f" {as_bytes('t')} AS v, t.xmin::text AS x FROM {table.name} AS t"
            f" WHERE {as_hash('t')} = ANY (ARRAY(SELECT b.h"
            " FROM pg_catalog.unnest($1::bigint[]) AS b(h)"
            f" WHERE (SELECT pg_catalog.count(*) FROM (SELECT FROM {table.name} AS t"
            f" WHERE {as_hash('t')} = b.h LIMIT 2) AS two) > 1))"
            f" ORDER BY 1, t.{ident}"
        ),
        scan_first=f"{stored} ORDER BY i.{ident} LIMIT $1",
        scan_after=(
            f"{stored} AND i.{ident} > $2::text::{table.id_type} ORDER BY i.{ident} LIMIT $1"
        ),
        sample=f"{stored} ORDER BY pg_catalog.random() LIMIT $1",
        calibrate=_calibrate(table, model if table.model_column else "$2::text", emb, ident),
        # (a dropped or detached partition, a write with the triggers off)
        # (skipping a verdict another transaction holds: a writer's, whose row is there)
        orphans=(
            "DELETE FROM embedding_gate.verdicts AS v WHERE v.ctid = ANY (ARRAY("
            "SELECT o.ctid FROM embedding_gate.verdicts AS o WHERE o.table_oid = $1::regclass"
            f" AND NOT EXISTS (SELECT FROM {table.name} AS t"
            f" WHERE t.{ident} = o.row_id::{table.id_type}) FOR UPDATE OF o SKIP LOCKED))"
        ),
        lock_judged=f"{judged} FOR SHARE OF t SKIP LOCKED",
        still_judged=judged,
        with_verdicts=(
            "SELECT v.row_id, v.issues, v.reason, v.norm, v.variance, v.near_zero_ratio,"
            " v.blank_similarity, v.duplicate_of, v.embedding_model, v.content_length,"
            " v.content_preview FROM embedding_gate.verdicts AS v"
            " WHERE v.table_oid = $1::regclass AND v.row_id = ANY ($2::text[])"
        ),
    )


def _calibrate(table: Table, model: str, emb: str, ident: str) -> str:
    """The statement that records each model's mean over the table's stored rows (those not
    flagged model_mismatch) as its calibration, as queries.CALIBRATE does for chunks: where
    the model has CALIBRATION_ROWS rows here and no calibration yet, or twice as many rows as
    its calibration from stored rows; never over a mean the loader's sample or a writer gave,
    nor where the writes keep it (it has a spread)."""
    return (
        f"WITH stored AS (SELECT {model} AS model, i.{emb}::public.vector AS e"
        f" FROM {table.name} AS i WHERE i.{emb} IS NOT NULL"
        "  AND NOT EXISTS (SELECT FROM embedding_gate.verdicts AS v"
        f"   WHERE v.table_oid = {int(table.oid)}::oid AND v.row_id = i.{ident}::text"
        "   AND 'model_mismatch' = ANY (v.issues))),"
        " counts AS (SELECT s.model, pg_catalog.count(*) AS n FROM stored AS s"
        "  WHERE s.model IS NOT NULL GROUP BY s.model),"
        " due AS (SELECT c.model FROM counts AS c"
        "  LEFT JOIN embedding_gate.model_calibrations AS m ON m.model = c.model"
        "  WHERE c.n >= $1 AND m.spread IS NULL AND (m.model IS NULL"
        "   OR (m.source = 'stored rows' AND c.n >= 2 * m.sample_size)))"
        " INSERT INTO embedding_gate.model_calibrations AS c (model, mean, sample_size, source)"
        " SELECT s.model, public.avg(s.e)::real[], pg_catalog.count(*)::integer, 'stored rows'"
        " FROM stored AS s WHERE s.model IN (SELECT d.model FROM due AS d) GROUP BY s.model"
        " ON CONFLICT (model) DO UPDATE SET mean = excluded.mean,"
        " sample_size = excluded.sample_size, source = excluded.source,"
        " recorded_at = pg_catalog.now(), recorded_by = SESSION_USER"
    )


def check_statement(plpy, TD) -> None:
    """Statement-level AFTER INSERT and AFTER UPDATE trigger of an attached table
    (transition tables gate_new, gate_old): check the rows whose embedding is new, act on
    the flagged ones in the table's mode, keep the table's count of embedded rows, and tell
    listeners."""
    table, overrides = lookup(plpy, TD["relid"])
    if table is None:
        name = f"{plpy.quote_ident(TD['table_schema'])}.{plpy.quote_ident(TD['table_name'])}"
        plpy.error(
            f"table {name} has the embedding gate's trigger but is not attached (its row of"
            " embedding_gate.attached_tables is gone)",
            hint=f"attach it again: SELECT * FROM embedding_gate.attach('{name}', ...), naming"
            " its gate index with hash_index => '...'; or take the gate off it: DROP TRIGGER"
            f" embedding_gate_check_insert ON {name}, and its other embedding_gate_* triggers",
            sqlstate="55000",
        )
    mode, t = current_settings(plpy, overrides)
    if mode in COMPANIONS:  # the trigger that carries out this mode, fired after this one
        trigger, does = COMPANIONS[mode]
        found = queries.run(plpy, queries.HAS_TRIGGER, ["oid", "name"], [TD["relid"], trigger])
        if not found[0]["ok"]:
            where = f"{plpy.quote_ident(TD['table_schema'])}.{plpy.quote_ident(TD['table_name'])}"
            plpy.error(
                f"{mode} mode on {table.name}: the embedding gate's trigger {trigger} is gone"
                f" from {where}, and without it the gate cannot {does}",
                hint="put the gate's triggers back: CALL embedding_gate.repair()",
                sqlstate="55000",
            )
    s = statements(plpy, table)
    update = TD["event"] == "UPDATE"
    # (only a table whose owner may tune the gate feeds a model's calibration)
    feeds = queries.run(plpy, queries.OWNER_MAY_TUNE, ["oid"], [table.oid])[0]["ok"]

    embedded = 0
    first: list = []  # the models whose first calibration this statement recorded
    mine: set = set()  # the statement's rows, while there may be such a model

    def check(rows, tally) -> None:
        nonlocal embedded
        stored = [r for r in rows if r["v"] is not None]
        embedded += len(stored)
        if update:  # an embedding set to NULL: nothing left to judge
            forget(plpy, table, [r["row_id"] for r in rows if r["v"] is None])
        if stored:
            check_rows(plpy, table, s, stored, mode, t, tally, update, feeds=feeds, first=first)
            if feeds and len(mine) <= EARLIER_ROWS:
                mine.update(r["row_id"] for r in stored)

    def finish(_) -> None:
        if first and len(mine) <= EARLIER_ROWS:
            judge_earlier(plpy, table, s, t, set(first), mine)
        if update:
            forget(plpy, table, [r["row_id"] for r in plpy.execute(s.vanished)])
            count = plpy.execute(s.update_delta)[0]["n"]
        else:
            count = embedded
        queries.run(plpy, queries.ADD_ROWS, ["text", "bigint"], [str(table.row_key), count])

    run_statement(plpy, s.updated if update else s.inserted, table.name, mode, check, finish)


# the rows judged once when a model's first calibration is recorded: those stored before
# (fewer than CALIBRATION_ROWS of the model, as they all fed it, and the rows checked at
# attach, which calibrates where there are that many) are among the table's first ones
EARLIER_ROWS = 10 * CALIBRATION_ROWS


def judge_earlier(plpy, table, s, t, models: set, mine: set) -> None:
    """Judge once, in flag mode (they are stored already), the rows of `models` that
    earlier statements stored before their first calibration, now that they have one: the
    table's first EARLIER_ROWS rows in id order, less the statement's own."""
    if not table.readable:
        return
    rows = [
        r
        for batch in _batches(plpy, s, None, EARLIER_ROWS)
        for r in batch
        if r["row_id"] not in mine and (table.model or r["model"]) in models
    ]
    if rows:
        found, ok = judge(plpy, table, s, rows, t, Tally(), scan=True)
        write_judged(plpy, table, s, {r["row_id"]: r["x"] for r in rows}, found, ok)


def check_batch(plpy, oid, after, batch_size: int) -> dict:
    """One batch of the rows already stored in an attached table, in id order after `after`
    (None: from the start): checked with the current thresholds and flagged, never moved or
    rejected (as recheck_embeddings() does with chunks)."""
    table, overrides = lookup(plpy, oid)
    if table is None:
        plpy.error(f"table with oid {oid} is not attached to the embedding gate", sqlstate="55000")
    if not table.readable:
        plpy.error(
            f"the embedding gate's owner would read {table.name} under its row-level security"
            " policies, and the gate runs no code of a table's owner",
            hint="let the gate's owner bypass row-level security (ALTER ROLE ... BYPASSRLS), or"
            " check the rows as the table's owner with SELECT * FROM preview_thresholds()",
            sqlstate="42501",
        )
    s = statements(plpy, table)
    if after is None:  # the first batch: calibrate the table's models where due, and
        # forget the verdicts of rows that are gone
        # (only a table whose owner may tune the gate: a model's calibration serves every
        # table of that model, chunks too, and another owner's rows must not move it)
        if queries.run(plpy, queries.OWNER_MAY_TUNE, ["oid"], [table.oid])[0]["ok"]:
            queries.run(plpy, s.calibrate, ["integer", "text"], [CALIBRATION_ROWS, table.model])
        queries.run(plpy, s.orphans, ["oid"], [table.oid])
    _, t = current_settings(plpy, overrides)
    tally = Tally()
    checked, last = 0, after
    versions, flagged, clean = {}, [], []
    for rows in _batches(plpy, s, after, batch_size):
        checked += len(rows)
        last = rows[-1]["row_id"]
        versions.update((r["row_id"], r["x"]) for r in rows)
        found, ok = judge(plpy, table, s, rows, t, tally, scan=True)
        flagged += found
        clean += ok
    # the batch's verdicts at once, right before the batch commits
    write_judged(plpy, table, s, versions, flagged, clean)
    return {"checked": checked, "low_quality": tally.flagged, "last_row_id": last}


def write_judged(plpy, table, s, versions: dict, flagged: list, clean: list) -> None:
    """Write what a scan (check_existing, recheck) found, as flag mode does, for the rows
    whose verdict changes (flagged ones whose stored verdict differs or is missing, clean
    ones that have one), but only
    where each row is still the version the scan read: a writer that changed it since, or
    is changing it, writes the verdict of its own vector. The gate locks those rows FOR
    SHARE, skipping any a writer holds (NOWAIT would fail the batch), so that no writer
    changes them until this batch commits; it never waits on a writer, and a writer waits
    on it only until it commits. (Where the gate's owner may not lock the table's rows,
    it compares their version in the statement that writes: a writer that changes a row
    between that statement and the commit may then see its verdict overwritten.)"""
    ids = [r["row_id"] for rows, *_ in flagged for r in rows]
    stored = {}
    if ids or clean:
        found = queries.run(plpy, s.with_verdicts, ["oid", "text[]"], [table.oid, ids + clean])
        stored = {r["row_id"]: _stored(r) for r in found}
    clean = [i for i in clean if i in stored]
    # a verdict the scan only confirms is left as it is: rewriting it would be a new
    # version for a writer at SERIALIZABLE to fail on, and a lock for it to wait on
    changed = []
    for rows, models, v, idx in flagged:
        keep = [
            k
            for k, r in enumerate(rows)
            if stored.get(r["row_id"]) != _verdict(r, models, v, idx[k])
        ]
        if keep:
            changed.append(([rows[k] for k in keep], models, v, idx[keep]))
    flagged = changed
    ids = [r["row_id"] for rows, *_ in flagged for r in rows]
    if not ids and not clean:
        return
    may_lock = queries.run(plpy, queries.MAY_LOCK, ["oid"], [table.oid])[0]["ok"]
    wanted = ids + clean
    mine = {
        r["row_id"]
        for r in queries.run(
            plpy,
            s.lock_judged if may_lock else s.still_judged,
            ["text[]", "text[]"],
            [wanted, [versions[i] for i in wanted]],
        )
    }
    for rows, models, v, idx in flagged:
        keep = [k for k, r in enumerate(rows) if r["row_id"] in mine]
        if keep:
            act(plpy, table, "flag", [rows[k] for k in keep], models, v, idx[keep])
    forget(plpy, table, [i for i in clean if i in mine])


def _verdict(row, models, v: Verdicts, i) -> tuple:
    """What act() would store for a flagged row, as _stored() reads it back."""
    content = row["content"]
    return (
        v.issues(i),
        v.reason(i),
        *(None if m is None else float(m) for m in v.measured(i)),
        v.duplicate_of[i],
        models[i],
        len(content) if content is not None else None,
        content[:PREVIEW_CHARS] if content is not None else None,
    )


def _stored(r) -> tuple:
    """A stored verdict (s.with_verdicts), comparable with _verdict()."""
    return (
        list(r["issues"]),
        r["reason"],
        r["norm"],
        r["variance"],
        r["near_zero_ratio"],
        r["blank_similarity"],
        r["duplicate_of"],
        r["embedding_model"],
        r["content_length"],
        r["content_preview"],
    )


def judge(
    plpy, table, s, rows, t, tally, scan=False, feeds=False, first=None
) -> "tuple[list, list]":
    """Check rows (row_id, v, model, content, h) of one table: (flagged, clean), flagged a
    list of (its rows, models, verdicts, their indices in the verdicts) per dimension,
    clean the ids of the clean rows. feeds: the rows are new and join their models'
    calibrations first; first: a list to add the models whose first calibration that
    recorded to."""
    flagged, clean = [], []
    for part, x, models, duplicates in parts(plpy, table, s, rows, scan):
        if scan:
            v = evaluate(x, t, references_for(plpy, models), duplicates)
        else:  # new rows: they join their models' calibrations
            v, recorded = judged_then_calibrated(plpy, x, t, models, duplicates, feeds)
            if first is not None:
                first += recorded
        v.noun = "row"
        tally.add(v.codes)
        bad = np.flatnonzero(v.flagged)
        clean += [rows[part[j]]["row_id"] for j in np.flatnonzero(~v.flagged)]
        if len(bad):
            flagged.append(([rows[part[j]] for j in bad], models, v, bad))
    return flagged, clean


def check_rows(
    plpy, table, s, rows, mode, t, tally, forget_clean=False, feeds=False, first=None
) -> None:
    """Check rows (row_id, v, model, content, h) of one table, and act on the flagged ones;
    forget_clean: also drop the verdicts of the clean ones (an UPDATE); feeds: add them to
    their models' calibrations first (first: the models whose first calibration that
    recorded are added to it)."""
    flagged, clean = judge(plpy, table, s, rows, t, tally, feeds=feeds, first=first)
    for found, models, v, idx in flagged:
        act(plpy, table, mode, found, models, v, idx)
    if forget_clean:
        forget(plpy, table, clean)


def parts(plpy, table, s, rows, scan: bool):
    """The rows as arrays, one part per dimension (an unconstrained vector column holds
    several): (indices into rows, (n, d) array, models, duplicate_of)."""
    duplicates = find_duplicates(plpy, table, s, rows, scan)
    decode = from_halfvec_bytes if table.embedding_type == "halfvec" else from_vector_bytes
    by_size: dict = {}
    for k, r in enumerate(rows):
        by_size.setdefault(len(r["v"]), []).append(k)
    for part in by_size.values():
        yield (
            part,
            decode([rows[k]["v"] for k in part]),
            [table.model or rows[k]["model"] for k in part],
            [duplicates[k] for k in part],
        )


def scan_all(plpy, sample_size: "int | None" = None):
    """Every stored embedding of every attached table (or a random sample of sample_size
    from each), in batches: (table name, its overrides of the settings, row ids, (n, d)
    array, models, duplicate_of)."""
    for r in queries.run(plpy, queries.ATTACHED_TABLES):
        queries.run(plpy, queries.LOCK_FOR_READING, ["oid"], [r["oid"]])
        table, overrides = lookup(plpy, r["oid"])
        s = statements(plpy, table)
        if sample_size is not None:
            batches = [queries.run(plpy, s.sample, ["integer"], [sample_size])]
        else:
            batches = _batches(plpy, s)
        for rows in batches:
            for part, x, models, duplicates in parts(plpy, table, s, rows, scan=True):
                ids = [rows[k]["row_id"] for k in part]
                yield table.name, overrides, ids, x, models, duplicates


def _batches(plpy, s, after=None, limit: "int | None" = None):
    """The table's stored rows in id order after id `after` (None: from the first), at most
    `limit` of them (None: all), BATCH_ROWS at a time."""
    while limit is None or limit > 0:
        size = BATCH_ROWS if limit is None else min(BATCH_ROWS, limit)
        if after is None:
            rows = queries.run(plpy, s.scan_first, ["integer"], [size])
        else:
            rows = queries.run(plpy, s.scan_after, ["integer", "text"], [size, after])
        if not rows:
            return
        yield rows
        after = rows[-1]["row_id"]
        if limit is not None:
            limit -= len(rows)


def find_duplicates(plpy, table, s, rows, scan: bool) -> list:
    """Per row, duplicate_vector's verdict: the first row of the table with the identical
    embedding and other content that is earlier than it, or None. At a write, earlier is
    stored by another transaction, or earlier in id order among the rows of this one: a row
    of this statement knows the others by their xmin, the transaction (or subtransaction)
    that wrote them, which it shares, so no pass over the statement's rows is needed. A
    scan (a recheck, verify_embeddings, check_existing) keeps what the writes found: a row
    stays the duplicate of the row its verdict names while that row still repeats its
    vector with other content, and rows not flagged duplicate_vector come before the
    flagged ones (then id order), so a scan flags the rows the writes flagged, not the
    ones whose ids sort last. Without a content column nothing is a duplicate: the same
    text stored twice is not."""
    found = [None] * len(rows)
    # (where reading the table would evaluate its row-level security policies, the gate
    # does not read it: no code of the table's owner runs as the gate)
    if table.content_column is None or not table.readable:
        return found
    twins = queries.run(plpy, s.twins, ["bigint[]"], [[r["h"] for r in rows]])
    groups: dict = {}
    for row in twins:
        groups.setdefault(row["h"], []).append(row)
    stored = _stored_duplicates(plpy, table, twins) if scan else {}
    if stored:
        for h, group in groups.items():
            groups[h] = sorted(group, key=lambda g: g["row_id"] in stored)  # (stable: ids)
    for k, r in enumerate(rows):
        group = groups.get(r["h"], ())
        me = next((p for p, g in enumerate(group) if g["row_id"] == r["row_id"]), None)
        if me is None:
            continue
        named = stored.get(r["row_id"])
        if named is not None and any(g["row_id"] == named and _repeats(g, r) for g in group):
            found[k] = named
            continue
        for p, g in enumerate(group):
            ours = scan or g["x"] == group[me]["x"]
            if (p < me or not ours) and _repeats(g, r):
                found[k] = g["row_id"]
                break
    return found


def _repeats(g, r) -> bool:
    """Whether row g has row r's vector and other content."""
    return g["v"] == r["v"] and g["content"] != r["content"]


def _stored_duplicates(plpy, table, twins) -> dict:
    """Of the rows of twin groups, those flagged duplicate_vector now: row id -> the row its
    verdict names (None where the caller may not see that row)."""
    if not twins:
        return {}
    ids = [t["row_id"] for t in twins]
    found = queries.run(plpy, queries.STORED_DUPLICATES, ["oid", "text[]"], [table.oid, ids])
    return {r["row_id"]: r["duplicate_of"] for r in found}


def act(plpy, table, mode, rows, models, v: Verdicts, idx) -> None:
    """Apply the mode to flagged rows: reject the statement, record why they go to the
    quarantine (the writer's move trigger then moves them), or record their verdicts."""
    ids = [r["row_id"] for r in rows]
    measured = [v.measured(i) for i in idx]
    contents = [r["content"] for r in rows]
    params = [
        ids,
        [",".join(v.issues(i)) for i in idx],
        [v.reason(i) for i in idx],
        *([m[k] for m in measured] for k in range(4)),
        [v.duplicate_of[i] for i in idx],
        [models[i] for i in idx],
        [len(c) if c is not None else None for c in contents],
        [c[:PREVIEW_CHARS] if c is not None else None for c in contents],
        table.oid,
    ]
    if mode == "reject":
        reject(plpy, ids, [v.reason(i) for i in idx], table.name)
    if mode == "quarantine":
        queries.run(plpy, queries.QUARANTINE_ATTACHED, queries.ATTACHED_VERDICT_TYPES, params)
        queries.run(plpy, queries.MOVING)
    else:
        queries.run(plpy, queries.FLAG_ATTACHED, queries.ATTACHED_VERDICT_TYPES, params)


def forget(plpy, table: Table, ids: list) -> None:
    """Drop the verdicts of these rows (clean now, or gone)."""
    if ids:
        queries.run(plpy, queries.FORGET, ["oid", "text[]"], [table.oid, ids])
