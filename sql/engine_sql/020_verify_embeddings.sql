-- verify_embeddings() in the SQL engine (what scans.verify_sample() does in the PL/Python
-- one): a random sample of sample_size stored embeddings of chunks, and as many of each
-- attached table the caller may read, judged with each table's current thresholds;
-- changes nothing. It runs as its caller: a role that may not read chunks is shown the
-- attached tables it may read, not an error.
CREATE OR REPLACE FUNCTION public.verify_embeddings(sample_size integer DEFAULT 100)
RETURNS TABLE (checked bigint, low_quality bigint, low_quality_rate double precision, counts jsonb)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_variable
DECLARE
    size integer := GREATEST(COALESCE($1, 0), 0);
    -- each judged row's codes, comma-separated ('' for a clean row)
    judged text[] := '{}';
    attached regclass;
    n bigint;
    low bigint;
BEGIN
    IF pg_catalog.has_table_privilege('public.chunks', 'SELECT') THEN
        judged := judged || ARRAY(
            SELECT pg_catalog.array_to_string(j.issues, ',')
            FROM embedding_gate._sql_judge_chunks(
                     ARRAY(SELECT c.chunk_id FROM public.chunks AS c
                           WHERE c.embedding IS NOT NULL OR c.embedding_raw IS NOT NULL
                           ORDER BY pg_catalog.random() LIMIT size),
                     embedding_gate._sql_settings(), NULL) AS j);
    END IF;
    FOR attached IN SELECT a.table_oid FROM embedding_gate._sql_scannable() AS a LOOP
        judged := judged || ARRAY(
            SELECT pg_catalog.array_to_string(s.issues, ',')
            FROM embedding_gate._sql_scan_attached(
                     attached, embedding_gate._sql_table_settings(attached), size) AS s);
    END LOOP;
    n := pg_catalog.cardinality(judged);
    low := (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(judged) AS x WHERE x <> '');
    RETURN QUERY
    SELECT n, low, CASE WHEN n > 0 THEN low::double precision / n ELSE 0 END,
           (SELECT pg_catalog.jsonb_object_agg(k.code,
                       (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(judged) AS x
                        WHERE k.code = ANY (pg_catalog.string_to_array(x, ','))))
            FROM pg_catalog.unnest(embedding_gate._codes()) AS k(code));
END
$$;
COMMENT ON FUNCTION public.verify_embeddings(integer) IS
    'Re-checks a random sample of sample_size stored embeddings of chunks, and as many of each '
    'attached table, with the current thresholds and reports checked, low quality, the rate '
    'and counts per issue code. Changes nothing.';
