-- What the SQL engine's scans share (issue 25): the attached tables a scan reads as its
-- caller (as queries.ATTACHED_TABLES chooses them for the PL/Python engine's scans); the
-- issue codes are in 008_notify.sql.

-- The attached tables (not chunks) the caller's scans read: those whose schema and table
-- it may read, whose columns are still of trusted types (_refusal), and where no row-level
-- security policy the gate does not trust would be evaluated; in oid order.
CREATE OR REPLACE FUNCTION embedding_gate._sql_scannable() RETURNS TABLE (table_oid regclass)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT a.table_oid
FROM embedding_gate.attached_tables AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid
WHERE a.table_oid <> 'public.chunks'::pg_catalog.regclass
  AND pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE')
  AND pg_catalog.has_table_privilege(a.table_oid, 'SELECT')
  AND embedding_gate._refusal(a.table_oid, a.id_attnum, a.embedding_attnum, a.content_attnum,
                              a.model_attnum) IS NULL
  AND (embedding_gate._reads_all(a.table_oid) OR embedding_gate._policies_trusted(a.table_oid))
ORDER BY a.table_oid::oid
$$;
COMMENT ON FUNCTION embedding_gate._sql_scannable() IS
    'The attached tables (chunks aside) the SQL engine''s scans read as their caller.';
