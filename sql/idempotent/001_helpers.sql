-- Small functions the rest of the gate, and the loader, share. Each idempotent file is
-- CREATE OR REPLACE, re-applied by `alembic upgrade head` when its text changes.

-- The dimension of chunks.embedding, as the deployment chose it.
CREATE OR REPLACE FUNCTION embedding_gate.embedding_dim() RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
-- vector(n) keeps n as its type modifier
SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a
WHERE a.attrelid = 'public.chunks'::pg_catalog.regclass AND a.attname = 'embedding'
$$;
COMMENT ON FUNCTION embedding_gate.embedding_dim() IS
    'The dimension of chunks.embedding (chosen at `alembic upgrade` time).';

-- The role that called in, not a SECURITY DEFINER function's owner: SET ROLE's, else the
-- session user.
CREATE OR REPLACE FUNCTION embedding_gate._caller() RETURNS name
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN pg_catalog.current_setting('role') = 'none' THEN SESSION_USER
            ELSE pg_catalog.current_setting('role')::name END
$$;
COMMENT ON FUNCTION embedding_gate._caller() IS
    'The calling role: SET ROLE''s, else the session user (inside a SECURITY DEFINER '
    'function, current_user is the function''s owner).';

-- Whether the role that called in may tune the gate.
CREATE OR REPLACE FUNCTION embedding_gate._caller_may_tune() RETURNS boolean
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.has_table_privilege(embedding_gate._caller(), 'embedding_gate.settings',
                                      'UPDATE')
$$;
COMMENT ON FUNCTION embedding_gate._caller_may_tune() IS
    'True when the calling role (SET ROLE, else the session user) may UPDATE '
    'embedding_gate.settings: override a setting, replace a blank reference.';

-- Whether to write a model's vector (its blank reference, its calibration): refuses
-- replacing a different one without the right to tune the gate (the first one of a model
-- anyone with the loader's rights may record); false when the vector is already the one
-- recorded. Any dimension: a model's vector applies to the rows of its own dimension, in
-- chunks or in an attached table.
CREATE OR REPLACE FUNCTION embedding_gate._may_record(
    what text, model text, new_values real[], old_values real[])
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF old_values = new_values THEN
        RETURN false;
    END IF;
    IF old_values IS NOT NULL AND NOT embedding_gate._caller_may_tune() THEN
        RAISE EXCEPTION 'model "%" already has a different %', model, what
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'replacing it needs UPDATE on embedding_gate.settings (the '
                         'deployment''s owner); the first one of a model anyone may record';
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION embedding_gate._may_record(text, text, real[], real[]) IS
    'Whether set_blank_reference or set_blank_calibration writes a model''s vector: checks '
    'the right to replace a different one.';
