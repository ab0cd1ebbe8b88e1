-- One batch of recheck_embeddings(): the next batch_size rows after chunk_id `after`.
-- twins: the embedding hashes stored more than once, which the first call (NULL) computes
-- and returns, and the procedure passes on.
CREATE OR REPLACE FUNCTION embedding_gate._recheck_batch(
    after text, batch_size integer, twins bigint[])
RETURNS TABLE (checked integer, low_quality integer, last_chunk_id text, twins bigint[])
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
return [GD["{{python_key}}"].scans.recheck_batch(plpy, after, batch_size, twins)]
$python$;
COMMENT ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]) IS
    'One batch of recheck_embeddings(), in chunk_id order after the given chunk_id; twins: '
    'the embedding hashes stored more than once (NULL: compute and return them).';
-- state-changing maintenance is the owner's
REVOKE EXECUTE ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]) FROM PUBLIC;
