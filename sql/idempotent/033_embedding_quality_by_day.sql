-- Quality over time: per day of insert, table and model, how many embeddings were checked
-- and flagged, per check. Quarantined rows count on the day they were quarantined. Counts,
-- no content, and only for a caller that may read chunks (embedding_gate._caller()).
CREATE OR REPLACE FUNCTION embedding_gate._quality_by_day()
RETURNS TABLE (day date, table_name text, embedding_model text, checked bigint,
               flagged bigint, flagged_pct numeric, issue_counts jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
WITH mine AS (
    SELECT pg_catalog.has_table_privilege(embedding_gate._caller(), 'public.chunks', 'SELECT')
           AS chunks
),
rows AS (
    SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day, c.embedding_model, c.quality_issues
    FROM public.chunks AS c, mine
    WHERE mine.chunks AND (c.embedding IS NOT NULL OR c.embedding_raw IS NOT NULL)
    UNION ALL
    SELECT (q.quarantined_at AT TIME ZONE 'UTC')::date, q.embedding_model, q.quality_issues
    FROM public.embedding_quarantine AS q, mine
    WHERE mine.chunks
),
per_code AS (
    SELECT r.day, r.embedding_model, code, count(*) AS n
    FROM rows AS r, unnest(r.quality_issues) AS code
    GROUP BY r.day, r.embedding_model, code
)
SELECT t.day,
       'public.chunks',
       t.embedding_model,
       t.checked,
       t.flagged,
       round(100.0 * t.flagged / t.checked, 2),
       COALESCE((SELECT jsonb_object_agg(p.code, p.n ORDER BY p.code) FROM per_code AS p
                 WHERE p.day = t.day AND p.embedding_model IS NOT DISTINCT FROM t.embedding_model),
                '{}'::jsonb)
FROM (SELECT r.day, r.embedding_model, count(*) AS checked,
             count(*) FILTER (WHERE r.quality_issues IS NOT NULL) AS flagged
      FROM rows AS r GROUP BY r.day, r.embedding_model) AS t
ORDER BY t.day, t.embedding_model
$$;
COMMENT ON FUNCTION embedding_gate._quality_by_day() IS
    'The rows of the view embedding_quality_by_day (without JIT).';
-- counts of chunks only for a caller that may read chunks: any role may ask
GRANT EXECUTE ON FUNCTION embedding_gate._quality_by_day() TO PUBLIC;

CREATE OR REPLACE VIEW public.embedding_quality_by_day AS
SELECT * FROM embedding_gate._quality_by_day();
COMMENT ON VIEW public.embedding_quality_by_day IS
    'Quality over time: per day (UTC) an embedding was stored, table and model, how many were '
    'checked and flagged, the flagged percentage and the count per issue code. Quarantined '
    'embeddings count on the day they were quarantined.';
COMMENT ON COLUMN public.embedding_quality_by_day.day IS 'The day (UTC) the rows were stored.';
COMMENT ON COLUMN public.embedding_quality_by_day.table_name IS
    'The guarded table, schema-qualified.';
COMMENT ON COLUMN public.embedding_quality_by_day.embedding_model IS
    'The model that embedded the rows (NULL where the writer named none).';
COMMENT ON COLUMN public.embedding_quality_by_day.checked IS 'Embeddings stored that day.';
COMMENT ON COLUMN public.embedding_quality_by_day.flagged IS
    'Of them, flagged or quarantined.';
COMMENT ON COLUMN public.embedding_quality_by_day.flagged_pct IS
    'flagged as a percentage of checked, two decimals.';
COMMENT ON COLUMN public.embedding_quality_by_day.issue_counts IS
    'Flagged embeddings per issue code, e.g. {"blank_like": 26}.';
GRANT SELECT ON public.embedding_quality_by_day TO PUBLIC;
