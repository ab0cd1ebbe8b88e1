-- What the SQL engine's insert triggers need to keep the models' calibrations from the rows
-- they see, as settings.judged_then_calibrated() does for the PL/Python engine (the deltas
-- themselves are embedding_gate._add_calibration's, sql/idempotent/016, both engines').

-- The models of `models` that have a reference for blank_like or model_mismatch, as
-- checks.blank_reference() finds one (a calibration with a finite 1-d mean, and a blank or
-- degenerate reference of its shape, finite and other than the mean, or a spread that
-- gives silent dimensions), with whether the writes keep that calibration (it has a
-- spread) and over how many rows. A statement's model without one is new: its rows join
-- the calibration before they are judged.
CREATE OR REPLACE FUNCTION embedding_gate._sql_referenced(models text[])
RETURNS TABLE (model text, kept boolean, sample_size integer)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.model, c.spread IS NOT NULL, c.sample_size
FROM embedding_gate.model_calibrations AS c
WHERE c.model = ANY (_sql_referenced.models)
  AND pg_catalog.array_ndims(c.mean) = 1
  AND NOT EXISTS (SELECT FROM pg_catalog.unnest(c.mean) AS z
                  WHERE z IS NULL OR z IN ('NaN', 'Infinity', '-Infinity'))
  AND (EXISTS (SELECT FROM (SELECT b.reference FROM embedding_gate.blank_references AS b
                            WHERE b.model = c.model
                            UNION ALL
                            SELECT g.reference FROM embedding_gate.degenerate_references AS g
                            WHERE g.model = c.model) AS r
               WHERE pg_catalog.array_ndims(r.reference) = 1
                 AND pg_catalog.cardinality(r.reference) = pg_catalog.cardinality(c.mean)
                 AND NOT EXISTS (SELECT FROM pg_catalog.unnest(r.reference) AS z
                                 WHERE z IS NULL OR z IN ('NaN', 'Infinity', '-Infinity'))
                 AND r.reference <> c.mean)
       OR (pg_catalog.array_ndims(c.spread) = 1
           AND pg_catalog.cardinality(c.spread) = pg_catalog.cardinality(c.mean)
           AND NOT EXISTS (SELECT FROM pg_catalog.unnest(c.spread) AS z
                           WHERE z IS NULL OR z IN ('NaN', 'Infinity', '-Infinity'))
           AND (SELECT pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY z::double precision) > 0
                       AND pg_catalog.min(z) < 1e-3 * pg_catalog.percentile_cont(0.5)
                                                     WITHIN GROUP (ORDER BY z::double precision)
                FROM pg_catalog.unnest(c.spread) AS z)))
$$;
COMMENT ON FUNCTION embedding_gate._sql_referenced(text[]) IS
    'The SQL engine''s triggers: the models of the list with a reference for blank_like or '
    'model_mismatch (as checks.blank_reference() finds one), whether the writes keep their '
    'calibration (a spread) and over how many rows.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_referenced(text[]) FROM PUBLIC;

-- A vector's squared components as a vector, in float8 and back, a square below float4's
-- range 0 (pgvector's vector_mul refuses such an underflow): the calibration's sum of
-- squares where vector_mul(x, x) failed on a statement's vectors.
CREATE OR REPLACE FUNCTION embedding_gate._squares(x public.vector) RETURNS public.vector
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.array_agg(CASE WHEN s.q < 1e-37 THEN 0 ELSE LEAST(s.q, 3.4e38) END ORDER BY s.k)
           ::real[]::public.vector
FROM (SELECT u.k, u.z::double precision * u.z::double precision AS q
      FROM pg_catalog.unnest(x::real[]) WITH ORDINALITY AS u(z, k)) AS s
$$;
COMMENT ON FUNCTION embedding_gate._squares(public.vector) IS
    'A vector''s squared components (float8, then float4: below its range 0, above it its '
    'largest value), where pgvector''s vector_mul refuses an underflow.';
REVOKE EXECUTE ON FUNCTION embedding_gate._squares(public.vector) FROM PUBLIC;

-- The chunks of each of `models` that earlier statements stored before its first
-- calibration (at most 1,000: fewer than settings.CALIBRATION_ROWS were, while every row
-- of chunks feeds it), judged once with thresholds t now that the model has one, in flag
-- mode whatever the mode (they are stored already): triggers.judge_earlier().
CREATE OR REPLACE FUNCTION embedding_gate._sql_judge_earlier(models text[], t jsonb)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._write_rechecked(
        pg_catalog.array_agg(j.chunk_id),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN pg_catalog.array_to_string(j.issues, ',') END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN embedding_gate._sql_reason(
            j.issues, j.nonfinite, j.dims, j.norm, j.variance, j.near_zero_ratio,
            j.blank_similarity, j.similar_kind, j.silent_deviation, j.duplicate_of) END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN j.norm END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN j.variance END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN j.near_zero_ratio END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN j.blank_similarity END),
        pg_catalog.array_agg(CASE WHEN j.flagged THEN j.duplicate_of END),
        pg_catalog.array_agg(j.version))
    FROM (SELECT j.*, pg_catalog.cardinality(j.issues) > 0 AS flagged
          FROM pg_catalog.unnest(_sql_judge_earlier.models) AS m(model)
          CROSS JOIN LATERAL embedding_gate._sql_judge_chunks(
              ARRAY(SELECT c.chunk_id FROM public.chunks AS c
                    WHERE c.embedding_model = m.model AND c.embedding IS NOT NULL
                      AND c.created_at < pg_catalog.statement_timestamp()
                    ORDER BY c.created_at DESC LIMIT 1000),
              _sql_judge_earlier.t, NULL) AS j) AS j
    WHERE j.flagged OR j.had_issues
    HAVING pg_catalog.count(*) > 0;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_judge_earlier(text[], jsonb) IS
    'The SQL engine''s insert trigger: the chunks of these models stored before their first '
    'calibration, judged once with thresholds t (flag mode), now that they have one.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_judge_earlier(text[], jsonb) FROM PUBLIC;
