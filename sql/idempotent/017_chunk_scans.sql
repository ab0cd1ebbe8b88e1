-- What a recheck of chunks does besides judging, for both engines (the PL/Python engine's
-- scans.py and the SQL engine's sql/engine_sql/021_recheck_batch.sql call them): the
-- embedding hashes stored more than once, each model's mean over its stored rows as its
-- calibration, and the writing of a recheck's verdicts.

-- The embedding hashes stored more than once: one pass over chunks_embedding_hash_idx (an
-- index-only scan once VACUUM has run). A scan probes for duplicates only the rows with one
-- of these hashes, and the rows already flagged (written after this ran, perhaps).
CREATE OR REPLACE FUNCTION embedding_gate._twin_hashes() RETURNS bigint[]
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT COALESCE(pg_catalog.array_agg(t.embedding_hash), '{}')
FROM (SELECT c.embedding_hash FROM public.chunks AS c WHERE c.embedding_hash IS NOT NULL
      GROUP BY c.embedding_hash HAVING pg_catalog.count(*) > 1) AS t
$$;
COMMENT ON FUNCTION embedding_gate._twin_hashes() IS
    'The embedding hashes stored more than once in chunks (the rows a scan probes for '
    'duplicate_vector, with the flagged ones).';
-- (the scans run as their caller, who reads chunks' hashes if it may read chunks)
GRANT EXECUTE ON FUNCTION embedding_gate._twin_hashes() TO PUBLIC;

-- Each model's mean over its stored rows (those not flagged model_mismatch), where it has at
-- least min_rows of them, recorded as its calibration when it has none, or one from its
-- stored rows whose rows have doubled since (pgvector's avg(vector), in C: 4 us a 768-d
-- row, so on the first batch of a recheck, not on every write); never over a mean the
-- loader's sample or a writer gave, nor where the writes keep it (it has a spread:
-- _add_calibration's).
CREATE OR REPLACE FUNCTION embedding_gate._calibrate_from_stored(min_rows integer) RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
WITH counts AS (
    SELECT c.embedding_model AS model, pg_catalog.count(*) AS n
    FROM public.chunks AS c
    WHERE c.embedding IS NOT NULL AND c.embedding_model IS NOT NULL
      AND NOT ('model_mismatch' = ANY (COALESCE(c.quality_issues, '{}')))
    GROUP BY c.embedding_model
),
due AS (
    SELECT c.model FROM counts AS c
    LEFT JOIN embedding_gate.model_calibrations AS m ON m.model = c.model
    WHERE c.n >= _calibrate_from_stored.min_rows AND m.spread IS NULL
      AND (m.model IS NULL OR (m.source = 'stored rows' AND c.n >= 2 * m.sample_size))
)
INSERT INTO embedding_gate.model_calibrations AS c (model, mean, sample_size, source)
SELECT s.embedding_model, public.avg(s.embedding)::real[], pg_catalog.count(*)::integer,
       'stored rows'
FROM public.chunks AS s
WHERE s.embedding IS NOT NULL
  AND NOT ('model_mismatch' = ANY (COALESCE(s.quality_issues, '{}')))
  AND s.embedding_model IN (SELECT d.model FROM due AS d)
GROUP BY s.embedding_model
ON CONFLICT (model) DO UPDATE SET mean = excluded.mean, sample_size = excluded.sample_size,
    source = excluded.source, recorded_at = pg_catalog.now(), recorded_by = SESSION_USER
$$;
COMMENT ON FUNCTION embedding_gate._calibrate_from_stored(integer) IS
    'A recheck''s first step: each model''s mean over its stored rows of chunks (not flagged '
    'model_mismatch) as its calibration, where it has min_rows of them and none yet, or one '
    'from stored rows whose rows have doubled since.';
REVOKE EXECUTE ON FUNCTION embedding_gate._calibrate_from_stored(integer) FROM PUBLIC;

-- A recheck's verdicts (NULL issues for a row now clean; issues comma-separated), written
-- only to the rows still as the recheck read them (versions: their xmin then) that no one
-- else holds: it locks them first, in chunk_id order, skipping any a writer has locked (that
-- writer's trigger judges its own vector). It never waits, so a writer can wait on it only
-- until it commits, and never deadlocks with it; a verdict never describes an older vector.
-- A verdict the recheck only confirms is left as it is: rewriting it would be a new version
-- of the row for a writer at SERIALIZABLE to fail on.
CREATE OR REPLACE FUNCTION embedding_gate._write_rechecked(
    chunk_ids text[], issues text[], reasons text[], norms double precision[],
    variances double precision[], ratios double precision[], similarities double precision[],
    duplicates text[], versions text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
WITH v AS (
    SELECT * FROM ROWS FROM (
        pg_catalog.unnest(_write_rechecked.chunk_ids), pg_catalog.unnest(_write_rechecked.issues),
        pg_catalog.unnest(_write_rechecked.reasons), pg_catalog.unnest(_write_rechecked.norms),
        pg_catalog.unnest(_write_rechecked.variances), pg_catalog.unnest(_write_rechecked.ratios),
        pg_catalog.unnest(_write_rechecked.similarities),
        pg_catalog.unnest(_write_rechecked.duplicates), pg_catalog.unnest(_write_rechecked.versions))
        AS v(chunk_id, issues, reason, norm, variance, ratio, similarity, duplicate_of, x)
),
mine AS MATERIALIZED (
    SELECT c.chunk_id FROM public.chunks AS c
    JOIN v ON v.chunk_id = c.chunk_id
    WHERE c.xmin::text = v.x
      AND (c.quality_issues, c.quality_reason, c.quality_norm, c.quality_variance,
           c.quality_near_zero_ratio, c.quality_blank_similarity, c.quality_duplicate_of)
          IS DISTINCT FROM (pg_catalog.string_to_array(v.issues, ','), v.reason, v.norm,
                            v.variance, v.ratio, v.similarity, v.duplicate_of)
    ORDER BY c.chunk_id
    FOR NO KEY UPDATE OF c SKIP LOCKED
)
UPDATE public.chunks AS c
SET quality_issues = pg_catalog.string_to_array(v.issues, ','), quality_reason = v.reason,
    quality_norm = v.norm, quality_variance = v.variance, quality_near_zero_ratio = v.ratio,
    quality_blank_similarity = v.similarity, quality_duplicate_of = v.duplicate_of,
    quality_checked_at = pg_catalog.now()
FROM v JOIN mine AS m ON m.chunk_id = v.chunk_id
WHERE c.chunk_id = v.chunk_id
$$;
COMMENT ON FUNCTION embedding_gate._write_rechecked(text[], text[], text[], double precision[],
    double precision[], double precision[], double precision[], text[], text[]) IS
    'A recheck''s verdicts on chunks, written only to the rows still as it read them '
    '(versions: their xmin) that no other transaction holds (SKIP LOCKED), and only where '
    'they change.';
REVOKE EXECUTE ON FUNCTION embedding_gate._write_rechecked(text[], text[], text[],
    double precision[], double precision[], double precision[], double precision[], text[],
    text[]) FROM PUBLIC;
