-- The SQL engine's judging of stored rows of chunks (issue 25), what verify_embeddings(),
-- recheck_embeddings(), embedding_measures() and preview_thresholds() read (020-023): the
-- rows with the given chunk_ids, their embeddings (or embedding_raw) checked by
-- embedding_gate._sql_checks with the thresholds given, as their caller reads them (the
-- scans run as their caller: row-level security and column rights apply).

-- probe: the embedding hashes to look for duplicates of (embedding_gate._twin_hashes()),
-- besides the rows already flagged; NULL looks for every row's, as a sample does. A
-- duplicate is a row of other content with the same vector written before it (created_at,
-- then chunk_id), as the insert trigger judges it.
CREATE OR REPLACE FUNCTION embedding_gate._sql_judge_chunks(
    chunk_ids text[], t jsonb, probe bigint[])
RETURNS TABLE (chunk_id text, embedding_model text, had_issues boolean, version text,
               issues text[], norm double precision, variance double precision,
               near_zero_ratio double precision, blank_similarity double precision,
               similar_kind text, silent_deviation double precision, duplicate_of text,
               nonfinite integer, dims integer)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
BEGIN
    IF (SELECT pg_catalog.count(DISTINCT pg_catalog.cardinality(c.embedding_raw))
        FROM public.chunks AS c
        WHERE c.chunk_id = ANY (_sql_judge_chunks.chunk_ids)
          AND c.embedding IS NULL AND c.embedding_raw IS NOT NULL) > 1 THEN
        RAISE EXCEPTION 'embedding_raw vectors of different dimensions' USING ERRCODE = '22000';
    END IF;
    RETURN QUERY
    WITH stored AS MATERIALIZED (
        SELECT i.chunk_id, i.embedding, i.embedding_raw, i.embedding_model,
               i.quality_issues IS NOT NULL AS had, i.xmin::text AS x,
               CASE WHEN i.embedding IS NOT NULL
                         AND (_sql_judge_chunks.probe IS NULL
                              OR i.embedding_hash = ANY (_sql_judge_chunks.probe)
                              OR i.quality_issues IS NOT NULL)
                    THEN (SELECT o.chunk_id
                          FROM (SELECT c.chunk_id, c.content FROM public.chunks AS c
                                WHERE c.embedding_hash = i.embedding_hash
                                  AND (c.created_at, c.chunk_id) < (i.created_at, i.chunk_id)
                                  AND embedding_gate.vector_bytes(c.embedding)
                                      = embedding_gate.vector_bytes(i.embedding)
                                ORDER BY c.created_at, c.chunk_id LIMIT 1) AS o
                          WHERE o.content IS DISTINCT FROM i.content) END AS dup
        FROM public.chunks AS i
        WHERE i.chunk_id = ANY (_sql_judge_chunks.chunk_ids)
          AND (i.embedding IS NOT NULL OR i.embedding_raw IS NOT NULL)
    ),
    vectors AS (
        SELECT pg_catalog.array_agg(s.embedding ORDER BY s.chunk_id) AS v,
               pg_catalog.array_agg(s.embedding_model ORDER BY s.chunk_id) AS m,
               pg_catalog.array_agg(s.dup ORDER BY s.chunk_id) AS dup,
               pg_catalog.array_agg(s.chunk_id ORDER BY s.chunk_id) AS ids
        FROM stored AS s WHERE s.embedding IS NOT NULL
    ),
    raws AS (
        SELECT pg_catalog.array_agg(s.embedding_raw ORDER BY s.chunk_id) AS r,
               pg_catalog.array_agg(s.embedding_model ORDER BY s.chunk_id) AS m,
               pg_catalog.array_agg(s.chunk_id ORDER BY s.chunk_id) AS ids
        FROM stored AS s WHERE s.embedding IS NULL
    ),
    judged AS (
        -- (ids unnested in step, not subscripted: b.ids[c.ord] walks a flat array of text
        -- from its start, and n rows' subscripts took time in n squared)
        SELECT x.chunk_id, c.*
        FROM vectors AS b
        CROSS JOIN LATERAL embedding_gate._sql_checks(
            b.v, b.m, b.dup, (t ->> 'min_norm')::double precision,
            (t ->> 'min_variance')::double precision,
            (t ->> 'near_zero_epsilon')::double precision,
            (t ->> 'max_near_zero_ratio')::double precision,
            (t ->> 'blank_similarity')::double precision,
            (t ->> 'max_silent_deviation')::double precision) AS c
        JOIN ROWS FROM (pg_catalog.unnest(b.ids)) WITH ORDINALITY AS x(chunk_id, n) ON x.n = c.ord
        WHERE b.v IS NOT NULL
        UNION ALL
        SELECT x.chunk_id, c.*
        FROM raws AS b
        CROSS JOIN LATERAL embedding_gate._sql_checks_raw(
            b.r, b.m, (t ->> 'min_norm')::double precision,
            (t ->> 'min_variance')::double precision,
            (t ->> 'near_zero_epsilon')::double precision,
            (t ->> 'max_near_zero_ratio')::double precision,
            (t ->> 'blank_similarity')::double precision,
            (t ->> 'max_silent_deviation')::double precision) AS c
        JOIN ROWS FROM (pg_catalog.unnest(b.ids)) WITH ORDINALITY AS x(chunk_id, n) ON x.n = c.ord
        WHERE b.r IS NOT NULL
    )
    SELECT s.chunk_id, s.embedding_model, s.had, s.x, j.issues, j.norm, j.variance,
           j.near_zero_ratio, j.similarity, j.similar_kind, j.silent_deviation, j.duplicate_of,
           j.nonfinite,
           COALESCE(public.vector_dims(s.embedding), pg_catalog.cardinality(s.embedding_raw))
    FROM judged AS j JOIN stored AS s ON s.chunk_id = j.chunk_id
    ORDER BY s.chunk_id;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_judge_chunks(text[], jsonb, bigint[]) IS
    'The SQL engine''s scans: the stored rows of chunks with these chunk_ids judged with the '
    'thresholds t (jsonb, as _sql_settings() gives them), duplicates looked for where the hash '
    'is in probe or the row is flagged (probe NULL: every row), as the caller reads chunks.';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_judge_chunks(text[], jsonb, bigint[]) TO PUBLIC;

-- How many stored rows of chunks a scan reads at a time: 6 MB of this deployment's vectors
-- (as scans.read_rows() for the PL/Python engine), at least 256.
CREATE OR REPLACE FUNCTION embedding_gate._sql_read_rows() RETURNS integer
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN d.d > 0 THEN GREATEST(256, (6 << 20) / (4 * d.d)) ELSE 2000 END
FROM (SELECT embedding_gate.embedding_dim() AS d) AS d
$$;
COMMENT ON FUNCTION embedding_gate._sql_read_rows() IS
    'The SQL engine''s scans: how many stored rows of chunks they read at a time (6 MB of '
    'vectors).';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_read_rows() TO PUBLIC;

-- The chunk_ids of the next n stored embeddings (embedding or embedding_raw) after chunk_id
-- `after` (NULL: from the first), in chunk_id order: the batches of the SQL engine's scans.
-- Two statements, not one with "after IS NULL OR": a generic plan of that could not
-- range-scan the primary key.
CREATE OR REPLACE FUNCTION embedding_gate._sql_next_chunk_ids(after text, n integer)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF after IS NULL THEN
        RETURN ARRAY(SELECT c.chunk_id FROM public.chunks AS c
                     WHERE c.embedding IS NOT NULL OR c.embedding_raw IS NOT NULL
                     ORDER BY c.chunk_id LIMIT n);
    END IF;
    RETURN ARRAY(SELECT c.chunk_id FROM public.chunks AS c
                 WHERE c.chunk_id > after
                   AND (c.embedding IS NOT NULL OR c.embedding_raw IS NOT NULL)
                 ORDER BY c.chunk_id LIMIT n);
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_next_chunk_ids(text, integer) IS
    'The SQL engine''s scans: the chunk_ids of the next n stored embeddings after the given '
    'chunk_id (NULL: from the first), as their caller reads chunks.';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_next_chunk_ids(text, integer) TO PUBLIC;
