-- One row of corpus figures. The totals of chunks and documents are the sums the triggers
-- keep (embedding_gate._row_counts: a count(*) would read the whole heap right after a bulk
-- load); each other count is a scan of a small partial index (see the baseline).
-- MATERIALIZED: counts is read several times below and must be computed once.
CREATE OR REPLACE FUNCTION embedding_gate._quality_summary()
RETURNS TABLE (documents bigint, chunks bigint, dropped bigint, empty_content bigint,
               embedded bigint, low_quality bigint, low_quality_pct numeric, quarantined bigint,
               issue_counts jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
-- attached: the attached tables that still exist (one dropped without the event trigger is
-- left out)
WITH attached AS (
    SELECT a.table_oid FROM embedding_gate.attached_tables AS a
    WHERE EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = a.table_oid)
),
quality AS (
    SELECT c.quality_issues FROM public.chunks AS c WHERE c.quality_issues IS NOT NULL
    UNION ALL
    SELECT q.quality_issues FROM public.embedding_quarantine AS q
    UNION ALL
    SELECT v.issues FROM embedding_gate.verdicts AS v JOIN attached AS a USING (table_oid)
    UNION ALL
    SELECT q.issues FROM embedding_gate.quarantine AS q JOIN attached AS a USING (table_oid)
),
counts AS MATERIALIZED (
    SELECT (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
            WHERE r.relation = 'documents') AS documents,
           (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
            WHERE r.relation = 'chunks') AS chunks,
           (SELECT count(*) FROM public.chunks WHERE drop) AS dropped,
           (SELECT count(*) FROM public.chunks WHERE COALESCE(content_length, 0) = 0)
               AS empty_content,
           (SELECT count(*) FROM public.chunks
            WHERE embedding IS NULL AND embedding_raw IS NULL) AS not_embedded,
           (SELECT count(*) FROM public.embedding_quarantine)
           + (SELECT count(*) FROM embedding_gate.quarantine JOIN attached USING (table_oid))
               AS quarantined,
           -- the embedded rows of attached tables, as their triggers count them
           (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
            JOIN attached AS a ON r.relation = a.table_oid::oid::text) AS attached_embedded,
           (SELECT count(*) FROM quality) AS low_quality,
           (SELECT COALESCE(pg_catalog.jsonb_object_agg(code, n ORDER BY code), '{}'::jsonb)
            FROM (SELECT code, count(*) AS n FROM quality, pg_catalog.unnest(quality_issues) AS code
                  GROUP BY code) AS per_code) AS issue_counts
)
SELECT documents,
       chunks,
       dropped,
       empty_content,
       chunks - not_embedded + quarantined + attached_embedded AS embedded,
       low_quality,
       pg_catalog.round(100.0 * low_quality
                        / NULLIF(chunks - not_embedded + quarantined + attached_embedded, 0),
                        2) AS low_quality_pct,
       quarantined,
       issue_counts
FROM counts
$$;
COMMENT ON FUNCTION embedding_gate._quality_summary() IS
    'The row of the view embedding_quality_summary (without JIT).';

CREATE OR REPLACE VIEW public.embedding_quality_summary AS
SELECT * FROM embedding_gate._quality_summary();
COMMENT ON VIEW public.embedding_quality_summary IS
    'One row with the reference pipeline''s figures, over chunks and every attached table. '
    'Quarantined embeddings count as embedded and low quality (they came back from the '
    'embedding server, bad).';
COMMENT ON COLUMN public.embedding_quality_summary.documents IS 'Rows in documents.';
COMMENT ON COLUMN public.embedding_quality_summary.chunks IS 'Rows in chunks.';
COMMENT ON COLUMN public.embedding_quality_summary.dropped IS 'Chunks with drop = true.';
COMMENT ON COLUMN public.embedding_quality_summary.empty_content IS
    'Chunks whose content is empty or NULL.';
COMMENT ON COLUMN public.embedding_quality_summary.embedded IS
    'Chunks with an embedding (embedding or embedding_raw), plus the rows of attached tables '
    'with one, plus quarantined ones.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality IS
    'Flagged chunks plus quarantined ones: the rows of low_quality_embeddings.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality_pct IS
    'low_quality as a percentage of embedded, two decimals.';
COMMENT ON COLUMN public.embedding_quality_summary.quarantined IS
    'Rows in embedding_quarantine and embedding_gate.quarantine (included in low_quality).';
COMMENT ON COLUMN public.embedding_quality_summary.issue_counts IS
    'Low-quality embeddings per issue code, e.g. {"low_norm": 12, "sparse": 3}.';
REVOKE EXECUTE ON FUNCTION embedding_gate._quality_summary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._quality_summary() TO embedding_loader;
GRANT SELECT ON public.embedding_quality_summary TO embedding_loader;
