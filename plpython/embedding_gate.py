"""Embedding quality checks, run inside PostgreSQL by PL/Python (and testable without it).

The migrations embed this file verbatim in `embedding_gate._python_module()`, which executes
it as a module in the server's own Python (/usr/bin/python3 with python3-numpy on Debian).
The SQL functions are a few lines that call into it, passing `plpy` (and `TD` for triggers).

Every check is vectorised: a batch of n vectors is an (n, d) array and each measure is
one numpy pass over it. Nothing here builds SQL from data: every statement is prepared
with typed parameters.
"""

import json
import math
from dataclasses import dataclass

import numpy as np

CODES = ("nan_or_inf", "low_norm", "low_variance", "sparse", "blank_like", "duplicate_vector")
MODES = ("flag", "quarantine", "reject")

# SQLSTATE of a rejected embedding (class QG: quality gate)
REJECTED_SQLSTATE = "QG001"

# how many transition-table rows one numpy batch holds (768-d: 3 MiB of float32 per 1,000)
BATCH_ROWS = 4096
# rows evaluate() converts to float64 at a time (768-d: 1.5 MiB, stays in cache)
EVAL_BLOCK_ROWS = 256


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of the checks; the first four defaults are the reference pipeline's."""

    min_norm: float = 0.1
    min_variance: float = 0.001
    near_zero_epsilon: float = 0.001
    max_near_zero_ratio: float = 0.9
    # blank_like: cosine similarity to the model's embedding of empty text, at or above
    blank_similarity: float = 0.4


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
    duplicate_of: list  # the earlier chunk with the same embedding and other content, or None

    @property
    def flagged(self) -> np.ndarray:
        return self.codes.any(axis=1)

    def issues(self, i: int) -> list:
        return [code for code, hit in zip(CODES, self.codes[i], strict=True) if hit]

    def reason(self, i: int) -> str:
        return "; ".join(describe(code, self, i) for code in self.issues(i))

    def measures(self, i: int) -> tuple:
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
    blank_like check); duplicate_of: per vector, the chunk_id of an earlier chunk with the
    same embedding and other content, or None (the database finds those, by index)."""
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


# --- settings -----------------------------------------------------------------------------

_SETTINGS_SQL = (
    "SELECT mode, min_norm, min_variance, near_zero_epsilon, max_near_zero_ratio,"
    " blank_similarity FROM embedding_gate.settings"
)
_OVERRIDE_SQL = "SELECT current_setting('embedding_gate.' || $1, true) AS v"
_CALLER_MAY_OVERRIDE_SQL = (
    "SELECT has_table_privilege("
    " CASE WHEN current_setting('role') = 'none'"
    " THEN session_user ELSE current_setting('role')::name END,"
    " 'embedding_gate.settings', 'UPDATE') AS ok"
)


def _plan(plpy, key: str, sql: str, types=()):
    """A prepared plan, cached for the session."""
    plans = _PLANS
    plan = plans.get(key)
    if plan is None:
        plan = plans[key] = plpy.prepare(sql, list(types))
    return plan


_PLANS: dict = {}


def current_settings(plpy) -> "tuple[str, Thresholds]":
    """Mode and thresholds: the settings table, overridden per transaction by
    `SET LOCAL embedding_gate.<name> = ...` where the calling role may change the settings."""
    row = plpy.execute(_plan(plpy, "settings", _SETTINGS_SQL))[0]
    values = dict(row)
    overridden = []
    for name in row.keys():
        text = plpy.execute(_plan(plpy, "override", _OVERRIDE_SQL, ["text"]), [name])[0]["v"]
        if text:  # NULL when never set, '' after RESET
            overridden.append((name, text))
    if overridden:
        if not plpy.execute(_plan(plpy, "may_override", _CALLER_MAY_OVERRIDE_SQL))[0]["ok"]:
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


# --- reading vectors ----------------------------------------------------------------------


def from_vector_bytes(blobs: list) -> np.ndarray:
    """An (n, d) float32 array from embedding_gate.vector_bytes() values, one bytes object
    per vector, all of one dimension."""
    if not blobs:
        return np.empty((0, 0), dtype=np.float32)
    return from_vector_blob(b"".join(blobs), len(blobs))


def from_vector_blob(blob: bytes, n: int) -> np.ndarray:
    """An (n, d) float32 view of n vector_bytes() values concatenated (what
    string_agg(vector_bytes(v), '') returns), no copy. A value is pgvector's stored form:
    int16 dim, int16 unused, then d float4 in the server's byte order, which is this
    process's: PL/Python runs inside the server."""
    flat = np.frombuffer(blob, dtype=np.float32)
    # the 4-byte header is one float4-sized column: reshape, then drop it
    return flat.reshape(n, len(flat) // n)[:, 1:]


def from_vector_text(text: str) -> np.ndarray:
    """A float32 vector from pgvector's text form, '[1,2,3]'."""
    return np.array(text.strip()[1:-1].split(","), dtype=np.float32)


def vector_literal(values) -> str:
    """pgvector's text form of a finite vector."""
    return "[" + ",".join(repr(float(x)) for x in values) + "]"


# --- the insert trigger -------------------------------------------------------------------

# duplicate_vector, for the row `i`: the earliest chunk (created_at, chunk_id) with the
# identical embedding, when its content differs from i's (the same text stored twice is not
# a duplicate). One descent of chunks_embedding_hash_idx (embedding_hash, created_at,
# chunk_id): the row itself and later rows are ruled out inside the index, and only a chunk
# with the same 64-bit hash is read to compare the bytes.
_DUPLICATE_OF = (
    "(SELECT o.chunk_id FROM (SELECT c.chunk_id, c.content FROM public.chunks AS c"
    " WHERE c.embedding_hash = i.embedding_hash"
    " AND (c.created_at, c.chunk_id) < (i.created_at, i.chunk_id)"
    " AND embedding_gate.vector_bytes(c.embedding) = embedding_gate.vector_bytes(i.embedding)"
    " ORDER BY c.created_at, c.chunk_id LIMIT 1) AS o"
    " WHERE o.content IS DISTINCT FROM i.content)"
)
_INSERTED_SQL = (
    "SELECT i.chunk_id, embedding_gate.vector_bytes(i.embedding) AS v, i.embedding_raw AS raw,"
    " i.quality_issues IS NOT NULL AS had_issues, i.embedding_model AS model,"
    " CASE WHEN i.embedding IS NOT NULL THEN " + _DUPLICATE_OF + " END AS duplicate_of"
    " FROM inserted AS i WHERE i.embedding IS NOT NULL OR i.embedding_raw IS NOT NULL"
)
_REFERENCES_SQL = (
    "SELECT model, reference FROM embedding_gate.blank_references WHERE model = ANY ($1)"
)
# the verdicts of flagged rows, passed as parallel arrays ($1..$8, see _flag_params)
_VERDICTS = (
    "unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::float8[],"
    " $7::float8[], $8::text[])"
    " AS i(chunk_id, issues, reason, norm, variance, ratio, similarity, duplicate_of)"
)
_FLAG_SQL = (
    "UPDATE public.chunks AS c SET quality_issues = string_to_array(i.issues, ','),"
    " quality_reason = i.reason, quality_norm = i.norm, quality_variance = i.variance,"
    " quality_near_zero_ratio = i.ratio, quality_blank_similarity = i.similarity,"
    " quality_duplicate_of = i.duplicate_of, quality_checked_at = now()"
    " FROM " + _VERDICTS + " WHERE c.chunk_id = i.chunk_id"
)
# a chunk quarantined again replaces its earlier quarantine row: each chunk is there once
_REQUARANTINE = (
    " ON CONFLICT (chunk_id) DO UPDATE SET doc_id = excluded.doc_id,"
    " chunk_index = excluded.chunk_index, content = excluded.content, drop = excluded.drop,"
    " metadata = excluded.metadata, embedding_raw = excluded.embedding_raw,"
    " quality_issues = excluded.quality_issues, quality_reason = excluded.quality_reason,"
    " quality_norm = excluded.quality_norm, quality_variance = excluded.quality_variance,"
    " quality_near_zero_ratio = excluded.quality_near_zero_ratio,"
    " embedding_model = excluded.embedding_model,"
    " quality_blank_similarity = excluded.quality_blank_similarity,"
    " quality_duplicate_of = excluded.quality_duplicate_of, quarantined_at = now()"
)
_QUARANTINE_COLUMNS = (
    "chunk_id, doc_id, chunk_index, content, drop, metadata, embedding_raw, quality_issues,"
    " quality_reason, quality_norm, quality_variance, quality_near_zero_ratio,"
    " embedding_model, quality_blank_similarity, quality_duplicate_of"
)
_QUARANTINE_SQL = (
    "WITH moved AS (DELETE FROM public.chunks AS c USING unnest($1::text[]) AS k(chunk_id)"
    "  WHERE c.chunk_id = k.chunk_id"
    "  RETURNING c.chunk_id, c.doc_id, c.chunk_index, c.content, c.drop, c.metadata,"
    "   COALESCE(c.embedding::real[], c.embedding_raw) AS raw, c.embedding_model)"
    " INSERT INTO public.embedding_quarantine (" + _QUARANTINE_COLUMNS + ")"
    " SELECT m.chunk_id, m.doc_id, m.chunk_index, m.content, m.drop, m.metadata, m.raw,"
    "  string_to_array(i.issues, ','), i.reason, i.norm, i.variance, i.ratio,"
    "  m.embedding_model, i.similarity, i.duplicate_of"
    " FROM moved AS m JOIN " + _VERDICTS + " ON m.chunk_id = i.chunk_id" + _REQUARANTINE
)
_CLEAR_SQL = (
    "UPDATE public.chunks SET quality_issues = NULL, quality_reason = NULL, quality_norm = NULL,"
    " quality_variance = NULL, quality_near_zero_ratio = NULL,"
    " quality_blank_similarity = NULL, quality_duplicate_of = NULL, quality_checked_at = now()"
    " WHERE chunk_id = ANY ($1::text[])"
)
_PROMOTE_RAW_SQL = (
    "UPDATE public.chunks AS c SET embedding = p.v::{vector_schema}.vector, embedding_raw = NULL"
    " FROM unnest($1::text[], $2::text[]) AS p(chunk_id, v)"
    " WHERE c.chunk_id = p.chunk_id"
)
_FLAG_TYPES = ["text[]"] * 3 + ["float8[]"] * 4 + ["text[]"]


def vector_schema(plpy) -> str:
    """The schema pgvector is installed in, quoted for SQL."""
    if "vector_schema" not in _PLANS:
        _PLANS["vector_schema"] = plpy.execute(
            "SELECT quote_ident(n.nspname) AS s FROM pg_extension AS e"
            " JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
        )[0]["s"]
    return _PLANS["vector_schema"]


def references_for(plpy, models: list) -> list:
    """Per row, its model's blank reference as a unit vector (one object per model), or
    None where the row names no model or its model has no reference."""
    wanted = sorted({m for m in models if m is not None})
    if not wanted:
        return [None] * len(models)
    rows = plpy.execute(_plan(plpy, "references", _REFERENCES_SQL, ["text[]"]), [wanted])
    found = {r["model"]: unit_reference(r["reference"]) for r in rows}
    return [found.get(m) for m in models]


def check_inserted(plpy) -> None:
    """Statement-level AFTER INSERT trigger on chunks, transition table `inserted`: check
    every new embedding in vectorised batches; write back only what is flagged."""
    mode, t = current_settings(plpy)
    # not a cached plan: the transition table exists only for this trigger call
    cursor = plpy.cursor(_INSERTED_SQL)
    try:
        while rows := cursor.fetch(BATCH_ROWS):
            stored = [r for r in rows if r["v"] is not None]
            if stored:
                verdicts = evaluate(
                    from_vector_bytes([r["v"] for r in stored]),
                    t,
                    references_for(plpy, [r["model"] for r in stored]),
                    [r["duplicate_of"] for r in stored],
                )
                ids = [r["chunk_id"] for r in stored]
                _apply(plpy, ids, [r["had_issues"] for r in stored], verdicts, mode)
            raw = [r for r in rows if r["v"] is None]
            if raw:
                _check_raw(plpy, raw, mode, t)
    except Rejected:
        cursor.close()


def _apply(plpy, ids, had_issues, verdicts: "Verdicts", mode: str) -> None:
    """Write the verdicts of rows stored in chunks: act on the flagged ones, and clear the
    quality columns of clean rows that carry old ones."""
    flagged = verdicts.flagged
    stale = [i for i, had, f in zip(ids, had_issues, flagged, strict=True) if had and not f]
    if stale:
        plpy.execute(_plan(plpy, "clear", _CLEAR_SQL, ["text[]"]), [stale])
    idx = np.flatnonzero(flagged)
    if len(idx):
        _act(plpy, mode, [ids[i] for i in idx], verdicts, idx)


def _check_raw(plpy, rows, mode: str, t: Thresholds) -> None:
    """Rows written to embedding_raw. Those pgvector can hold are moved into `embedding`
    (the row trigger then checks them again and sets their quality columns), unless the
    mode quarantines or rejects them; NaN/Inf ones stay raw, flagged nan_or_inf."""
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
        plan = _plan(
            plpy,
            "promote",
            _PROMOTE_RAW_SQL.format(vector_schema=vector_schema(plpy)),
            ["text[]", "text[]"],
        )
        plpy.execute(
            plan, [[rows[i]["chunk_id"] for i in promote], [vector_literal(x[i]) for i in promote]]
        )
    if len(act):
        _act(plpy, mode, [rows[i]["chunk_id"] for i in act], v, act)


def _flag_params(ids, verdicts: Verdicts, idx) -> list:
    idx = list(idx)
    measures = [verdicts.measures(i) for i in idx]
    return [
        list(ids),
        [",".join(verdicts.issues(i)) for i in idx],
        [verdicts.reason(i) for i in idx],
        [m[0] for m in measures],
        [m[1] for m in measures],
        [m[2] for m in measures],
        [m[3] for m in measures],
        [verdicts.duplicate_of[i] for i in idx],
    ]


def _act(plpy, mode: str, ids, verdicts: Verdicts, idx) -> None:
    """Apply the mode to flagged rows already in chunks: flag, quarantine or reject."""
    idx = list(idx)
    if mode == "reject":
        reject(plpy, list(ids), [verdicts.reason(i) for i in idx])
    params = _flag_params(ids, verdicts, idx)
    if mode == "quarantine":
        plpy.execute(_plan(plpy, "quarantine", _QUARANTINE_SQL, _FLAG_TYPES), params)
    else:
        plpy.execute(_plan(plpy, "flag", _FLAG_SQL, _FLAG_TYPES), params)


class Rejected(Exception):
    """Raised inside the module once a rejection is recorded: stop checking."""


_REJECT_SQL = "SELECT set_config('embedding_gate.rejected', $1, true)"


def reject(plpy, ids: list, reasons: list) -> None:
    """Record why the statement must fail, naming the chunks and reasons. The PL/pgSQL
    trigger embedding_gate_reject raises it when the statement's row work is done (SQLSTATE
    QG001): PL/Python would prefix the message and append a Python traceback."""
    shown = "\n".join(f"chunk {i}: {r}" for i, r in list(zip(ids, reasons, strict=True))[:20])
    more = f"\n... and {len(ids) - 20} more" if len(ids) > 20 else ""
    message = f'embedding of chunk "{ids[0]}" rejected: {reasons[0]}'
    if len(ids) > 1:
        message += f" (and {len(ids) - 1} more)"
    payload = json.dumps({"message": message, "detail": shown + more})
    plpy.execute(_plan(plpy, "reject", _REJECT_SQL, ["text"]), [payload])
    raise Rejected


# --- the update trigger -------------------------------------------------------------------

_QUARANTINE_ROW_SQL = (
    "INSERT INTO public.embedding_quarantine (" + _QUARANTINE_COLUMNS + ")"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    + _REQUARANTINE
)
# the same rule for the one row an UPDATE writes, given as parameters
_DUPLICATE_ROW_SQL = (
    "SELECT " + _DUPLICATE_OF + " AS chunk_id FROM (SELECT e.embedding,"
    " embedding_gate.vector_hash(e.embedding) AS embedding_hash,"
    " $2::text AS content, $3::timestamptz AS created_at, $4::text AS chunk_id"
    " FROM (SELECT $1::{vector_schema}.vector AS embedding) AS e) AS i"
)
_QUARANTINE_ROW_TYPES = [
    "text",
    "text",
    "integer",
    "text",
    "boolean",
    "text",
    "real[]",
    "text[]",
    "text",
    "float8",
    "float8",
    "float8",
    "text",
    "float8",
    "text",
]


# what a verdict writes on a chunk (NULL when clean)
_VERDICT_COLUMNS = (
    "quality_issues",
    "quality_reason",
    "quality_norm",
    "quality_variance",
    "quality_near_zero_ratio",
    "quality_blank_similarity",
    "quality_duplicate_of",
)


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
            new["embedding"], new["embedding_raw"] = vector_literal(x), None
    else:
        for col in (*_VERDICT_COLUMNS, "quality_checked_at"):
            new[col] = None
        return "MODIFY"
    mode, t = current_settings(plpy)
    duplicate_of = None
    if new["embedding"] is not None:
        vs = vector_schema(plpy)
        plan = _plan(
            plpy,
            "duplicate_row",
            _DUPLICATE_ROW_SQL.format(vector_schema=vs),
            ["text", "text", "text", "text"],
        )
        found = plpy.execute(
            plan, [new["embedding"], new["content"], new["created_at"], new["chunk_id"]]
        )
        duplicate_of = found[0]["chunk_id"]
    v = evaluate(
        x.reshape(1, -1),
        t,
        references_for(plpy, [new["embedding_model"]]),
        [duplicate_of],
    )
    if v.flagged[0] and mode == "reject":
        try:
            reject(plpy, [new["chunk_id"]], [v.reason(0)])
        except Rejected:
            pass  # the row is written flagged; embedding_gate_reject then fails the statement
    if v.flagged[0] and mode == "quarantine":
        norm, variance, ratio, similarity = v.measures(0)
        plpy.execute(
            _plan(plpy, "quarantine_row", _QUARANTINE_ROW_SQL, _QUARANTINE_ROW_TYPES),
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
        ) = v.measures(0)
        new["quality_duplicate_of"] = duplicate_of
    else:
        for col in _VERDICT_COLUMNS:
            new[col] = None
    plan = _plan(plpy, "now", "SELECT now() AS now")
    new["quality_checked_at"] = plpy.execute(plan)[0]["now"]
    return "MODIFY"


# --- verify, recheck, measures -----------------------------------------------------------

_SAMPLE_SQL = (
    "SELECT i.chunk_id, embedding_gate.vector_bytes(i.embedding) AS v, i.embedding_raw AS raw,"
    " i.embedding_model AS model,"
    " CASE WHEN i.embedding IS NOT NULL THEN " + _DUPLICATE_OF + " END AS duplicate_of"
    " FROM public.chunks AS i WHERE i.chunk_id = ANY (ARRAY("
    "  SELECT chunk_id FROM public.chunks"
    "  WHERE embedding IS NOT NULL OR embedding_raw IS NOT NULL"
    "  ORDER BY random() LIMIT $1))"
)
# The embedding hashes stored more than once: one pass over chunks_embedding_hash_idx
# (an index-only scan once VACUUM has run). A scan probes for duplicates only the rows
# with one of these hashes, and the rows already flagged (written after this ran, perhaps).
_TWINS_SQL = (
    "SELECT coalesce(array_agg(embedding_hash), '{}') AS twins FROM ("
    " SELECT embedding_hash FROM public.chunks WHERE embedding_hash IS NOT NULL"
    " GROUP BY embedding_hash HAVING count(*) > 1) AS t"
)
# One batch of stored embeddings in chunk_id order, aggregated into a few values: the
# vectors as one bytea (string_agg skips NULLs, so it lines up with the filtered arrays).
# Row by row, PL/Python would build a dict per row and read at a quarter of the speed.
_BATCH_SQL = (
    "SELECT count(*)::integer AS n, max(chunk_id) AS last,"
    " array_agg(chunk_id) FILTER (WHERE embedding IS NOT NULL) AS ids,"
    " array_agg(quality_issues IS NOT NULL) FILTER (WHERE embedding IS NOT NULL) AS had,"
    " array_agg(embedding_model) FILTER (WHERE embedding IS NOT NULL) AS models,"
    " array_agg(duplicate_of) FILTER (WHERE embedding IS NOT NULL) AS duplicates,"
    " string_agg(embedding_gate.vector_bytes(embedding), ''::bytea) AS blob,"
    " array_agg(chunk_id) FILTER (WHERE embedding IS NULL) AS raw_ids"
    " FROM (SELECT i.chunk_id, i.embedding, i.quality_issues, i.embedding_model,"
    "  CASE WHEN i.embedding IS NOT NULL AND (t.h IS NOT NULL OR i.quality_issues IS NOT NULL)"
    "  THEN " + _DUPLICATE_OF + " END AS duplicate_of"
    "  FROM (SELECT chunk_id, embedding, quality_issues, embedding_model, content, created_at,"
    "   embedding_hash"
    "   FROM public.chunks WHERE {after} (embedding IS NOT NULL OR embedding_raw IS NOT NULL)"
    "   ORDER BY chunk_id LIMIT ${limit}) AS i"
    "  LEFT JOIN (SELECT DISTINCT h FROM unnest(${twins}::bigint[]) AS h) AS t"
    "  ON t.h = i.embedding_hash) AS batch"
)
_RAW_ROWS_SQL = (
    "SELECT chunk_id, embedding_raw AS raw, quality_issues IS NOT NULL AS had,"
    " embedding_model AS model"
    " FROM public.chunks WHERE chunk_id = ANY ($1) ORDER BY chunk_id"
)

# How much of the vectors one read brings into Python. Bigger reads cost more per row:
# 768-d, 100,000 vectors read 2,000 rows (6 MB) at a time took 0.65 s, 10,000 rows 0.98 s.
READ_BYTES = 6 << 20
_DIM_SQL = (
    "SELECT a.atttypmod AS d FROM pg_catalog.pg_attribute AS a"
    " WHERE a.attrelid = 'public.chunks'::regclass AND a.attname = 'embedding'"
)


def read_rows(plpy) -> int:
    """Rows per read_batch(): READ_BYTES of this deployment's vectors (vector(d) keeps d as
    its type modifier)."""
    if "read_rows" not in _PLANS:
        d = plpy.execute(_DIM_SQL)[0]["d"]
        _PLANS["read_rows"] = max(256, READ_BYTES // (4 * d)) if d > 0 else 2000
    return _PLANS["read_rows"]


def matrix(rows) -> np.ndarray:
    """An (n, d) float64 array from rows with `v` (vector_bytes) or `raw` (a list)."""
    if all(r["v"] is not None for r in rows):
        return from_vector_bytes([r["v"] for r in rows]).astype(np.float64)
    return np.array(
        [from_vector_bytes([r["v"]])[0] if r["v"] is not None else r["raw"] for r in rows],
        dtype=np.float64,
    )


def verify_sample(plpy, sample_size: int) -> dict:
    """verify_embeddings(): re-check a random sample with the current thresholds."""
    _, t = current_settings(plpy)
    rows = plpy.execute(_plan(plpy, "sample", _SAMPLE_SQL, ["integer"]), [max(sample_size, 0)])
    counts = dict.fromkeys(CODES, 0)
    low = 0
    if rows:
        v = evaluate(
            matrix(rows),
            t,
            references_for(plpy, [r["model"] for r in rows]),
            [r["duplicate_of"] for r in rows],
        )
        low = int(v.flagged.sum())
        counts.update(zip(CODES, (int(n) for n in v.codes.sum(axis=0)), strict=True))
    return {
        "checked": len(rows),
        "low_quality": low,
        "low_quality_rate": low / len(rows) if rows else 0.0,
        "counts": json.dumps(counts),
    }


def twins(plpy) -> list:
    """The embedding hashes stored more than once (see _TWINS_SQL)."""
    return plpy.execute(_plan(plpy, "twins", _TWINS_SQL))[0]["twins"]


def read_batch(plpy, after, batch_size: int, twin_hashes: list):
    """The next batch_size stored embeddings after chunk_id `after` (None: from the start),
    looking for duplicates of the rows whose hash is in twin_hashes or that are flagged.
    Returns (rows read, last chunk_id, parts); each part is (chunk_ids, had_issues, vectors,
    models, duplicate_of) with vectors an (n, d) array: one part for `embedding`, one for
    `embedding_raw` rows."""
    if after is None:
        sql = _BATCH_SQL.format(after="", limit=1, twins=2)
        plan = _plan(plpy, "batch_first", sql, ["integer", "bigint[]"])
        r = plpy.execute(plan, [batch_size, twin_hashes])[0]
    else:
        sql = _BATCH_SQL.format(after="chunk_id > $1 AND", limit=2, twins=3)
        plan = _plan(plpy, "batch_next", sql, ["text", "integer", "bigint[]"])
        r = plpy.execute(plan, [after, batch_size, twin_hashes])[0]
    parts = []
    if r["ids"]:
        x = from_vector_blob(r["blob"], len(r["ids"]))
        parts.append((r["ids"], r["had"], x, r["models"], r["duplicates"]))
    if r["raw_ids"]:
        raw = plpy.execute(_plan(plpy, "raw_rows", _RAW_ROWS_SQL, ["text[]"]), [r["raw_ids"]])
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
    return r["n"], (r["last"] if r["n"] else after), parts


def scan(plpy):
    """Every stored embedding, as the parts of read_batch(), batch by batch."""
    after = None
    twin_hashes = twins(plpy)
    while True:
        n, after, parts = read_batch(plpy, after, read_rows(plpy), twin_hashes)
        if not n:
            return
        yield from parts


def recheck_batch(plpy, after, batch_size: int, twin_hashes) -> dict:
    """One batch of recheck_embeddings(): re-evaluate the next rows in chunk_id order with the
    current thresholds and write what changed (always in flag mode: a recheck never moves or
    deletes stored rows). twin_hashes: twins() as the first batch returned it (None: compute
    them), so that a recheck groups the hashes once, not once per batch."""
    _, t = current_settings(plpy)
    if twin_hashes is None:
        twin_hashes = twins(plpy)
    batch_size = max(batch_size, 1)
    checked = low = 0
    last = after
    while checked < batch_size:
        n, last, parts = read_batch(
            plpy, last, min(read_rows(plpy), batch_size - checked), twin_hashes
        )
        if not n:
            break
        checked += n
        for ids, had, x, models, duplicates in parts:
            v = evaluate(x, t, references_for(plpy, models), duplicates)
            _apply(plpy, ids, had, v, "flag")
            low += int(v.flagged.sum())
    return {"checked": checked, "low_quality": low, "last_chunk_id": last, "twins": twin_hashes}


def measures(plpy, near_zero_epsilon):
    """embedding_measures(): norm, variance, near-zero ratio and the issue codes under the
    current thresholds of every stored embedding, batch by batch."""
    _, t = current_settings(plpy)
    if near_zero_epsilon is not None:
        t = Thresholds(**{**t.__dict__, "near_zero_epsilon": near_zero_epsilon})
    for ids, _, x, models, duplicates in scan(plpy):
        v = evaluate(x, t, references_for(plpy, models), duplicates)
        for i, chunk_id in enumerate(ids):
            norm, variance, ratio, _ = v.measures(i)
            yield chunk_id, norm, variance, ratio, v.issues(i)


# percentiles shown by preview_thresholds()
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)


def preview(plpy, proposed: dict) -> list:
    """preview_thresholds(): the distribution of each measure over the stored embeddings and
    how many the current and the proposed thresholds flag. Changes nothing."""
    _, now = current_settings(plpy)
    new = Thresholds(
        **{**now.__dict__, **{k: float(v) for k, v in proposed.items() if v is not None}}
    )
    for name, value in proposed.items():
        if value is not None and not (math.isfinite(value) and value >= 0):
            plpy.error(f"{name} is {value!r}, expected a non-negative number", sqlstate="22023")
    measured = {"norm": [], "variance": [], "ratio": [], "similarity": []}
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
            return [None] * len(PERCENTILES)
        return [float(p) for p in np.percentile(values, PERCENTILES)]

    unit_variance = f"{1 / dim:.4g}" if dim else "1/d"
    rows = [
        (
            "nan_or_inf",
            "NaN/Inf components",
            None,
            None,
            [None] * len(PERCENTILES),
            "always on: pgvector cannot hold NaN or Inf",
        ),
        (
            "low_norm",
            "norm",
            now.min_norm,
            new.min_norm,
            spread("norm"),
            "flags norm < threshold; normalising models give norm 1.0",
        ),
        (
            "low_variance",
            "variance",
            now.min_variance,
            new.min_variance,
            spread("variance"),
            f"flags variance < threshold; a unit-normalised {dim or 'd'}-d vector has variance"
            f" about 1/d = {unit_variance}",
        ),
        (
            "sparse",
            "near_zero_ratio",
            now.max_near_zero_ratio,
            new.max_near_zero_ratio,
            spread("ratio"),
            f"flags a share of abs(x) < near_zero_epsilon above threshold; near_zero_epsilon"
            f" {now.near_zero_epsilon:g} -> {new.near_zero_epsilon:g}",
        ),
        (
            "blank_like",
            "similarity to the embedding of empty text",
            now.blank_similarity,
            new.blank_similarity,
            spread("similarity"),
            "flags cosine similarity >= threshold to the model's embedding of empty text;"
            " only chunks whose model has a reference (embedding_gate.blank_references)",
        ),
        (
            "duplicate_vector",
            "identical embedding, other content",
            None,
            None,
            [None] * len(PERCENTILES),
            "always on: flags a chunk whose embedding equals an earlier chunk's",
        ),
    ]
    out = []
    for column, (code, measure, current, proposed_value, spread_values, note) in enumerate(rows):
        out.append(
            _preview_row(
                code,
                measure,
                current,
                proposed_value,
                spread_values,
                n,
                int(now_codes[:, column].sum()),
                int(new_codes[:, column].sum()),
                note,
            )
        )
    out.append(
        _preview_row(
            "any",
            "low quality",
            None,
            None,
            [None] * len(PERCENTILES),
            n,
            int(now_codes.any(axis=1).sum()),
            int(new_codes.any(axis=1).sum()),
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
    row.update({f"p{p}": v for p, v in zip(PERCENTILES, spread, strict=True)})
    row.update(
        {
            "flagged_now": now,
            "flagged_proposed": new,
            "flagged_proposed_pct": 100.0 * new / n if n else 0.0,
            "note": note,
        }
    )
    return row
