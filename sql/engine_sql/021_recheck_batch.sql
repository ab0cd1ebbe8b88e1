-- One batch of recheck_embeddings() (sql/idempotent/021_recheck_embeddings.sql) in the SQL
-- engine: what scans.recheck_batch() does in the PL/Python one. The next batch_size stored
-- rows of chunks after chunk_id `after`, read and judged READ_ROWS at a time (6 MB of
-- vectors: a batch is never one array), their verdicts written together at the end, right
-- before the batch commits, by embedding_gate._write_rechecked (the rows still as read, not
-- held by a writer, and only where the verdict changes). Always in flag mode: a recheck
-- never moves or deletes stored rows. twins: the hashes stored more than once, which the
-- first batch (NULL) computes, after recording each model's mean over its stored rows as its
-- calibration where due (_calibrate_from_stored, both in 017_chunk_scans.sql).
-- (PL/pgSQL refuses a parameter and an output column of one name, which _recheck_batch()'s
-- signature has: _recheck_batch() below is this, in LANGUAGE sql)
CREATE OR REPLACE FUNCTION embedding_gate._sql_recheck_batch(
    after text, batch_size integer, twins bigint[])
RETURNS TABLE (checked integer, low_quality integer, last_chunk_id text, twin_hashes bigint[])
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_variable
DECLARE
    size integer := GREATEST($2, 1);
    t jsonb := embedding_gate._sql_settings();
    hashes bigint[] := $3;
    last text := $1;
    read_rows integer := embedding_gate._sql_read_rows();
    ids text[];
    n integer := 0;
    low integer := 0;
    -- the verdicts to write: the flagged rows, and the clean ones that carry old codes
    w_ids text[] := '{}';
    w_issues text[] := '{}';
    w_reasons text[] := '{}';
    w_norms double precision[] := '{}';
    w_variances double precision[] := '{}';
    w_ratios double precision[] := '{}';
    w_similarities double precision[] := '{}';
    w_duplicates text[] := '{}';
    w_versions text[] := '{}';
BEGIN
    IF hashes IS NULL THEN  -- the first batch
        PERFORM embedding_gate._calibrate_from_stored(100);  -- settings.CALIBRATION_ROWS
        hashes := embedding_gate._twin_hashes();
    END IF;
    WHILE n < size LOOP
        ids := embedding_gate._sql_next_chunk_ids(last, LEAST(read_rows, size - n));
        EXIT WHEN pg_catalog.cardinality(ids) = 0;
        n := n + pg_catalog.cardinality(ids);
        last := ids[pg_catalog.cardinality(ids)];
        SELECT low + pg_catalog.count(*) FILTER (WHERE j.flagged)::integer,
               w_ids || COALESCE(pg_catalog.array_agg(j.chunk_id), '{}'),
               w_issues || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN pg_catalog.array_to_string(j.issues, ',') END), '{}'),
               w_reasons || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN embedding_gate._sql_reason(
                       j.issues, j.nonfinite, j.dims, j.norm, j.variance, j.near_zero_ratio,
                       j.blank_similarity, j.similar_kind, j.silent_deviation, j.duplicate_of)
                   END), '{}'),
               w_norms || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN j.norm END), '{}'),
               w_variances || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN j.variance END), '{}'),
               w_ratios || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN j.near_zero_ratio END), '{}'),
               w_similarities || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN j.blank_similarity END), '{}'),
               w_duplicates || COALESCE(pg_catalog.array_agg(
                   CASE WHEN j.flagged THEN j.duplicate_of END), '{}'),
               w_versions || COALESCE(pg_catalog.array_agg(j.version), '{}')
        INTO low, w_ids, w_issues, w_reasons, w_norms, w_variances, w_ratios, w_similarities,
             w_duplicates, w_versions
        FROM (SELECT j.*, pg_catalog.cardinality(j.issues) > 0 AS flagged
              FROM embedding_gate._sql_judge_chunks(ids, t, hashes) AS j) AS j
        WHERE j.flagged OR j.had_issues;
        -- (the count of the flagged rows comes from the rows kept: every flagged row is)
    END LOOP;
    IF pg_catalog.cardinality(w_ids) > 0 THEN
        PERFORM embedding_gate._write_rechecked(w_ids, w_issues, w_reasons, w_norms,
            w_variances, w_ratios, w_similarities, w_duplicates, w_versions);
    END IF;
    RETURN QUERY SELECT n, low, last, hashes;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_recheck_batch(text, integer, bigint[]) IS
    'One batch of recheck_embeddings() (the SQL engine), in chunk_id order after the given '
    'chunk_id; twins: the embedding hashes stored more than once (NULL: compute and return '
    'them).';
-- state-changing maintenance is the owner's
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_recheck_batch(text, integer, bigint[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION embedding_gate._recheck_batch(
    after text, batch_size integer, twins bigint[])
RETURNS TABLE (checked integer, low_quality integer, last_chunk_id text, twins bigint[])
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT * FROM embedding_gate._sql_recheck_batch($1, $2, $3)
$$;
COMMENT ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]) IS
    'One batch of recheck_embeddings() (the SQL engine: _sql_recheck_batch()), in chunk_id '
    'order after the given chunk_id; twins: the embedding hashes stored more than once (NULL: '
    'compute and return them).';
REVOKE EXECUTE ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]) FROM PUBLIC;
