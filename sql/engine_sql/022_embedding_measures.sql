-- embedding_measures() in the SQL engine (scans.embedding_measures() in the PL/Python one):
-- the measures of every stored embedding, computed now (clean rows store none), chunks in
-- chunk_id order, READ_ROWS at a time (6 MB of vectors), then every attached table the
-- caller may read; as its caller.
CREATE OR REPLACE FUNCTION public.embedding_measures(near_zero_epsilon double precision DEFAULT NULL)
RETURNS TABLE (chunk_id text, norm double precision, variance double precision,
               near_zero_ratio double precision, blank_similarity double precision,
               embedding_model text, issues text[], table_name text, row_id text,
               silent_deviation double precision)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_variable
DECLARE
    epsilon double precision := $1;
    read_rows integer := embedding_gate._sql_read_rows();
    t jsonb;
    hashes bigint[];
    ids text[];
    last text;
    attached regclass;
BEGIN
    IF pg_catalog.has_table_privilege('public.chunks', 'SELECT') THEN
        t := embedding_gate._sql_settings();
        IF epsilon IS NOT NULL THEN
            t := t || pg_catalog.jsonb_build_object('near_zero_epsilon', epsilon);
        END IF;
        hashes := embedding_gate._twin_hashes();
        LOOP
            ids := embedding_gate._sql_next_chunk_ids(last, read_rows);
            EXIT WHEN pg_catalog.cardinality(ids) = 0;
            last := ids[pg_catalog.cardinality(ids)];
            RETURN QUERY
            SELECT j.chunk_id, j.norm, j.variance, j.near_zero_ratio, j.blank_similarity,
                   j.embedding_model, j.issues, 'public.chunks'::text, j.chunk_id,
                   j.silent_deviation
            FROM embedding_gate._sql_judge_chunks(ids, t, hashes) AS j;
        END LOOP;
    END IF;
    FOR attached IN SELECT a.table_oid FROM embedding_gate._sql_scannable() AS a LOOP
        t := embedding_gate._sql_table_settings(attached);
        IF epsilon IS NOT NULL THEN
            t := t || pg_catalog.jsonb_build_object('near_zero_epsilon', epsilon);
        END IF;
        RETURN QUERY
        SELECT NULL::text, s.norm, s.variance, s.near_zero_ratio, s.blank_similarity, s.model,
               s.issues, embedding_gate._qualified(attached), s.row_id, s.silent_deviation
        FROM embedding_gate._sql_scan_attached(attached, t, NULL) AS s;
    END LOOP;
END
$$;
COMMENT ON FUNCTION public.embedding_measures(double precision) IS
    'Norm, variance, near-zero ratio, blank_like similarity (the model''s mean removed; '
    'NULL where the model has no reference or calibration) and model_mismatch''s deviation '
    '(the largest on the model''s silent dimensions, in median spreads; NULL where the model '
    'has no spread recorded) of every stored embedding, in '
    'chunks and every attached table (table_name, row_id; chunk_id for chunks), its model, and the issue codes the current thresholds give it (near_zero_epsilon: count '
    'near-zero components with this epsilon instead). Computed on the fly, in batches; '
    'changes nothing.';
