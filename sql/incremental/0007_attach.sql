-- 0007 guard tables the gate did not create: embedding_gate.attach(table, ...) puts the
-- gate's triggers on a table that a framework (LangChain, LlamaIndex, Haystack, pgai) or
-- anyone else writes, without adding, dropping or changing any of its columns. The verdicts
-- live beside the table, keyed by (table, row id); the functions and triggers are in
-- sql/idempotent/.

-- What it keeps survives pg_dump and pg_restore: the table as regclass (dumped by name, and
-- tables are restored before any data), its columns by name (a restore renumbers the
-- columns of a table that once had one dropped), the hash index by name (indexes are made
-- after the data), and its counts keyed by row_key, a value of its own (not an oid).
CREATE TABLE embedding_gate._attached (
    table_oid         regclass PRIMARY KEY,
    -- the key of the table's counts in embedding_gate._row_counts
    row_key           bigint GENERATED ALWAYS AS IDENTITY
                      CONSTRAINT _attached_row_key_key UNIQUE,
    -- each column by name, and by number as well: a column renamed later (where no event
    -- trigger follows it) is still found by its number
    id_column         name NOT NULL,
    id_number         smallint NOT NULL,
    embedding_column  name NOT NULL,
    embedding_number  smallint NOT NULL,
    embedding_type    text NOT NULL
                      CONSTRAINT attached_tables_embedding_type_check
                      CHECK (embedding_type IN ('vector', 'halfvec')),
    -- NULL: an unconstrained vector column (rows of several dimensions)
    dimension         integer,
    content_column    name,
    content_number    smallint,
    model             text,
    model_column      name,
    model_number      smallint,
    -- mode and thresholds of this table where they differ from embedding_gate.settings
    overrides         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- its name (an index lives in its table's schema)
    hash_index        text,
    attached_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attached_by       name NOT NULL,
    CONSTRAINT attached_tables_one_model CHECK (model IS NULL OR model_column IS NULL)
);
COMMENT ON TABLE embedding_gate._attached IS
    'The tables the gate guards: chunks, and those attached with embedding_gate.attach(): '
    'which columns hold the row id, the embedding, the content and the model, and the '
    'table''s own overrides of embedding_gate.settings. Read it through the view '
    'embedding_gate.attached_tables (the columns'' numbers as they are now), or '
    'embedding_gate.attached.';
COMMENT ON COLUMN embedding_gate._attached.overrides IS
    'The table''s mode and thresholds where they differ from embedding_gate.settings, e.g. '
    '{"mode": "quarantine"}; set by the table''s owner with embedding_gate.set_table_settings().';
COMMENT ON COLUMN embedding_gate._attached.hash_index IS
    'The index attach() created on the hash of the embedding (duplicate_vector), by name; '
    'detach() drops it.';

-- The registry with each column's number as it is now: the column of that name, or (a
-- rename no event trigger followed) the column of the number recorded.
CREATE VIEW embedding_gate.attached_tables WITH (security_invoker = true) AS
SELECT a.table_oid,
       COALESCE((SELECT c.attnum FROM pg_catalog.pg_attribute AS c
                 WHERE c.attrelid = a.table_oid AND c.attname = a.id_column
                   AND c.attnum > 0 AND NOT c.attisdropped), a.id_number) AS id_attnum,
       COALESCE((SELECT c.attnum FROM pg_catalog.pg_attribute AS c
                 WHERE c.attrelid = a.table_oid AND c.attname = a.embedding_column
                   AND c.attnum > 0 AND NOT c.attisdropped), a.embedding_number)
           AS embedding_attnum,
       a.embedding_type,
       a.dimension,
       CASE WHEN a.content_column IS NOT NULL THEN
           COALESCE((SELECT c.attnum FROM pg_catalog.pg_attribute AS c
                     WHERE c.attrelid = a.table_oid AND c.attname = a.content_column
                       AND c.attnum > 0 AND NOT c.attisdropped), a.content_number) END
           AS content_attnum,
       a.model,
       CASE WHEN a.model_column IS NOT NULL THEN
           COALESCE((SELECT c.attnum FROM pg_catalog.pg_attribute AS c
                     WHERE c.attrelid = a.table_oid AND c.attname = a.model_column
                       AND c.attnum > 0 AND NOT c.attisdropped), a.model_number) END
           AS model_attnum,
       a.overrides,
       a.hash_index,
       a.attached_at,
       a.attached_by,
       a.row_key
FROM embedding_gate._attached AS a;
COMMENT ON VIEW embedding_gate.attached_tables IS
    'The gate''s registry (embedding_gate._attached) with the numbers of the attached '
    'columns as they are now (a restore renumbers columns; a rename keeps the number).';

-- One row per flagged row of an attached table; a clean row has none.
CREATE TABLE embedding_gate.verdicts (
    table_oid         regclass NOT NULL
                      REFERENCES embedding_gate._attached ON DELETE CASCADE,
    row_id            text NOT NULL,
    issues            text[] NOT NULL,
    reason            text NOT NULL,
    norm              double precision,
    variance          double precision,
    near_zero_ratio   double precision,
    blank_similarity  double precision,
    duplicate_of      text,
    embedding_model   text,
    content_length    integer,
    content_preview   text,
    checked_at        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_oid, row_id)
);
COMMENT ON TABLE embedding_gate.verdicts IS
    'The flagged rows of attached tables, keyed by table and row id (the id column''s value '
    'as text), with what the checks measured; written by the gate''s triggers alone.';

-- The rows quarantine mode took out of attached tables, whole, as jsonb.
CREATE TABLE embedding_gate.quarantine (
    table_oid         regclass NOT NULL
                      REFERENCES embedding_gate._attached ON DELETE CASCADE,
    row_id            text NOT NULL,
    -- NULL only inside the writing transaction: the gate records why, then the writer's
    -- own statement trigger moves the row here (_move_quarantined), as the writer
    row               jsonb,
    moving_xid        xid8,
    issues            text[] NOT NULL,
    reason            text NOT NULL,
    norm              double precision,
    variance          double precision,
    near_zero_ratio   double precision,
    blank_similarity  double precision,
    duplicate_of      text,
    embedding_model   text,
    content_length    integer,
    content_preview   text,
    quarantined_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (table_oid, row_id)
);
COMMENT ON TABLE embedding_gate.quarantine IS
    'Rows the gate took out of attached tables in quarantine mode: the whole row as jsonb '
    '(to_jsonb), and why. embedding_gate.restore(table, row_id) puts one back, checked again.';

-- chunks, the gate's own table, is a row of the registry like any attached table: listed in
-- embedding_gate.attached, with overrides of its own. Its triggers, quality columns and
-- quarantine stay its own (sql/idempotent/010-013).
INSERT INTO embedding_gate._attached
    (table_oid, id_column, id_number, embedding_column, embedding_number, embedding_type,
     dimension, content_column, content_number, model_column, model_number, hash_index,
     attached_by)
SELECT 'public.chunks'::regclass,
       'chunk_id', (SELECT attnum FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'public.chunks'::regclass AND attname = 'chunk_id'),
       'embedding', e.attnum, 'vector', e.atttypmod,
       'content', (SELECT attnum FROM pg_catalog.pg_attribute
                   WHERE attrelid = 'public.chunks'::regclass AND attname = 'content'),
       'embedding_model', (SELECT attnum FROM pg_catalog.pg_attribute
                           WHERE attrelid = 'public.chunks'::regclass
                             AND attname = 'embedding_model'),
       'chunks_embedding_hash_idx', current_user
FROM pg_catalog.pg_attribute AS e
WHERE e.attrelid = 'public.chunks'::regclass AND e.attname = 'embedding';

-- the row counts of attached tables (their rows with an embedding), for the summary
ALTER TABLE embedding_gate._row_counts DROP CONSTRAINT _row_counts_relation_check;
ALTER TABLE embedding_gate._row_counts ADD CONSTRAINT _row_counts_relation_check
    CHECK (relation IN ('chunks', 'documents') OR relation ~ '^[0-9]+$');
COMMENT ON COLUMN embedding_gate._row_counts.relation IS
    'chunks, documents, or the row_key of an attached table in embedding_gate._attached '
    '(whose count is of its rows with an embedding).';

REVOKE ALL ON embedding_gate._attached, embedding_gate.verdicts, embedding_gate.quarantine
    FROM PUBLIC;
-- which tables are guarded, and how, is no secret (the view embedding_gate.attached);
-- attach() and detach() read it as the table's owner, whoever that is
GRANT SELECT ON embedding_gate._attached, embedding_gate.attached_tables TO PUBLIC;
-- the reports run as their reader (what each shows is what that reader could read of the
-- tables): every role reads the configuration they check with, none of it data
GRANT SELECT ON embedding_gate.settings, embedding_gate.blank_references,
    embedding_gate.model_calibrations TO PUBLIC;

-- Who may change what of the gate's stores is PostgreSQL's to check, on the role that
-- really calls (attach, detach, set_table_settings and restore run as their caller, never
-- as the gate: a SECURITY DEFINER function could only ask for SET ROLE's or the session's
-- user, which code running for another role, say an index expression during ANALYZE,
-- would pass): a table's registry row, count, and quarantined rows are its owner's.
ALTER TABLE embedding_gate._attached ENABLE ROW LEVEL SECURITY;
CREATE POLICY attached_tables_read ON embedding_gate._attached FOR SELECT USING (true);
CREATE POLICY attached_tables_owner ON embedding_gate._attached FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = table_oid), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                        WHERE c.oid = table_oid), 'USAGE'));
-- (through the view, whose security_invoker makes these policies the caller's)
GRANT INSERT, DELETE ON embedding_gate._attached, embedding_gate.attached_tables TO PUBLIC;
GRANT UPDATE (overrides) ON embedding_gate._attached, embedding_gate.attached_tables TO PUBLIC;
ALTER TABLE embedding_gate.quarantine ENABLE ROW LEVEL SECURITY;
CREATE POLICY quarantine_owner ON embedding_gate.quarantine FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = table_oid), 'USAGE'));
GRANT SELECT, DELETE ON embedding_gate.quarantine TO PUBLIC;
ALTER TABLE embedding_gate._row_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY _row_counts_owner ON embedding_gate._row_counts FOR ALL
    USING (CASE WHEN relation ~ '^[0-9]+$'
                THEN pg_catalog.pg_has_role((SELECT c.relowner FROM embedding_gate._attached AS a
                                             JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid
                                             WHERE a.row_key = relation::bigint), 'USAGE')
                ELSE false END)
    WITH CHECK (CASE WHEN relation ~ '^[0-9]+$'
                     THEN pg_catalog.pg_has_role((SELECT c.relowner
                                                  FROM embedding_gate._attached AS a
                                                  JOIN pg_catalog.pg_class AS c
                                                    ON c.oid = a.table_oid
                                                  WHERE a.row_key = relation::bigint), 'USAGE')
                     ELSE false END);
GRANT SELECT, INSERT, DELETE ON embedding_gate._row_counts TO PUBLIC;

-- a table's owner calls embedding_gate.attach() and its index names
-- embedding_gate.vector_hash(): every role may look into the schema (what is inside keeps
-- its own rights: the tables above are the gate's alone)
GRANT USAGE ON SCHEMA embedding_gate TO PUBLIC;

-- embedding_measures() gains table_name and row_id (a new return type: the old function
-- goes, and sql/idempotent/ creates the new one). IF EXISTS: on a new database the
-- revisions run before any function exists.
DROP FUNCTION IF EXISTS public.embedding_measures(double precision);
DELETE FROM embedding_gate._sources WHERE name = '022_embedding_measures.sql';

-- embedding_quality_summary gains `tables` (a new return type for its function: both go,
-- and sql/idempotent/ creates them again)
DROP VIEW IF EXISTS public.embedding_quality_summary;
DROP FUNCTION IF EXISTS embedding_gate._quality_summary();
DELETE FROM embedding_gate._sources WHERE name = '032_embedding_quality_summary.sql';

-- A data-only load (pg_restore --data-only, pg_dump --data-only | psql) into a deployed gate
-- brings rows of another deployment's tables: the gate's own triggers merge them
-- (sql/idempotent/028_data_restore.sql) and record when here, until
-- CALL embedding_gate.repair() has made the counts and the attached tables'
-- triggers current again (embedding_gate.attached says so meanwhile).
ALTER TABLE embedding_gate._deployment ADD COLUMN data_loaded_at timestamptz;
COMMENT ON COLUMN embedding_gate._deployment.data_loaded_at IS
    'When a data-only load last brought rows of a dump into this deployment, until CALL '
    'embedding_gate.repair() makes its counts and triggers current; NULL then.';
