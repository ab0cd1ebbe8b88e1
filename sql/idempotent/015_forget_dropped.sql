-- The event triggers of attached tables. Only a superuser may create them: deployed by
-- another role (the SQL engine on a managed service), the gate goes without (and says so),
-- and CALL embedding_gate.repair() and SELECT embedding_gate.follow_partitions() do their
-- work when run (docs/attach.md, "With the SQL engine").
--
-- A dropped attached table leaves no registry row, verdicts or quarantined rows behind (a
-- framework may drop and recreate its table: Haystack's recreate_table, for one); without
-- the event trigger, the reports skip tables that no longer exist until repair() forgets them.
CREATE OR REPLACE FUNCTION embedding_gate._forget_tables(gone oid[]) RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    forgotten integer;
BEGIN
    DELETE FROM embedding_gate._row_counts AS r
    WHERE r.relation IN (SELECT a.row_key::text FROM embedding_gate._attached AS a
                         WHERE a.table_oid::oid = ANY (gone));
    DELETE FROM embedding_gate._attached AS a WHERE a.table_oid::oid = ANY (gone);
    GET DIAGNOSTICS forgotten = ROW_COUNT;
    RETURN forgotten;
END
$$;
COMMENT ON FUNCTION embedding_gate._forget_tables(oid[]) IS
    'Forgets the attached tables of these oids (dropped): their registry rows, and with them '
    'their verdicts, quarantined rows and counts. Returns how many were attached.';
REVOKE EXECUTE ON FUNCTION embedding_gate._forget_tables(oid[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION embedding_gate._forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    gone oid[] := ARRAY(SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
                        WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND d.objsubid = 0);
BEGIN
    IF cardinality(gone) > 0 THEN
        PERFORM embedding_gate._forget_tables(gone);
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate._forget_dropped() IS
    'Event trigger: forgets the attached tables a DROP removed, with their verdicts, '
    'quarantined rows and counts.';

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        DROP EVENT TRIGGER IF EXISTS embedding_gate_forget_dropped;
        CREATE EVENT TRIGGER embedding_gate_forget_dropped ON sql_drop
            EXECUTE FUNCTION embedding_gate._forget_dropped();
        COMMENT ON EVENT TRIGGER embedding_gate_forget_dropped IS
            'Forgets the attached tables a DROP removes.';
    ELSE
        RAISE NOTICE 'embedding gate: % is not a superuser, so a dropped attached table stays in '
                     'embedding_gate.attached_tables until CALL embedding_gate.repair()',
                     current_user;
    END IF;
END
$$;

-- A partition created (or attached) later under an attached partitioned table gets the
-- gate's triggers too, so that a write straight into it is checked; a partition detached
-- from one loses them. Also an event trigger, a superuser's only.
-- True when the table is attached or under an attached table (its triggers belong there).
CREATE OR REPLACE FUNCTION embedding_gate._guarded(relid oid) RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (
        SELECT FROM embedding_gate.attached_tables AS a
        WHERE a.table_oid = _guarded.relid
           OR a.table_oid IN (SELECT p.relid
                              FROM pg_catalog.pg_partition_ancestors(_guarded.relid) AS p));
END
$$;
COMMENT ON FUNCTION embedding_gate._guarded(oid) IS
    'True when the table is attached to the gate or is a partition under an attached table.';
GRANT EXECUTE ON FUNCTION embedding_gate._guarded(oid) TO PUBLIC;

CREATE OR REPLACE FUNCTION embedding_gate._follow_partitions() RETURNS event_trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT a.table_oid FROM embedding_gate.attached_tables AS a
             JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid WHERE c.relkind = 'p' LOOP
        -- one table's trouble (its owner dropped or renamed a trigger of the gate's, say)
        -- must not fail every CREATE and ALTER TABLE in the database
        BEGIN
            PERFORM embedding_gate._add_triggers(t);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'embedding gate: could not give the partitions of % its triggers: %',
                t, SQLERRM;
        END;
    END LOOP;
    -- an attached column renamed: the registry follows it by its number; and each number
    -- kept current (a restore renumbers the columns of a table that once had one dropped)
    BEGIN
    UPDATE embedding_gate._attached AS a
       SET id_column = COALESCE(x.id_column, a.id_column), id_number = x.id_number,
           embedding_column = COALESCE(x.embedding_column, a.embedding_column),
           embedding_number = x.embedding_number,
           content_column = CASE WHEN a.content_column IS NOT NULL
                                 THEN COALESCE(x.content_column, a.content_column) END,
           content_number = x.content_number,
           model_column = CASE WHEN a.model_column IS NOT NULL
                               THEN COALESCE(x.model_column, a.model_column) END,
           model_number = x.model_number
      FROM (SELECT v.table_oid,
                   embedding_gate._column(v.table_oid, v.id_attnum) AS id_column,
                   v.id_attnum AS id_number,
                   embedding_gate._column(v.table_oid, v.embedding_attnum) AS embedding_column,
                   v.embedding_attnum AS embedding_number,
                   embedding_gate._column(v.table_oid, v.content_attnum) AS content_column,
                   v.content_attnum AS content_number,
                   embedding_gate._column(v.table_oid, v.model_attnum) AS model_column,
                   v.model_attnum AS model_number
            FROM embedding_gate.attached_tables AS v) AS x
     WHERE x.table_oid = a.table_oid
       AND (x.id_column, x.embedding_column, x.content_column, x.model_column,
            x.id_number, x.embedding_number, x.content_number, x.model_number)
           IS DISTINCT FROM (a.id_column, a.embedding_column, a.content_column, a.model_column,
                             a.id_number, a.embedding_number, a.content_number, a.model_number)
       AND x.id_column IS NOT NULL AND x.embedding_column IS NOT NULL;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'embedding gate: could not follow the attached columns: %', SQLERRM;
    END;
    FOR t IN SELECT g.tgrelid FROM pg_catalog.pg_trigger AS g
             WHERE g.tgname = 'embedding_gate_check_insert'
               AND NOT embedding_gate._guarded(g.tgrelid) LOOP
        PERFORM embedding_gate._drop_triggers(t);
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate._follow_partitions() IS
    'Event trigger: gives the partitions of attached tables the gate''s triggers, and takes '
    'them from tables no longer under an attached table.';

DO $$
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        DROP EVENT TRIGGER IF EXISTS embedding_gate_follow_partitions;
        CREATE EVENT TRIGGER embedding_gate_follow_partitions ON ddl_command_end
            WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
            EXECUTE FUNCTION embedding_gate._follow_partitions();
        COMMENT ON EVENT TRIGGER embedding_gate_follow_partitions IS
            'Keeps the gate''s triggers on every partition of an attached table.';
    ELSE
        RAISE NOTICE 'embedding gate: % is not a superuser, so a partition created after its '
                     'table is attached is checked only through its parent until its owner '
                     'runs SELECT embedding_gate.follow_partitions()', current_user;
    END IF;
END
$$;
