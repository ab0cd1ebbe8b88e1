-- The triggers of attached tables (embedding_gate.attach() creates them on the table).
-- Statement-level, with transition tables, so a COPY of a million rows calls Python once
-- and reads the rows in batches: INSERT (and COPY, INSERT ... ON CONFLICT's inserts, MERGE's
-- inserts) and UPDATE (ON CONFLICT DO UPDATE, MERGE's updates) each have one.
-- It runs as the gate's owner and runs no code of the table's owner: it reads the
-- transition tables and (duplicate_vector) the table only while their columns are of
-- trusted types (embedding_gate._refusal()), with row_security off so that no policy of the
-- table is ever evaluated as the gate, and it never writes the table (quarantine mode's
-- move is _move_quarantined(), the writer's own).
CREATE OR REPLACE FUNCTION embedding_gate._check_attached() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
SET jit = off
AS $python$
if "gate_trigger" not in SD:
    SD["gate_trigger"] = plpy.prepare(
        "SELECT embedding_gate._gate_trigger($1, $2, $3, $4, $5) AS ok",
        ["oid", "name", "text", "text", "text"])
if not plpy.execute(SD["gate_trigger"], [TD["relid"], TD["name"], TD["level"], TD["when"],
                                         TD["event"]])[0]["ok"]:
    plpy.error("embedding_gate._check_attached() runs only as the gate's own trigger, "
               "created by embedding_gate.attach()", sqlstate="42501")
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
GD["{{python_key}}"].attached.check_statement(plpy, TD)
$python$;
COMMENT ON FUNCTION embedding_gate._check_attached() IS
    'Trigger of attached tables: checks the embeddings a statement inserted or changed, and '
    'flags (embedding_gate.verdicts), quarantines (embedding_gate.quarantine) or rejects '
    'the bad ones. SECURITY DEFINER so that writers need no rights on the gate''s tables; it '
    'evaluates nothing the table''s owner controls and never writes the table.';
-- CREATE TRIGGER needs EXECUTE on the function (attach() runs as the table's owner); a
-- session cannot call a trigger function, and it acts only on attached tables
GRANT EXECUTE ON FUNCTION embedding_gate._check_attached() TO PUBLIC;
