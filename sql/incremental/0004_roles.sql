-- 0004 roles: embedding_loader, the role a loader logs in with (through a login role that is
-- a member of it). It writes the corpus and reads the reports; it cannot switch the gate off,
-- tune it, or touch the quality columns and the quarantine itself.
-- Frozen once released: changes go in a new revision.

ALTER TABLE embedding_gate._deployment ADD COLUMN created_roles text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN embedding_gate._deployment.created_roles IS
    'Roles `alembic upgrade` created (roles belong to the cluster: downgrade drops only these).';

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

-- Nothing for PUBLIC beyond reading: writing the corpus is the loader's right, and the
-- state-changing maintenance (the recheck) the owner's. Trigger functions need no EXECUTE
-- right to fire, and a session may not call them directly.
REVOKE ALL ON public.documents, public.chunks, public.embedding_quarantine FROM PUBLIC;
REVOKE ALL ON embedding_gate.settings, embedding_gate._deployment FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION embedding_gate._recheck_batch(text, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION embedding_gate._check_inserted(), embedding_gate._check_updated(),
    embedding_gate._raise_rejected() FROM PUBLIC;

GRANT USAGE ON SCHEMA embedding_gate TO embedding_loader;
-- the thresholds are no secret (the report prints them); changing them is the owner's
GRANT SELECT ON embedding_gate.settings TO embedding_loader;

GRANT SELECT, INSERT ON public.documents TO embedding_loader;
GRANT UPDATE (title, source, metadata) ON public.documents TO embedding_loader;

-- The corpus columns only: the quality columns are written by the gate alone.
GRANT SELECT ON public.chunks TO embedding_loader;
GRANT INSERT (chunk_id, doc_id, chunk_index, content, drop, metadata, embedding, embedding_raw)
    ON public.chunks TO embedding_loader;
GRANT UPDATE (doc_id, chunk_index, content, drop, metadata, embedding, embedding_raw)
    ON public.chunks TO embedding_loader;

-- Which chunks the quarantine holds, so that a rerun does not embed them again; nothing more.
GRANT SELECT (chunk_id) ON public.embedding_quarantine TO embedding_loader;

GRANT SELECT ON public.low_quality_embeddings, public.short_content_chunks,
    public.embedding_quality_summary TO embedding_loader;

-- The reports' functions read with their owner's rights (see reports.sql): only for readers.
REVOKE EXECUTE ON FUNCTION embedding_gate._short_content_chunks(),
    embedding_gate._quality_summary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._short_content_chunks(),
    embedding_gate._quality_summary() TO embedding_loader;
