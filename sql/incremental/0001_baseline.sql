-- 0001 baseline (release 0.1.0): the tables, roles and rights of the embedding gate.
-- Placeholders: {{embedding_dim}}. Released: this file never changes again (the revision
-- pins its sha256); a change to a table goes in a new revision's incremental file. The
-- functions, triggers and views are in sql/idempotent/, applied from the tree at head.

-- Refuse early, with a way out, what would otherwise fail obscurely later.
DO $$
DECLARE
    vector_schema name := (SELECT extnamespace::pg_catalog.regnamespace::name
                           FROM pg_catalog.pg_extension WHERE extname = 'vector');
BEGIN
    IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
        RAISE EXCEPTION 'database "%" uses encoding %; the embedding gate needs UTF8',
            pg_catalog.current_database(), pg_catalog.getdatabaseencoding()
            USING HINT = 'create the database with ENCODING ''UTF8'': content lengths are counted in characters';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'vector') THEN
        RAISE EXCEPTION 'pgvector is not installed on this PostgreSQL server (extension "vector" is not available)'
            USING ERRCODE = 'undefined_file',
                  HINT = 'install it on the database server: as root on Debian, run scripts/install-server.sh '
                         'from this repository; elsewhere build https://github.com/pgvector/pgvector '
                         '(make && make install) or install your distribution''s pgvector package';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'plpython3u') THEN
        RAISE EXCEPTION 'PL/Python is not installed on this PostgreSQL server (extension "plpython3u" is not available)'
            USING ERRCODE = 'undefined_file',
                  HINT = 'install it on the database server: on Debian, apt-get install postgresql-plpython3-15 '
                         '(or run scripts/install-server.sh as root)';
    END IF;
    -- every function of the gate names the type public.vector: one place, known at deploy
    IF vector_schema IS NOT NULL AND vector_schema <> 'public' THEN
        RAISE EXCEPTION 'pgvector is installed in schema "%"; the embedding gate expects it in public', vector_schema
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'ALTER EXTENSION vector SET SCHEMA public, then run the upgrade again';
    END IF;
END
$$;

CREATE SCHEMA embedding_gate;
COMMENT ON SCHEMA embedding_gate IS
    'Internals of the embedding quality gate: settings, check functions, triggers.';

CREATE TABLE embedding_gate._deployment (
    singleton           boolean PRIMARY KEY DEFAULT true CONSTRAINT _deployment_singleton CHECK (singleton),
    embedding_dim       integer NOT NULL CONSTRAINT _deployment_embedding_dim_check CHECK (embedding_dim BETWEEN 1 AND 16000),
    created_extensions  text[] NOT NULL DEFAULT '{}',
    created_roles       text[] NOT NULL DEFAULT '{}',
    deployed_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE embedding_gate._deployment IS
    'What `alembic upgrade` chose and created: the embedding dimension, and the extensions '
    'it created (so `alembic downgrade base` drops only those).';
COMMENT ON COLUMN embedding_gate._deployment.created_roles IS
    'Roles `alembic upgrade` created (roles belong to the cluster: downgrade drops only these).';

INSERT INTO embedding_gate._deployment (embedding_dim) VALUES ({{embedding_dim}});

-- Which version of each file of sql/idempotent/ the database holds: an upgrade re-applies
-- only the files whose text (as rendered for this database) has changed.
CREATE TABLE embedding_gate._sources (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE embedding_gate._sources IS
    'The sha256 of each sql/idempotent/ file as last applied (functions, triggers, views): '
    '`alembic upgrade head` re-creates the objects of the files whose text changed.';

-- Create each extension unless it is there already, and remember the ones created here.
DO $$
DECLARE
    ext text;
BEGIN
    FOREACH ext IN ARRAY ARRAY['vector', 'plpython3u'] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = ext) THEN
            IF ext = 'vector' THEN
                CREATE EXTENSION vector SCHEMA public;
            ELSE
                CREATE EXTENSION plpython3u;
            END IF;
            UPDATE embedding_gate._deployment
               SET created_extensions = created_extensions || ext;
        END IF;
    END LOOP;
END
$$;

-- PL/Python runs the server's own Python: numpy must be importable there.
DO LANGUAGE plpython3u $$
import sys
try:
    import numpy
except ImportError:
    plpy.error(
        "numpy is not importable by the PostgreSQL server's Python (%s)" % sys.version.split()[0],
        hint="install it for the server's interpreter, not a virtual environment: on Debian, "
             "apt-get install python3-numpy (or run scripts/install-server.sh as root)",
    )
$$;

-- How the gate reads and hashes vectors: their stored bytes. byteasend returns a copy of its
-- varlena argument as bytea: here pgvector's stored form, int16 dim, int16 unused (always
-- 0), then the float4 components in the server's byte order. pgvector's vector_send()
-- writes 768 byte-swapped floats one by one: 3.7 µs a 768-d row against 0.3 µs.
-- LANGUAGE internal names a function compiled into the server; it looks nothing up by name,
-- so there is no search_path to pin.
CREATE FUNCTION embedding_gate.vector_bytes(embedding public.vector) RETURNS bytea
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'byteasend';
COMMENT ON FUNCTION embedding_gate.vector_bytes(public.vector) IS
    'An embedding''s stored bytes (int16 dim, int16 0, then the float4 components in the '
    'server''s byte order): how the gate reads vectors, and compares them byte for byte.';

-- hashvarlenaextended is the hash of bytea (its hash opclass): hash_any over the value's
-- bytes, with a seed
CREATE FUNCTION embedding_gate._hash_bytes(embedding public.vector, seed bigint) RETURNS bigint
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'hashvarlenaextended';
COMMENT ON FUNCTION embedding_gate._hash_bytes(public.vector, bigint) IS
    'PostgreSQL''s 64-bit hash of an embedding''s stored bytes, seeded (see vector_hash).';

-- SQL-standard body: parsed once, here, so no search_path can change what it calls; and
-- inlined into the generated column's expression, so it costs no function call per row.
CREATE FUNCTION embedding_gate.vector_hash(embedding public.vector) RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN embedding_gate._hash_bytes(embedding, 0);
COMMENT ON FUNCTION embedding_gate.vector_hash(public.vector) IS
    'A 64-bit hash of an embedding''s stored bytes (chunks.embedding_hash); equal embeddings '
    'hash equal, and duplicate_vector compares the bytes of the rare equal hashes.';

-- --- the corpus ------------------------------------------------------------------------

CREATE TABLE public.documents (
    doc_id      text PRIMARY KEY,
    title       text,
    source      text,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE public.documents IS 'Source documents of the RAG corpus; each has chunks.';
COMMENT ON COLUMN public.documents.doc_id IS 'The document''s id in the source corpus.';

CREATE TABLE public.chunks (
    chunk_id                 text PRIMARY KEY,
    doc_id                   text NOT NULL
                             CONSTRAINT chunks_doc_id_fkey REFERENCES public.documents (doc_id) ON DELETE CASCADE,
    chunk_index              integer,
    content                  text,
    content_length           integer GENERATED ALWAYS AS (pg_catalog.char_length(content)) STORED,
    drop                     boolean NOT NULL DEFAULT false,
    metadata                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding                public.vector({{embedding_dim}}),
    created_at               timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    embedding_raw            real[],
    embedding_model          text,
    embedding_hash           bigint GENERATED ALWAYS AS (embedding_gate.vector_hash(embedding)) STORED,
    quality_issues           text[],
    quality_reason           text,
    quality_norm             double precision,
    quality_variance         double precision,
    quality_near_zero_ratio  double precision,
    quality_blank_similarity double precision,
    quality_duplicate_of     text,
    -- NULL on rows stored before the gate existed: CALL recheck_embeddings() checks them
    quality_checked_at       timestamptz DEFAULT pg_catalog.now(),
    CONSTRAINT chunks_one_embedding_input CHECK (embedding IS NULL OR embedding_raw IS NULL),
    -- embedding_raw must have the embedding column's dimension
    CONSTRAINT chunks_embedding_raw_dimension CHECK (
        embedding_raw IS NULL OR (pg_catalog.array_ndims(embedding_raw) = 1
                                  AND pg_catalog.cardinality(embedding_raw) = {{embedding_dim}}))
);
-- Keep vectors in the table row instead of TOAST (a 768-d vector is 3 KB, just over the
-- 2 KB TOAST threshold): a recheck reads them 2.2x faster, and COPY is no slower. MAIN
-- still moves a vector out of line when a row cannot fit a page (very large dimensions).
ALTER TABLE public.chunks ALTER COLUMN embedding SET STORAGE MAIN;

COMMENT ON TABLE public.chunks IS 'Text chunks of the documents and their embeddings.';
COMMENT ON COLUMN public.chunks.content_length IS
    'Length of content in characters (not bytes), computed by the database.';
COMMENT ON COLUMN public.chunks.drop IS
    'True for chunks the pipeline decided not to embed (kept for the record).';
COMMENT ON COLUMN public.chunks.embedding IS
    'The chunk''s embedding; its dimension was chosen at `alembic upgrade` time.';
COMMENT ON COLUMN public.chunks.created_at IS
    'When the row was inserted (clock_timestamp(): rows of one transaction keep their order); '
    'of two chunks with the identical embedding, the later one is the duplicate.';
COMMENT ON COLUMN public.chunks.embedding_raw IS
    'Input for vectors pgvector cannot hold (NaN/Inf components): write the vector here as '
    'real[]; the gate moves finite ones into embedding and flags the others nan_or_inf, '
    'keeping their raw values.';
COMMENT ON COLUMN public.chunks.embedding_model IS
    'The embedding model that produced embedding (the loader records the server''s model id); '
    'blank_like compares the embedding with this model''s reference in '
    'embedding_gate.blank_references.';
COMMENT ON COLUMN public.chunks.embedding_hash IS
    'embedding_gate.vector_hash(embedding), computed by the database: the key of the '
    'duplicate_vector check.';
COMMENT ON COLUMN public.chunks.quality_issues IS
    'Issue codes the gate found (nan_or_inf, low_norm, low_variance, sparse, blank_like, '
    'duplicate_vector); NULL when clean.';
COMMENT ON COLUMN public.chunks.quality_reason IS
    'Readable reasons with the measured values, e.g. "norm too low (0.0234)"; NULL when clean.';
COMMENT ON COLUMN public.chunks.quality_norm IS 'L2 norm of a flagged embedding.';
COMMENT ON COLUMN public.chunks.quality_variance IS
    'Population variance of a flagged embedding''s components.';
COMMENT ON COLUMN public.chunks.quality_near_zero_ratio IS
    'Share of a flagged embedding''s components with abs(x) < near_zero_epsilon.';
COMMENT ON COLUMN public.chunks.quality_blank_similarity IS
    'Cosine similarity of a flagged embedding to its model''s embedding of empty text.';
COMMENT ON COLUMN public.chunks.quality_duplicate_of IS
    'duplicate_vector: the earlier chunk with the identical embedding and other content.';
COMMENT ON COLUMN public.chunks.quality_checked_at IS
    'When the gate checked the row (insert, embedding update, or a recheck that flagged it).';

-- Indexes that keep the reports fast at millions of chunks. All but the first and the
-- hash index are partial and cover only the rare rows a report counts, so ingest pays for
-- them on those alone.
CREATE INDEX chunks_doc_id_idx ON public.chunks (doc_id);
CREATE INDEX chunks_flagged_idx ON public.chunks (chunk_id) WHERE quality_issues IS NOT NULL;
CREATE INDEX chunks_embedded_length_idx ON public.chunks (content_length)
    WHERE NOT drop AND (embedding IS NOT NULL OR embedding_raw IS NOT NULL);
CREATE INDEX chunks_dropped_idx ON public.chunks (chunk_id) WHERE drop;
CREATE INDEX chunks_empty_content_idx ON public.chunks (chunk_id)
    WHERE COALESCE(content_length, 0) = 0;
CREATE INDEX chunks_not_embedded_idx ON public.chunks (chunk_id)
    WHERE embedding IS NULL AND embedding_raw IS NULL;
-- duplicate_vector: "the first earlier chunk with this vector" is answered inside the
-- index, without visiting the row itself
CREATE INDEX chunks_embedding_hash_idx ON public.chunks (embedding_hash, created_at, chunk_id)
    WHERE embedding_hash IS NOT NULL;
COMMENT ON INDEX public.chunks_embedding_hash_idx IS
    'duplicate_vector: the chunks with a given embedding hash in (created_at, chunk_id) order.';

-- --- the gate's configuration ------------------------------------------------------------

-- The defaults of the thresholds live here and nowhere else.
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
                         CHECK (max_near_zero_ratio BETWEEN 0 AND 1),
    min_content_length   integer NOT NULL DEFAULT 10
                         CONSTRAINT settings_min_content_length_check CHECK (min_content_length >= 0),
    blank_similarity     double precision NOT NULL DEFAULT 0.4
                         CONSTRAINT settings_blank_similarity_check CHECK (blank_similarity >= 0)
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
COMMENT ON COLUMN embedding_gate.settings.min_content_length IS
    'short_content_chunks marks embedded chunks shorter than this many characters as drop '
    'candidates (the reference pipeline''s advice: drop chunks under 10 characters).';
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

CREATE TABLE public.embedding_quarantine (
    chunk_id                 text PRIMARY KEY,
    doc_id                   text,
    chunk_index              integer,
    content                  text,
    drop                     boolean,
    metadata                 jsonb,
    embedding_raw            real[] NOT NULL,
    embedding_model          text,
    quality_issues           text[] NOT NULL,
    quality_reason           text NOT NULL,
    quality_norm             double precision,
    quality_variance         double precision,
    quality_near_zero_ratio  double precision,
    quality_blank_similarity double precision,
    quality_duplicate_of     text,
    quarantined_at           timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE public.embedding_quarantine IS
    'Chunks the gate kept out of chunks in quarantine mode, with their raw vectors and reasons.';
COMMENT ON COLUMN public.embedding_quarantine.embedding_raw IS
    'The vector as it arrived, NaN and Inf included.';

-- --- roles and rights ----------------------------------------------------------------------

-- embedding_loader: the role a loader logs in with (through a login role that is a member
-- of it). It writes the corpus and reads the reports; it cannot switch the gate off, tune
-- it, or touch the quality columns and the quarantine itself.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'embedding_loader') THEN
        IF NOT (SELECT rolcreaterole OR rolsuper FROM pg_catalog.pg_roles
                WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'role embedding_loader does not exist and % may not create roles',
                current_user
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'have an administrator run CREATE ROLE embedding_loader NOLOGIN, '
                             'then run the upgrade again';
        END IF;
        CREATE ROLE embedding_loader NOLOGIN;
        UPDATE embedding_gate._deployment SET created_roles = created_roles || 'embedding_loader'::text;
    END IF;
END
$$;
COMMENT ON ROLE embedding_loader IS
    'Writers of the RAG corpus (the loader): insert and update documents and chunks, read the '
    'reports. Grant it to a login role: CREATE ROLE app LOGIN PASSWORD ... IN ROLE embedding_loader.';

-- Nothing for PUBLIC beyond reading: writing the corpus is the loader's right, and tuning
-- the gate the owner's. (The rights on functions are set next to each function, in
-- sql/idempotent/.)
REVOKE ALL ON public.documents, public.chunks, public.embedding_quarantine FROM PUBLIC;
REVOKE ALL ON embedding_gate.settings, embedding_gate._deployment, embedding_gate._sources,
    embedding_gate.blank_references FROM PUBLIC;

GRANT USAGE ON SCHEMA embedding_gate TO embedding_loader;
-- the thresholds and references are no secret (the report prints them); changing them is
-- the owner's
GRANT SELECT ON embedding_gate.settings, embedding_gate.blank_references TO embedding_loader;

GRANT SELECT, INSERT ON public.documents TO embedding_loader;
GRANT UPDATE (title, source, metadata) ON public.documents TO embedding_loader;

-- The corpus columns only: the quality columns are written by the gate alone.
GRANT SELECT ON public.chunks TO embedding_loader;
GRANT INSERT (chunk_id, doc_id, chunk_index, content, drop, metadata, embedding, embedding_raw,
              embedding_model)
    ON public.chunks TO embedding_loader;
GRANT UPDATE (doc_id, chunk_index, content, drop, metadata, embedding, embedding_raw,
              embedding_model)
    ON public.chunks TO embedding_loader;

-- Which chunks the quarantine holds, so that a rerun does not embed them again; nothing more.
GRANT SELECT (chunk_id) ON public.embedding_quarantine TO embedding_loader;
