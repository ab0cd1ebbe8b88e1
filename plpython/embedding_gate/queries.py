"""Every SQL statement the package runs, as constants, and the session's prepared plans.

Values always travel as typed parameters ($1, $2, ...); no statement is built from data.
Every name is schema-qualified: the functions run with search_path = pg_catalog, pg_temp.
"""

# --- settings ----------------------------------------------------------------------------

SETTINGS = (
    "SELECT mode, min_norm, min_variance, near_zero_epsilon, max_near_zero_ratio,"
    " blank_similarity, max_silent_deviation FROM embedding_gate.settings"
)
# a per-transaction override: SET LOCAL embedding_gate.<name> = ...
OVERRIDE = "SELECT pg_catalog.current_setting('embedding_gate.' || $1, true) AS v"
CALLER_MAY_TUNE = "SELECT embedding_gate._caller_may_tune() AS ok"
# a table's own overrides of the settings (chunks' too: it is a row of the registry)
OVERRIDES = (
    "SELECT a.overrides::text AS overrides FROM embedding_gate.attached_tables AS a"
    " WHERE a.table_oid = $1::regclass"
)
# the references of models that also have a calibration (blank_like needs both): the
# blank reference (or NULL) and the others as parallel arrays of kinds and vectors
REFERENCES = (
    "SELECT c.model, b.reference, c.mean, c.spread, c.sample_size,"
    " ARRAY(SELECT r.kind FROM embedding_gate.degenerate_references AS r"
    "  WHERE r.model = c.model ORDER BY r.text) AS kinds,"
    " ARRAY(SELECT pg_catalog.array_to_json(r.reference)::text"
    "  FROM embedding_gate.degenerate_references AS r"
    "  WHERE r.model = c.model ORDER BY r.text) AS others"
    " FROM embedding_gate.model_calibrations AS c"
    " LEFT JOIN embedding_gate.blank_references AS b ON b.model = c.model"
    " WHERE c.model = ANY ($1)"
)
# a statement's count and sum of a model's vectors, for its calibration
# (sql/idempotent/016_calibration_deltas.sql); true when this recorded its first one
ADD_CALIBRATION = (
    "SELECT embedding_gate._add_calibration($1, $2, $3, $4::real[]::public.vector,"
    " $5::real[]::public.vector, $6) AS first"
)
ADD_CALIBRATION_TYPES = ["text", "integer", "bigint", "float8[]", "float8[]", "integer"]
# whether the statement's table feeds calibrations: its owner may tune the gate
CHUNKS_FEED = (
    "SELECT COALESCE(pg_catalog.has_table_privilege(c.relowner, 'embedding_gate.settings',"
    " 'UPDATE'), false) AS ok FROM pg_catalog.pg_class AS c WHERE c.oid = 'public.chunks'::regclass"
)
# each model's mean over its stored rows as its calibration, where due (sql/idempotent/
# 017_chunk_scans.sql, which the SQL engine's recheck calls too)
CALIBRATE = "SELECT embedding_gate._calibrate_from_stored($1)"
EMBEDDING_DIM = "SELECT embedding_gate.embedding_dim() AS d"

# --- the insert trigger --------------------------------------------------------------------

# duplicate_vector, for the row `i`: the earliest chunk (created_at, chunk_id) with the
# identical embedding, when its content differs from i's (the same text stored twice is not
# a duplicate). One descent of chunks_embedding_hash_idx (embedding_hash, created_at,
# chunk_id): the row itself and later rows are ruled out inside the index, and only a chunk
# with the same 64-bit hash is read to compare the bytes.
DUPLICATE_OF = (
    "(SELECT o.chunk_id FROM (SELECT c.chunk_id, c.content FROM public.chunks AS c"
    " WHERE c.embedding_hash = i.embedding_hash"
    " AND (c.created_at, c.chunk_id) < (i.created_at, i.chunk_id)"
    " AND embedding_gate.vector_bytes(c.embedding) = embedding_gate.vector_bytes(i.embedding)"
    " ORDER BY c.created_at, c.chunk_id LIMIT 1) AS o"
    " WHERE o.content IS DISTINCT FROM i.content)"
)
# every row of the statement's transition table `inserted` (not preparable: it exists only
# for one trigger call); rows without an embedding only count
INSERTED = (
    "SELECT i.chunk_id, embedding_gate.vector_bytes(i.embedding) AS v, i.embedding_raw AS raw,"
    " i.quality_issues IS NOT NULL AS had_issues, i.embedding_model AS model,"
    " CASE WHEN i.embedding IS NOT NULL THEN " + DUPLICATE_OF + " END AS duplicate_of"
    " FROM inserted AS i"
)
# the rows of model $1 stored by earlier statements, at most $2 of them: judged once when
# the model's first calibration is recorded (they were stored without blank_like)
EARLIER = (
    "SELECT i.chunk_id, embedding_gate.vector_bytes(i.embedding) AS v,"
    " i.quality_issues IS NOT NULL AS had_issues, i.embedding_model AS model,"
    " " + DUPLICATE_OF + " AS duplicate_of"
    " FROM public.chunks AS i WHERE i.embedding_model = $1 AND i.embedding IS NOT NULL"
    " AND i.created_at < pg_catalog.statement_timestamp()"
    " ORDER BY i.created_at DESC LIMIT $2"
)
# the statement's rows, added to the summary's total of chunks (sql/idempotent/013)
ADD_CHUNKS = "SELECT embedding_gate._add_rows('chunks', $1)"
# the verdicts of flagged rows, passed as parallel arrays ($1..$8, see VERDICT_TYPES)
# (multi-argument unnest is syntax of FROM, not a function of pg_catalog)
_VERDICTS = (
    "unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],"
    " $6::float8[], $7::float8[], $8::text[])"
    " AS i(chunk_id, issues, reason, norm, variance, ratio, similarity, duplicate_of)"
)
VERDICT_TYPES = ["text[]"] * 3 + ["float8[]"] * 4 + ["text[]"]
FLAG = (
    "UPDATE public.chunks AS c SET quality_issues = pg_catalog.string_to_array(i.issues, ','),"
    " quality_reason = i.reason, quality_norm = i.norm, quality_variance = i.variance,"
    " quality_near_zero_ratio = i.ratio, quality_blank_similarity = i.similarity,"
    " quality_duplicate_of = i.duplicate_of, quality_checked_at = pg_catalog.now()"
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
    " quality_duplicate_of = excluded.quality_duplicate_of, quarantined_at = pg_catalog.now()"
)
_QUARANTINE_COLUMNS = (
    "chunk_id, doc_id, chunk_index, content, drop, metadata, embedding_raw, quality_issues,"
    " quality_reason, quality_norm, quality_variance, quality_near_zero_ratio,"
    " embedding_model, quality_blank_similarity, quality_duplicate_of"
)
QUARANTINE = (
    "WITH moved AS (DELETE FROM public.chunks AS c USING pg_catalog.unnest($1::text[])"
    "  AS k(chunk_id) WHERE c.chunk_id = k.chunk_id"
    "  RETURNING c.chunk_id, c.doc_id, c.chunk_index, c.content, c.drop, c.metadata,"
    "   COALESCE(c.embedding::real[], c.embedding_raw) AS raw, c.embedding_model)"
    " INSERT INTO public.embedding_quarantine (" + _QUARANTINE_COLUMNS + ")"
    " SELECT m.chunk_id, m.doc_id, m.chunk_index, m.content, m.drop, m.metadata, m.raw,"
    "  pg_catalog.string_to_array(i.issues, ','), i.reason, i.norm, i.variance, i.ratio,"
    "  m.embedding_model, i.similarity, i.duplicate_of"
    " FROM moved AS m JOIN " + _VERDICTS + " ON m.chunk_id = i.chunk_id" + _REQUARANTINE
)
CLEAR = (
    "UPDATE public.chunks SET quality_issues = NULL, quality_reason = NULL, quality_norm = NULL,"
    " quality_variance = NULL, quality_near_zero_ratio = NULL,"
    " quality_blank_similarity = NULL, quality_duplicate_of = NULL,"
    " quality_checked_at = pg_catalog.now()"
    " WHERE chunk_id = ANY ($1::text[])"
)
# finite vectors written to embedding_raw become vectors, by pgvector's own cast
PROMOTE_RAW = (
    "UPDATE public.chunks SET embedding = embedding_raw::public.vector, embedding_raw = NULL"
    " WHERE chunk_id = ANY ($1::text[])"
)
# what a statement that stored flagged rows tells listeners (LISTEN embedding_gate)
NOTIFY = "SELECT pg_catalog.pg_notify('embedding_gate', $1)"
# why the statement must fail; the PL/pgSQL trigger embedding_gate_reject raises it
REJECT = "SELECT pg_catalog.set_config('embedding_gate.rejected', $1, true)"

# --- the update trigger --------------------------------------------------------------------

QUARANTINE_ROW = (
    "INSERT INTO public.embedding_quarantine (" + _QUARANTINE_COLUMNS + ")"
    " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
    + _REQUARANTINE
)
QUARANTINE_ROW_TYPES = (
    ["text", "text", "integer", "text", "boolean", "text", "real[]", "text[]", "text"]
    + ["float8"] * 3
    + ["text", "float8", "text"]
)
# the duplicate rule of DUPLICATE_OF for the one row an UPDATE writes, given as parameters
DUPLICATE_ROW = (
    "SELECT " + DUPLICATE_OF + " AS chunk_id FROM (SELECT e.embedding,"
    " embedding_gate.vector_hash(e.embedding) AS embedding_hash,"
    " $2::text AS content, $3::timestamptz AS created_at, $4::text AS chunk_id"
    " FROM (SELECT $1::public.vector AS embedding) AS e) AS i"
)
DUPLICATE_ROW_TYPES = ["text", "text", "text", "text"]
# a finite embedding_raw written by an UPDATE, as pgvector's text (what TD holds)
RAW_AS_VECTOR = "SELECT $1::real[]::public.vector::text AS v"
NOW = "SELECT pg_catalog.now() AS now"

# --- verify, recheck, measures, preview ------------------------------------------------------

# the scans run as their caller: chunks only for a role that may read it
CHUNKS_READABLE = "SELECT pg_catalog.has_table_privilege('public.chunks', 'SELECT') AS ok"

SAMPLE = (
    "SELECT i.chunk_id, embedding_gate.vector_bytes(i.embedding) AS v, i.embedding_raw AS raw,"
    " i.embedding_model AS model,"
    " CASE WHEN i.embedding IS NOT NULL THEN " + DUPLICATE_OF + " END AS duplicate_of"
    " FROM public.chunks AS i WHERE i.chunk_id = ANY (ARRAY("
    "  SELECT chunk_id FROM public.chunks"
    "  WHERE embedding IS NOT NULL OR embedding_raw IS NOT NULL"
    "  ORDER BY pg_catalog.random() LIMIT $1))"
)
# The embedding hashes stored more than once (sql/idempotent/017_chunk_scans.sql)
TWINS = "SELECT embedding_gate._twin_hashes() AS twins"
# One batch of stored embeddings in chunk_id order (BATCH_AFTER: after chunk_id $3),
# aggregated into a few values: the vectors as one bytea (string_agg skips NULLs, so it
# lines up with the filtered arrays). Row by row, PL/Python would build a dict per row and
# read at a quarter of the speed. Two statements, not one with "$3 IS NULL OR": a generic
# plan of that could not range-scan the primary key.
_BATCH_SELECT = (
    "SELECT pg_catalog.count(*)::integer AS n, pg_catalog.max(chunk_id) AS last,"
    " pg_catalog.array_agg(chunk_id) FILTER (WHERE embedding IS NOT NULL) AS ids,"
    " pg_catalog.array_agg(quality_issues IS NOT NULL) FILTER (WHERE embedding IS NOT NULL)"
    "  AS had,"
    " pg_catalog.array_agg(embedding_model) FILTER (WHERE embedding IS NOT NULL) AS models,"
    " pg_catalog.array_agg(duplicate_of) FILTER (WHERE embedding IS NOT NULL) AS duplicates,"
    " pg_catalog.string_agg(embedding_gate.vector_bytes(embedding), ''::bytea) AS blob,"
    " pg_catalog.array_agg(chunk_id) FILTER (WHERE embedding IS NULL) AS raw_ids,"
    " pg_catalog.array_agg(x) FILTER (WHERE embedding IS NOT NULL) AS versions"
    " FROM (SELECT i.chunk_id, i.embedding, i.quality_issues, i.embedding_model, i.x,"
    "  CASE WHEN i.embedding IS NOT NULL AND (t.h IS NOT NULL OR i.quality_issues IS NOT NULL)"
    "  THEN " + DUPLICATE_OF + " END AS duplicate_of"
    "  FROM (SELECT chunk_id, embedding, quality_issues, embedding_model, content, created_at,"
    "   embedding_hash, xmin::text AS x FROM public.chunks WHERE "
)
_BATCH_REST = (
    "(embedding IS NOT NULL OR embedding_raw IS NOT NULL) ORDER BY chunk_id LIMIT $1) AS i"
    "  LEFT JOIN (SELECT DISTINCT h FROM pg_catalog.unnest($2::bigint[]) AS h) AS t"
    "  ON t.h = i.embedding_hash) AS batch"
)
BATCH_FIRST = _BATCH_SELECT + _BATCH_REST
BATCH_AFTER = _BATCH_SELECT + "chunk_id > $3 AND " + _BATCH_REST
BATCH_TYPES = ["integer", "bigint[]", "text"]
RAW_ROWS = (
    "SELECT chunk_id, embedding_raw AS raw, quality_issues IS NOT NULL AS had,"
    " embedding_model AS model, xmin::text AS x"
    " FROM public.chunks WHERE chunk_id = ANY ($1) ORDER BY chunk_id"
)

# A recheck's verdicts ($1..$8 as in FLAG, NULL issues for a row now clean), written only to
# the rows still as the recheck read them ($9: their xmin then) that no one else holds
# (sql/idempotent/017_chunk_scans.sql)
RECHECKED = "SELECT embedding_gate._write_rechecked($1, $2, $3, $4, $5, $6, $7, $8, $9)"
RECHECKED_TYPES = VERDICT_TYPES + ["text[]"]

# --- attached tables (attached.py builds the statements that name a table's columns) ---

# the registry's row of an attached table, with its name and the id column's type; for a
# partition, its attached ancestor's
ATTACHED = (
    "SELECT a.table_oid::oid AS oid, embedding_gate._qualified(a.table_oid) AS name,"
    " embedding_gate._column(a.table_oid, a.id_attnum)::text AS id_column,"
    " pg_catalog.format_type(i.atttypid, i.atttypmod) AS id_type,"
    " embedding_gate._column(a.table_oid, a.embedding_attnum)::text AS embedding_column,"
    " a.embedding_type,"
    " embedding_gate._column(a.table_oid, a.content_attnum)::text AS content_column, a.model,"
    " embedding_gate._column(a.table_oid, a.model_attnum)::text AS model_column,"
    " a.overrides::text AS overrides, a.row_key,"
    # what the gate cannot read safely (a column's type changed since attach), and whether
    # it reads every row without evaluating a row-level security policy
    " embedding_gate._refusal(a.table_oid, a.id_attnum, a.embedding_attnum,"
    "  a.content_attnum, a.model_attnum) AS problem,"
    " embedding_gate._reads_all(a.table_oid) AS readable"
    " FROM embedding_gate.attached_tables AS a"
    " JOIN pg_catalog.pg_attribute AS i ON i.attrelid = a.table_oid AND i.attnum = a.id_attnum"
    # the table itself, or the partitioned table above it that is attached (ancestors lists
    # nothing for a table outside any partition tree)
    " WHERE a.table_oid = $1 OR a.table_oid IN (SELECT p.relid"
    "  FROM pg_catalog.pg_partition_ancestors($1) AS p)"
)
# (the join leaves out a table dropped without the event trigger; chunks has its own scans)
# The scans (verify, measures, preview) run as their caller and read only the tables it
# may SELECT, whose columns the gate reads safely (a table a column of which now has a type
# of its owner's is left out, not an error for everyone), and where no policy of the
# table's owner would run as the caller, unless it calls only built-in functions.
ATTACHED_TABLES = (
    "SELECT a.table_oid::oid AS oid FROM embedding_gate.attached_tables AS a"
    " JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid"
    " WHERE a.table_oid <> 'public.chunks'::regclass"
    " AND pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE')"
    " AND pg_catalog.has_table_privilege(a.table_oid, 'SELECT')"
    " AND embedding_gate._refusal(a.table_oid, a.id_attnum, a.embedding_attnum,"
    "  a.content_attnum, a.model_attnum) IS NULL"
    " AND (embedding_gate._reads_all(a.table_oid)"
    "  OR embedding_gate._policies_trusted(a.table_oid))"
    " ORDER BY 1"
)
# no ALTER TABLE between the look at a table's column types and the read (held until the
# transaction ends; ACCESS SHARE, as any read takes)
LOCK_FOR_READING = "SELECT embedding_gate._lock_for_reading($1::regclass)"
# whether the owner of an attached table may tune the gate: only then do its stored rows
# calibrate a model (a calibration is every table's, and chunks')
OWNER_MAY_TUNE = (
    "SELECT COALESCE(pg_catalog.has_table_privilege(c.relowner, 'embedding_gate.settings',"
    " 'UPDATE'), false) AS ok FROM pg_catalog.pg_class AS c WHERE c.oid = $1"
)
# a statement's change in the count of an attached table's embedded rows (relation: oid)
ADD_ROWS = "SELECT embedding_gate._add_rows($1, $2)"
# the verdicts of flagged rows of an attached table, as parallel arrays, and the table's oid
_ATTACHED_VERDICTS = (
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[],"
    " $6::float8[], $7::float8[], $8::text[], $9::text[], $10::integer[], $11::text[])"
    " AS v(row_id, issues, reason, norm, variance, ratio, similarity, duplicate_of, model,"
    " length, preview)"
)
ATTACHED_VERDICT_TYPES = (
    ["text[]"] * 3 + ["float8[]"] * 4 + ["text[]"] * 2 + ["integer[]", "text[]", "oid"]
)
_ATTACHED_SET = (
    " issues = excluded.issues, reason = excluded.reason, norm = excluded.norm,"
    " variance = excluded.variance, near_zero_ratio = excluded.near_zero_ratio,"
    " blank_similarity = excluded.blank_similarity, duplicate_of = excluded.duplicate_of,"
    " embedding_model = excluded.embedding_model, content_length = excluded.content_length,"
    " content_preview = excluded.content_preview"
)
_ATTACHED_VALUES = (
    "pg_catalog.string_to_array(v.issues, ','), v.reason, v.norm, v.variance, v.ratio,"
    " v.similarity, v.duplicate_of, v.model, v.length, v.preview"
)
_ATTACHED_COLUMNS = (
    "issues, reason, norm, variance, near_zero_ratio, blank_similarity, duplicate_of,"
    " embedding_model, content_length, content_preview"
)
FLAG_ATTACHED = (
    "INSERT INTO embedding_gate.verdicts (table_oid, row_id, " + _ATTACHED_COLUMNS + ")"
    " SELECT $12::regclass, v.row_id, "
    + _ATTACHED_VALUES
    + _ATTACHED_VERDICTS
    # in row order: two writers of one table take the locks in one order
    + " ORDER BY v.row_id ON CONFLICT (table_oid, row_id) DO UPDATE SET"
    + _ATTACHED_SET
    + ", checked_at = pg_catalog.now()"
)
# quarantine mode: why each row goes, recorded as the gate (row NULL, moving_xid this
# transaction); the writer's own statement trigger, embedding_gate._move_quarantined(), then
# moves the rows out of their table, as the writer, and fills in `row`
QUARANTINE_ATTACHED = (
    "INSERT INTO embedding_gate.quarantine (table_oid, row_id, row, moving_xid, "
    + _ATTACHED_COLUMNS
    + ") SELECT $12::regclass, v.row_id, NULL, pg_catalog.pg_current_xact_id(), "
    + _ATTACHED_VALUES
    + _ATTACHED_VERDICTS
    + " ORDER BY v.row_id ON CONFLICT (table_oid, row_id) DO UPDATE SET row = NULL,"
    " moving_xid = excluded.moving_xid," + _ATTACHED_SET + ", quarantined_at = pg_catalog.now()"
)
# tells embedding_gate._move_quarantined() that this transaction has rows to move
MOVING = "SELECT pg_catalog.set_config('embedding_gate.moving', 'on', true)"
FORGET = "DELETE FROM embedding_gate.verdicts WHERE table_oid = $1::regclass AND row_id = ANY ($2)"
# whether the gate's owner may lock the rows of an attached table it is about to judge (a
# scan's verdicts, see attached.write_judged): SELECT ... FOR SHARE needs UPDATE on a column
MAY_LOCK = "SELECT pg_catalog.has_any_column_privilege($1::regclass, 'UPDATE') AS ok"
# whether chunks has the trigger that fails a statement in reject mode (012_reject_trigger)
CHUNKS_REJECTS = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g"
    " WHERE g.tgrelid = 'public.chunks'::pg_catalog.regclass"
    " AND g.tgname = 'embedding_gate_reject') AS ok"
)
# whether the table $1 has the trigger named $2 (the one that carries out the mode)
HAS_TRIGGER = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g"
    " WHERE g.tgrelid = $1 AND g.tgname = $2) AS ok"
)


# --- prepared plans ----------------------------------------------------------------------

# statement text and parameter types -> its prepared plan, for this session
_plans: dict = {}


def plan(plpy, sql: str, types=()):
    """The prepared plan of one of the statements above, cached for the session."""
    key = (sql, tuple(types))
    prepared = _plans.get(key)
    if prepared is None:
        prepared = _plans[key] = plpy.prepare(sql, list(types))
    return prepared


def run(plpy, sql: str, types=(), args=()):
    """Execute one of the statements above with its parameters, by its prepared plan."""
    return plpy.execute(plan(plpy, sql, types), list(args))


# of rows $2 of attached table $1, those flagged duplicate_vector now, as the caller may see
# them (a scan keeps the order the writes found, attached.find_duplicates)
STORED_DUPLICATES = (
    "SELECT d.row_id, d.duplicate_of FROM embedding_gate._stored_duplicates AS d"
    " WHERE d.table_oid = $1::regclass AND d.row_id = ANY ($2)"
)
