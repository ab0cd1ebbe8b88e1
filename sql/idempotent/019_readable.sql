-- What the reports need of the guarded tables whichever engine runs (moved out of
-- 026_attach.sql, which the SQL engine does not apply yet: issue 25): a guarded table's
-- columns by number, its qualified name, what the gate cannot read of it, and what the
-- current role may read of it (every row, or which rows, under its row-level security).

-- The name of a table's column by its number, NULL once dropped (the registry's view
-- embedding_gate.attached_tables gives each attached column's number as it is now).
CREATE OR REPLACE FUNCTION embedding_gate._column(table_name regclass, attnum smallint)
RETURNS name
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
-- (PL/pgSQL: its plan is kept for the session; a SQL function with a SET clause is
-- planned again at every call, and the triggers call this on every statement)
BEGIN
    RETURN (
    SELECT a.attname FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = table_name AND a.attnum = _column.attnum AND NOT a.attisdropped);
END
$$;
COMMENT ON FUNCTION embedding_gate._column(regclass, smallint) IS
    'The name of a table''s column by its number (NULL once dropped).';

-- The number of a table's column by its name (NULL: no such column).
CREATE OR REPLACE FUNCTION embedding_gate._attnum(table_name regclass, column_name name)
RETURNS smallint
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT a.attnum FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = table_name AND a.attname = column_name AND a.attnum > 0
      AND NOT a.attisdropped);
END
$$;
COMMENT ON FUNCTION embedding_gate._attnum(regclass, name) IS
    'The number of a table''s column by its name (NULL: no such column).';

-- What the gate cannot read of a table without running code its owner controls, or NULL.
-- The gate reads attached tables as its own owner (the triggers, check_existing, a
-- superuser's recheck): a type the table's owner created (a domain, an enum, a composite)
-- could bring a cast, an operator or a check of theirs into those reads, so the id, content
-- and model columns must be of built-in types and the embedding of pgvector's, and the
-- relation a table. Asked at attach and on every use, since ALTER TABLE can change a type.
CREATE OR REPLACE FUNCTION embedding_gate._refusal(
    table_name regclass, id_attnum smallint, embedding_attnum smallint,
    content_attnum smallint, model_attnum smallint)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT COALESCE(
        (SELECT pg_catalog.format('it is a relation of kind %s now, not a table', c.relkind)
         FROM pg_catalog.pg_class AS c
         WHERE c.oid = _refusal.table_name AND c.relkind NOT IN ('r', 'p')),
        (SELECT pg_catalog.string_agg(pg_catalog.format(
                    'its %s column %I is of type %s (the gate reads %s columns of type %s)',
                    k.what, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), k.what,
                    pg_catalog.array_to_string(k.allowed::text[], ', ')), '; ' ORDER BY k.n)
         FROM (VALUES
                 (1, 'id', _refusal.id_attnum,
                  '{text,"character varying",character,name,uuid,smallint,integer,bigint}'::regtype[]),
                 (2, 'embedding', _refusal.embedding_attnum,
                  ARRAY['public.vector'::regtype, 'public.halfvec'::regtype]),
                 (3, 'content', _refusal.content_attnum,
                  '{text,"character varying",character}'::regtype[]),
                 (4, 'model', _refusal.model_attnum,
                  '{text,"character varying",character,name}'::regtype[])) AS k(n, what, attnum, allowed)
         JOIN pg_catalog.pg_attribute AS a
           ON a.attrelid = _refusal.table_name AND a.attnum = k.attnum AND NOT a.attisdropped
         WHERE a.atttypid <> ALL (k.allowed))));
END
$$;
COMMENT ON FUNCTION embedding_gate._refusal(regclass, smallint, smallint, smallint, smallint) IS
    'Why the gate will not read the table (a relation that is no longer a table, a column of '
    'a type other than the built-in ones it trusts), or NULL: no code of the table''s owner '
    'may run when the gate reads it.';

-- Whether the table's row-level security policies call nothing but built-in functions and
-- operators (and read no other relation): then a report may evaluate them as its reader
-- (to show it only its rows) without running code of the table's owner. Otherwise the
-- reports leave the table out for a reader the policies apply to.
CREATE OR REPLACE FUNCTION embedding_gate._policies_trusted(table_name regclass) RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT NOT EXISTS (
        SELECT FROM pg_catalog.pg_policy AS p
        JOIN pg_catalog.pg_depend AS d
          ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND d.objid = p.oid
        WHERE p.polrelid = _policies_trusted.table_name
          AND CASE WHEN d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
                   THEN d.refobjid <> _policies_trusted.table_name
                   -- (objects initdb creates have oids below 16384, FirstNormalObjectId)
                   ELSE d.refobjid >= 16384 END));
END
$$;
COMMENT ON FUNCTION embedding_gate._policies_trusted(regclass) IS
    'True when the table''s row-level security policies use only built-in functions, '
    'operators and types and read no other relation.';

-- Locks the table against ALTER TABLE until the transaction ends, before the gate checks
-- what it may read of it: a column's type cannot change between that check and the read.
CREATE OR REPLACE FUNCTION embedding_gate._lock_for_reading(table_name regclass) RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', table_name);
END
$$;
COMMENT ON FUNCTION embedding_gate._lock_for_reading(regclass) IS
    'LOCK TABLE ... IN ACCESS SHARE MODE (as a read takes it), taken before the gate checks '
    'the column types it reads: no ALTER TABLE comes between.';

-- Whether the current role sees the row of the table whose id is row_id, under the table's
-- row-level security policies for it: the reports ask it (as their reader) where
-- _reads_all() is false, so that a report row shows only what its reader could SELECT.
CREATE OR REPLACE FUNCTION embedding_gate._visible(table_name regclass, row_id text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    seen boolean;
BEGIN
    -- (LOCK needs SELECT on the table, not on some of its columns, and its schema)
    IF row_id IS NULL OR NOT pg_catalog.has_table_privilege(table_name, 'SELECT')
       OR NOT pg_catalog.has_schema_privilege(
                  (SELECT c.relnamespace FROM pg_catalog.pg_class AS c WHERE c.oid = table_name),
                  'USAGE') THEN
        RETURN false;
    END IF;
    -- no ALTER TABLE between the checks below and the read
    PERFORM embedding_gate._lock_for_reading(table_name);
    SELECT embedding_gate._column(t.table_oid, t.id_attnum) AS id_column,
           pg_catalog.format_type(i.atttypid, i.atttypmod) AS id_type,
           embedding_gate._refusal(t.table_oid, t.id_attnum, t.embedding_attnum,
                                   t.content_attnum, t.model_attnum) AS problem
      INTO a
      FROM embedding_gate.attached_tables AS t
      JOIN pg_catalog.pg_attribute AS i ON i.attrelid = t.table_oid AND i.attnum = t.id_attnum
     WHERE t.table_oid = _visible.table_name;
    -- the read runs as the reader: only with built-in types, and only where the table's
    -- policies for the reader run no code of the table's owner
    IF NOT FOUND OR a.id_column IS NULL OR a.problem IS NOT NULL
       OR NOT (embedding_gate._reads_all(table_name)
               OR embedding_gate._policies_trusted(table_name)) THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT FROM %s AS t WHERE t.%I = $1::%s)',
                   table_name, a.id_column, a.id_type)
        INTO seen USING row_id;
    RETURN seen;
END
$$;
COMMENT ON FUNCTION embedding_gate._visible(regclass, text) IS
    'Whether the current role sees the row (by its id as text) of a guarded table, under the '
    'table''s row-level security policies: the reports'' filter, run as their reader.';

-- A table's schema-qualified name, quoted where needed (public.langchain_pg_embedding).
CREATE OR REPLACE FUNCTION embedding_gate._qualified(table_name regclass) RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = table_name);
END
$$;
COMMENT ON FUNCTION embedding_gate._qualified(regclass) IS
    'The table''s name with its schema, quoted where needed.';

-- Whether the current role reads every row of the table without any row-level security
-- policy being evaluated (a superuser, BYPASSRLS, or its owner without FORCE ROW LEVEL
-- SECURITY, or a table without RLS), as PostgreSQL itself decides it.
CREATE OR REPLACE FUNCTION embedding_gate._reads_all(table_name regclass, reader name)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (
    SELECT NOT c.relrowsecurity OR r.rolsuper OR r.rolbypassrls
           OR (pg_catalog.pg_has_role(_reads_all.reader, c.relowner, 'USAGE')
               AND NOT c.relforcerowsecurity)
    FROM pg_catalog.pg_class AS c, pg_catalog.pg_roles AS r
    WHERE c.oid = _reads_all.table_name AND r.rolname = _reads_all.reader);
END
$$;
COMMENT ON FUNCTION embedding_gate._reads_all(regclass, name) IS
    'True when the role reads every row of the table without a row-level security policy '
    'being evaluated.';

CREATE OR REPLACE FUNCTION embedding_gate._reads_all(table_name regclass) RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT embedding_gate._reads_all(table_name, CURRENT_USER) $$;
COMMENT ON FUNCTION embedding_gate._reads_all(regclass) IS
    'True when the current role reads every row of the table without a row-level security '
    'policy being evaluated.';

-- What the current role may read of each guarded table, for the reports: its id and
-- embedding columns (may), its content column (content), every row without a policy
-- (all_rows, else _visible() per row), and whether it owns the table (its quarantine).
-- (security_barrier, as every view of the gate that filters what its reader sees: the
-- reader's own conditions run after the view's, see 030_low_quality_embeddings.sql)
CREATE OR REPLACE VIEW embedding_gate._readable WITH (security_barrier) AS
SELECT a.table_oid,
       COALESCE(pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE')
                AND pg_catalog.has_column_privilege(a.table_oid, a.id_attnum, 'SELECT')
                AND pg_catalog.has_column_privilege(a.table_oid, a.embedding_attnum, 'SELECT'),
                false) AS may,
       COALESCE(a.content_attnum IS NOT NULL
                AND pg_catalog.has_column_privilege(a.table_oid, a.content_attnum, 'SELECT'),
                false) AS content,
       COALESCE(embedding_gate._reads_all(a.table_oid), false) AS all_rows,
       pg_catalog.pg_has_role(c.relowner, 'USAGE') AS owner
FROM embedding_gate.attached_tables AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid;
COMMENT ON VIEW embedding_gate._readable IS
    'Per guarded table, what the current role may read of it (the reports'' filter): may (its '
    'id and embedding columns), content, all_rows (no row-level security policy applies), '
    'owner (its quarantine).';
GRANT SELECT ON embedding_gate._readable TO PUBLIC;

-- Per guarded table, what to run before its counts and checks can be trusted (NULL:
-- nothing): embedding_gate.attached and embedding_quality_summary show it to the readers
-- of the table. The gate's owner's (it reads the deployment row and the settings).
CREATE OR REPLACE VIEW embedding_gate._needs AS
SELECT a.table_oid,
       CASE WHEN s.singleton IS NULL
            THEN 'INSERT INTO embedding_gate.settings DEFAULT VALUES: the gate''s settings row '
                 'is gone, and every checked write fails'
            WHEN (SELECT d.data_loaded_at FROM embedding_gate._deployment AS d) IS NOT NULL
            THEN format('CALL embedding_gate.repair(): rows were loaded from a dump at %s, '
                        'and the counts are not current',
                        (SELECT d.data_loaded_at FROM embedding_gate._deployment AS d))
            WHEN a.table_oid <> 'public.chunks'::regclass
                 AND (SELECT count(*) FROM pg_catalog.pg_trigger AS g
                      WHERE g.tgrelid = a.table_oid
                        AND g.tgname IN ('embedding_gate_check_insert',
                                         'embedding_gate_check_update',
                                         'embedding_gate_forget_delete',
                                         'embedding_gate_forget_truncate',
                                         'embedding_gate_move_quarantined',
                                         'embedding_gate_raise_rejected')) < 6
            THEN 'CALL embedding_gate.repair(): the table lacks some of the gate''s triggers, '
                 'its writes are not all checked'
            WHEN a.hash_index IS NOT NULL AND a.content_attnum IS NOT NULL
                 AND NOT EXISTS (SELECT FROM pg_catalog.pg_index AS i
                                 JOIN pg_catalog.pg_class AS x ON x.oid = i.indexrelid
                                 WHERE i.indrelid = a.table_oid AND x.relname = a.hash_index)
            THEN format('CALL embedding_gate.repair(): its index %I is gone, and '
                        'duplicate_vector reads the whole table at every write', a.hash_index)
            END AS needs
FROM embedding_gate.attached_tables AS a
LEFT JOIN embedding_gate.settings AS s ON true;
COMMENT ON VIEW embedding_gate._needs IS
    'Per guarded table, what to run before its counts and checks can be trusted (NULL: '
    'nothing): after a data-only load, a settings row deleted, a trigger or the hash index '
    'of the gate''s gone.';
REVOKE ALL ON embedding_gate._needs FROM PUBLIC;
