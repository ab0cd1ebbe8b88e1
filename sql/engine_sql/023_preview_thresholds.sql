-- preview_thresholds() in the SQL engine (preview.py in the PL/Python one): what a proposed
-- set of thresholds would do, before anyone applies it. Every stored embedding of chunks and
-- of the attached tables the caller may read, judged with the current global thresholds and
-- with the proposal (a table's own overrides aside, as in the PL/Python engine): per check,
-- the percentiles of its measure under the proposal (percentile_cont, numpy's linear
-- interpolation, over every finite value: exact at any size, where the PL/Python engine
-- samples 1,000,000 beyond that many) and how many embeddings each set flags.

-- The rows: each stored embedding's codes under `now` and under `proposed`, and its
-- measures under the proposal (only near_zero_epsilon changes a measure).
CREATE OR REPLACE FUNCTION embedding_gate._sql_preview_rows(now jsonb, proposed jsonb)
RETURNS TABLE (issues_now text[], issues_proposed text[], norm double precision,
               variance double precision, near_zero_ratio double precision,
               blank_similarity double precision, silent_deviation double precision,
               dims integer)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_variable
DECLARE
    read_rows integer := embedding_gate._sql_read_rows();
    hashes bigint[];
    ids text[];
    last text;
    attached regclass;
BEGIN
    IF pg_catalog.has_table_privilege('public.chunks', 'SELECT') THEN
        hashes := embedding_gate._twin_hashes();
        LOOP
            ids := embedding_gate._sql_next_chunk_ids(last, read_rows);
            EXIT WHEN pg_catalog.cardinality(ids) = 0;
            last := ids[pg_catalog.cardinality(ids)];
            RETURN QUERY
            SELECT a.issues, b.issues, b.norm, b.variance, b.near_zero_ratio,
                   b.blank_similarity, b.silent_deviation, b.dims
            FROM embedding_gate._sql_judge_chunks(ids, now, hashes) AS a
            JOIN embedding_gate._sql_judge_chunks(ids, proposed, hashes) AS b
                ON b.chunk_id = a.chunk_id;
        END LOOP;
    END IF;
    FOR attached IN SELECT s.table_oid FROM embedding_gate._sql_scannable() AS s LOOP
        RETURN QUERY
        SELECT a.issues, b.issues, b.norm, b.variance, b.near_zero_ratio, b.blank_similarity,
               b.silent_deviation, NULL::integer
        FROM embedding_gate._sql_scan_attached(attached, now, NULL) AS a
        JOIN embedding_gate._sql_scan_attached(attached, proposed, NULL) AS b
            ON b.row_id = a.row_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_preview_rows(jsonb, jsonb) IS
    'preview_thresholds() in the SQL engine: every stored embedding the caller may read, its '
    'codes under the thresholds now and proposed, and its measures under the proposal.';

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
SET jit = off
AS $$
#variable_conflict use_variable
DECLARE
    now jsonb := embedding_gate._sql_table_settings(NULL);
    proposed jsonb;
    bad record;
BEGIN
    SELECT p.name, p.value INTO bad
    FROM ROWS FROM (pg_catalog.unnest(ARRAY['min_norm', 'min_variance', 'near_zero_epsilon',
                                            'max_near_zero_ratio', 'blank_similarity',
                                            'max_silent_deviation']),
                    pg_catalog.unnest(ARRAY[$1, $2, $3, $4, $5, $6])) WITH ORDINALITY
         AS p(name, value, i)
    WHERE p.value IN ('NaN', 'Infinity', '-Infinity') OR p.value < 0
    ORDER BY p.i LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is %, expected a non-negative number', bad.name,
            -- (as Python's repr of a float)
            CASE WHEN bad.value = 'NaN' THEN 'nan' WHEN bad.value = 'Infinity' THEN 'inf'
                 WHEN bad.value = '-Infinity' THEN '-inf'
                 WHEN bad.value::text ~ '^-?[0-9]+$' THEN bad.value::text || '.0'
                 ELSE bad.value::text END
            USING ERRCODE = '22023';
    END IF;
    -- (NULL keeps the current value)
    proposed := now || pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'min_norm', $1, 'min_variance', $2, 'near_zero_epsilon', $3,
        'max_near_zero_ratio', $4, 'blank_similarity', $5, 'max_silent_deviation', $6));
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT * FROM embedding_gate._sql_preview_rows(now, proposed)
    ),
    total AS (SELECT pg_catalog.count(*) AS n, pg_catalog.max(r.dims) AS d FROM r),
    -- per check, in the contract's order: its measure, thresholds, values and note
    checks AS (
        SELECT k.i, k.code,
               (ARRAY['NaN/Inf components', 'norm', 'variance', 'near_zero_ratio',
                      'cosine to the embedding of empty text, the model''s mean removed',
                      'identical embedding, other content',
                      'deviation on the model''s silent dimensions, in units of its median '
                      'spread'])[k.i] AS measure,
               (ARRAY[NULL, 'min_norm', 'min_variance', 'max_near_zero_ratio',
                      'blank_similarity', NULL, 'max_silent_deviation'])[k.i] AS setting
        FROM pg_catalog.unnest(embedding_gate._codes()) WITH ORDINALITY AS k(code, i)
    )
    SELECT c.code, c.measure, (now ->> c.setting)::double precision,
           (proposed ->> c.setting)::double precision, t.n,
           q.p[1], q.p[2], q.p[3], q.p[4], q.p[5], q.p[6], q.p[7], q.p[8], q.p[9],
           (SELECT pg_catalog.count(*) FROM r WHERE c.code = ANY (r.issues_now)),
           f.n, CASE WHEN t.n > 0 THEN 100.0::double precision * f.n / t.n ELSE 0 END,
           CASE c.code
               WHEN 'nan_or_inf' THEN 'always on: pgvector cannot hold NaN or Inf'
               WHEN 'low_norm' THEN 'flags norm < threshold; normalising models give norm 1.0'
               WHEN 'low_variance' THEN
                   'flags variance < threshold; a unit-normalised ' || COALESCE(t.d::text, 'd')
                   || '-d vector has variance about 1/d = '
                   || COALESCE(embedding_gate._format_g(1.0::double precision / t.d, 4), '1/d')
               WHEN 'sparse' THEN
                   'flags a share of abs(x) < near_zero_epsilon above threshold; '
                   'near_zero_epsilon '
                   || embedding_gate._format_g((now ->> 'near_zero_epsilon')::double precision, 6)
                   || ' -> '
                   || embedding_gate._format_g((proposed ->> 'near_zero_epsilon')::double precision, 6)
               WHEN 'blank_like' THEN
                   'flags that cosine >= threshold; only chunks whose model has a blank reference '
                   'and a calibration (embedding_gate.blank_references, model_calibrations); '
                   'ordinary text sits near 0 whatever the model'
               WHEN 'duplicate_vector' THEN
                   'always on: flags a chunk whose embedding equals an earlier chunk''s'
               ELSE 'flags a deviation > threshold; only rows whose model has a calibration from '
                    'its rows (embedding_gate.model_calibrations.spread); its own rows sit below '
                    '0.0001'
           END
    FROM checks AS c
    CROSS JOIN total AS t
    CROSS JOIN LATERAL (SELECT pg_catalog.count(*) AS n FROM r WHERE c.code = ANY (r.issues_proposed))
        AS f
    LEFT JOIN LATERAL (
        SELECT pg_catalog.percentile_cont(ARRAY[0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1]
                                          ::double precision[])
                   WITHIN GROUP (ORDER BY m.x) AS p
        FROM r CROSS JOIN LATERAL (
            SELECT CASE c.code WHEN 'low_norm' THEN r.norm WHEN 'low_variance' THEN r.variance
                               WHEN 'sparse' THEN r.near_zero_ratio
                               WHEN 'blank_like' THEN r.blank_similarity
                               WHEN 'model_mismatch' THEN r.silent_deviation END AS x) AS m
        WHERE m.x IS NOT NULL AND m.x NOT IN ('NaN', 'Infinity', '-Infinity')
        HAVING pg_catalog.count(*) > 0
    ) AS q ON c.setting IS NOT NULL
    ORDER BY c.i;
    RETURN QUERY
    WITH r AS MATERIALIZED (
        SELECT * FROM embedding_gate._sql_preview_rows(now, proposed)
    ),
    total AS (SELECT pg_catalog.count(*) AS n FROM r)
    SELECT 'any'::text, 'low quality'::text, NULL::double precision, NULL::double precision,
           t.n, NULL::double precision, NULL::double precision, NULL::double precision,
           NULL::double precision, NULL::double precision, NULL::double precision,
           NULL::double precision, NULL::double precision, NULL::double precision,
           (SELECT pg_catalog.count(*) FROM r WHERE pg_catalog.cardinality(r.issues_now) > 0),
           f.n, CASE WHEN t.n > 0 THEN 100.0::double precision * f.n / t.n ELSE 0 END,
           'chunks with at least one issue'
    FROM total AS t
    CROSS JOIN LATERAL (SELECT pg_catalog.count(*) AS n FROM r
                        WHERE pg_catalog.cardinality(r.issues_proposed) > 0) AS f;
END
$$;
COMMENT ON FUNCTION public.preview_thresholds(double precision, double precision,
                                              double precision, double precision,
                                              double precision, double precision) IS
    'Threshold tuning without changing anything: per check, the percentiles of its measure '
    'over every stored embedding of chunks and the attached tables (exact, by percentile_cont: '
    'the SQL engine) and how many embeddings the current and the proposed thresholds flag '
    '(NULL keeps the current value), e.g. '
    'SELECT * FROM preview_thresholds(min_norm => 0.2, min_variance => 0.01, '
    'max_silent_deviation => 0.0005).';
