-- The checks in set-based SQL (issue 25: the engine for databases where plpython3u cannot be
-- created): the same verdicts as plpython/embedding_gate/checks.py's evaluate(), computed by
-- pgvector's own functions in C where they can be exact, by PostgreSQL's float8 aggregates
-- where they cannot. No PL/Python, no per-row loop: one query over a batch. Deployed with
-- every engine (they need only pgvector), so that tests/test_sql_engine.py can hold the two
-- engines to one behaviour in the same database.
--
-- How each measure is computed, and how far from the numpy engine (docs/internals.md, "The
-- SQL engine"):
--   norm: vector_norm (float8 accumulation, as numpy's float64): equal to a few ulps.
--   variance: two-pass; the sums by inner_product with a vector of ones (float4
--     accumulation), the centred sum of squares by vector_norm (float8), with the correction
--     term (sum of the centred components)^2 / d; the mean refined once where the spread is
--     small against it, so that a constant vector has variance 0 exactly, as in numpy.
--     Vectors whose components could overflow float4 sums (sqrt(d) * norm >= 1e37) take
--     var_pop over the components in float8 instead.
--   near-zero share: exact, by counting signs: |x| < eps is |x| <= p, p the largest float4
--     below eps, and the components above p and below -p are bits of binary_quantize(x - p)
--     and binary_quantize(-p - x).
--   blank_like: cosine of (x - mean) and (reference - mean) from inner_product (float4
--     accumulation) over vector_norm (float8), the highest over the model's references; the
--     numpy engine takes its float4 dot products in another order and form, so the two agree
--     to 5e-8 to 5e-7 (measured; tested to 1e-5), not to the ulp.
--   model_mismatch: the silent dimensions, the median spread and the deviation in float8,
--     as numpy does: equal.

-- The largest float4 below x (0 where x is at most the smallest float4 above 0, NULL where
-- x <= 0): for a float4 component c, |c| < x exactly when |c| <= this.
CREATE OR REPLACE FUNCTION embedding_gate._float4_below(x double precision) RETURNS real
LANGUAGE plpgsql
IMMUTABLE STRICT PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f real;
    e integer;
    step double precision;
BEGIN
    IF x <= 0 OR x = 'NaN'::double precision THEN
        RETURN NULL;
    END IF;
    IF x > 3.4028234663852886e38 THEN
        RETURN 3.4028234663852886e38::real;
    END IF;
    IF x <= 1.401298464324817e-45 THEN  -- the smallest float4 above 0
        RETURN 0;
    END IF;
    f := x::real;  -- the nearest float4
    IF f::double precision < x THEN
        RETURN f;  -- (the next float4 up is above x, or it would be nearer)
    END IF;
    -- f >= x: the float4 just below f
    IF f::double precision <= 1.1754943508222875e-38 THEN  -- subnormal spacing
        step := 1.401298464324817e-45;
    ELSE
        e := pg_catalog.floor(pg_catalog.ln(f::double precision) / pg_catalog.ln(2.0::double precision))::integer;
        WHILE pg_catalog.power(2.0::double precision, e) > f LOOP
            e := e - 1;
        END LOOP;
        WHILE pg_catalog.power(2.0::double precision, e + 1) <= f LOOP
            e := e + 1;
        END LOOP;
        step := pg_catalog.power(2.0::double precision,
                                 CASE WHEN pg_catalog.power(2.0::double precision, e) = f
                                      THEN e - 24 ELSE e - 23 END);
    END IF;
    RETURN (f::double precision - step)::real;
END
$$;
COMMENT ON FUNCTION embedding_gate._float4_below(double precision) IS
    'The largest float4 below x (0 at or below the smallest positive float4, NULL for x <= 0): '
    'the SQL engine''s near-zero count, |c| < x exactly when |c| <= this for a float4 c.';

-- The verdicts of a batch of vectors: one row per non-NULL element of `vectors`, `ord` its
-- position (1-based). models and duplicates are parallel to vectors (NULL: none); the
-- thresholds are those of checks.Thresholds. Reads the models' calibrations and references
-- (as settings.references_for does).
CREATE OR REPLACE FUNCTION embedding_gate._sql_checks(
    vectors public.vector[],
    models text[],
    duplicates text[],
    min_norm double precision,
    min_variance double precision,
    near_zero_epsilon double precision,
    max_near_zero_ratio double precision,
    blank_similarity double precision,
    max_silent_deviation double precision
) RETURNS TABLE (
    ord bigint,
    issues text[],
    nonfinite integer,
    norm double precision,
    variance double precision,
    near_zero_ratio double precision,
    similarity double precision,
    similar_kind text,
    silent_deviation double precision,
    duplicate_of text
)
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
WITH
limits AS MATERIALIZED (
    SELECT embedding_gate._float4_below(_sql_checks.near_zero_epsilon) AS p
),
-- (read once, by `measured`, and so not materialized: 4,096 768-d vectors are 12 MB, past
-- work_mem; the CTEs below read the arrays themselves). The arrays are unnested in the
-- select list, in step as ROWS FROM does (the shorter padded with NULLs), with the position
-- counted alongside: a set-returning function in FROM is a function scan, which writes all
-- its rows to a tuplestore first (the statement's vectors, to disk past work_mem).
input AS NOT MATERIALIZED (
    SELECT u.ord, u.v, u.model, u.dup, public.vector_dims(u.v) AS d
    FROM (SELECT pg_catalog.unnest(_sql_checks.vectors) AS v,
                 pg_catalog.unnest(_sql_checks.models) AS model,
                 pg_catalog.unnest(_sql_checks.duplicates) AS dup,
                 pg_catalog.generate_series(1::bigint, GREATEST(
                     pg_catalog.cardinality(_sql_checks.vectors),
                     pg_catalog.cardinality(_sql_checks.models),
                     pg_catalog.cardinality(_sql_checks.duplicates))::bigint) AS ord) AS u
    WHERE u.v IS NOT NULL
),
-- per dimension: a vector of ones (sums are inner products with it) and of +-p
dims AS MATERIALIZED (
    SELECT k.d,
           pg_catalog.array_fill(1::real, ARRAY[k.d])::public.vector AS ones,
           CASE WHEN l.p <= 1e30 THEN pg_catalog.array_fill(l.p, ARRAY[k.d])::public.vector END
               AS plus_p,
           CASE WHEN l.p <= 1e30 THEN pg_catalog.array_fill(-l.p, ARRAY[k.d])::public.vector END
               AS minus_p
    FROM (SELECT DISTINCT public.vector_dims(u.v) AS d
          FROM (SELECT pg_catalog.unnest(_sql_checks.vectors) AS v) AS u
          WHERE u.v IS NOT NULL) AS k
    CROSS JOIN limits AS l
),
-- the models' calibrations as blank_reference() takes them: a finite 1-d mean
calibrations AS MATERIALIZED (
    SELECT c.model, c.mean, c.spread, pg_catalog.cardinality(c.mean) AS d,
           c.mean::public.vector AS mean_v
    FROM embedding_gate.model_calibrations AS c
    WHERE c.model = ANY (_sql_checks.models)
      AND pg_catalog.array_ndims(c.mean) = 1
      AND NOT EXISTS (SELECT FROM pg_catalog.unnest(c.mean) AS m(x)
                      WHERE m.x IS NULL OR m.x IN ('NaN', 'Infinity', '-Infinity'))
),
-- each model's references in blank_reference()'s order (the empty text's, then the others
-- by text), those of its mean's shape, finite and not equal to it, less the mean
references_ AS MATERIALIZED (
    SELECT r.model, r.pos, r.kind, r.dir, public.vector_norm(r.dir) AS dir_norm
    FROM (
        SELECT c.model, x.pos, x.kind,
               public.vector_sub(x.reference::public.vector, c.mean_v) AS dir
        FROM calibrations AS c
        JOIN (SELECT b.model, 0::bigint AS pos, 'blank'::text AS kind, b.reference
              FROM embedding_gate.blank_references AS b
              UNION ALL
              SELECT g.model, pg_catalog.row_number() OVER (PARTITION BY g.model ORDER BY g.text),
                     g.kind, g.reference
              FROM embedding_gate.degenerate_references AS g) AS x ON x.model = c.model
        WHERE pg_catalog.array_ndims(x.reference) = 1
          AND pg_catalog.cardinality(x.reference) = c.d
          AND NOT EXISTS (SELECT FROM pg_catalog.unnest(x.reference) AS m(x)
                          WHERE m.x IS NULL OR m.x IN ('NaN', 'Infinity', '-Infinity'))
          AND x.reference <> c.mean
          -- (their difference within float4's range: pgvector refuses an overflow; a CASE,
          -- so that the cast follows the checks above)
          AND CASE WHEN pg_catalog.array_ndims(x.reference) = 1
                        AND pg_catalog.cardinality(x.reference) = c.d
                        AND NOT EXISTS (SELECT FROM pg_catalog.unnest(x.reference) AS m(x)
                                        WHERE m.x IS NULL OR m.x IN ('NaN', 'Infinity', '-Infinity'))
                   THEN public.vector_norm(x.reference::public.vector)
                        + public.vector_norm(c.mean_v) < 3e38
                   ELSE false END
    ) AS r
),
-- model_mismatch's fingerprint: the dimensions whose spread is below SILENT_SPREAD (1e-3)
-- of the median spread (numpy's median: the mean of the two middle values of an even count)
fingerprints AS MATERIALIZED (
    SELECT c.model, s.scale,
           ARRAY(SELECT z.i FROM pg_catalog.unnest(c.spread) WITH ORDINALITY AS z(sd, i)
                 WHERE z.sd::double precision < 1e-3 * s.scale ORDER BY z.i) AS silent
    FROM calibrations AS c
    CROSS JOIN LATERAL (
        SELECT CASE WHEN o.n % 2 = 1 THEN o.sorted[(o.n + 1) / 2]::double precision
                    ELSE (o.sorted[o.n / 2]::double precision
                          + o.sorted[o.n / 2 + 1]::double precision) / 2 END AS scale
        FROM (SELECT ARRAY(SELECT z FROM pg_catalog.unnest(c.spread) AS z ORDER BY z) AS sorted,
                     pg_catalog.cardinality(c.spread) AS n) AS o
    ) AS s
    WHERE c.spread IS NOT NULL
      AND pg_catalog.array_ndims(c.spread) = 1
      AND pg_catalog.cardinality(c.spread) = c.d
      AND NOT EXISTS (SELECT FROM pg_catalog.unnest(c.spread) AS m(x)
                      WHERE m.x IS NULL OR m.x IN ('NaN', 'Infinity', '-Infinity'))
      AND s.scale > 0
),
-- Every lateral subquery ends in OFFSET 0, which keeps the planner from pulling it up into
-- the query above: pulled up, each reference to one of its columns repeats the expression,
-- and the chain of means below grew to hundreds of vector operations a row (0.7 ms a 768-d
-- row, against 0.03 ms). CASE, not WHERE, guards what a row must not compute.
measured AS MATERIALIZED (
    SELECT i.ord, i.dup, n.norm, e.variance, z.near_zero_ratio, b.similarity, b.kind,
           g.deviation
    FROM input AS i
    -- (a lateral lookup, not a join: the planner, which cannot count the input, hashed the
    -- statement's vectors to join them to the one row of dims, 0.2 s of 0.9 s at 20,000)
    CROSS JOIN LATERAL (SELECT k.* FROM dims AS k WHERE k.d = i.d OFFSET 0) AS k
    CROSS JOIN limits AS l
    CROSS JOIN LATERAL (
        SELECT v.norm, v.norm * pg_catalog.sqrt(i.d::double precision) < 1e37 AS fast
        FROM (SELECT public.vector_norm(i.v) AS norm) AS v
        OFFSET 0
    ) AS n
    -- the mean from a float4 sum; the means become float4 through pgvector's float8[]
    -- input, which rounds where PostgreSQL's cast would refuse an underflow
    CROSS JOIN LATERAL (
        SELECT CASE WHEN n.fast THEN pg_catalog.array_fill(
                   public.inner_product(i.v, k.ones) / i.d, ARRAY[i.d])::public.vector END AS m1
        OFFSET 0
    ) AS a
    -- the centred sum of squares, with the correction term (sum of the differences)^2 / d
    CROSS JOIN LATERAL (
        SELECT (public.subvector(a.m1, 1, 1)::real[])[1]::double precision AS mean,
               public.vector_norm(c.c) ^ 2 AS squares, public.inner_product(c.c, k.ones) AS sum
        FROM (SELECT public.vector_sub(i.v, a.m1) AS c OFFSET 0) AS c
        OFFSET 0
    ) AS f1
    CROSS JOIN LATERAL (
        SELECT GREATEST((f1.squares - f1.sum * f1.sum / i.d) / i.d, 0::double precision) AS variance
        OFFSET 0
    ) AS v1
    -- where the spread is small against the mean (a constant vector: float4 rounding of the
    -- mean leaves a spread of its own), the mean refined once by the sum of the differences
    -- from it and the sums taken again: a constant vector has variance 0 exactly. Elsewhere
    -- the first mean's rounding costs at most 2e-10 of the variance (the float4 centred
    -- components, up to 6e-8, are the same in both passes), and skipping the second saves
    -- about a fifth of the work.
    CROSS JOIN LATERAL (
        SELECT CASE WHEN n.fast AND v1.variance < 1e-3 * f1.mean * f1.mean
                    THEN pg_catalog.array_fill(f1.mean + f1.sum / i.d, ARRAY[i.d])::public.vector
               END AS m2
        OFFSET 0
    ) AS a2
    CROSS JOIN LATERAL (
        SELECT public.vector_norm(c.c) ^ 2 AS squares, public.inner_product(c.c, k.ones) AS sum
        FROM (SELECT public.vector_sub(i.v, a2.m2) AS c OFFSET 0) AS c
        OFFSET 0
    ) AS f
    CROSS JOIN LATERAL (
        SELECT CASE WHEN NOT n.fast
                        THEN (SELECT pg_catalog.var_pop(z) FROM pg_catalog.unnest(i.v::real[]) AS z)
                    WHEN a2.m2 IS NULL THEN v1.variance
                    ELSE GREATEST((f.squares - f.sum * f.sum / i.d) / i.d, 0::double precision)
               END AS variance
        OFFSET 0
    ) AS v
    -- a variance within 1e-9 of its threshold is computed again in float8, two-pass as
    -- numpy does: the fast path's sum of squares comes back through a square root, an ulp
    -- off, and a variance exactly at the threshold (which passes) must not fall below it
    -- (a CASE around the test: PostgreSQL's float8 arithmetic raises on an underflow)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN CASE WHEN _sql_checks.min_variance > 0
                                   AND _sql_checks.min_variance < 1e200
                              THEN pg_catalog.abs(v.variance - _sql_checks.min_variance) * 1e9
                                   <= _sql_checks.min_variance
                              ELSE false END
                    THEN (SELECT pg_catalog.sum((w.z - w.mean) * (w.z - w.mean))
                                 / pg_catalog.count(*)
                          FROM (SELECT y::double precision AS z,
                                       pg_catalog.avg(y::double precision) OVER () AS mean
                                FROM pg_catalog.unnest(i.v::real[]) AS y) AS w)
                    ELSE v.variance END AS variance
        OFFSET 0
    ) AS e
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN l.p IS NULL THEN 0
                     WHEN k.plus_p IS NOT NULL THEN
                         i.d - pg_catalog.bit_count(public.binary_quantize(
                                   public.vector_sub(i.v, k.plus_p)))
                             - pg_catalog.bit_count(public.binary_quantize(
                                   public.vector_sub(k.minus_p, i.v)))
                     ELSE (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(i.v::real[]) AS z
                           WHERE pg_catalog.abs(z) < _sql_checks.near_zero_epsilon)
                END)::double precision / i.d AS near_zero_ratio
        OFFSET 0
    ) AS z
    LEFT JOIN calibrations AS c ON c.model = i.model AND c.d = i.d
    -- blank_like: the highest cosine over the model's references, the first on a tie
    LEFT JOIN LATERAL (
        SELECT s.similarity, s.kind
        FROM (SELECT r.pos, r.kind,
                     public.inner_product(x.centred, r.dir)
                     / NULLIF(x.centred_norm * r.dir_norm, 0) AS similarity
              FROM (SELECT y.centred, public.vector_norm(y.centred) AS centred_norm
                    FROM (SELECT CASE WHEN n.norm + public.vector_norm(c.mean_v) < 3e38
                                      THEN public.vector_sub(i.v, c.mean_v) END AS centred
                          OFFSET 0) AS y
                    OFFSET 0) AS x
              CROSS JOIN references_ AS r
              WHERE r.model = c.model
              OFFSET 0) AS s
        WHERE s.similarity IS NOT NULL
          AND s.similarity NOT IN ('NaN', 'Infinity', '-Infinity')
        ORDER BY s.similarity DESC, s.pos
        LIMIT 1
    ) AS b ON c.model IS NOT NULL
    -- model_mismatch: the largest deviation from the mean on the silent dimensions, in
    -- units of the median spread
    LEFT JOIN fingerprints AS fp ON fp.model = c.model
    LEFT JOIN LATERAL (
        SELECT pg_catalog.max(pg_catalog.abs(x.x[j]::double precision
                                             - c.mean[j]::double precision)) / fp.scale
                   AS deviation
        -- (the test inside as well: the ON clause filters after the subquery has run, and
        -- the cast to real[] cost 6 us a row of a model without silent dimensions)
        FROM (SELECT i.v::real[] AS x
              WHERE fp.model IS NOT NULL AND pg_catalog.cardinality(fp.silent) > 0
              OFFSET 0) AS x,
             pg_catalog.unnest(fp.silent) AS j
    ) AS g ON fp.model IS NOT NULL AND pg_catalog.cardinality(fp.silent) > 0
)
SELECT m.ord,
       pg_catalog.array_remove(ARRAY[
           NULL,  -- nan_or_inf: a vector holds none (see _sql_checks_raw)
           CASE WHEN m.norm < _sql_checks.min_norm THEN 'low_norm' END,
           CASE WHEN m.variance < _sql_checks.min_variance THEN 'low_variance' END,
           CASE WHEN m.near_zero_ratio > _sql_checks.max_near_zero_ratio THEN 'sparse' END,
           CASE WHEN m.similarity >= _sql_checks.blank_similarity THEN 'blank_like' END,
           CASE WHEN m.dup IS NOT NULL THEN 'duplicate_vector' END,
           -- (a vector like one of the model's degenerate references is blank_like's)
           CASE WHEN m.deviation > _sql_checks.max_silent_deviation
                     AND NOT COALESCE(m.similarity >= _sql_checks.blank_similarity, false)
                THEN 'model_mismatch' END
       ]::text[], NULL),
       0, m.norm, m.variance, m.near_zero_ratio, m.similarity, m.kind, m.deviation, m.dup
FROM measured AS m
ORDER BY m.ord
$$;
COMMENT ON FUNCTION embedding_gate._sql_checks(public.vector[], text[], text[], double precision,
    double precision, double precision, double precision, double precision, double precision) IS
    'The SQL engine''s checks (issue 25): the verdicts of checks.evaluate() for a batch of '
    'vectors, one row per vector (ord: its position), computed with pgvector''s functions; '
    'models and duplicates parallel to vectors, then the thresholds. tests/test_sql_engine.py '
    'holds it to the PL/Python engine.';

-- halfvec columns: every float16 is a float4, and the checks run on those (as the numpy
-- engine widens float16 before it measures)
CREATE OR REPLACE FUNCTION embedding_gate._sql_checks(
    vectors public.halfvec[],
    models text[],
    duplicates text[],
    min_norm double precision,
    min_variance double precision,
    near_zero_epsilon double precision,
    max_near_zero_ratio double precision,
    blank_similarity double precision,
    max_silent_deviation double precision
) RETURNS TABLE (
    ord bigint,
    issues text[],
    nonfinite integer,
    norm double precision,
    variance double precision,
    near_zero_ratio double precision,
    similarity double precision,
    similar_kind text,
    silent_deviation double precision,
    duplicate_of text
)
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT c.*
FROM embedding_gate._sql_checks(
    ARRAY(SELECT h::public.vector FROM pg_catalog.unnest(_sql_checks.vectors) WITH ORDINALITY AS u(h, o)
          ORDER BY u.o),
    _sql_checks.models, _sql_checks.duplicates, _sql_checks.min_norm,
    _sql_checks.min_variance, _sql_checks.near_zero_epsilon, _sql_checks.max_near_zero_ratio,
    _sql_checks.blank_similarity, _sql_checks.max_silent_deviation) AS c
$$;
COMMENT ON FUNCTION embedding_gate._sql_checks(public.halfvec[], text[], text[], double precision,
    double precision, double precision, double precision, double precision, double precision) IS
    'The SQL engine''s checks on halfvec vectors: the vector version on their float4 values.';

-- Vectors written to embedding_raw (real[]: pgvector refuses NaN and Inf): `raw` holds one
-- per row (a 2-d array, as array_agg builds it). A row with NaN, Inf (or a NULL component)
-- gets nan_or_inf alone, with the count and its near-zero share, as in evaluate(); the
-- others are checked as vectors (no duplicate_vector: the raw rows have none).
CREATE OR REPLACE FUNCTION embedding_gate._sql_checks_raw(
    raw real[],
    models text[],
    min_norm double precision,
    min_variance double precision,
    near_zero_epsilon double precision,
    max_near_zero_ratio double precision,
    blank_similarity double precision,
    max_silent_deviation double precision
) RETURNS TABLE (
    ord bigint,
    issues text[],
    nonfinite integer,
    norm double precision,
    variance double precision,
    near_zero_ratio double precision,
    similarity double precision,
    similar_kind text,
    silent_deviation double precision,
    duplicate_of text
)
LANGUAGE sql
STABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
WITH
rows_ AS (
    SELECT r.i::bigint AS ord, _sql_checks_raw.models[r.i] AS model, e.x, e.d, e.bad, e.near
    FROM pg_catalog.generate_series(pg_catalog.array_lower(_sql_checks_raw.raw, 1),
                                    pg_catalog.array_upper(_sql_checks_raw.raw, 1)) AS r(i)
    CROSS JOIN LATERAL (
        SELECT ARRAY(SELECT z FROM pg_catalog.unnest(_sql_checks_raw.raw[r.i:r.i]) WITH ORDINALITY
                     AS u(z, o) ORDER BY u.o) AS x
    ) AS a
    CROSS JOIN LATERAL (
        SELECT a.x, pg_catalog.cardinality(a.x) AS d,
               (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(a.x) AS z
                WHERE z IS NULL OR z IN ('NaN', 'Infinity', '-Infinity'))::integer AS bad,
               (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(a.x) AS z
                WHERE pg_catalog.abs(z) < _sql_checks_raw.near_zero_epsilon) AS near
    ) AS e
),
finite AS (
    SELECT pg_catalog.array_agg(f.x::public.vector ORDER BY f.ord) AS v,
           pg_catalog.array_agg(f.model ORDER BY f.ord) AS m,
           pg_catalog.array_agg(f.ord ORDER BY f.ord) AS o
    FROM rows_ AS f WHERE f.bad = 0
)
SELECT f.o[c.ord], c.issues, c.nonfinite, c.norm, c.variance, c.near_zero_ratio,
       c.similarity, c.similar_kind, c.silent_deviation, c.duplicate_of
FROM finite AS f
CROSS JOIN LATERAL embedding_gate._sql_checks(
    f.v, f.m, NULL::text[], _sql_checks_raw.min_norm, _sql_checks_raw.min_variance,
    _sql_checks_raw.near_zero_epsilon, _sql_checks_raw.max_near_zero_ratio,
    _sql_checks_raw.blank_similarity, _sql_checks_raw.max_silent_deviation) AS c
WHERE f.v IS NOT NULL
UNION ALL
SELECT r.ord, ARRAY['nan_or_inf']::text[], r.bad, NULL, NULL, r.near::double precision / r.d,
       NULL, NULL, NULL, NULL
FROM rows_ AS r WHERE r.bad > 0
ORDER BY 1
$$;
COMMENT ON FUNCTION embedding_gate._sql_checks_raw(real[], text[], double precision,
    double precision, double precision, double precision, double precision, double precision) IS
    'The SQL engine''s checks on vectors written to embedding_raw (a 2-d real[], one row per '
    'vector): NaN/Inf rows get nan_or_inf with their count, the others the checks of '
    '_sql_checks.';

-- pure functions of their arguments and of tables every role may read (the models'
-- calibrations and references), which the SQL engine's scans (verify_embeddings,
-- embedding_measures, preview_thresholds) call as their caller
GRANT EXECUTE ON FUNCTION embedding_gate._float4_below(double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._sql_checks(public.vector[], text[], text[],
    double precision, double precision, double precision, double precision, double precision,
    double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._sql_checks(public.halfvec[], text[], text[],
    double precision, double precision, double precision, double precision, double precision,
    double precision) TO PUBLIC;
GRANT EXECUTE ON FUNCTION embedding_gate._sql_checks_raw(real[], text[], double precision,
    double precision, double precision, double precision, double precision, double precision)
    TO PUBLIC;
