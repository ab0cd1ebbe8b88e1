-- The reference pipeline's diagnostic query, plus the drop candidates. The views read
-- functions that turn JIT off: the planner cannot know how many chunks are short or how
-- many a count covers, and at a million rows it would spend 100+ ms compiling a query that
-- runs in a few. SECURITY INVOKER: it reads chunks as its reader, so the reader's privileges
-- and row-level security apply (nothing for a role that may not read chunks, no preview
-- without SELECT on their content). enable_seqscan = off: right after a bulk load, with no
-- statistics yet, the planner read the whole heap (2.9 s at 1,000,000 chunks) rather than
-- the partial index of embedded chunks by length.
CREATE OR REPLACE FUNCTION embedding_gate._short_content_chunks()
RETURNS TABLE (chunk_id text, doc_id text, content_length integer, content_preview text,
               drop_candidate boolean)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_seqscan = off
AS $$
DECLARE
    shortest integer := (SELECT s.min_content_length FROM embedding_gate.settings AS s);
    column_name text;
BEGIN
    FOREACH column_name IN ARRAY ARRAY['chunk_id', 'doc_id', 'content_length', 'drop',
                                       'embedding', 'embedding_raw'] LOOP
        IF NOT pg_catalog.has_column_privilege('public.chunks', column_name, 'SELECT') THEN
            RETURN;
        END IF;
    END LOOP;
    IF pg_catalog.has_column_privilege('public.chunks', 'content', 'SELECT') THEN
        RETURN QUERY
        SELECT u.chunk_id, u.doc_id, u.content_length, pg_catalog.left(u.content, 100),
               u.content_length < shortest
        FROM (
            -- each branch repeats the predicate of chunks_embedded_length_idx, so both use it
            (SELECT e.chunk_id, e.doc_id, e.content_length, e.content FROM public.chunks AS e
             WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
             ORDER BY e.content_length, e.chunk_id LIMIT 10)
            UNION
            SELECT e.chunk_id, e.doc_id, e.content_length, e.content FROM public.chunks AS e
            WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
              AND e.content_length < shortest
        ) AS u
        ORDER BY u.content_length, u.chunk_id;
    ELSE
        RETURN QUERY
        SELECT u.chunk_id, u.doc_id, u.content_length, NULL::text, u.content_length < shortest
        FROM (
            (SELECT e.chunk_id, e.doc_id, e.content_length FROM public.chunks AS e
             WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
             ORDER BY e.content_length, e.chunk_id LIMIT 10)
            UNION
            SELECT e.chunk_id, e.doc_id, e.content_length FROM public.chunks AS e
            WHERE NOT e.drop AND (e.embedding IS NOT NULL OR e.embedding_raw IS NOT NULL)
              AND e.content_length < shortest
        ) AS u
        ORDER BY u.content_length, u.chunk_id;
    END IF;
END
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
-- it reads chunks with its reader's rights: any role may ask
GRANT SELECT ON public.short_content_chunks TO PUBLIC;
