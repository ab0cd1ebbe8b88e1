-- A data-only load into a deployed gate: `alembic upgrade head` on a new database, the
-- application's tables created (not attached), then `pg_restore --data-only` (or
-- `pg_dump --data-only | psql`) of a guarded database. The dump holds rows of the gate's
-- own tables that the fresh deployment has already (its deployment row, the hashes of its
-- functions, its revision, its settings, chunks' row of the registry): a plain COPY of
-- them fails on their keys, and the dumped settings and registry would be lost. These
-- triggers merge them instead, on every load (ENABLE ALWAYS: also under
-- session_replication_role = replica, the way to load without firing the other triggers),
-- and record the load in embedding_gate._deployment.data_loaded_at; then
-- CALL embedding_gate.repair() makes the counts and the attached tables'
-- triggers and indexes current, and embedding_gate.attached says so until it has run.

-- Per table: what a row that arrives where the deployment has its own becomes.
CREATE OR REPLACE FUNCTION embedding_gate._merge_restored() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_TABLE_SCHEMA = 'embedding_gate' AND TG_TABLE_NAME = '_deployment' THEN
        -- the deployment's own row stays (its dimension, the extensions and roles it
        -- created, which its downgrade removes): the load is recorded on it
        UPDATE embedding_gate._deployment AS d SET data_loaded_at = pg_catalog.now();
        IF FOUND THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_SCHEMA = 'embedding_gate' AND TG_TABLE_NAME = '_sources' THEN
        -- the sync's INSERT ... ON CONFLICT comes here too: the hash that arrives is
        -- recorded (a dump's older hash only makes the next upgrade apply that file again)
        UPDATE embedding_gate._sources AS s
           SET sha256 = NEW.sha256, applied_at = NEW.applied_at
         WHERE s.name = NEW.name;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_SCHEMA = 'public' THEN
        -- the gate's revision (public.embedding_gate_alembic_version): the deployment's own
        -- stays, its history is linear (one row)
        IF EXISTS (SELECT FROM public.embedding_gate_alembic_version) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_TABLE_SCHEMA = 'embedding_gate' AND TG_TABLE_NAME = 'settings' THEN
        -- the dumped settings replace the fresh deployment's defaults
        DELETE FROM embedding_gate.settings AS s;
        IF FOUND THEN
            UPDATE embedding_gate._deployment AS d SET data_loaded_at = pg_catalog.now();
        END IF;
    ELSIF TG_TABLE_SCHEMA = 'embedding_gate' AND TG_TABLE_NAME = '_attached' THEN
        -- a table registered here already (chunks, always): the dumped row, with its
        -- overrides and when and by whom it was attached, replaces it (no verdict of it is
        -- here yet: the registry is loaded before the verdicts that reference it)
        DELETE FROM embedding_gate._attached AS a WHERE a.table_oid = NEW.table_oid;
        IF FOUND THEN
            UPDATE embedding_gate._deployment AS d SET data_loaded_at = pg_catalog.now();
        END IF;
        -- (a row_key taken here by another table: a new one; repair() counts)
        IF EXISTS (SELECT FROM embedding_gate._attached AS a WHERE a.row_key = NEW.row_key) THEN
            NEW.row_key := pg_catalog.nextval(
                pg_catalog.pg_get_serial_sequence('embedding_gate._attached', 'row_key'));
            UPDATE embedding_gate._deployment AS d SET data_loaded_at = pg_catalog.now();
        END IF;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION embedding_gate._merge_restored() IS
    'Trigger of the gate''s own tables: a row that a data-only load brings where the '
    'deployment has its own is merged (its deployment row and revision stay, the dumped '
    'settings and registry rows replace the fresh ones) instead of failing the COPY; the '
    'load is recorded in embedding_gate._deployment.data_loaded_at.';
REVOKE EXECUTE ON FUNCTION embedding_gate._merge_restored() FROM PUBLIC;

CREATE OR REPLACE TRIGGER embedding_gate_merge_restored
    BEFORE INSERT ON embedding_gate._deployment
    FOR EACH ROW EXECUTE FUNCTION embedding_gate._merge_restored();
CREATE OR REPLACE TRIGGER embedding_gate_merge_restored
    BEFORE INSERT ON embedding_gate._sources
    FOR EACH ROW EXECUTE FUNCTION embedding_gate._merge_restored();
CREATE OR REPLACE TRIGGER embedding_gate_merge_restored
    BEFORE INSERT ON embedding_gate.settings
    FOR EACH ROW EXECUTE FUNCTION embedding_gate._merge_restored();
CREATE OR REPLACE TRIGGER embedding_gate_merge_restored
    BEFORE INSERT ON embedding_gate._attached
    FOR EACH ROW EXECUTE FUNCTION embedding_gate._merge_restored();
ALTER TABLE embedding_gate._deployment ENABLE ALWAYS TRIGGER embedding_gate_merge_restored;
ALTER TABLE embedding_gate._sources ENABLE ALWAYS TRIGGER embedding_gate_merge_restored;
ALTER TABLE embedding_gate.settings ENABLE ALWAYS TRIGGER embedding_gate_merge_restored;
ALTER TABLE embedding_gate._attached ENABLE ALWAYS TRIGGER embedding_gate_merge_restored;
COMMENT ON TRIGGER embedding_gate_merge_restored ON embedding_gate._deployment IS
    'A data-only load: the deployment''s own row stays, the load is recorded on it.';
COMMENT ON TRIGGER embedding_gate_merge_restored ON embedding_gate._sources IS
    'A data-only load: a function''s hash that arrives updates the one recorded.';
COMMENT ON TRIGGER embedding_gate_merge_restored ON embedding_gate.settings IS
    'A data-only load: the dumped settings replace the deployment''s.';
COMMENT ON TRIGGER embedding_gate_merge_restored ON embedding_gate._attached IS
    'A data-only load: a dumped registry row replaces the deployment''s of the same table.';
-- (the version table is alembic's, made before the first revision and dropped after the
-- last downgrade)
DO $$
BEGIN
    IF pg_catalog.to_regclass('public.embedding_gate_alembic_version') IS NOT NULL THEN
        CREATE OR REPLACE TRIGGER embedding_gate_merge_restored
            BEFORE INSERT ON public.embedding_gate_alembic_version
            FOR EACH ROW EXECUTE FUNCTION embedding_gate._merge_restored();
        ALTER TABLE public.embedding_gate_alembic_version
            ENABLE ALWAYS TRIGGER embedding_gate_merge_restored;
        COMMENT ON TRIGGER embedding_gate_merge_restored ON public.embedding_gate_alembic_version IS
            'A data-only load: the deployment''s own revision stays.';
    END IF;
END
$$;

-- Puts the gate's bookkeeping right where embedding_gate.attached says `needs`: after a
-- data-only load (the application made the attached tables without the gate's triggers and
-- index, and the load's own triggers counted chunks and documents on top of the dumped
-- counts, or none did), or where a table's owner dropped one of the gate's triggers or its
-- hash index: the attached tables get them back, every count is counted again, and the load
-- is no longer reported.
CREATE OR REPLACE PROCEDURE embedding_gate.repair()
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    indexes integer := 0;
    guarded integer := 0;
    forgotten integer;
BEGIN
    -- tables dropped since they were attached (the event trigger forgets them where a
    -- superuser deployed the gate; the SQL engine has none)
    forgotten := embedding_gate._forget_tables(ARRAY(
        SELECT t.table_oid::oid FROM embedding_gate._attached AS t
        WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = t.table_oid)));
    FOR a IN SELECT t.table_oid, t.embedding_type, t.hash_index, t.content_attnum,
                    embedding_gate._column(t.table_oid, t.embedding_attnum) AS e,
                    NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g
                                WHERE g.tgrelid = t.table_oid
                                  AND g.tgname = 'embedding_gate_check_insert') AS bare
             FROM embedding_gate.attached_tables AS t
             JOIN pg_catalog.pg_class AS c ON c.oid = t.table_oid
             WHERE t.table_oid <> 'public.chunks'::regclass
             ORDER BY 1 LOOP
        IF a.e IS NULL THEN
            RAISE EXCEPTION 'the embedding column attached on % is gone',
                embedding_gate._qualified(a.table_oid)
                USING ERRCODE = 'undefined_column',
                      HINT = format('detach it: SELECT embedding_gate.detach(%L), then CALL '
                                    'embedding_gate.repair() again',
                                    embedding_gate._qualified(a.table_oid));
        END IF;
        IF a.hash_index IS NOT NULL AND a.content_attnum IS NOT NULL
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i
                           JOIN pg_catalog.pg_class AS x ON x.oid = i.indexrelid
                           WHERE i.indrelid = a.table_oid AND x.relname = a.hash_index) THEN
            EXECUTE format('CREATE INDEX %I ON %s (embedding_gate.%s_hash(%I))',
                           a.hash_index, a.table_oid, a.embedding_type, a.e);
            indexes := indexes + 1;
        END IF;
        IF a.bare THEN
            guarded := guarded + 1;
        END IF;
        -- (each table and partition below it, created later where the gate has no event
        -- trigger); a table the caller may not give triggers is named, and the others go on
        BEGIN
            PERFORM embedding_gate._add_triggers(a.table_oid);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'embedding gate: % cannot give % the gate''s triggers: %',
                current_user, embedding_gate._qualified(a.table_oid), SQLERRM
                USING HINT = format('its owner runs SELECT * FROM embedding_gate.attach(%L, '
                                    '...) again after detach(), or, for its partitions, '
                                    'SELECT * FROM embedding_gate.follow_partitions()',
                                    embedding_gate._qualified(a.table_oid));
            IF a.bare THEN
                guarded := guarded - 1;
            END IF;
        END;
    END LOOP;
    PERFORM embedding_gate.recount();
    PERFORM pg_catalog.setval(
        pg_catalog.pg_get_serial_sequence('embedding_gate._attached', 'row_key'),
        (SELECT pg_catalog.max(r.row_key) FROM embedding_gate._attached AS r));
    UPDATE embedding_gate._deployment AS d SET data_loaded_at = NULL;
    RAISE NOTICE 'embedding gate: counts current; % attached tables given their triggers, % '
                 'their hash index, % dropped ones forgotten', guarded, indexes, forgotten;
END
$$;
COMMENT ON PROCEDURE embedding_gate.repair() IS
    'Gives the attached tables (and their partitions) the gate''s triggers and hash index where '
    'they lack them (after a data-only load, or a DROP of one), forgets attached tables that '
    'were dropped, counts every table again, and clears '
    'embedding_gate._deployment.data_loaded_at: CALL embedding_gate.repair(). The gate''s '
    'owner runs it (a superuser in a PL/Python deployment: it counts every table, and '
    'creates triggers and indexes as the attached tables'' owner may).';
REVOKE EXECUTE ON PROCEDURE embedding_gate.repair() FROM PUBLIC;
