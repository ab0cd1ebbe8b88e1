-- What a proposed set of thresholds would do, before anyone applies it.
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
LANGUAGE plpython3u
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_package()")
return GD["{{python_key}}"].preview.preview(plpy, {
    "min_norm": min_norm,
    "min_variance": min_variance,
    "near_zero_epsilon": near_zero_epsilon,
    "max_near_zero_ratio": max_near_zero_ratio,
    "blank_similarity": blank_similarity,
    "max_silent_deviation": max_silent_deviation,
})
$python$;
COMMENT ON FUNCTION public.preview_thresholds(double precision, double precision,
                                              double precision, double precision,
                                              double precision, double precision) IS
    'Threshold tuning without changing anything: per check, the percentiles of its measure '
    'over every stored embedding of chunks and the attached tables (exact up to 1,000,000 embeddings, from a uniform sample of '
    'that size beyond) and how many embeddings the current and the proposed thresholds flag '
    '(NULL keeps the current value), e.g. '
    'SELECT * FROM preview_thresholds(min_norm => 0.2, min_variance => 0.01, '
    'max_silent_deviation => 0.0005).';
