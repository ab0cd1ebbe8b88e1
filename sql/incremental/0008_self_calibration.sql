-- 0008 the gate calibrates itself, and blank_like has more than one reference a model.
-- Each statement that writes a model's vectors (into a table whose owner may tune the gate)
-- appends their sum and count (no row is updated: concurrent writers never wait on one
-- another); the gate folds them into the model's calibration now and then, so that
-- blank_like applies at insert once a model has CALIBRATION_ROWS rows, whoever writes them.
-- The function is in sql/idempotent/016_calibration_deltas.sql.

CREATE TABLE embedding_gate._calibration_deltas (
    model  text NOT NULL,
    dim    integer NOT NULL,
    n        bigint NOT NULL CONSTRAINT _calibration_deltas_n_check CHECK (n > 0),
    total    public.vector NOT NULL,
    squares  public.vector NOT NULL
);
CREATE INDEX _calibration_deltas_model_idx ON embedding_gate._calibration_deltas (model, dim);
COMMENT ON TABLE embedding_gate._calibration_deltas IS
    'Per statement that wrote a model''s vectors, their count, sum and sum of squares per '
    'dimension (one row each, folded together now and then): sum(total) / sum(n) is the mean '
    'of every row the gate has seen of the model, its calibration '
    '(embedding_gate.model_calibrations, source ''stored rows''), and the squares give its '
    'spread.';
REVOKE ALL ON embedding_gate._calibration_deltas FROM PUBLIC;

-- a model's other references of degenerate text: punctuation alone, characters its
-- tokenizer does not know (blank_references keeps its embedding of empty text)
CREATE TABLE embedding_gate.degenerate_references (
    model        text NOT NULL,
    text         text NOT NULL,
    kind         text NOT NULL
                 CONSTRAINT degenerate_references_kind_check
                 CHECK (kind IN ('punctuation', 'unknown')),
    reference    real[] NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by  name NOT NULL DEFAULT SESSION_USER,
    CONSTRAINT degenerate_references_pkey PRIMARY KEY (model, text),
    CONSTRAINT degenerate_references_text_check CHECK (pg_catalog.length(text) BETWEEN 1 AND 16)
);
COMMENT ON TABLE embedding_gate.degenerate_references IS
    'Per embedding model, its embeddings of short degenerate texts besides the empty text '
    '(blank_references): punctuation alone (''?'', ''-'', ''*''), characters its tokenizer '
    'does not know (''𓀀''). blank_like takes the highest cosine over a model''s references. '
    'Written by public.set_degenerate_reference(model, vector, text, kind).';
REVOKE ALL ON embedding_gate.degenerate_references FROM PUBLIC;
GRANT SELECT ON embedding_gate.degenerate_references TO PUBLIC;

-- measured on all-MiniLM-L6-v2 and all-mpnet-base-v2 (docs/checks.md): with references of
-- empty text, punctuation and unknown characters, degenerate texts from 0.38, ordinary
-- paragraphs in English and Korean at most 0.26
ALTER TABLE embedding_gate.settings ALTER COLUMN blank_similarity SET DEFAULT 0.35;
UPDATE embedding_gate.settings SET blank_similarity = 0.35 WHERE blank_similarity = 0.4;
COMMENT ON COLUMN embedding_gate.settings.blank_similarity IS
    'blank_like fires when the cosine similarity of an embedding to one of its model''s '
    'references of degenerate text (empty text, punctuation, unknown characters), all with '
    'the model''s mean removed, is at or above this. all-MiniLM-L6-v2 and all-mpnet-base-v2: '
    'degenerate texts 0.38-1.00, ordinary paragraphs at most 0.26 (docs/checks.md); '
    'preview_thresholds(blank_similarity => ...) shows the effect.';

-- model_mismatch: a model's fingerprint is its per-dimension spread (with its mean): real
-- models have dimensions where their rows never vary (all-MiniLM-L6-v2: 3 of 384,
-- all-mpnet-base-v2: 4 of 768), which another model's vectors do not share
ALTER TABLE embedding_gate.model_calibrations ADD COLUMN spread real[];
COMMENT ON COLUMN embedding_gate.model_calibrations.spread IS
    'The standard deviation of each dimension over the rows the gate has seen of the model '
    '(NULL until there are 100): model_mismatch''s fingerprint. A mean from the loader''s '
    'sample or a writer (source ''sample'', ''given'') stays blank_like''s centre; the rows '
    'give the spread, and their mean on the dimensions where they never vary.';
COMMENT ON COLUMN embedding_gate.model_calibrations.sample_size IS
    'How many embeddings the calibration is over: the rows the spread is over where it has '
    'one, else the sentences or rows the mean is over.';
-- preview_thresholds() takes max_silent_deviation, and embedding_measures() gives the
-- deviation (a new signature, a new return type: the old functions go, and sql/idempotent/
-- creates the new ones; IF EXISTS: on a new database no function exists yet)
DROP FUNCTION IF EXISTS public.preview_thresholds(double precision, double precision,
    double precision, double precision, double precision);
DROP FUNCTION IF EXISTS public.embedding_measures(double precision);
DELETE FROM embedding_gate._sources
    WHERE name IN ('022_embedding_measures.sql', '023_preview_thresholds.sql');
ALTER TABLE embedding_gate.settings
    ADD COLUMN max_silent_deviation double precision NOT NULL DEFAULT 0.001
    CONSTRAINT settings_max_silent_deviation_check CHECK (max_silent_deviation >= 0);
COMMENT ON COLUMN embedding_gate.settings.max_silent_deviation IS
    'model_mismatch fires when a vector deviates from its model''s mean, on the dimensions '
    'where the model''s rows never vary, by more than this many times the model''s median '
    'spread. Measured (docs/checks.md): own rows at most 0.000065, another model''s vectors '
    '(cut, padded or projected to the dimension) at least 0.015.';
