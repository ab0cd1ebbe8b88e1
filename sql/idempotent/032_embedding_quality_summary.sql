-- One row of corpus figures. The totals of chunks and documents are the sums the triggers
-- keep (embedding_gate._row_counts: a count(*) would read the whole heap right after a bulk
-- load); each other count is a scan of a small partial index (see the baseline).
-- Counts, no content: each table counts only for a caller that may read its id and
-- embedding columns (the role that called in, embedding_gate._caller(); documents with
-- SELECT on documents). Rows a row-level security policy hides from the caller are
-- counted: a count per table is no row (low_quality_embeddings shows the rows themselves
-- only to who may read them). MATERIALIZED: counts is read several times below.
-- enable_seqscan = off: right after a bulk load, before ANALYZE, the planner knows nothing
-- of chunks and guesses that `drop` or `quality_issues IS NOT NULL` holds for a third to a
-- half of the rows, so it reads the whole heap (4.0 s at 1,000,000 768-d chunks) instead of
-- the small partial index each count has (27 ms): every count here has one.
CREATE OR REPLACE FUNCTION embedding_gate._quality_summary()
RETURNS TABLE (documents bigint, chunks bigint, dropped bigint, empty_content bigint,
               embedded bigint, low_quality bigint, low_quality_pct numeric, quarantined bigint,
               issue_counts jsonb, tables jsonb)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_seqscan = off
AS $$
WITH seen AS MATERIALIZED (
    SELECT a.table_oid, a.row_key, embedding_gate._qualified(a.table_oid) AS name
    FROM embedding_gate.attached_tables AS a
    JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid
    WHERE COALESCE(pg_catalog.has_column_privilege(embedding_gate._caller(), a.table_oid,
                                                   a.id_attnum, 'SELECT')
                   AND pg_catalog.has_column_privilege(embedding_gate._caller(), a.table_oid,
                                                       a.embedding_attnum, 'SELECT'), false)
),
-- the attached tables the caller may read (chunks has figures of its own)
attached AS (SELECT s.table_oid, s.row_key, s.name FROM seen AS s
             WHERE s.table_oid <> 'public.chunks'::regclass),
mine AS (SELECT EXISTS (SELECT FROM seen AS s WHERE s.table_oid = 'public.chunks'::regclass)
                AS chunks,
                pg_catalog.has_table_privilege(embedding_gate._caller(), 'public.documents',
                                               'SELECT')
                AS documents),
quality AS (
    SELECT 'public.chunks' AS name, c.quality_issues, false AS quarantined
    FROM public.chunks AS c, mine WHERE mine.chunks AND c.quality_issues IS NOT NULL
    UNION ALL
    SELECT 'public.chunks', q.quality_issues, true
    FROM public.embedding_quarantine AS q, mine WHERE mine.chunks
    UNION ALL
    SELECT a.name, v.issues, false FROM embedding_gate.verdicts AS v JOIN attached AS a USING (table_oid)
    UNION ALL
    SELECT a.name, q.issues, true FROM embedding_gate.quarantine AS q JOIN attached AS a USING (table_oid)
    WHERE q.row IS NOT NULL
),
-- embedded rows per table: chunks' with an embedding (embedding or embedding_raw) plus its
-- quarantined ones; an attached table's as its triggers count them
per_table AS (
    SELECT 'public.chunks'::regclass AS table_oid, 'public.chunks' AS name,
           (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
            WHERE r.relation = 'chunks')
           - (SELECT count(*) FROM public.chunks
              WHERE embedding IS NULL AND embedding_raw IS NULL)
           + (SELECT count(*) FROM public.embedding_quarantine) AS embedded
    FROM mine WHERE mine.chunks
    UNION ALL
    SELECT a.table_oid, a.name,
           (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
            WHERE r.relation = a.row_key::text)
           + (SELECT count(*) FROM embedding_gate.quarantine AS q
              WHERE q.table_oid = a.table_oid AND q.row IS NOT NULL)
    FROM attached AS a
),
figures AS MATERIALIZED (
    SELECT p.name, p.embedded, n.needs,
           (SELECT count(*) FROM quality AS q WHERE q.name = p.name) AS low_quality,
           (SELECT count(*) FROM quality AS q WHERE q.name = p.name AND q.quarantined)
               AS quarantined
    FROM per_table AS p
    LEFT JOIN embedding_gate._needs AS n ON n.table_oid = p.table_oid
),
counts AS MATERIALIZED (
    SELECT CASE WHEN mine.documents THEN
               (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
                WHERE r.relation = 'documents') END AS documents,
           CASE WHEN mine.chunks THEN
               (SELECT COALESCE(sum(r.delta), 0)::bigint FROM embedding_gate._row_counts AS r
                WHERE r.relation = 'chunks') END AS chunks,
           CASE WHEN mine.chunks THEN (SELECT count(*) FROM public.chunks WHERE drop) END
               AS dropped,
           CASE WHEN mine.chunks THEN
               (SELECT count(*) FROM public.chunks WHERE COALESCE(content_length, 0) = 0) END
               AS empty_content,
           (SELECT COALESCE(sum(f.embedded), 0)::bigint FROM figures AS f) AS embedded,
           (SELECT COALESCE(sum(f.low_quality), 0)::bigint FROM figures AS f) AS low_quality,
           (SELECT COALESCE(sum(f.quarantined), 0)::bigint FROM figures AS f) AS quarantined,
           (SELECT COALESCE(pg_catalog.jsonb_object_agg(code, n ORDER BY code), '{}'::jsonb)
            FROM (SELECT code, count(*) AS n FROM quality, pg_catalog.unnest(quality_issues) AS code
                  GROUP BY code) AS per_code) AS issue_counts,
           (SELECT COALESCE(pg_catalog.jsonb_object_agg(f.name, pg_catalog.jsonb_build_object(
                       'embedded', f.embedded, 'low_quality', f.low_quality,
                       'quarantined', f.quarantined)
                       || CASE WHEN f.needs IS NOT NULL
                               THEN pg_catalog.jsonb_build_object('needs', f.needs)
                               ELSE '{}'::jsonb END ORDER BY f.name), '{}'::jsonb)
            FROM figures AS f) AS tables
    FROM mine
)
SELECT documents,
       chunks,
       dropped,
       empty_content,
       embedded,
       low_quality,
       pg_catalog.round(100.0 * low_quality / NULLIF(embedded, 0), 2) AS low_quality_pct,
       quarantined,
       issue_counts,
       tables
FROM counts
$$;
COMMENT ON FUNCTION embedding_gate._quality_summary() IS
    'The row of the view embedding_quality_summary (without JIT).';

CREATE OR REPLACE VIEW public.embedding_quality_summary AS
SELECT * FROM embedding_gate._quality_summary();
COMMENT ON VIEW public.embedding_quality_summary IS
    'One row with the reference pipeline''s figures, over chunks and every attached table the '
    'reader may read (counts only; see the column comments for what each counts). '
    'Quarantined embeddings count as embedded and low quality (they came back from the '
    'embedding server, bad).';
COMMENT ON COLUMN public.embedding_quality_summary.documents IS
    'Rows in documents (NULL for a reader that may not read documents).';
COMMENT ON COLUMN public.embedding_quality_summary.chunks IS
    'Rows in chunks alone, embedded or not (NULL for a reader that may not read chunks); '
    'attached tables are counted in embedded and tables.';
COMMENT ON COLUMN public.embedding_quality_summary.dropped IS 'Chunks with drop = true.';
COMMENT ON COLUMN public.embedding_quality_summary.empty_content IS
    'Chunks whose content is empty or NULL.';
COMMENT ON COLUMN public.embedding_quality_summary.embedded IS
    'Rows with an embedding in every table counted (chunks: embedding or embedding_raw, '
    'quarantined ones included; attached tables: their rows with an embedding, and their '
    'quarantined ones): the sum of tables.*.embedded.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality IS
    'Flagged plus quarantined rows of every table counted: the sum of tables.*.low_quality.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality_pct IS
    'low_quality as a percentage of embedded (the same tables), two decimals.';
COMMENT ON COLUMN public.embedding_quality_summary.quarantined IS
    'Rows in embedding_quarantine and embedding_gate.quarantine (included in low_quality).';
COMMENT ON COLUMN public.embedding_quality_summary.issue_counts IS
    'Low-quality embeddings of every table counted, per issue code, e.g. '
    '{"low_norm": 12, "sparse": 3}.';
COMMENT ON COLUMN public.embedding_quality_summary.tables IS
    'Per table counted (schema-qualified): {"embedded": n, "low_quality": n, '
    '"quarantined": n}, and "needs": what to run before its counts can be trusted, where '
    'something is (after a data-only load, say: CALL embedding_gate.repair()).';
-- counts of what each caller may read: any role may ask
GRANT SELECT ON public.embedding_quality_summary TO PUBLIC;
