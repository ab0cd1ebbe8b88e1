"""Reading the stored rows: verify_embeddings() (a sample), recheck_embeddings() (every row,
in batches that commit) and embedding_measures()."""

import json

import numpy as np

from . import attached, queries
from .checks import CODES, _finite_or_none, evaluate
from .codec import from_vector_blob, from_vector_bytes
from .settings import CALIBRATION_ROWS, current_settings, overrides_of, references_for
from .triggers import TABLE

# How much of the vectors one read brings into Python. Bigger reads cost more per row:
# 768-d, 100,000 vectors read 2,000 rows (6 MB) at a time took 0.65 s, 10,000 rows 0.98 s.
READ_BYTES = 6 << 20

# facts of the deployment that cannot change within a session
_deployment: dict = {}


def read_rows(plpy) -> int:
    """Rows per read_batch(): READ_BYTES of this deployment's vectors."""
    if "read_rows" not in _deployment:
        d = queries.run(plpy, queries.EMBEDDING_DIM)[0]["d"]
        _deployment["read_rows"] = max(256, READ_BYTES // (4 * d)) if d and d > 0 else 2000
    return _deployment["read_rows"]


def matrix(rows) -> np.ndarray:
    """An (n, d) float64 array from rows with `v` (vector_bytes) or `raw` (a list)."""
    if all(r["v"] is not None for r in rows):
        return from_vector_bytes([r["v"] for r in rows]).astype(np.float64)
    return np.array(
        [from_vector_bytes([r["v"]])[0] if r["v"] is not None else r["raw"] for r in rows],
        dtype=np.float64,
    )


def verify_sample(plpy, sample_size: int) -> dict:
    """verify_embeddings(): re-check a random sample of chunks, and one of each attached
    table, with each table's current thresholds."""
    sample_size = max(sample_size, 0)
    rows = (
        queries.run(plpy, queries.SAMPLE, ["integer"], [sample_size])
        if chunks_readable(plpy)
        else []
    )
    parts = []
    if rows:
        models = [r["model"] for r in rows]
        parts.append(
            (overrides_of(plpy, TABLE), matrix(rows), models, [r["duplicate_of"] for r in rows])
        )
    for _, overrides, _, x, models, duplicates in attached.scan_all(plpy, sample_size):
        parts.append((overrides, x, models, duplicates))
    counts = np.zeros(len(CODES), dtype=np.int64)
    checked = low = 0
    for overrides, x, models, duplicates in parts:
        _, t = current_settings(plpy, overrides)
        v = evaluate(x, t, references_for(plpy, models), duplicates)
        checked += len(x)
        low += int(v.flagged.sum())
        counts += v.codes.sum(axis=0)
    return {
        "checked": checked,
        "low_quality": low,
        "low_quality_rate": low / checked if checked else 0.0,
        "counts": json.dumps({c: int(n) for c, n in zip(CODES, counts, strict=True)}),
    }


def twins(plpy) -> list:
    """The embedding hashes stored more than once (see queries.TWINS)."""
    return queries.run(plpy, queries.TWINS)[0]["twins"]


def read_batch(plpy, after, batch_size: int, twin_hashes: list):
    """The next batch_size stored embeddings after chunk_id `after` (None: from the start),
    looking for duplicates of the rows whose hash is in twin_hashes or that are flagged.
    Returns (rows read, last chunk_id, parts, versions); each part is (chunk_ids, had_issues,
    vectors, models, duplicate_of) with vectors an (n, d) array: one part for `embedding`,
    one for `embedding_raw` rows; versions maps each chunk_id to its xmin as read."""
    sql = queries.BATCH_FIRST if after is None else queries.BATCH_AFTER
    r = queries.run(plpy, sql, queries.BATCH_TYPES, [batch_size, twin_hashes, after])[0]
    parts = []
    versions = {}
    if r["ids"]:
        x = from_vector_blob(r["blob"], len(r["ids"]))
        parts.append((r["ids"], r["had"], x, r["models"], r["duplicates"]))
        versions.update(zip(r["ids"], r["versions"], strict=True))
    if r["raw_ids"]:
        raw = queries.run(plpy, queries.RAW_ROWS, ["text[]"], [r["raw_ids"]])
        versions.update((row["chunk_id"], row["x"]) for row in raw)
        if len({len(row["raw"]) for row in raw}) > 1:
            plpy.error("embedding_raw vectors of different dimensions", sqlstate="22000")
        parts.append(
            (
                [row["chunk_id"] for row in raw],
                [row["had"] for row in raw],
                np.array([row["raw"] for row in raw], dtype=np.float64),
                [row["model"] for row in raw],
                None,
            )
        )
    return r["n"], (r["last"] if r["n"] else after), parts, versions


def every_embedding(plpy):
    """Every stored embedding of chunks, then of every attached table, batch by batch:
    (table name, its overrides of the settings, row ids, (n, d) array, models,
    duplicate_of)."""
    if chunks_readable(plpy):
        overrides = overrides_of(plpy, TABLE)
        for ids, _, x, models, duplicates in scan(plpy):
            yield TABLE, overrides, ids, x, models, duplicates
    yield from attached.scan_all(plpy)


def chunks_readable(plpy) -> bool:
    """Whether the caller may read chunks (the scans run as their caller: a role that may
    not is shown the attached tables it may read, not an error)."""
    return queries.run(plpy, queries.CHUNKS_READABLE)[0]["ok"]


def scan(plpy):
    """Every stored embedding of chunks, as the parts of read_batch(), batch by batch."""
    after = None
    twin_hashes = twins(plpy)
    while True:
        n, after, parts, _ = read_batch(plpy, after, read_rows(plpy), twin_hashes)
        if not n:
            return
        yield from parts


def recheck_batch(plpy, after, batch_size: int, twin_hashes) -> dict:
    """One batch of recheck_embeddings(): re-evaluate the next rows in chunk_id order with the
    current thresholds and write what changed (always in flag mode: a recheck never moves or
    deletes stored rows). twin_hashes: twins() as the first batch returned it (None: this is
    the first batch, which also records a model's mean over its stored rows as its
    calibration where it has CALIBRATION_ROWS of them, and none from its stored rows yet or
    twice as many rows as that one), so that a recheck groups the hashes once, not once per
    batch."""
    _, t = current_settings(plpy, overrides_of(plpy, TABLE))
    if twin_hashes is None:  # the first batch
        queries.run(plpy, queries.CALIBRATE, ["integer"], [CALIBRATION_ROWS])
        twin_hashes = twins(plpy)
    batch_size = max(batch_size, 1)
    checked = low = 0
    last = after
    versions, judged = {}, []
    while checked < batch_size:
        n, last, parts, read = read_batch(
            plpy, last, min(read_rows(plpy), batch_size - checked), twin_hashes
        )
        if not n:
            break
        checked += n
        versions.update(read)
        for ids, had, x, models, duplicates in parts:
            v = evaluate(x, t, references_for(plpy, models), duplicates)
            judged.append((ids, had, v))
            low += int(v.flagged.sum())
    # the batch's verdicts at once, right before the batch commits
    for ids, had, v in judged:
        write_rechecked(plpy, ids, had, v, versions)
    return {"checked": checked, "low_quality": low, "last_chunk_id": last, "twins": twin_hashes}


def write_rechecked(plpy, ids, had, v, versions: dict) -> None:
    """A recheck's verdicts on chunks, for the rows whose verdict changes (the flagged ones,
    and clean ones that carry old codes), written only to the rows still as the recheck read
    them and held by no one else (queries.RECHECKED): a writer that changed a row since, or
    is changing it, leaves the verdict of its own vector, and the recheck never waits."""
    keep = [i for i, f in enumerate(v.flagged) if f or had[i]]
    if not keep:
        return
    measured = [v.measured(i) if v.flagged[i] else (None,) * 4 for i in keep]
    params = [
        [ids[i] for i in keep],
        [",".join(v.issues(i)) if v.flagged[i] else None for i in keep],
        [v.reason(i) if v.flagged[i] else None for i in keep],
        *([m[k] for m in measured] for k in range(4)),
        [v.duplicate_of[i] if v.flagged[i] else None for i in keep],
        [versions[ids[i]] for i in keep],
    ]
    queries.run(plpy, queries.RECHECKED, queries.RECHECKED_TYPES, params)


def embedding_measures(plpy, near_zero_epsilon):
    """embedding_measures(): norm, variance, near-zero ratio, blank_like similarity, model
    and the issue codes under the current thresholds of every stored embedding (chunks and
    attached tables), batch by batch, with its table and row id, and model_mismatch's
    deviation."""
    thresholds: dict = {}  # per table, read once (not once a batch)
    for table, overrides, ids, x, models, duplicates in every_embedding(plpy):
        if table not in thresholds:
            _, t = current_settings(plpy, overrides)
            thresholds[table] = t.with_values(near_zero_epsilon=near_zero_epsilon)
        t = thresholds[table]
        v = evaluate(x, t, references_for(plpy, models), duplicates)
        chunk_ids = ids if table == TABLE else [None] * len(ids)
        deviations = v.silent_deviation
        for i, row_id in enumerate(ids):
            deviation = None if deviations is None else _finite_or_none(deviations[i])
            yield (chunk_ids[i], *v.measured(i), models[i], v.issues(i), table, row_id, deviation)
