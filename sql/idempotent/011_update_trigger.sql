-- The update trigger: checks the new embedding of a row whose embedding an UPDATE changed.
-- Its WHEN clause compares old and new vectors: an update of content alone calls no Python.
CREATE OR REPLACE FUNCTION embedding_gate._check_updated() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
return GD["{{python_key}}"].triggers.check_updated(plpy, TD)
$python$;
COMMENT ON FUNCTION embedding_gate._check_updated() IS
    'Trigger: checks a changed embedding and sets the row''s quality columns; in quarantine '
    'mode the update is skipped and the new vector goes to embedding_quarantine.';
REVOKE EXECUTE ON FUNCTION embedding_gate._check_updated() FROM PUBLIC;

-- The WHEN clause compares the vectors' bytes, not the vectors: pg_restore runs with an
-- empty search_path, where IS DISTINCT FROM (which cannot name its operator's schema)
-- would not find pgvector's = and the restore would fail at this trigger.
CREATE OR REPLACE TRIGGER embedding_gate_update
    BEFORE UPDATE OF embedding, embedding_raw ON public.chunks
    FOR EACH ROW
    WHEN (embedding_gate.vector_bytes(OLD.embedding)
              IS DISTINCT FROM embedding_gate.vector_bytes(NEW.embedding)
          OR OLD.embedding_raw IS DISTINCT FROM NEW.embedding_raw)
    EXECUTE FUNCTION embedding_gate._check_updated();
COMMENT ON TRIGGER embedding_gate_update ON public.chunks IS
    'Runs the embedding quality checks when an UPDATE changes a row''s embedding.';
