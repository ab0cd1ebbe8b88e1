-- The measures of every stored embedding, computed now (clean rows store none).
CREATE OR REPLACE FUNCTION public.embedding_measures(near_zero_epsilon double precision DEFAULT NULL)
RETURNS TABLE (chunk_id text, norm double precision, variance double precision,
               near_zero_ratio double precision, blank_similarity double precision,
               embedding_model text, issues text[], table_name text, row_id text,
               silent_deviation double precision)
LANGUAGE plpython3u
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
return GD["{{python_key}}"].scans.embedding_measures(plpy, near_zero_epsilon)
$python$;
COMMENT ON FUNCTION public.embedding_measures(double precision) IS
    'Norm, variance, near-zero ratio, blank_like similarity (the model''s mean removed; '
    'NULL where the model has no reference or calibration) and model_mismatch''s deviation '
    '(the largest on the model''s silent dimensions, in median spreads; NULL where the model '
    'has no spread recorded) of every stored embedding, in '
    'chunks and every attached table (table_name, row_id; chunk_id for chunks), its model, and the issue codes the current thresholds give it (near_zero_epsilon: count '
    'near-zero components with this epsilon instead). Computed on the fly, in batches; '
    'changes nothing.';
