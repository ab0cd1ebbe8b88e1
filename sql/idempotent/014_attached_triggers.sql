-- The triggers of attached tables (embedding_gate.attach() creates them on the table), but
-- the check itself (embedding_gate._check_attached(): 014_check_attached.sql in PL/Python,
-- sql/engine_sql/014_check_attached.sql in the SQL engine): forgetting deleted rows, moving
-- quarantined rows out as the writer, and telling the gate's own triggers from others.

-- Forgets the verdicts of the rows a DELETE or TRUNCATE removed from an attached table,
-- and keeps its count of embedded rows.
-- (As the gate: it reads the transition table, or the truncated partition, only while the
-- id column's type is trusted, and evaluates no policy.)
CREATE OR REPLACE FUNCTION embedding_gate._forget_rows() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    a embedding_gate.attached_tables;
    delta bigint;
    problem text;
    id_column name;
    embedding_column name;
BEGIN
    IF NOT embedding_gate._gate_trigger(TG_RELID, TG_NAME, TG_LEVEL, TG_WHEN, TG_OP) THEN
        RAISE EXCEPTION 'embedding_gate._forget_rows() runs only as the gate''s own trigger, '
                        'created by embedding_gate.attach()'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- the table, or (on a partition) the partitioned table above it that is attached
    -- (ancestors lists nothing for a table outside any partition tree)
    SELECT * INTO a FROM embedding_gate.attached_tables AS t
    WHERE t.table_oid = TG_RELID
       OR t.table_oid IN (SELECT p.relid FROM pg_partition_ancestors(TG_RELID) AS p);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    problem := embedding_gate._refusal(a.table_oid, a.id_attnum, a.embedding_attnum,
                                       a.content_attnum, a.model_attnum);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'the embedding gate will not read %: %',
            embedding_gate._qualified(a.table_oid), problem
            USING ERRCODE = 'datatype_mismatch',
                  HINT = format('change the column back, or detach the table: '
                                'SELECT embedding_gate.detach(%L)',
                                embedding_gate._qualified(a.table_oid));
    END IF;
    -- (a column dropped behind the gate's back: say so, rather than fail on its name)
    id_column := embedding_gate._column(a.table_oid, a.id_attnum);
    embedding_column := embedding_gate._column(a.table_oid, a.embedding_attnum);
    IF (id_column IS NULL OR embedding_column IS NULL)
       AND NOT (TG_OP = 'TRUNCATE' AND a.table_oid = TG_RELID) THEN
        RAISE EXCEPTION 'the % column attached on % was dropped',
            CASE WHEN id_column IS NULL THEN 'id' ELSE 'embedding' END,
            embedding_gate._qualified(a.table_oid)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('detach it: SELECT embedding_gate.detach(%L)',
                                embedding_gate._qualified(a.table_oid));
    END IF;
    IF TG_OP = 'TRUNCATE' AND a.table_oid = TG_RELID THEN  -- all of it
        DELETE FROM embedding_gate.verdicts AS v WHERE v.table_oid = a.table_oid;
        SELECT -COALESCE(sum(r.delta), 0) INTO delta FROM embedding_gate._row_counts AS r
        WHERE r.relation = a.row_key::text;
    ELSIF TG_OP = 'TRUNCATE' THEN  -- one partition, before its rows go
        EXECUTE format('DELETE FROM embedding_gate.verdicts AS v USING %s AS o'
                       ' WHERE v.table_oid = $1 AND v.row_id = o.%I::text',
                       TG_RELID::regclass, id_column)
            USING a.table_oid;
        EXECUTE format('SELECT -count(*) FROM %s AS o WHERE o.%I IS NOT NULL',
                       TG_RELID::regclass, embedding_column)
            INTO delta;
    ELSE
        -- (the ids as one array: the verdicts' primary key is probed for them, and under
        -- SERIALIZABLE the statement reads those index pages, not every verdict)
        EXECUTE format('DELETE FROM embedding_gate.verdicts AS v WHERE v.table_oid = $1'
                       ' AND v.row_id = ANY (ARRAY(SELECT o.%I::text FROM gate_old AS o))',
                       id_column)
            USING a.table_oid;
        EXECUTE format('SELECT -count(*) FROM gate_old AS o WHERE o.%I IS NOT NULL',
                       embedding_column)
            INTO delta;
    END IF;
    PERFORM embedding_gate._add_rows(a.row_key::text, delta);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._forget_rows() IS
    'Trigger of attached tables and their partitions: drops the verdicts of deleted or '
    'truncated rows and keeps the table''s count of embedded rows.';
GRANT EXECUTE ON FUNCTION embedding_gate._forget_rows() TO PUBLIC;

-- Quarantine mode on an attached table: the insert or update trigger records, as the gate,
-- why each flagged row goes (embedding_gate.quarantine, `row` still NULL, moving_xid this
-- transaction); this trigger, fired next, moves those rows out of the table as the writer
-- (SECURITY INVOKER): the DELETE, the table's own DELETE triggers and policies and the
-- to_jsonb() of its columns run with the writer's rights, never the gate's.
CREATE OR REPLACE FUNCTION embedding_gate._move_quarantined() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    pending text[];
    moved_ids text[];
    moved_rows jsonb[];
BEGIN
    -- nothing flagged for the quarantine in this transaction: nothing to ask
    IF COALESCE(pg_catalog.current_setting('embedding_gate.moving', true), '') = '' THEN
        RETURN NULL;
    END IF;
    SELECT t.table_oid, embedding_gate._qualified(t.table_oid) AS name,
           embedding_gate._column(t.table_oid, t.id_attnum) AS id_column,
           pg_catalog.format_type(i.atttypid, i.atttypmod) AS id_type
      INTO a
      FROM embedding_gate.attached_tables AS t
      JOIN pg_catalog.pg_attribute AS i ON i.attrelid = t.table_oid AND i.attnum = t.id_attnum
     WHERE t.table_oid = TG_RELID
        OR t.table_oid IN (SELECT p.relid FROM pg_catalog.pg_partition_ancestors(TG_RELID) AS p);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    pending := embedding_gate._pending_moves(a.table_oid);
    IF cardinality(pending) = 0 THEN
        RETURN NULL;
    END IF;
    BEGIN
        EXECUTE format('WITH moved AS (DELETE FROM %s AS t WHERE t.%I = ANY ($1::%s[])'
                       ' RETURNING t.%I::text AS row_id, pg_catalog.to_jsonb(t.*) AS row)'
                       ' SELECT pg_catalog.array_agg(m.row_id), pg_catalog.array_agg(m.row)'
                       ' FROM moved AS m', a.name, a.id_column, a.id_type, a.id_column)
            USING pending INTO moved_ids, moved_rows;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'quarantine mode on % moves its flagged rows out of it as the writer, '
                        'and % may not delete them: %', a.name, current_user, SQLERRM
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT, DELETE ON %s TO %I, or give the table another '
                                'mode: SELECT embedding_gate.set_table_settings(%L, '
                                '''{"mode": "flag"}'')', a.name, current_user, a.name);
    END;
    IF COALESCE(cardinality(moved_ids), 0) < cardinality(pending) THEN
        RAISE EXCEPTION 'quarantine mode on %: % of % flagged rows could not be moved out of it '
                        'by %', a.name, cardinality(pending) - COALESCE(cardinality(moved_ids), 0),
                        cardinality(pending), current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'a row-level security policy hides them from the writer''s DELETE: '
                         'let its DELETE policy see the rows it writes, or give the table '
                         'another mode with embedding_gate.set_table_settings()';
    END IF;
    PERFORM embedding_gate._quarantined(a.table_oid, moved_ids, moved_rows);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._move_quarantined() IS
    'Trigger of attached tables: in quarantine mode, moves the rows the gate flagged for the '
    'quarantine out of the table, as the writer (SECURITY INVOKER), into '
    'embedding_gate.quarantine.';
GRANT EXECUTE ON FUNCTION embedding_gate._move_quarantined() TO PUBLIC;

-- The rows of a table the gate flagged for the quarantine in this transaction, not moved yet.
CREATE OR REPLACE FUNCTION embedding_gate._pending_moves(table_name regclass) RETURNS text[]
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE(pg_catalog.array_agg(q.row_id ORDER BY q.row_id), '{}')
FROM embedding_gate.quarantine AS q
WHERE q.table_oid = _pending_moves.table_name AND q.row IS NULL
  AND q.moving_xid = pg_catalog.pg_current_xact_id()
$$;
COMMENT ON FUNCTION embedding_gate._pending_moves(regclass) IS
    'The row ids the gate flagged for the quarantine in the calling transaction, not yet moved '
    '(only the calling transaction''s own).';
GRANT EXECUTE ON FUNCTION embedding_gate._pending_moves(regclass) TO PUBLIC;

-- Keeps the moved rows in the quarantine: only rows this transaction's check flagged for it.
CREATE OR REPLACE FUNCTION embedding_gate._quarantined(
    table_name regclass, row_ids text[], rows jsonb[])
RETURNS integer
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH kept AS (
    UPDATE embedding_gate.quarantine AS q SET row = m.row, moving_xid = NULL
    FROM unnest(_quarantined.row_ids, _quarantined.rows) AS m(row_id, row)
    WHERE q.table_oid = _quarantined.table_name AND q.row_id = m.row_id AND q.row IS NULL
      AND q.moving_xid = pg_catalog.pg_current_xact_id()
    RETURNING 1)
SELECT pg_catalog.count(*)::integer FROM kept
$$;
COMMENT ON FUNCTION embedding_gate._quarantined(regclass, text[], jsonb[]) IS
    'Keeps the rows _move_quarantined() took out of their table, whole, in '
    'embedding_gate.quarantine: only rows the gate flagged for it in the calling transaction.';
GRANT EXECUTE ON FUNCTION embedding_gate._quarantined(regclass, text[], jsonb[]) TO PUBLIC;

-- Whether the trigger that fired is one of the gate's own, as attach() creates them: the
-- trigger functions below are PUBLIC's to use in CREATE TRIGGER (attach() runs as the
-- table's owner), and their statements name the transition tables gate_new and gate_old,
-- which a trigger without those REFERENCING names would leave to be found in pg_temp
-- (a view of the caller's, run as the gate). They refuse to run from any other trigger.
CREATE OR REPLACE FUNCTION embedding_gate._gate_trigger(
    relid oid, trigger_name name, level text, timing text, event text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
-- (PL/pgSQL, as the helpers in 026_attach.sql: its plan is kept for the session)
BEGIN
    RETURN (
    SELECT level = 'STATEMENT' AND EXISTS (
        SELECT FROM pg_catalog.pg_trigger AS g
        WHERE g.tgrelid = _gate_trigger.relid AND g.tgname = _gate_trigger.trigger_name
          AND CASE _gate_trigger.event
                  WHEN 'INSERT' THEN timing = 'AFTER'
                      AND g.tgfoid = 'embedding_gate._check_attached()'::pg_catalog.regprocedure
                      AND g.tgnewtable = 'gate_new'
                  WHEN 'UPDATE' THEN timing = 'AFTER'
                      AND g.tgfoid = 'embedding_gate._check_attached()'::pg_catalog.regprocedure
                      AND g.tgnewtable = 'gate_new' AND g.tgoldtable = 'gate_old'
                  WHEN 'DELETE' THEN timing = 'AFTER'
                      AND g.tgfoid = 'embedding_gate._forget_rows()'::pg_catalog.regprocedure
                      AND g.tgoldtable = 'gate_old'
                  WHEN 'TRUNCATE' THEN
                      g.tgfoid = 'embedding_gate._forget_rows()'::pg_catalog.regprocedure
                  ELSE false END));
END
$$;
COMMENT ON FUNCTION embedding_gate._gate_trigger(oid, name, text, text, text) IS
    'Whether the firing trigger is one of the gate''s own (its function, statement level, '
    'its transition tables named gate_new and gate_old): the gate''s trigger functions run '
    'from no other.';
