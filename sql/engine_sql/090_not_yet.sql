-- What the SQL engine does not implement yet (issue 25) fails with a clear error (SQLSTATE
-- 0A000, feature_not_supported) instead of being missing: _not_yet() raises it, for the
-- stubs of 091_not_yet_attach.sql. The PL/Python engine never applies this file.

CREATE OR REPLACE FUNCTION embedding_gate._not_yet(what text) RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '% is not available with the embedding gate''s SQL engine yet', what
        USING ERRCODE = 'feature_not_supported',
              DETAIL = 'This database runs the SQL engine (SELECT * FROM embedding_gate.engine), '
                       'deployed where plpython3u cannot be created; it checks every insert and '
                       'update of chunks and serves the report views, but ' || what
                       || ' is implemented by the PL/Python engine only so far (issue 25).',
              HINT = 'Deploy the gate with the PL/Python engine where plpython3u can be created '
                     '(embedding-gate db upgrade --engine plpython, as a superuser).';
END
$$;
COMMENT ON FUNCTION embedding_gate._not_yet(text) IS
    'Raises feature_not_supported naming what the SQL engine does not implement yet.';
