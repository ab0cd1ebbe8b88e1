"""Everything the loader and the report say to PostgreSQL: the connection, the SQL, and the
binary COPY encoding of chunks. The connection (loader/connection.py) comes from DATABASE_URL,
or DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD."""

import io
import json
import struct

import numpy as np
import orjson
import psycopg2
import psycopg2.extras
import psycopg2.sql

# db.connect, db.database_url, db.embedding_dim and db.warm_up, as before they moved to
# loader/connection.py
from loader.connection import COLUMN_LIST as _COLUMN_LIST
from loader.connection import (  # noqa: F401
    COLUMNS,
    connect,
    database_url,
    embedding_dim,
    warm_up,
)
from loader.connection import COPY as _COPY
from loader.connection import HEADER as _HEADER
from loader.connection import TRAILER as _TRAILER

_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS loader_stage"
    " (LIKE public.chunks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY loader_stage ({_COLUMN_LIST}) FROM STDIN WITH (FORMAT binary)"
_FROM_STAGE = (
    f"INSERT INTO public.chunks ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM loader_stage"
    " ON CONFLICT (chunk_id) DO NOTHING"
)


def _one(conn, sql: str, params=()):
    """The first row of a read-only query (None: no row), its transaction ended."""
    rows = _rows(conn, sql, params)[1]
    return rows[0] if rows else None


# --- the corpus ---------------------------------------------------------------------------


def _text_array(values: list) -> str:
    """A text[] literal of the strings ('{"a","b"}'), for one parameter: psycopg2 adapts a
    list as ARRAY['a', 'b', ...], each element quoted apart, which the server parses as as
    many expressions (2,000 chunk_ids: 3.9 ms a query against 1.8 ms)."""
    quoted = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def stored_ids(conn, ids: list) -> set:
    """The chunk_ids among ids already in chunks or in the quarantine."""
    ids = _text_array(ids)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT chunk_id FROM public.chunks WHERE chunk_id = ANY (%s::text[])"
            " UNION ALL"
            " SELECT chunk_id FROM public.embedding_quarantine WHERE chunk_id = ANY (%s::text[])",
            [ids, ids],
        )
        found = {r[0] for r in cur.fetchall()}
    conn.commit()
    return found


def insert_documents(conn, documents) -> int:
    """Insert the documents not stored yet; returns how many were new."""
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO public.documents (doc_id, title, source, metadata) VALUES %s"
            " ON CONFLICT (doc_id) DO NOTHING",
            [
                (d.doc_id, d.title, d.source, json.dumps(d.metadata, ensure_ascii=False))
                for d in documents
            ],
            page_size=1000,
        )
        n = cur.rowcount
    conn.commit()
    return n


def insert_chunks(conn, chunks, vectors: "np.ndarray | None", model: "str | None" = None) -> int:
    """COPY a batch into chunks (binary format) and commit; returns how many were new.
    vectors: one row per chunk (float32; NaN/Inf rows go to embedding_raw, for the gate to
    flag), or None for chunks stored without an embedding. On a duplicate chunk_id (another
    loader got there first) the batch goes through a staging table and INSERT ... ON
    CONFLICT DO NOTHING instead."""
    rows = [(copy_rows(chunks, vectors, model), len(chunks))]
    return copy_stream(conn, lambda: rows.pop() if rows else None)[0]


class _Stream:
    """What copy_expert reads: the COPY's header, then each part produce() returns (rows of
    binary COPY data, their count) as it is produced, then the trailer. Keeps the parts for
    a second COPY through the staging table; an exception in produce() ends the data and is
    kept for the caller (psycopg2 would replace it with its own)."""

    def __init__(self, produce):
        self.produce = produce
        self.parts = [_HEADER]
        self.rows = 0
        self.error: BaseException | None = None
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        if self.ended:
            return b""
        first = self.rows == 0 and len(self.parts) == 1
        try:
            part = self.produce()
        except BaseException as e:  # noqa: B036 (re-raised by copy_stream)
            self.error, part = e, None
        if part is None:
            self.ended = True
            self.parts.append(_TRAILER)
            return _HEADER + _TRAILER if first else _TRAILER
        data, n = part
        self.parts.append(data)
        self.rows += n
        return _HEADER + data if first else data


def copy_stream(conn, produce) -> "tuple[int, int]":
    """One COPY into chunks of the rows produce() returns, (bytes of rows from copy_rows,
    their count) each call until None, each part sent to the server as soon as it is
    produced (the server stores rows while the next part is made); then commit. Returns
    (rows new, rows sent). On a duplicate chunk_id (another loader got there first) the
    same data goes through a staging table and INSERT ... ON CONFLICT DO NOTHING instead.
    An exception from produce() rolls the COPY back and is raised."""
    stream = _Stream(produce)
    try:
        with conn.cursor() as cur:
            cur.copy_expert(_COPY, stream, size=1 << 20)
            n = cur.rowcount
        if stream.error is not None:
            conn.rollback()
            raise stream.error
        conn.commit()
        return n, stream.rows
    except psycopg2.errors.UniqueViolation:
        conn.rollback()
    if stream.error is not None:
        raise stream.error
    with conn.cursor() as cur:
        cur.execute(_STAGE)
        cur.copy_expert(_COPY_STAGE, io.BytesIO(b"".join(stream.parts)))
        cur.execute(_FROM_STAGE)
        n = cur.rowcount
    conn.commit()
    return n, stream.rows


# --- binary COPY --------------------------------------------------------------------------

_NULL = struct.pack("!i", -1)
_FIELDS = struct.pack("!h", len(COLUMNS))
_FLOAT4_OID = 700
_INT = struct.Struct("!i").pack
_FIRST = struct.Struct("!hi").pack  # the field count, the length of chunk_id
_MIDDLE = struct.Struct("!iii").pack  # chunk_index (length, value), content's length
_DROP = struct.Struct("!i?ib").pack  # drop (length, value), metadata's length, jsonb version


def _field(value: bytes) -> bytes:
    return _INT(len(value)) + value


def _text(value: str) -> bytes:
    return _field(value.encode("utf-8"))


def _jsonb_text(value: dict) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _real_array(values: np.ndarray) -> bytes:
    """A real[] in binary form: one dimension, each element a 4-byte big-endian float4
    (NaN and Inf included, which pgvector's vector refuses)."""
    elements = np.empty(len(values), dtype=[("size", ">i4"), ("value", ">f4")])
    elements["size"] = 4
    elements["value"] = values
    header = struct.pack("!iiiii", 1, 0, _FLOAT4_OID, len(values), 1)
    return _field(header + elements.tobytes())


def _tails(vectors: "np.ndarray | None", n: int, model: "str | None") -> list:
    """The last three fields of each row (embedding, embedding_raw, embedding_model), made
    for the whole batch at once: every finite vector in pgvector's binary form (its length,
    dim and an unused int16, then dim big-endian float4s) by one numpy conversion of the
    batch, each row a view into it; a row with NaN or Inf goes to embedding_raw."""
    if vectors is None:
        return [_NULL * 3] * n
    model_field = _text(model) if model else _NULL
    n, d = vectors.shape
    size = 8 + 4 * d
    after = np.frombuffer(_NULL + model_field, dtype=np.uint8)
    record = size + len(after)
    out = np.empty((n, record), dtype=np.uint8)
    out[:, :8] = np.frombuffer(struct.pack("!ihh", 4 + 4 * d, d, 0), dtype=np.uint8)
    out[:, 8:size] = np.ascontiguousarray(vectors, dtype=">f4").view(np.uint8).reshape(n, 4 * d)
    out[:, size:] = after
    flat = memoryview(out.reshape(-1))
    tails = [flat[i * record : (i + 1) * record] for i in range(n)]
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            tails[i] = _NULL + _real_array(vectors[i]) + model_field
    return tails


def copy_rows(chunks, vectors: "np.ndarray | None", model: "str | None") -> bytes:
    """The rows of COPY ... (FORMAT binary) data of the COLUMNS of these chunks (no header,
    no trailer)."""
    out = []
    add = out.extend
    for c, tail in zip(chunks, _tails(vectors, len(chunks), model), strict=True):
        chunk_id = c.chunk_id.encode("utf-8")
        doc_id = c.doc_id.encode("utf-8")
        content = c.content.encode("utf-8")
        metadata = _jsonb_text(c.metadata)
        add(
            (
                _FIRST(len(COLUMNS), len(chunk_id)),
                chunk_id,
                _INT(len(doc_id)),
                doc_id,
                _MIDDLE(4, c.chunk_index, len(content)),
                content,
                # jsonb's binary form: version 1, then the text
                _DROP(1, c.drop, len(metadata) + 1, 1),
                metadata,
                tail,
            )
        )
    return b"".join(out)


def copy_binary(chunks, vectors: "np.ndarray | None", model: "str | None") -> bytes:
    """COPY ... (FORMAT binary) data of the COLUMNS of these chunks."""
    return _HEADER + copy_rows(chunks, vectors, model) + _TRAILER


# --- blank references ---------------------------------------------------------------------


def has_blank_reference(conn, model: str) -> bool:
    return (
        _one(conn, "SELECT FROM embedding_gate.blank_references WHERE model = %s", [model])
        is not None
    )


def set_blank_reference(conn, model: str, reference: np.ndarray, text: str = "") -> None:
    """Record a model's embedding of a blank text (the database keeps the first one)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT public.set_blank_reference(%s, %s::real[]::public.vector, %s)",
            [model, reference.astype(float).tolist(), text],
        )
    conn.commit()


def degenerate_texts(conn, model: str) -> set:
    """The texts of the model's references besides the blank one (set_degenerate_reference)."""
    sql = "SELECT text FROM embedding_gate.degenerate_references WHERE model = %s"
    return {r[0] for r in _rows(conn, sql, [model])[1]}


def set_degenerate_reference(conn, model: str, vector: np.ndarray, text: str, kind: str) -> None:
    """Record a model's embedding of a short degenerate text (the database keeps the first)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT public.set_degenerate_reference(%s, %s::real[]::public.vector, %s, %s)",
            [model, vector.astype(float).tolist(), text, kind],
        )
    conn.commit()


def has_calibration(conn, model: str) -> bool:
    row = _one(conn, "SELECT FROM embedding_gate.model_calibrations WHERE model = %s", [model])
    return row is not None


def set_calibration(conn, model: str, mean: np.ndarray, sample_size: int) -> None:
    """Record a model's mean embedding over the loader's sample of ordinary sentences."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT public.set_blank_calibration(%s, %s::real[]::public.vector, %s, 'sample')",
            [model, mean.astype(float).tolist(), sample_size],
        )
    conn.commit()


def recorded_model(conn, model: str) -> "dict | None":
    """What the database keeps of a model for blank_like: {"blank_text", "reference" (its
    embedding of the blank text, float64 array, or None), "mean" (its calibration, or None),
    "sample_size", "source", "reference_at", "mean_at"}; None when it keeps nothing."""
    try:
        row = _one(
            conn,
            "SELECT b.blank_text, b.reference, c.mean, c.sample_size, c.source,"
            " b.recorded_at, c.recorded_at"
            " FROM (SELECT %s::text AS model) AS m"
            " LEFT JOIN embedding_gate.blank_references AS b ON b.model = m.model"
            " LEFT JOIN embedding_gate.model_calibrations AS c ON c.model = m.model",
            [model],
        )
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.UndefinedColumn):
        conn.rollback()
        return None
    if row is None or (row[1] is None and row[2] is None):
        return None
    keys = ("blank_text", "reference", "mean", "sample_size", "source", "reference_at", "mean_at")
    out = dict(zip(keys, row, strict=True))
    for key in ("reference", "mean"):
        if out[key] is not None:
            out[key] = np.asarray(out[key], dtype=np.float64)
    return out


def embedded_with(conn, model: str) -> int:
    """How many stored chunks name this model."""
    return _one(conn, "SELECT count(*) FROM public.chunks WHERE embedding_model = %s", [model])[0]


# --- the reports ----------------------------------------------------------------------------


def _rows(conn, sql: str, params=()) -> "tuple[list, list]":
    """(column names, rows) of a read-only query, its transaction ended."""
    with conn.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
        names = [c.name for c in cur.description]
    conn.rollback()
    return names, rows


def _dicts(conn, sql: str, params=()) -> list:
    names, rows = _rows(conn, sql, params)
    return [dict(zip(names, row, strict=True)) for row in rows]


def summary(conn) -> dict:
    """The row of embedding_quality_summary."""
    return _dicts(conn, "SELECT * FROM public.embedding_quality_summary")[0]


def low_quality(conn, limit: int) -> list:
    """The newest rows of low_quality_embeddings: chunk_id, doc_id, reason, content_length,
    content_preview, quarantined (and issues, embedding_model, table_name, row_id)."""
    return _rows(
        conn,
        "SELECT chunk_id, doc_id, reason, content_length, content_preview, quarantined, issues,"
        " embedding_model, table_name, row_id FROM public.low_quality_embeddings LIMIT %s",
        [limit],
    )[1]


def settings(conn) -> dict:
    """The gate's mode and thresholds."""
    return _dicts(conn, "SELECT * FROM embedding_gate.settings")[0]


def measures(conn) -> dict:
    """Every stored embedding's measures, as columns: norm, variance, near_zero_ratio,
    blank_similarity, silent_deviation (None where not measured), embedding_model, issues."""
    names, rows = _rows(
        conn,
        "SELECT norm, variance, near_zero_ratio, blank_similarity, silent_deviation,"
        " embedding_model, issues FROM public.embedding_measures()",
    )
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def twin_groups(conn) -> list:
    """How many chunks share each embedding stored more than once, largest first."""
    return [
        n
        for (n,) in _rows(
            conn,
            "SELECT count(*) FROM public.chunks WHERE embedding_hash IS NOT NULL"
            " GROUP BY embedding_hash, embedding_gate.vector_bytes(embedding)"
            " HAVING count(*) > 1 ORDER BY 1 DESC",
        )[1]
    ]


def attached(conn) -> list:
    """The rows of embedding_gate.attached: the tables the gate guards besides chunks."""
    return _dicts(conn, "SELECT * FROM embedding_gate.attached ORDER BY table_name")


def attach(conn, table: str, **options) -> str:
    """embedding_gate.attach(table, option => value, ...), the stored rows left to
    check_existing(); committed. Returns the table's schema-qualified name."""
    names = "".join(f", {name} => %s" for name in options)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT attached FROM embedding_gate.attach(%s{names}, check_existing => false)",
            [table, *options.values()],
        )
        name = cur.fetchone()[0]
    conn.commit()
    return name


def build_hash_index(conn, table: str, column: str = "embedding") -> str:
    """CREATE INDEX CONCURRENTLY on the gate's hash of an embedding column, for attach()'s
    hash_index: built while writers go on (a plain CREATE INDEX, as attach() would run,
    holds every write to the table until it is built). Returns its name."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT c.relname, c.oid, n.nspname,"
            " a.atttypid = 'public.halfvec'::regtype AS half"
            " FROM pg_catalog.pg_class AS c"
            " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
            " JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid"
            " WHERE c.oid = %s::regclass AND a.attname = %s AND NOT a.attisdropped",
            [table, column],
        )
        found = cur.fetchone()
    conn.commit()
    if found is None:
        raise psycopg2.errors.UndefinedColumn(f'table {table} has no column "{column}"')
    relname, oid, schema, half = found
    name = f"{relname[:30]}_{oid}_embedding_gate_hash"
    ident = psycopg2.sql.Identifier
    statement = psycopg2.sql.SQL(
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS {} ON {}.{} (embedding_gate.{}({}))"
    ).format(
        ident(name),
        ident(schema),
        ident(relname),
        ident("halfvec_hash" if half else "vector_hash"),
        ident(column),
    )
    autocommit = conn.autocommit
    conn.autocommit = True  # CONCURRENTLY runs outside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.autocommit = autocommit
    return name


def detach(conn, table: str, drop_quarantined: bool = False) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT embedding_gate.detach(%s, %s)", [table, drop_quarantined])
    conn.commit()


def check_existing(conn, table: str, batch_size: int = 10000, progress=None) -> tuple:
    """Check every row an attached table holds, committing each batch; progress(checked,
    flagged) after each. Returns (checked, flagged)."""
    checked = flagged = 0
    after = None
    while True:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT checked, low_quality, last_row_id"
                " FROM embedding_gate._check_existing(%s, %s, %s)",
                [table, after, batch_size],
            )
            n, low, after = cur.fetchone()
        conn.commit()
        if not n:
            return checked, flagged
        checked, flagged = checked + n, flagged + low
        if progress:
            progress(checked, flagged)


def quality_by_day(conn) -> list:
    """The rows of embedding_quality_by_day, oldest first."""
    return _dicts(conn, "SELECT * FROM public.embedding_quality_by_day")


def flagged_by(conn, group: str, limit: int = 20) -> list:
    """Embedded and flagged chunks per model ("model") or per document ("document"), the
    most flagged first: (name, embedded, flagged). Read through the views, so the loader's
    role may run it too."""
    column = {"model": "embedding_model", "document": "doc_id"}[group]
    return _rows(
        conn,
        f"SELECT g, sum(embedded)::bigint AS embedded, sum(flagged)::bigint AS flagged FROM ("
        f" SELECT {column} AS g, count(*) AS embedded, 0 AS flagged FROM public.chunks"
        "  WHERE embedding IS NOT NULL OR embedding_raw IS NOT NULL GROUP BY 1"
        f" UNION ALL SELECT {column}, count(*) FILTER (WHERE quarantined), count(*)"
        "  FROM public.low_quality_embeddings GROUP BY 1) AS c"
        " GROUP BY g ORDER BY flagged DESC, embedded DESC, g LIMIT %s",
        [limit],
    )[1]
