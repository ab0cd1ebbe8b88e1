-- 0002 quality gate: the quality columns of chunks, the settings, the quarantine.
-- Frozen once released: changes go in a new revision.

ALTER TABLE public.chunks
    ADD COLUMN embedding_raw            real[],
    ADD COLUMN quality_issues           text[],
    ADD COLUMN quality_reason           text,
    ADD COLUMN quality_norm             double precision,
    ADD COLUMN quality_variance         double precision,
    ADD COLUMN quality_near_zero_ratio  double precision,
    -- NULL on rows stored before the gate existed: CALL recheck_embeddings() checks them
    ADD COLUMN quality_checked_at       timestamptz,
    ADD CONSTRAINT chunks_one_embedding_input
        CHECK (embedding IS NULL OR embedding_raw IS NULL);
ALTER TABLE public.chunks ALTER COLUMN quality_checked_at SET DEFAULT pg_catalog.now();

-- embedding_raw must have the embedding column's dimension (pgvector keeps it as typmod)
DO $$
DECLARE
    dim integer := (SELECT atttypmod FROM pg_catalog.pg_attribute
                    WHERE attrelid = 'public.chunks'::pg_catalog.regclass AND attname = 'embedding');
BEGIN
    EXECUTE pg_catalog.format(
        'ALTER TABLE public.chunks ADD CONSTRAINT chunks_embedding_raw_dimension CHECK ('
        'embedding_raw IS NULL OR (pg_catalog.array_ndims(embedding_raw) = 1 '
        'AND pg_catalog.cardinality(embedding_raw) = %s))', dim);
END
$$;

CREATE INDEX chunks_flagged_idx ON public.chunks (chunk_id) WHERE quality_issues IS NOT NULL;

COMMENT ON COLUMN public.chunks.embedding_raw IS
    'Input for vectors pgvector cannot hold (NaN/Inf components): write the vector here as '
    'real[]; the gate moves finite ones into embedding and flags the others nan_or_inf, '
    'keeping their raw values.';
COMMENT ON COLUMN public.chunks.quality_issues IS
    'Issue codes the gate found (nan_or_inf, low_norm, low_variance, sparse); NULL when clean.';
COMMENT ON COLUMN public.chunks.quality_reason IS
    'Readable reasons with the measured values, e.g. "norm too low (0.0234)"; NULL when clean.';
COMMENT ON COLUMN public.chunks.quality_norm IS 'L2 norm of a flagged embedding.';
COMMENT ON COLUMN public.chunks.quality_variance IS
    'Population variance of a flagged embedding''s components.';
COMMENT ON COLUMN public.chunks.quality_near_zero_ratio IS
    'Share of a flagged embedding''s components with abs(x) < near_zero_epsilon.';
COMMENT ON COLUMN public.chunks.quality_checked_at IS
    'When the gate checked the row (insert, embedding update, or a recheck that flagged it).';

CREATE TABLE embedding_gate.settings (
    singleton            boolean PRIMARY KEY DEFAULT true
                         CONSTRAINT settings_singleton CHECK (singleton),
    mode                 text NOT NULL DEFAULT 'flag'
                         CONSTRAINT settings_mode_check CHECK (mode IN ('flag', 'quarantine', 'reject')),
    min_norm             double precision NOT NULL DEFAULT 0.1
                         CONSTRAINT settings_min_norm_check CHECK (min_norm >= 0),
    min_variance         double precision NOT NULL DEFAULT 0.001
                         CONSTRAINT settings_min_variance_check CHECK (min_variance >= 0),
    near_zero_epsilon    double precision NOT NULL DEFAULT 0.001
                         CONSTRAINT settings_near_zero_epsilon_check CHECK (near_zero_epsilon >= 0),
    max_near_zero_ratio  double precision NOT NULL DEFAULT 0.9
                         CONSTRAINT settings_max_near_zero_ratio_check
                         CHECK (max_near_zero_ratio BETWEEN 0 AND 1)
);
INSERT INTO embedding_gate.settings DEFAULT VALUES;
COMMENT ON TABLE embedding_gate.settings IS
    'Mode and thresholds of the gate (one row; UPDATE it). Each can be overridden for one '
    'transaction with SET LOCAL embedding_gate.<column> = ..., by roles that may UPDATE this table.';
COMMENT ON COLUMN embedding_gate.settings.mode IS
    'flag: store bad rows with their issue codes; quarantine: move them to '
    'embedding_quarantine and go on; reject: fail the statement (SQLSTATE QG001).';
COMMENT ON COLUMN embedding_gate.settings.min_norm IS 'low_norm fires when the L2 norm is below this.';
COMMENT ON COLUMN embedding_gate.settings.min_variance IS
    'low_variance fires when the population variance is below this. A unit-normalised '
    'd-dimensional vector has variance about 1/d (0.0013 at d=768, 0.0026 at d=384): '
    'choose this with the dimension in mind.';
COMMENT ON COLUMN embedding_gate.settings.near_zero_epsilon IS
    'A component with abs(x) below this counts as near zero.';
COMMENT ON COLUMN embedding_gate.settings.max_near_zero_ratio IS
    'sparse fires when the share of near-zero components is above this.';

CREATE TABLE public.embedding_quarantine (
    chunk_id                 text PRIMARY KEY,
    doc_id                   text,
    chunk_index              integer,
    content                  text,
    drop                     boolean,
    metadata                 jsonb,
    embedding_raw            real[] NOT NULL,
    quality_issues           text[] NOT NULL,
    quality_reason           text NOT NULL,
    quality_norm             double precision,
    quality_variance         double precision,
    quality_near_zero_ratio  double precision,
    quarantined_at           timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE public.embedding_quarantine IS
    'Chunks the gate kept out of chunks in quarantine mode, with their raw vectors and reasons.';
COMMENT ON COLUMN public.embedding_quarantine.embedding_raw IS
    'The vector as it arrived, NaN and Inf included.';
