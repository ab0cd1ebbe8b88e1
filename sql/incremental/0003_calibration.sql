-- 0003 blank_like for every model: each model's calibration, its mean embedding. An
-- anisotropic model (the e5 family, bge-m3) embeds unrelated texts at cosine 0.7-1.0, so
-- every ordinary chunk looked "like the empty text"; blank_like now measures the cosine
-- after removing the model's mean (its common direction) from both vectors.

CREATE TABLE embedding_gate.model_calibrations (
    model        text PRIMARY KEY,
    mean         real[] NOT NULL,
    sample_size  integer NOT NULL CONSTRAINT model_calibrations_sample_size_check CHECK (sample_size > 0),
    source       text NOT NULL
                 CONSTRAINT model_calibrations_source_check
                 CHECK (source IN ('sample', 'given', 'stored rows')),
    recorded_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    recorded_by  name NOT NULL DEFAULT SESSION_USER
);
COMMENT ON TABLE embedding_gate.model_calibrations IS
    'Per embedding model, its mean embedding: blank_like removes it before comparing a chunk '
    'with the blank reference. From the loader''s sample of ordinary sentences (source '
    '''sample''), from a writer (set_blank_calibration, ''given''), or computed by '
    'recheck_embeddings() from the model''s stored rows (''stored rows''). A model without '
    'one is not checked for blank_like.';
COMMENT ON COLUMN embedding_gate.model_calibrations.sample_size IS
    'How many embeddings the mean is over.';

REVOKE ALL ON embedding_gate.model_calibrations FROM PUBLIC;
GRANT SELECT ON embedding_gate.model_calibrations TO embedding_loader;

COMMENT ON COLUMN embedding_gate.settings.blank_similarity IS
    'blank_like fires when the cosine similarity of an embedding to its model''s embedding of '
    'empty text, both with the model''s mean removed, is at or above this. all-MiniLM-L6-v2: '
    '"." 0.81, "..." 0.55, "ㅋㅋㅋ" 0.43, real paragraphs below 0.19; '
    'preview_thresholds(blank_similarity => ...) shows the effect.';
