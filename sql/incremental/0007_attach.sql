-- 0007 guard tables the gate did not create: embedding_gate.attach(table, ...) puts the
-- gate's triggers on a table that a framework (LangChain, LlamaIndex, Haystack, pgai) or
-- anyone else writes, without adding, dropping or changing any of its columns. The verdicts
-- live beside the table, keyed by (table, row id); the functions and triggers are in
-- sql/idempotent/.

CREATE TABLE embedding_gate.attached_tables (
    table_oid         regclass PRIMARY KEY,
    -- columns by number, not name: a column renamed later stays the one attached
    id_attnum         smallint NOT NULL,
    embedding_attnum  smallint NOT NULL,
    embedding_type    text NOT NULL
                      CONSTRAINT attached_tables_embedding_type_check
                      CHECK (embedding_type IN ('vector', 'halfvec')),
    -- NULL: an unconstrained vector column (rows of several dimensions)
    dimension         integer,
    content_attnum    smallint,
    model             text,
    model_attnum      smallint,
    -- mode and thresholds of this table where they differ from embedding_gate.settings
    overrides         jsonb NOT NULL DEFAULT '{}'::jsonb,
    hash_index        regclass,
    attached_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attached_by       name NOT NULL,
    CONSTRAINT attached_tables_one_model CHECK (model IS NULL OR model_attnum IS NULL)
);
COMMENT ON TABLE embedding_gate.attached_tables IS
    'The tables the gate guards: chunks, and those attached with embedding_gate.attach(): '
    'which columns hold the row id, the embedding, the content and the model, and the '
    'table''s own overrides of embedding_gate.settings. Read it through the view '
    'embedding_gate.attached.';
COMMENT ON COLUMN embedding_gate.attached_tables.overrides IS
    'The table''s mode and thresholds where they differ from embedding_gate.settings, e.g. '
    '{"mode": "quarantine"}; set by the table''s owner with embedding_gate.set_table_settings().';
COMMENT ON COLUMN embedding_gate.attached_tables.hash_index IS
    'The index attach() created on the hash of the embedding (duplicate_vector); detach() '
    'drops it.';

-- One row per flagged row of an attached table; a clean row has none.
CREATE TABLE embedding_gate.verdicts (
    table_oid         regclass NOT NULL
                      REFERENCES embedding_gate.attached_tables ON DELETE CASCADE,
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
                      REFERENCES embedding_gate.attached_tables ON DELETE CASCADE,
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
INSERT INTO embedding_gate.attached_tables
    (table_oid, id_attnum, embedding_attnum, embedding_type, dimension, content_attnum,
     model_attnum, hash_index, attached_by)
SELECT 'public.chunks'::regclass,
       (SELECT attnum FROM pg_catalog.pg_attribute
        WHERE attrelid = 'public.chunks'::regclass AND attname = 'chunk_id'),
       e.attnum, 'vector', e.atttypmod,
       (SELECT attnum FROM pg_catalog.pg_attribute
        WHERE attrelid = 'public.chunks'::regclass AND attname = 'content'),
       (SELECT attnum FROM pg_catalog.pg_attribute
        WHERE attrelid = 'public.chunks'::regclass AND attname = 'embedding_model'),
       'public.chunks_embedding_hash_idx'::regclass, current_user
FROM pg_catalog.pg_attribute AS e
WHERE e.attrelid = 'public.chunks'::regclass AND e.attname = 'embedding';

-- the row counts of attached tables (their rows with an embedding), for the summary
ALTER TABLE embedding_gate._row_counts DROP CONSTRAINT _row_counts_relation_check;
ALTER TABLE embedding_gate._row_counts ADD CONSTRAINT _row_counts_relation_check
    CHECK (relation IN ('chunks', 'documents') OR relation ~ '^[0-9]+$');
COMMENT ON COLUMN embedding_gate._row_counts.relation IS
    'chunks, documents, or the oid of an attached table (whose count is of its rows with an '
    'embedding).';

REVOKE ALL ON embedding_gate.attached_tables, embedding_gate.verdicts, embedding_gate.quarantine
    FROM PUBLIC;
-- which tables are guarded, and how, is no secret (the view embedding_gate.attached);
-- attach() and detach() read it as the table's owner, whoever that is
GRANT SELECT ON embedding_gate.attached_tables TO PUBLIC;
-- the reports run as their reader (what each shows is what that reader could read of the
-- tables): every role reads the configuration they check with, none of it data
GRANT SELECT ON embedding_gate.settings, embedding_gate.blank_references,
    embedding_gate.model_calibrations TO PUBLIC;

-- Who may change what of the gate's stores is PostgreSQL's to check, on the role that
-- really calls (attach, detach, set_table_settings and restore run as their caller, never
-- as the gate: a SECURITY DEFINER function could only ask for SET ROLE's or the session's
-- user, which code running for another role, say an index expression during ANALYZE,
-- would pass): a table's registry row, count, and quarantined rows are its owner's.
ALTER TABLE embedding_gate.attached_tables ENABLE ROW LEVEL SECURITY;
CREATE POLICY attached_tables_read ON embedding_gate.attached_tables FOR SELECT USING (true);
CREATE POLICY attached_tables_owner ON embedding_gate.attached_tables FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = table_oid), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                        WHERE c.oid = table_oid), 'USAGE'));
GRANT INSERT, DELETE ON embedding_gate.attached_tables TO PUBLIC;
GRANT UPDATE (overrides) ON embedding_gate.attached_tables TO PUBLIC;
ALTER TABLE embedding_gate.quarantine ENABLE ROW LEVEL SECURITY;
CREATE POLICY quarantine_owner ON embedding_gate.quarantine FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                   WHERE c.oid = table_oid), 'USAGE'));
GRANT SELECT, DELETE ON embedding_gate.quarantine TO PUBLIC;
ALTER TABLE embedding_gate._row_counts ENABLE ROW LEVEL SECURITY;
CREATE POLICY _row_counts_owner ON embedding_gate._row_counts FOR ALL
    USING (CASE WHEN relation ~ '^[0-9]+$'
                THEN pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                             WHERE c.oid = relation::oid), 'USAGE')
                ELSE false END)
    WITH CHECK (CASE WHEN relation ~ '^[0-9]+$'
                     THEN pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class AS c
                                                  WHERE c.oid = relation::oid), 'USAGE')
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
