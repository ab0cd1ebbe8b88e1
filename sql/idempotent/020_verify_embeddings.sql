-- Re-checks a random sample of stored embeddings with the current thresholds.
CREATE OR REPLACE FUNCTION public.verify_embeddings(sample_size integer DEFAULT 100)
RETURNS TABLE (checked bigint, low_quality bigint, low_quality_rate double precision, counts jsonb)
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
return [GD["{{python_key}}"].scans.verify_sample(plpy, sample_size)]
$python$;
COMMENT ON FUNCTION public.verify_embeddings(integer) IS
    'Re-checks a random sample of sample_size stored embeddings of chunks, and as many of each '
    'attached table, with the current thresholds and reports checked, low quality, the rate '
    'and counts per issue code. Changes nothing.';
