-- The reference pipeline's diagnostic query, plus the drop candidates. The views read
-- functions that turn JIT off: the planner cannot know how many chunks are short or how
-- many a count covers, and at a million rows it would spend 100+ ms compiling a query that
-- runs in a few. SECURITY DEFINER, as a view reads its tables with its owner's rights: the
-- loader role reads the reports without any right on the quarantine (see the baseline's rights).
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
-- the reports' functions read with their owner's rights: only for readers of the reports
REVOKE EXECUTE ON FUNCTION embedding_gate._short_content_chunks() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._short_content_chunks() TO embedding_loader;
GRANT SELECT ON public.short_content_chunks TO embedding_loader;
