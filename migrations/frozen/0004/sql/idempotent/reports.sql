-- The reports: views a person reads. CREATE OR REPLACE: re-applied by every revision that
-- changes them (a view can only gain columns at the end; dropping one needs a DROP first).

CREATE OR REPLACE VIEW public.low_quality_embeddings AS
SELECT c.chunk_id,
       c.doc_id,
       c.quality_issues AS issues,
       c.quality_reason AS reason,
       c.quality_norm AS norm,
       c.quality_variance AS variance,
       c.quality_near_zero_ratio AS near_zero_ratio,
       c.content_length,
       pg_catalog.left(c.content, 100) AS content_preview,
       c.quality_checked_at AS checked_at,
       false AS quarantined
FROM public.chunks AS c
WHERE c.quality_issues IS NOT NULL
UNION ALL
SELECT q.chunk_id,
       q.doc_id,
       q.quality_issues,
       q.quality_reason,
       q.quality_norm,
       q.quality_variance,
       q.quality_near_zero_ratio,
       pg_catalog.char_length(q.content),
       pg_catalog.left(q.content, 100),
       q.quarantined_at,
       true
FROM public.embedding_quarantine AS q
ORDER BY checked_at DESC, chunk_id;
COMMENT ON VIEW public.low_quality_embeddings IS
    'One row per embedding the gate flagged: flagged rows of chunks (quarantined = false) and '
    'the rows embedding_quarantine holds instead (quarantined = true). Newest first.';
COMMENT ON COLUMN public.low_quality_embeddings.chunk_id IS 'The chunk.';
COMMENT ON COLUMN public.low_quality_embeddings.doc_id IS 'Its document.';
COMMENT ON COLUMN public.low_quality_embeddings.issues IS
    'Every issue code that applies: nan_or_inf, low_norm, low_variance, sparse.';
COMMENT ON COLUMN public.low_quality_embeddings.reason IS
    'Readable reasons with the measured values, e.g. "norm too low (0.0234)".';
COMMENT ON COLUMN public.low_quality_embeddings.norm IS 'L2 norm (NULL with NaN/Inf).';
COMMENT ON COLUMN public.low_quality_embeddings.variance IS
    'Population variance of the components (NULL with NaN/Inf).';
COMMENT ON COLUMN public.low_quality_embeddings.near_zero_ratio IS
    'Share of components with abs(x) < near_zero_epsilon.';
COMMENT ON COLUMN public.low_quality_embeddings.content_length IS
    'Length of the content in characters.';
COMMENT ON COLUMN public.low_quality_embeddings.content_preview IS
    'The first 100 characters of the content (characters, not bytes).';
COMMENT ON COLUMN public.low_quality_embeddings.checked_at IS
    'When the gate flagged it, or quarantined it.';
COMMENT ON COLUMN public.low_quality_embeddings.quarantined IS
    'true: the row is in embedding_quarantine, not in chunks (mode quarantine).';

-- The reference pipeline's diagnostic query, plus the drop candidates. The views read
-- functions that turn JIT off: the planner cannot know how many chunks are short or how
-- many a count covers, and at a million rows it would spend 100+ ms compiling a query that
-- runs in a few. SECURITY DEFINER, as a view reads its tables with its owner's rights: the
-- loader role reads the reports without any right on the quarantine (see 0004).
CREATE OR REPLACE FUNCTION embedding_gate._short_content_chunks()
RETURNS TABLE (chunk_id text, doc_id text, content_length integer, content_preview text,
               drop_candidate boolean)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
SELECT u.chunk_id,
       u.doc_id,
       u.content_length,
       pg_catalog.left(u.content, 100) AS content_preview,
       u.content_length < s.min_content_length AS drop_candidate
FROM (
    -- each branch repeats the predicate of chunks_embedded_length_idx, so both use it
    (SELECT e.chunk_id, e.doc_id, e.content_length, e.content FROM public.chunks AS e
     WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
     ORDER BY e.content_length, e.chunk_id LIMIT 10)
    UNION
    SELECT e.chunk_id, e.doc_id, e.content_length, e.content FROM public.chunks AS e
    WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
      AND e.content_length < (SELECT min_content_length FROM embedding_gate.settings)
) AS u, embedding_gate.settings AS s
ORDER BY u.content_length, u.chunk_id
$$;
COMMENT ON FUNCTION embedding_gate._short_content_chunks() IS
    'The rows of the view short_content_chunks (without JIT).';

CREATE OR REPLACE VIEW public.short_content_chunks AS
SELECT * FROM embedding_gate._short_content_chunks();
COMMENT ON VIEW public.short_content_chunks IS
    'The shortest embedded, non-dropped chunks, shortest first: every chunk under '
    'embedding_gate.settings.min_content_length characters (default 10), and at least the ten '
    'shortest. Short chunks (blank, punctuation) are where useless embeddings come from.';
COMMENT ON COLUMN public.short_content_chunks.chunk_id IS 'The chunk.';
COMMENT ON COLUMN public.short_content_chunks.doc_id IS 'Its document.';
COMMENT ON COLUMN public.short_content_chunks.content_length IS
    'Length of the content in characters.';
COMMENT ON COLUMN public.short_content_chunks.content_preview IS
    'The first 100 characters of the content.';
COMMENT ON COLUMN public.short_content_chunks.drop_candidate IS
    'Shorter than min_content_length: consider setting drop = true (or not embedding it).';

-- One row of corpus figures. Each count but the total is a scan of a small partial index
-- (see 0003); the total is an index-only scan once (auto)vacuum has run. MATERIALIZED:
-- counts is read several times below and must be computed once.
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
WITH quality AS (
    SELECT c.quality_issues FROM public.chunks AS c WHERE c.quality_issues IS NOT NULL
    UNION ALL
    SELECT q.quality_issues FROM public.embedding_quarantine AS q
),
counts AS MATERIALIZED (
    SELECT (SELECT count(*) FROM public.documents) AS documents,
           (SELECT count(*) FROM public.chunks) AS chunks,
           (SELECT count(*) FROM public.chunks WHERE drop) AS dropped,
           (SELECT count(*) FROM public.chunks WHERE COALESCE(content_length, 0) = 0)
               AS empty_content,
           (SELECT count(*) FROM public.chunks
            WHERE embedding IS NULL AND embedding_raw IS NULL) AS not_embedded,
           (SELECT count(*) FROM public.embedding_quarantine) AS quarantined,
           (SELECT count(*) FROM quality) AS low_quality,
           (SELECT COALESCE(pg_catalog.jsonb_object_agg(code, n ORDER BY code), '{}'::jsonb)
            FROM (SELECT code, count(*) AS n FROM quality, pg_catalog.unnest(quality_issues) AS code
                  GROUP BY code) AS per_code) AS issue_counts
)
SELECT documents,
       chunks,
       dropped,
       empty_content,
       chunks - not_embedded + quarantined AS embedded,
       low_quality,
       pg_catalog.round(100.0 * low_quality
                        / NULLIF(chunks - not_embedded + quarantined, 0), 2) AS low_quality_pct,
       quarantined,
       issue_counts
FROM counts
$$;
COMMENT ON FUNCTION embedding_gate._quality_summary() IS
    'The row of the view embedding_quality_summary (without JIT).';

CREATE OR REPLACE VIEW public.embedding_quality_summary AS
SELECT * FROM embedding_gate._quality_summary();
COMMENT ON VIEW public.embedding_quality_summary IS
    'One row with the reference pipeline''s figures. Quarantined embeddings count as embedded '
    'and low quality (they came back from the embedding server, bad).';
COMMENT ON COLUMN public.embedding_quality_summary.documents IS 'Rows in documents.';
COMMENT ON COLUMN public.embedding_quality_summary.chunks IS 'Rows in chunks.';
COMMENT ON COLUMN public.embedding_quality_summary.dropped IS 'Chunks with drop = true.';
COMMENT ON COLUMN public.embedding_quality_summary.empty_content IS
    'Chunks whose content is empty or NULL.';
COMMENT ON COLUMN public.embedding_quality_summary.embedded IS
    'Chunks with an embedding (embedding or embedding_raw), plus quarantined ones.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality IS
    'Flagged chunks plus quarantined ones: the rows of low_quality_embeddings.';
COMMENT ON COLUMN public.embedding_quality_summary.low_quality_pct IS
    'low_quality as a percentage of embedded, two decimals.';
COMMENT ON COLUMN public.embedding_quality_summary.quarantined IS
    'Rows in embedding_quarantine (included in low_quality).';
COMMENT ON COLUMN public.embedding_quality_summary.issue_counts IS
    'Low-quality embeddings per issue code, e.g. {"low_norm": 12, "sparse": 3}.';
