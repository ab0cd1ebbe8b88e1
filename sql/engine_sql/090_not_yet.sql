-- What the SQL engine does not implement yet (issue 25): the public functions of the
-- PL/Python files it leaves out (sql/idempotent/020-023), here with the same
-- signatures, each failing with a clear error (SQLSTATE 0A000, feature_not_supported)
-- instead of being missing. The PL/Python engine never applies this file.

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

CREATE OR REPLACE FUNCTION public.verify_embeddings(sample_size integer DEFAULT 100)
RETURNS TABLE (checked bigint, low_quality bigint, low_quality_rate double precision, counts jsonb)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('verify_embeddings()');
END
$$;
COMMENT ON FUNCTION public.verify_embeddings(integer) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE PROCEDURE public.recheck_embeddings(
    batch_size integer DEFAULT 10000,
    INOUT checked bigint DEFAULT NULL,
    INOUT low_quality bigint DEFAULT NULL)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('recheck_embeddings()');
END
$$;
COMMENT ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';
REVOKE EXECUTE ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION public.embedding_measures(near_zero_epsilon double precision DEFAULT NULL)
RETURNS TABLE (chunk_id text, norm double precision, variance double precision,
               near_zero_ratio double precision, blank_similarity double precision,
               embedding_model text, issues text[], table_name text, row_id text,
               silent_deviation double precision)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_measures()');
END
$$;
COMMENT ON FUNCTION public.embedding_measures(double precision) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE FUNCTION public.preview_thresholds(
    min_norm double precision DEFAULT NULL,
    min_variance double precision DEFAULT NULL,
    near_zero_epsilon double precision DEFAULT NULL,
    max_near_zero_ratio double precision DEFAULT NULL,
    blank_similarity double precision DEFAULT NULL,
    max_silent_deviation double precision DEFAULT NULL)
RETURNS TABLE (check_code text, measure text, current_threshold double precision,
               proposed_threshold double precision, embeddings bigint,
               p0 double precision, p1 double precision, p5 double precision,
               p25 double precision, p50 double precision, p75 double precision,
               p95 double precision, p99 double precision, p100 double precision,
               flagged_now bigint, flagged_proposed bigint,
               flagged_proposed_pct double precision, note text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('preview_thresholds()');
END
$$;
COMMENT ON FUNCTION public.preview_thresholds(double precision, double precision,
    double precision, double precision, double precision, double precision) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';
