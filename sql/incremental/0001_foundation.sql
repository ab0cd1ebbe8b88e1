-- 0001 foundation: prerequisites, the extensions, the gate's schema, documents and chunks.
-- Placeholders: {{embedding_dim}}. Frozen once released: changes go in a new revision.

-- Refuse early, with a way out, what would otherwise fail obscurely later.
DO $$
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
END
$$;

CREATE SCHEMA embedding_gate;
COMMENT ON SCHEMA embedding_gate IS
    'Internals of the embedding quality gate: settings, check functions, triggers.';

CREATE TABLE embedding_gate._deployment (
    singleton           boolean PRIMARY KEY DEFAULT true CONSTRAINT _deployment_singleton CHECK (singleton),
    embedding_dim       integer NOT NULL CONSTRAINT _deployment_embedding_dim_check CHECK (embedding_dim BETWEEN 1 AND 16000),
    created_extensions  text[] NOT NULL DEFAULT '{}',
    deployed_at         timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE embedding_gate._deployment IS
    'What `alembic upgrade` chose and created: the embedding dimension, and the extensions '
    'it created (so `alembic downgrade base` drops only those).';

INSERT INTO embedding_gate._deployment (embedding_dim) VALUES ({{embedding_dim}});

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
    chunk_id        text PRIMARY KEY,
    doc_id          text NOT NULL
                    CONSTRAINT chunks_doc_id_fkey REFERENCES public.documents (doc_id) ON DELETE CASCADE,
    chunk_index     integer,
    content         text,
    content_length  integer GENERATED ALWAYS AS (pg_catalog.char_length(content)) STORED,
    drop            boolean NOT NULL DEFAULT false,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding       vector({{embedding_dim}}),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX chunks_doc_id_idx ON public.chunks (doc_id);
COMMENT ON TABLE public.chunks IS 'Text chunks of the documents and their embeddings.';
COMMENT ON COLUMN public.chunks.content_length IS
    'Length of content in characters (not bytes), computed by the database.';
COMMENT ON COLUMN public.chunks.drop IS
    'True for chunks the pipeline decided not to embed (kept for the record).';
COMMENT ON COLUMN public.chunks.embedding IS
    'The chunk''s embedding; its dimension was chosen at `alembic upgrade` time.';
