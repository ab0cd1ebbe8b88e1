-- 0005 blank_like and duplicate_vector: which model embedded a chunk, each model's embedding
-- of empty text, the threshold, the columns the two checks write, and the hash index that
-- keeps the duplicate check one index probe per row.
-- Frozen once released: changes go in a new revision.

ALTER TABLE public.chunks
    ADD COLUMN embedding_model           text,
    ADD COLUMN quality_blank_similarity  double precision,
    ADD COLUMN quality_duplicate_of      text;
COMMENT ON COLUMN public.chunks.embedding_model IS
    'The embedding model that produced embedding (the loader records the server''s model id); '
    'blank_like compares the embedding with this model''s reference in '
    'embedding_gate.blank_references.';
COMMENT ON COLUMN public.chunks.quality_blank_similarity IS
    'Cosine similarity of a flagged embedding to its model''s embedding of empty text.';
COMMENT ON COLUMN public.chunks.quality_duplicate_of IS
    'duplicate_vector: the earlier chunk with the identical embedding and other content.';
COMMENT ON COLUMN public.chunks.quality_issues IS
    'Issue codes the gate found (nan_or_inf, low_norm, low_variance, sparse, blank_like, '
    'duplicate_vector); NULL when clean.';

ALTER TABLE public.embedding_quarantine
    ADD COLUMN embedding_model           text,
    ADD COLUMN quality_blank_similarity  double precision,
    ADD COLUMN quality_duplicate_of      text;

-- a hash index stores 4-byte hash codes, not the 3 KB vectors (a btree cannot hold those)
CREATE INDEX chunks_embedding_hash_idx ON public.chunks
    USING hash (public.vector_send(embedding)) WHERE embedding IS NOT NULL;

ALTER TABLE embedding_gate.settings
    ADD COLUMN blank_similarity double precision NOT NULL DEFAULT 0.4
    CONSTRAINT settings_blank_similarity_check CHECK (blank_similarity >= 0);
COMMENT ON COLUMN embedding_gate.settings.blank_similarity IS
    'blank_like fires when the cosine similarity of an embedding to its model''s embedding of '
    'empty text is at or above this. all-MiniLM-L6-v2: "." 0.81, "..." 0.54, "ㅋㅋㅋ" 0.48, '
    'real paragraphs below 0.15; preview_thresholds(blank_similarity => ...) shows the effect.';

CREATE TABLE embedding_gate.blank_references (
    model        text PRIMARY KEY,
    reference    real[] NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by  name NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE embedding_gate.blank_references IS
    'Per embedding model, its embedding of empty text: the reference of the blank_like check. '
    'Written by public.set_blank_reference(model, vector); a model without one is not checked.';

GRANT INSERT (embedding_model), UPDATE (embedding_model) ON public.chunks TO embedding_loader;
GRANT SELECT ON embedding_gate.blank_references TO embedding_loader;

-- gains a parameter: the old signature goes, gate.sql creates the new one
DROP FUNCTION public.preview_thresholds(double precision, double precision,
                                        double precision, double precision);
