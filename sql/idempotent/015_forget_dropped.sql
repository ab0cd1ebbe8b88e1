-- A dropped attached table leaves no registry row, verdicts or quarantined rows behind (a
-- framework may drop and recreate its table: Haystack's recreate_table, for one). An event
-- trigger, which only a superuser may create: deployed by another role, the gate goes
-- without it, and the reports skip tables that no longer exist.
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
        DELETE FROM embedding_gate.attached_tables AS a WHERE a.table_oid::oid = ANY (gone);
        DELETE FROM embedding_gate._row_counts AS r WHERE r.relation = ANY (gone::text[]);
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
                     'embedding_gate.attached_tables until its owner detaches it', current_user;
    END IF;
END
$$;
