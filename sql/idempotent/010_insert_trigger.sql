-- The insert trigger: checks every embedding an INSERT or COPY put into chunks, once per
-- statement, through the statement's transition table.
CREATE OR REPLACE FUNCTION embedding_gate._check_inserted() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- the duplicate probe's estimate passes jit_above_cost; JIT compiled it for 160 ms
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
GD["{{python_key}}"].triggers.check_inserted(plpy)
$python$;
COMMENT ON FUNCTION embedding_gate._check_inserted() IS
    'Trigger: checks the embeddings a statement inserted into chunks, in vectorised batches, '
    'and flags, quarantines or rejects the bad ones. SECURITY DEFINER so that writers need '
    'no rights on the quality columns or the quarantine.';
-- trigger functions need no EXECUTE right to fire, and a session may not call them
REVOKE EXECUTE ON FUNCTION embedding_gate._check_inserted() FROM PUBLIC;

CREATE OR REPLACE TRIGGER embedding_gate_insert
    AFTER INSERT ON public.chunks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._check_inserted();
COMMENT ON TRIGGER embedding_gate_insert ON public.chunks IS
    'Runs the embedding quality checks on every inserted row.';
