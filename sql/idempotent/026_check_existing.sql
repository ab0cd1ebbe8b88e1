-- The PL/Python engine's check of an attached table's stored rows (one batch of
-- embedding_gate.check_existing(), sql/idempotent/026_attach.sql, and of attach()). The SQL
-- engine leaves this file out and applies sql/engine_sql/026_check_existing.sql instead.

-- One batch of the rows already stored in an attached table, checked and flagged.
CREATE OR REPLACE FUNCTION embedding_gate._check_existing(
    table_name regclass, after text, batch_size integer)
RETURNS TABLE (checked integer, low_quality integer, last_row_id text)
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
SET jit = off
AS $python$
may = plpy.execute(plpy.prepare(
    "SELECT embedding_gate._caller_may_check($1) AS ok", ["regclass"]), [table_name])[0]["ok"]
if not may:
    plpy.error("only the owner of the table (or the gate's owner) may check its rows",
               sqlstate="42501")
if table_name == "public.chunks":
    plpy.error("public.chunks has checks of its own: CALL recheck_embeddings()",
               sqlstate="55000")
# no ALTER TABLE between the gate's look at the column types and its reads
plpy.execute(plpy.prepare("SELECT embedding_gate._lock_for_reading($1)", ["regclass"]),
             [table_name])
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
found = GD["{{python_key}}"].attached.check_batch(
    plpy, plpy.execute(plpy.prepare("SELECT $1::oid AS o", ["regclass"]), [table_name])[0]["o"],
    after, batch_size)
return [found]
$python$;
COMMENT ON FUNCTION embedding_gate._check_existing(regclass, text, integer) IS
    'One batch of check_existing(): the next batch_size stored rows after row id `after`, in '
    'id order, checked with the table''s settings and flagged (never moved or rejected).';
GRANT EXECUTE ON FUNCTION embedding_gate._check_existing(regclass, text, integer) TO PUBLIC;
