-- Fails the statement when the checks recorded a rejection (mode reject). The checks record
-- the message, detail and SQLSTATE (the Python package's REJECTED_SQLSTATE, QG001); raised
-- from PL/pgSQL so that the error reads cleanly (PL/Python would add a traceback).
CREATE OR REPLACE FUNCTION embedding_gate._raise_rejected() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rejected jsonb := NULLIF(current_setting('embedding_gate.rejected', true), '')::jsonb;
BEGIN
    IF rejected IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = rejected ->> 'message',
            DETAIL = rejected ->> 'detail',
            HINT = 'fix or drop these rows, or set the mode to ''flag'' or ''quarantine'' '
                   '(embedding_gate.settings; for an attached table, '
                   'embedding_gate.set_table_settings)',
            ERRCODE = rejected ->> 'sqlstate',
            SCHEMA = TG_TABLE_SCHEMA, TABLE = TG_TABLE_NAME;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._raise_rejected() IS
    'Trigger: fails the statement with the recorded SQLSTATE (QG001) when the checks '
    'rejected an embedding.';
-- attach() creates this trigger on attached tables as their owner: CREATE TRIGGER needs EXECUTE
GRANT EXECUTE ON FUNCTION embedding_gate._raise_rejected() TO PUBLIC;

-- after embedding_gate_insert (statement triggers fire in name order)
CREATE OR REPLACE TRIGGER embedding_gate_reject
    AFTER INSERT OR UPDATE ON public.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._raise_rejected();
COMMENT ON TRIGGER embedding_gate_reject ON public.chunks IS
    'Fails the statement when the embedding quality checks rejected a row (mode reject).';
