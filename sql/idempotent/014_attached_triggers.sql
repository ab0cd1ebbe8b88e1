-- The triggers of attached tables (embedding_gate.attach() creates them on the table).
-- Statement-level, with transition tables, so a COPY of a million rows calls Python once
-- and reads the rows in batches: INSERT (and COPY, INSERT ... ON CONFLICT's inserts, MERGE's
-- inserts) and UPDATE (ON CONFLICT DO UPDATE, MERGE's updates) each have one.
CREATE OR REPLACE FUNCTION embedding_gate._check_attached() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
GD["{{python_key}}"].attached.check_statement(plpy, TD)
$python$;
COMMENT ON FUNCTION embedding_gate._check_attached() IS
    'Trigger of attached tables: checks the embeddings a statement inserted or changed, and '
    'flags (embedding_gate.verdicts), quarantines (embedding_gate.quarantine) or rejects '
    'the bad ones. SECURITY DEFINER so that writers need no rights on the gate''s tables.';
-- CREATE TRIGGER needs EXECUTE on the function (attach() runs as the table's owner); a
-- session cannot call a trigger function, and it acts only on attached tables
GRANT EXECUTE ON FUNCTION embedding_gate._check_attached() TO PUBLIC;

-- Forgets the verdicts of the rows a DELETE or TRUNCATE removed from an attached table,
-- and keeps its count of embedded rows.
CREATE OR REPLACE FUNCTION embedding_gate._forget_rows() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a embedding_gate.attached_tables;
    delta bigint;
BEGIN
    -- the table, or (on a partition) the partitioned table above it that is attached
    -- (ancestors lists nothing for a table outside any partition tree)
    SELECT * INTO a FROM embedding_gate.attached_tables AS t
    WHERE t.table_oid = TG_RELID
       OR t.table_oid IN (SELECT p.relid FROM pg_partition_ancestors(TG_RELID) AS p);
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'TRUNCATE' AND a.table_oid = TG_RELID THEN  -- all of it
        DELETE FROM embedding_gate.verdicts AS v WHERE v.table_oid = a.table_oid;
        SELECT -COALESCE(sum(r.delta), 0) INTO delta FROM embedding_gate._row_counts AS r
        WHERE r.relation = a.table_oid::oid::text;
    ELSIF TG_OP = 'TRUNCATE' THEN  -- one partition, before its rows go
        EXECUTE format('DELETE FROM embedding_gate.verdicts AS v USING %s AS o'
                       ' WHERE v.table_oid = $1 AND v.row_id = o.%I::text',
                       TG_RELID::regclass, embedding_gate._column(a.table_oid, a.id_attnum))
            USING a.table_oid;
        EXECUTE format('SELECT -count(*) FROM %s AS o WHERE o.%I IS NOT NULL',
                       TG_RELID::regclass, embedding_gate._column(a.table_oid, a.embedding_attnum))
            INTO delta;
    ELSE
        EXECUTE format('DELETE FROM embedding_gate.verdicts AS v USING gate_old AS o'
                       ' WHERE v.table_oid = $1 AND v.row_id = o.%I::text', embedding_gate._column(a.table_oid, a.id_attnum))
            USING a.table_oid;
        EXECUTE format('SELECT -count(*) FROM gate_old AS o WHERE o.%I IS NOT NULL',
                       embedding_gate._column(a.table_oid, a.embedding_attnum))
            INTO delta;
    END IF;
    PERFORM embedding_gate._add_rows(a.table_oid::oid::text, delta);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._forget_rows() IS
    'Trigger of attached tables and their partitions: drops the verdicts of deleted or '
    'truncated rows and keeps the table''s count of embedded rows.';
GRANT EXECUTE ON FUNCTION embedding_gate._forget_rows() TO PUBLIC;
