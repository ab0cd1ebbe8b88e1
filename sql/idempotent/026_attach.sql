-- Attaching the gate to a table it did not create, and what its owner does with it then:
-- attach, detach, per-table settings, restore from the quarantine, check the stored rows.
-- Each is allowed to the table's owner (or a superuser) alone, and runs as its caller
-- (SECURITY INVOKER): what touches the table (the DDL, counting its rows, putting a row
-- back) runs with the owner's rights, and what it writes of the gate's own tables
-- (registry, counts, quarantine) PostgreSQL lets through only for the table's owner (their
-- row-level security policies, sql/incremental/0007). No SECURITY DEFINER function decides
-- who owns a table: inside one, the real caller is unknown (SET ROLE's or the session's
-- user is not it, for code an index expression runs during ANALYZE, say).

-- Whether the current role owns the table, or is a member of its owner, or a superuser.
CREATE OR REPLACE FUNCTION embedding_gate._may_own(table_name regclass) RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE((
    SELECT pg_catalog.pg_has_role(CURRENT_USER, c.relowner, 'USAGE')
    FROM pg_catalog.pg_class AS c WHERE c.oid = table_name), false)
$$;
COMMENT ON FUNCTION embedding_gate._may_own(regclass) IS
    'True when the current role owns the table, or is a member of its owner, or a superuser.';

-- The table's owner, or the gate's: the callers _check_existing() (SECURITY DEFINER) lets in,
-- as SET ROLE's or the session's user (the worst another role's code can make of it is a
-- check of the table's stored rows, which only writes true verdicts).
CREATE OR REPLACE FUNCTION embedding_gate._caller_may_check(table_name regclass) RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE((
    SELECT pg_catalog.pg_has_role(embedding_gate._caller(), c.relowner, 'USAGE')
    FROM pg_catalog.pg_class AS c WHERE c.oid = table_name), false)
    OR embedding_gate._caller_may_tune()
$$;
COMMENT ON FUNCTION embedding_gate._caller_may_check(regclass) IS
    'True when the calling role (SET ROLE, else the session user) owns the table or may tune '
    'the gate: who may run check_existing().';

CREATE OR REPLACE FUNCTION embedding_gate._refuse_unless_owner(table_name regclass, what text)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT embedding_gate._may_own(table_name) THEN
        RAISE EXCEPTION 'only the owner of % (or a superuser) may %',
            embedding_gate._qualified(table_name), what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate._refuse_unless_owner(regclass, text) IS
    'Fails unless the calling role owns the table (see _may_own).';

-- Records an attached table (the gate's registry is the deployment owner's).
DROP FUNCTION IF EXISTS embedding_gate._register(
    regclass, name, name, text, integer, name, text, name, regclass);
DROP FUNCTION IF EXISTS embedding_gate._register(
    regclass, name, name, text, integer, name, text, name, regclass, bigint);
CREATE OR REPLACE FUNCTION embedding_gate._register(
    table_name regclass, id_column name, embedding_column name, embedding_type text,
    dimension integer, content_column name, model text, model_column name, hash_index text,
    embedded bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    key bigint;
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'attach it');
    INSERT INTO embedding_gate._attached AS a
        (table_oid, id_column, id_number, embedding_column, embedding_number, embedding_type,
         dimension, content_column, content_number, model, model_column, model_number,
         hash_index, attached_by)
    VALUES (_register.table_name,
            _register.id_column, embedding_gate._attnum(_register.table_name, _register.id_column),
            _register.embedding_column,
            embedding_gate._attnum(_register.table_name, _register.embedding_column),
            _register.embedding_type, _register.dimension,
            _register.content_column,
            embedding_gate._attnum(_register.table_name, _register.content_column),
            _register.model, _register.model_column,
            embedding_gate._attnum(_register.table_name, _register.model_column),
            _register.hash_index, CURRENT_USER)
    RETURNING a.row_key INTO key;
    -- the summary's count of the table's embedded rows (counted by attach() as the
    -- owner), keyed by the registry's row_key; the triggers keep it from now on
    IF _register.embedded <> 0 THEN
        INSERT INTO embedding_gate._row_counts (relation, delta)
        VALUES (key::text, _register.embedded);
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate._register(regclass, name, name, text, integer, name, text, name, text, bigint) IS
    'attach(): records the table in embedding_gate.attached_tables with its count of embedded '
    'rows (as the caller: the registry''s policies let only the table''s owner in).';
GRANT EXECUTE ON FUNCTION embedding_gate._register(regclass, name, name, text, integer, name, text, name, text, bigint) TO PUBLIC;

DROP FUNCTION IF EXISTS embedding_gate._unregister(regclass, boolean);
CREATE OR REPLACE FUNCTION embedding_gate._unregister(table_name regclass, drop_quarantined boolean)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kept bigint;
    hash_index text;
    key bigint;
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'detach it');
    SELECT count(*) INTO kept FROM embedding_gate.quarantine AS q
    WHERE q.table_oid = _unregister.table_name;
    IF kept > 0 AND NOT drop_quarantined THEN
        RAISE EXCEPTION 'the quarantine holds % rows of %', kept,
            embedding_gate._qualified(table_name)
            USING ERRCODE = 'object_in_use',
                  HINT = 'put them back with embedding_gate.restore(table, row_id), or detach '
                         'with drop_quarantined => true to discard them';
    END IF;
    DELETE FROM embedding_gate._attached AS a WHERE a.table_oid = _unregister.table_name
    RETURNING a.hash_index, a.row_key INTO hash_index, key;
    DELETE FROM embedding_gate._row_counts AS r WHERE r.relation = key::text;
    RETURN hash_index;
END
$$;
COMMENT ON FUNCTION embedding_gate._unregister(regclass, boolean) IS
    'detach(): forgets the table, its verdicts and (when told to) its quarantined rows; '
    'returns the hash index attach() created.';
GRANT EXECUTE ON FUNCTION embedding_gate._unregister(regclass, boolean) TO PUBLIC;

-- Checks every row an attached table holds, committing each batch, with progress.
CREATE OR REPLACE PROCEDURE embedding_gate.check_existing(
    table_name regclass,
    batch_size integer DEFAULT 10000,
    INOUT checked bigint DEFAULT NULL,
    INOUT low_quality bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    after text;
    b record;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- batches at READ COMMITTED whatever the session's default (see recheck_embeddings)
    IF pg_catalog.current_setting('transaction_isolation')
       OPERATOR(pg_catalog.<>) 'read committed' THEN
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END IF;
    checked := 0;
    low_quality := 0;
    LOOP
        SELECT * INTO b FROM embedding_gate._check_existing(table_name, after, batch_size);
        EXIT WHEN b.checked = 0;
        checked := checked + b.checked;
        low_quality := low_quality + b.low_quality;
        after := b.last_row_id;
        RAISE NOTICE 'embedding gate: % rows of % checked, % flagged', checked,
            embedding_gate._qualified(table_name), low_quality;
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
END
$$;
COMMENT ON PROCEDURE embedding_gate.check_existing(regclass, integer, bigint, bigint) IS
    'Checks every row an attached table holds with its current settings, committing every '
    'batch_size rows (flags only: nothing is moved or rejected). For a large table: '
    'attach(..., check_existing => false), then CALL embedding_gate.check_existing(table).';

-- The gate's triggers on a table and on every partition below it (statement triggers fire
-- for the table a statement names: a write straight into a partition fires the partition's).
-- Run as the caller, who owns the tables.
CREATE OR REPLACE FUNCTION embedding_gate._add_triggers(table_name regclass) RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
    g record;
BEGIN
    -- (the tree lists nothing for a table outside any partition tree)
    FOR t IN SELECT table_name UNION
             SELECT p.relid FROM pg_catalog.pg_partition_tree(table_name) AS p LOOP
        -- statement triggers, fired in name order: check, then (quarantine mode) move the
        -- flagged rows out as the writer, then raise a rejection. Each one that is missing
        -- is created (a table's owner may have dropped one).
        FOR g IN SELECT * FROM (VALUES
                 ('embedding_gate_check_insert',
                  'AFTER INSERT ON %s REFERENCING NEW TABLE AS gate_new FOR EACH STATEMENT'
                  ' EXECUTE FUNCTION embedding_gate._check_attached()'),
                 ('embedding_gate_check_update',
                  'AFTER UPDATE ON %s REFERENCING OLD TABLE AS gate_old NEW TABLE AS gate_new'
                  ' FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._check_attached()'),
                 ('embedding_gate_forget_delete',
                  'AFTER DELETE ON %s REFERENCING OLD TABLE AS gate_old FOR EACH STATEMENT'
                  ' EXECUTE FUNCTION embedding_gate._forget_rows()'),
                 -- before: a partition's rows must still be there to know which verdicts go
                 ('embedding_gate_forget_truncate',
                  'BEFORE TRUNCATE ON %s FOR EACH STATEMENT'
                  ' EXECUTE FUNCTION embedding_gate._forget_rows()'),
                 ('embedding_gate_move_quarantined',
                  'AFTER INSERT OR UPDATE ON %s FOR EACH STATEMENT'
                  ' EXECUTE FUNCTION embedding_gate._move_quarantined()'),
                 ('embedding_gate_raise_rejected',
                  'AFTER INSERT OR UPDATE ON %s FOR EACH STATEMENT'
                  ' EXECUTE FUNCTION embedding_gate._raise_rejected()')) AS d(name, body)
                 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS x
                                   WHERE x.tgrelid = t AND x.tgname = d.name) LOOP
            EXECUTE format('CREATE TRIGGER %I ', g.name) || format(g.body, t);
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate._add_triggers(regclass) IS
    'Creates the gate''s triggers on a table and on each partition below it that lacks them.';

CREATE OR REPLACE FUNCTION embedding_gate._drop_triggers(table_name regclass) RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
    name text;
BEGIN
    FOR t IN SELECT table_name UNION
             SELECT p.relid FROM pg_catalog.pg_partition_tree(table_name) AS p LOOP
        FOREACH name IN ARRAY ARRAY['embedding_gate_check_insert', 'embedding_gate_check_update',
                                    'embedding_gate_forget_delete',
                                    'embedding_gate_forget_truncate',
                                    'embedding_gate_move_quarantined',
                                    'embedding_gate_raise_rejected'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', name, t);
        END LOOP;
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate._drop_triggers(regclass) IS
    'Drops the gate''s triggers from a table and from each partition below it.';

-- What the event trigger embedding_gate_follow_partitions does at each CREATE TABLE and
-- ALTER TABLE where a superuser deployed the gate, for the tables the caller owns: a partition
-- created under an attached table gets the gate's triggers, and a table detached from one
-- loses them. Deployed by another role (the SQL engine on a managed service) the gate has no
-- event triggers: a partition created after attach() is checked when a write names its parent
-- and not when a write goes straight into it, and a detached partition's writes fail (its
-- triggers find no attached table), until the tables' owner runs this. Run as the caller
-- (CREATE TRIGGER and DROP TRIGGER need the table's owner).
CREATE OR REPLACE FUNCTION embedding_gate.follow_partitions()
RETURNS TABLE (table_name text, triggers text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT x.relid FROM (
                 SELECT a.table_oid::oid AS relid FROM embedding_gate.attached_tables AS a
                 UNION
                 SELECT p.relid FROM embedding_gate.attached_tables AS a
                 CROSS JOIN LATERAL pg_catalog.pg_partition_tree(a.table_oid) AS p) AS x
             JOIN pg_catalog.pg_class AS c ON c.oid = x.relid
             WHERE x.relid <> 'public.chunks'::pg_catalog.regclass
               AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
               AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g
                               WHERE g.tgrelid = x.relid
                                 AND g.tgname = 'embedding_gate_check_insert')
             ORDER BY 1 LOOP
        PERFORM embedding_gate._add_triggers(t);
        table_name := embedding_gate._qualified(t);
        triggers := 'added';
        RETURN NEXT;
    END LOOP;
    FOR t IN SELECT g.tgrelid FROM pg_catalog.pg_trigger AS g
             JOIN pg_catalog.pg_class AS c ON c.oid = g.tgrelid
             WHERE g.tgname = 'embedding_gate_check_insert'
               AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
               AND NOT embedding_gate._guarded(g.tgrelid)
             ORDER BY 1 LOOP
        PERFORM embedding_gate._drop_triggers(t);
        table_name := embedding_gate._qualified(t);
        triggers := 'dropped';
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate.follow_partitions() IS
    'For the tables the caller owns: gives each attached table and each partition below one '
    'the gate''s triggers where it lacks them, and takes them off tables no longer attached '
    'or under an attached table (a detached partition); one row a table. Run after CREATE '
    'TABLE ... '
    'PARTITION OF or ALTER TABLE ... DETACH PARTITION where the gate has no event triggers '
    '(deployed by a role that is not a superuser: the SQL engine on a managed service).';
GRANT EXECUTE ON FUNCTION embedding_gate.follow_partitions() TO PUBLIC;

-- Guards a table from now on: its writes, and (check_existing) the rows it holds.
-- hash_index: an index built beforehand (CREATE INDEX CONCURRENTLY ..., which holds no
-- writer back) on the hash of the embedding, for a table that is written to while it is
-- attached; otherwise attach builds one, and writes wait until it is built.
DROP FUNCTION IF EXISTS embedding_gate.attach(regclass, name, name, name, text, name, boolean);
CREATE OR REPLACE FUNCTION embedding_gate.attach(
    table_name regclass,
    embedding_column name DEFAULT 'embedding',
    content_column name DEFAULT NULL,
    id_column name DEFAULT NULL,
    model text DEFAULT NULL,
    model_column name DEFAULT NULL,
    check_existing boolean DEFAULT true,
    hash_index name DEFAULT NULL)
RETURNS TABLE (attached text, checked bigint, low_quality bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel record;
    col record;
    qualified text;
    kind text;
    dimension integer;
    id_col name := attach.id_column;
    gate_owner name := (SELECT n.nspowner::regrole::name FROM pg_catalog.pg_namespace AS n
                        WHERE n.nspname = 'embedding_gate');
    index_kept text;
    index_name text;
    after text;
    b record;
    problem text;
    embedded bigint;
BEGIN
    IF table_name IS NULL THEN
        RAISE EXCEPTION 'attach() needs a table' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relname, c.relkind, c.relpersistence, c.relispartition, n.nspname INTO rel
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = table_name;
    qualified := embedding_gate._qualified(table_name);
    attached := qualified;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is a %, not a table: the gate attaches to tables', qualified,
            CASE rel.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                 WHEN 'f' THEN 'foreign table' ELSE 'relation of kind ' || rel.relkind::text END
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'attach the table its rows are written to';
    END IF;
    IF rel.relpersistence = 't' THEN
        RAISE EXCEPTION '% is a temporary table: it ends with the session', qualified
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'attach a permanent table';
    END IF;
    IF rel.relispartition THEN
        RAISE EXCEPTION '% is a partition: attach its partitioned table', qualified
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'the gate on the parent checks every partition below it';
    END IF;
    IF table_name = 'public.chunks'::regclass THEN
        RAISE EXCEPTION 'public.chunks is the gate''s own table: it is guarded already'
            USING ERRCODE = 'duplicate_object';
    END IF;
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'attach it');
    IF EXISTS (SELECT FROM embedding_gate.attached_tables AS a WHERE a.table_oid = table_name) THEN
        RAISE EXCEPTION '% is attached already', qualified
            USING ERRCODE = 'duplicate_object',
                  HINT = 'change its settings with embedding_gate.set_table_settings(), or '
                         'detach it first';
    END IF;
    IF model IS NOT NULL AND model_column IS NOT NULL THEN
        RAISE EXCEPTION 'give model or model_column, not both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- the embedding column: vector(n), vector, or halfvec(n)
    SELECT a.atttypid, a.atttypmod INTO col FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = table_name AND a.attname = attach.embedding_column
      AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no column "%"', qualified, attach.embedding_column
            USING ERRCODE = 'undefined_column',
                  HINT = 'name its embedding column: embedding_column => ''...'' (its vector '
                         'and halfvec columns: ' || COALESCE((
                      SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                      FROM pg_catalog.pg_attribute AS a
                      WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.atttypid IN ('public.vector'::regtype, 'public.halfvec'::regtype)),
                      'none') || ')';
    END IF;
    kind := CASE col.atttypid WHEN 'public.vector'::regtype THEN 'vector'
                              WHEN 'public.halfvec'::regtype THEN 'halfvec' END;
    IF kind IS NULL THEN
        RAISE EXCEPTION 'column "%" of % is of type %: the gate checks vector and halfvec columns',
            attach.embedding_column, qualified, format_type(col.atttypid, col.atttypmod)
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    dimension := NULLIF(col.atttypmod, -1);  -- NULL: unconstrained, any dimension per row

    -- the row id: the single-column primary key, unless named
    IF id_col IS NULL THEN
        SELECT a.attname INTO id_col
        FROM pg_catalog.pg_index AS i
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
        WHERE i.indrelid = table_name AND i.indisprimary AND i.indnatts = 1;
        IF id_col IS NULL THEN
            RAISE EXCEPTION 'table % has no single-column primary key', qualified
                USING ERRCODE = 'invalid_column_reference',
                      HINT = 'name a column whose values identify a row: id_column => ''...''';
        END IF;
    END IF;
    FOR col IN SELECT * FROM (VALUES ('id_column', id_col), ('content_column', content_column),
                                     ('model_column', model_column)) AS o(option, name)
               WHERE o.name IS NOT NULL LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute AS a
                       WHERE a.attrelid = table_name AND a.attname = col.name
                         AND a.attnum > 0 AND NOT a.attisdropped) THEN
            RAISE EXCEPTION 'table % has no column "%" (%)', qualified, col.name, col.option
                USING ERRCODE = 'undefined_column';
        END IF;
    END LOOP;

    -- the gate reads the table as its own owner (duplicates, check_existing, recheck): only
    -- columns of types no role but a superuser controls (no cast, operator or check of the
    -- table's owner can run in those reads)
    problem := embedding_gate._refusal(
        table_name,
        (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = table_name AND a.attname = id_col),
        (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = table_name AND a.attname = attach.embedding_column),
        (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = table_name AND a.attname = attach.content_column),
        (SELECT a.attnum FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = table_name AND a.attname = attach.model_column));
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'the embedding gate does not attach %: %', qualified, problem
            USING ERRCODE = 'datatype_mismatch',
                  HINT = 'the gate reads a table as its own owner and runs no code of the '
                         'table''s: name columns of built-in types';
    END IF;

    -- it reads the table (duplicates, check_existing); it never writes it
    IF NOT has_table_privilege(gate_owner, table_name, 'SELECT') THEN
        RAISE EXCEPTION 'the embedding gate''s owner % needs SELECT on %', gate_owner, qualified
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT ON %s TO %I', qualified, gate_owner);
    END IF;

    -- duplicate_vector needs the content to tell texts apart, and an index to be fast
    IF content_column IS NOT NULL AND attach.hash_index IS NOT NULL THEN
        -- one the owner built (CONCURRENTLY): an index of this table, on the gate's hash of
        -- this column and nothing else
        IF NOT EXISTS (
                SELECT FROM pg_catalog.pg_index AS i
                JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
                WHERE i.indrelid = table_name AND c.relname = attach.hash_index
                  AND i.indnatts = 1 AND i.indisvalid AND i.indpred IS NULL
                  AND pg_catalog.pg_get_indexdef(i.indexrelid, 1, false)
                      = format('embedding_gate.%s_hash(%I)', kind, attach.embedding_column)) THEN
            RAISE EXCEPTION '% is no valid index of % on embedding_gate.%_hash(%)',
                attach.hash_index, qualified, kind, attach.embedding_column
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('CREATE INDEX CONCURRENTLY %I ON %s '
                                    '(embedding_gate.%s_hash(%I))', attach.hash_index,
                                    qualified, kind, attach.embedding_column);
        END IF;
        index_kept := attach.hash_index;
    ELSIF content_column IS NOT NULL THEN
        index_name := left(rel.relname, 30) || '_' || table_name::oid || '_embedding_gate_hash';
        EXECUTE format('CREATE INDEX %I ON %s (embedding_gate.%s_hash(%I))',
                       index_name, qualified, kind, attach.embedding_column);
        -- (by its name alone: an index lives in its table's schema, and moves with it)
        index_kept := index_name;
    END IF;
    -- the summary's count of its embedded rows, counted as the owner
    EXECUTE format('SELECT count(*) FROM %s AS t WHERE t.%I IS NOT NULL',
                   qualified, attach.embedding_column)
        INTO embedded;
    PERFORM embedding_gate._register(table_name, id_col, attach.embedding_column, kind,
                                     dimension, content_column, model,
                                     model_column, index_kept, embedded);

    PERFORM embedding_gate._add_triggers(table_name);

    checked := 0;
    low_quality := 0;
    -- the gate reads the rows as its owner: one that is not a superuser (the SQL engine) and
    -- would read them under a policy leaves them (_check_existing would refuse)
    IF check_existing AND NOT embedding_gate._reads_all(table_name, gate_owner) THEN
        RAISE WARNING 'embedding gate: % is guarded from now on, but the rows it holds were not '
                      'checked: the gate''s owner, %, would read them under the table''s '
                      'row-level security policies', qualified, gate_owner
            USING HINT = 'let the gate''s owner bypass row-level security (ALTER ROLE ... '
                         'BYPASSRLS), then CALL embedding_gate.check_existing(table); or check '
                         'the rows as the table''s owner with SELECT * FROM preview_thresholds()';
    ELSIF check_existing THEN
        LOOP
            SELECT * INTO b FROM embedding_gate._check_existing(table_name, after, 10000);
            EXIT WHEN b.checked = 0;
            checked := checked + b.checked;
            low_quality := low_quality + b.low_quality;
            after := b.last_row_id;
            RAISE NOTICE 'embedding gate: % rows of % checked, % flagged',
                checked, qualified, low_quality;
        END LOOP;
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION embedding_gate.attach(regclass, name, name, name, text, name, boolean, name) IS
    'Guards a table from now on: every INSERT, COPY, UPDATE (upserts and MERGE included) of '
    'its embedding column is checked; verdicts go to embedding_gate.verdicts, keyed by the '
    'row id. The table''s columns are not changed (duplicate_vector adds one index). '
    'check_existing: also check the rows it holds now, in this transaction. hash_index: that '
    'index, built beforehand with CREATE INDEX CONCURRENTLY (a live table''s writers then '
    'wait only for the triggers to be created). Owner only.';

-- Removes the gate from a table: its triggers and index, its verdicts.
CREATE OR REPLACE FUNCTION embedding_gate.detach(
    table_name regclass, drop_quarantined boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    qualified text := embedding_gate._qualified(table_name);
    hash_index text;
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'detach it');
    IF table_name = 'public.chunks'::regclass THEN
        RAISE EXCEPTION 'public.chunks is the gate''s own table: it cannot be detached'
            USING ERRCODE = 'object_in_use',
                  HINT = 'alembic downgrade base removes the gate with it';
    END IF;
    IF NOT EXISTS (SELECT FROM embedding_gate.attached_tables AS a WHERE a.table_oid = table_name) THEN
        RAISE EXCEPTION '% is not attached to the embedding gate', qualified
            USING ERRCODE = 'undefined_object';
    END IF;
    hash_index := embedding_gate._unregister(table_name, drop_quarantined);
    PERFORM embedding_gate._drop_triggers(table_name);
    -- (gone already when its column was dropped; and only an index of this table)
    IF EXISTS (SELECT FROM pg_catalog.pg_index AS i
               JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
               WHERE c.relname = hash_index AND i.indrelid = table_name) THEN
        EXECUTE format('DROP INDEX %s',
                       (SELECT c.oid::regclass FROM pg_catalog.pg_index AS i
                        JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
                        WHERE c.relname = hash_index AND i.indrelid = table_name));
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate.detach(regclass, boolean) IS
    'Removes the gate from an attached table (its triggers, its index, its verdicts) and '
    'leaves the table as it was. Refuses while the quarantine holds rows of it, unless '
    'drop_quarantined. Owner only.';

-- A table's own mode and thresholds.
CREATE OR REPLACE FUNCTION embedding_gate.set_table_settings(table_name regclass, settings jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    item record;
    merged jsonb;
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'change its settings');
    IF NOT EXISTS (SELECT FROM embedding_gate.attached_tables AS a WHERE a.table_oid = table_name) THEN
        RAISE EXCEPTION '% is not attached to the embedding gate',
            embedding_gate._qualified(table_name)
            USING ERRCODE = 'undefined_object';
    END IF;
    IF jsonb_typeof(settings) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'settings must be a JSON object, e.g. {"mode": "quarantine"}'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOR item IN SELECT * FROM jsonb_each(settings) LOOP
        CONTINUE WHEN jsonb_typeof(item.value) = 'null';  -- null: back to the global value
        IF item.key = 'mode' THEN
            IF item.value #>> '{}' NOT IN ('flag', 'quarantine', 'reject') THEN
                RAISE EXCEPTION 'mode is %, expected flag, quarantine or reject', item.value
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSIF item.key IN ('min_norm', 'min_variance', 'near_zero_epsilon',
                           'max_near_zero_ratio', 'blank_similarity') THEN
            IF jsonb_typeof(item.value) <> 'number' OR item.value::text::float8 < 0
               OR (item.key = 'max_near_zero_ratio' AND item.value::text::float8 > 1) THEN
                RAISE EXCEPTION '% is %, expected a non-negative number%', item.key, item.value,
                    CASE WHEN item.key = 'max_near_zero_ratio' THEN ' up to 1' ELSE '' END
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
        ELSE
            RAISE EXCEPTION 'unknown setting "%"', item.key
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'the settings are mode, min_norm, min_variance, near_zero_epsilon, '
                             'max_near_zero_ratio and blank_similarity';
        END IF;
    END LOOP;
    UPDATE embedding_gate.attached_tables AS a
       SET overrides = jsonb_strip_nulls(a.overrides || settings)
     WHERE a.table_oid = table_name
    RETURNING a.overrides INTO merged;
    RETURN merged;
END
$$;
COMMENT ON FUNCTION embedding_gate.set_table_settings(regclass, jsonb) IS
    'Sets an attached table''s own mode and thresholds, e.g. {"mode": "quarantine", '
    '"min_norm": 0.2}; a null value goes back to embedding_gate.settings. Returns the table''s '
    'overrides. Owner only.';
GRANT EXECUTE ON FUNCTION embedding_gate.set_table_settings(regclass, jsonb) TO PUBLIC;

-- Takes a quarantined row out of the quarantine for restore(): the owner's alone.
CREATE OR REPLACE FUNCTION embedding_gate._take_quarantined(table_name regclass, row_id text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kept jsonb;
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'restore its rows');
    DELETE FROM embedding_gate.quarantine AS q
    WHERE q.table_oid = _take_quarantined.table_name AND q.row_id = _take_quarantined.row_id
      AND q.row IS NOT NULL
    RETURNING q.row INTO kept;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'the quarantine holds no row "%" of %', row_id,
            embedding_gate._qualified(table_name)
            USING ERRCODE = 'no_data_found';
    END IF;
    RETURN kept;
END
$$;
COMMENT ON FUNCTION embedding_gate._take_quarantined(regclass, text) IS
    'restore(): removes a row from the quarantine and returns it (jsonb). Owner only.';
GRANT EXECUTE ON FUNCTION embedding_gate._take_quarantined(regclass, text) TO PUBLIC;

-- Whether the quarantine holds a row of the table (restore() asks after putting it back).
CREATE OR REPLACE FUNCTION embedding_gate._quarantine_holds(table_name regclass, row_id text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._refuse_unless_owner(table_name, 'read its quarantine');
    RETURN EXISTS (SELECT FROM embedding_gate.quarantine AS q
                   WHERE q.table_oid = _quarantine_holds.table_name
                     AND q.row_id = _quarantine_holds.row_id);
END
$$;
COMMENT ON FUNCTION embedding_gate._quarantine_holds(regclass, text) IS
    'Whether the quarantine holds the row of the table. Owner only.';
GRANT EXECUTE ON FUNCTION embedding_gate._quarantine_holds(regclass, text) TO PUBLIC;

-- Puts a quarantined row back into its table, where the gate checks it again. SECURITY
-- INVOKER: the INSERT, and whatever the table runs on it (its triggers, defaults, checks,
-- generated columns, index expressions), run as the owner who calls it, never as the gate.
CREATE OR REPLACE FUNCTION embedding_gate.restore(
    table_name regclass, row_id text, fix jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    kept jsonb;
    columns text;
    owner_is_super boolean := (SELECT r.rolsuper FROM pg_catalog.pg_class AS c
                               JOIN pg_catalog.pg_roles AS r ON r.oid = c.relowner
                               WHERE c.oid = table_name);
BEGIN
    -- the INSERT runs the table's triggers, defaults and checks as the caller: a superuser
    -- (or a role that bypasses row-level security) would lend them its rights (and SET ROLE
    -- is no shield: the owner's code could RESET ROLE), so only the owner's own login does
    IF NOT owner_is_super
       AND EXISTS (SELECT FROM pg_catalog.pg_roles AS r
                   WHERE r.rolname IN (CURRENT_USER, SESSION_USER)
                     AND (r.rolsuper OR r.rolbypassrls)) THEN
        RAISE EXCEPTION 'restore() runs the triggers of % as its caller: a superuser does not',
            embedding_gate._qualified(table_name)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'log in as the table''s owner and restore from there';
    END IF;
    kept := embedding_gate._take_quarantined(table_name, row_id);
    SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO columns
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = table_name AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = '';
    -- the insert trigger checks it again: in quarantine mode a row still bad goes back
    EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s'
                   ' FROM pg_catalog.jsonb_populate_record(NULL::%s, $1)',
                   table_name, columns, columns, table_name)
        USING kept || COALESCE(fix, '{}');
    RETURN NOT embedding_gate._quarantine_holds(table_name, row_id);
END
$$;
COMMENT ON FUNCTION embedding_gate.restore(regclass, text, jsonb) IS
    'Puts a quarantined row back into its table, with the fields of `fix` (jsonb) replaced, '
    'e.g. a new embedding; the gate checks it again. Returns true when the row is back, false '
    'when it was quarantined again. Owner only; the INSERT runs as the caller.';

-- (security_barrier: see _readable)
CREATE OR REPLACE VIEW embedding_gate.attached WITH (security_barrier) AS
SELECT embedding_gate._qualified(a.table_oid) AS table_name,
       embedding_gate._column(a.table_oid, a.id_attnum) AS id_column,
       embedding_gate._column(a.table_oid, a.embedding_attnum) AS embedding_column,
       a.embedding_type,
       a.dimension,
       embedding_gate._column(a.table_oid, a.content_attnum) AS content_column,
       a.model,
       embedding_gate._column(a.table_oid, a.model_attnum) AS model_column,
       COALESCE(a.overrides ->> 'mode', s.mode) AS mode,
       a.overrides,
       -- chunks keeps its verdicts in its own columns and quarantine
       CASE WHEN a.table_oid = 'public.chunks'::regclass
            THEN (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
                  WHERE r.relation = 'chunks')
                 - (SELECT count(*) FROM public.chunks
                    WHERE embedding IS NULL AND embedding_raw IS NULL)
            ELSE (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
                  WHERE r.relation = a.row_key::text) END AS embedded,
       CASE WHEN a.table_oid = 'public.chunks'::regclass
            THEN (SELECT count(*) FROM public.chunks WHERE quality_issues IS NOT NULL)
            ELSE (SELECT count(*) FROM embedding_gate.verdicts AS v
                  WHERE v.table_oid = a.table_oid) END AS flagged,
       CASE WHEN a.table_oid = 'public.chunks'::regclass
            THEN (SELECT count(*) FROM public.embedding_quarantine)
            ELSE (SELECT count(*) FROM embedding_gate.quarantine AS q
                  WHERE q.table_oid = a.table_oid) END AS quarantined,
       a.attached_at,
       a.attached_by,
       n.needs
FROM embedding_gate.attached_tables AS a
-- (a settings row deleted: the registry is still listed, with no global mode)
LEFT JOIN embedding_gate.settings AS s ON true
JOIN embedding_gate._needs AS n ON n.table_oid = a.table_oid
-- a reader sees the tables it may read or owns (a table dropped without the event trigger
-- has no row in _readable)
JOIN embedding_gate._readable AS r ON r.table_oid = a.table_oid
WHERE r.may OR r.owner;
COMMENT ON VIEW embedding_gate.attached IS
    'The tables the gate guards, chunks among them, that the reader may read or owns: their '
    'columns, model, mode (the table''s own or the global one), and how many rows are '
    'embedded, flagged and quarantined (counts, whatever row-level security hides), and '
    'what to run where they cannot be trusted (needs: after a data-only load, or where a '
    'table lost a trigger or the index of the gate''s).';
GRANT SELECT ON embedding_gate.attached TO PUBLIC;
