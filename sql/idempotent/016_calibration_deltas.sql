-- Keeps each model's calibration current from the rows the gate sees: a statement appends
-- the count, sum and sum of squares of the model's vectors it wrote
-- (embedding_gate._calibration_deltas; no row is updated, so concurrent writers never wait
-- on one another), and the mean and spread of all of them become the model's calibration
-- (source 'stored rows') once they are min_rows or more: at once where the model has no
-- calibration with a spread yet (none, the loader's sample, a given one, a recheck's
-- mean), then each time 32 deltas have gathered. A mean the loader's sample or a writer
-- gave (source 'sample', 'given') stays blank_like's centre: the rows give it their
-- spread, and their own mean on the silent dimensions only (spread below 0.001 of the
-- median, checks.SILENT_SPREAD), where model_mismatch compares a vector with the mean. A
-- corpus's first rows carry its topic and language (the sample corpus's first 104 rows are
-- English: with their mean removed, all-MiniLM-L6-v2's Korean paragraphs looked like its
-- embedding of characters it does not know, cosine 0.36-0.50); the sample's 40 sentences in
-- 14 languages do not (0.05-0.22). One writer at a
-- time folds (a transaction-level advisory lock, tried, never waited for: the others
-- append and go on), taking only the deltas no other fold holds. Under SERIALIZABLE it
-- reads the deltas only one statement in 16, at random (that read is a read/write
-- dependency on every concurrent writer's append), and a fold that loses a race gives up
-- quietly. Returns whether this call recorded the model's first calibration (the caller
-- then judges the rows it stored before).
CREATE OR REPLACE FUNCTION embedding_gate._add_calibration(
    model text, dim integer, n bigint, total public.vector, squares public.vector,
    min_rows integer)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deltas bigint;
    seen bigint;
    had integer;
    had_source text;
    had_spread boolean;
    kept_mean real[];
    summed public.vector;
    summed_squares public.vector;
BEGIN
    IF n > 0 THEN
        INSERT INTO embedding_gate._calibration_deltas AS d (model, dim, n, total, squares)
        VALUES (_add_calibration.model, _add_calibration.dim, _add_calibration.n,
                _add_calibration.total, _add_calibration.squares);
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') = 'serializable'
       AND pg_catalog.random() >= 1.0 / 16 THEN
        RETURN false;
    END IF;
    SELECT c.sample_size, c.source, c.spread IS NOT NULL,
           CASE WHEN c.source IN ('sample', 'given')
                     AND pg_catalog.cardinality(c.mean) = _add_calibration.dim
                THEN c.mean END
    INTO had, had_source, had_spread, kept_mean
    FROM embedding_gate.model_calibrations AS c WHERE c.model = _add_calibration.model;
    SELECT pg_catalog.count(*), pg_catalog.sum(d.n) INTO deltas, seen
    FROM embedding_gate._calibration_deltas AS d
    WHERE d.model = _add_calibration.model AND d.dim = _add_calibration.dim;
    -- due: the model's first calibration, or the first with a spread (a sample's, a given
    -- one, a recheck's over the stored rows), then every 32 statements
    IF seen IS NULL OR seen < min_rows OR (had IS NOT NULL AND had_spread AND deltas < 32) THEN
        RETURN false;
    END IF;
    IF NOT pg_catalog.pg_try_advisory_xact_lock(
            pg_catalog.hashtext('embedding_gate._add_calibration'),
            pg_catalog.hashtext(_add_calibration.model)) THEN
        RETURN false;  -- another writer folds: its transaction records the calibration
    END IF;
    BEGIN
        WITH folded AS (
            DELETE FROM embedding_gate._calibration_deltas AS d
            WHERE d.ctid = ANY (ARRAY(
                SELECT k.ctid FROM embedding_gate._calibration_deltas AS k
                WHERE k.model = _add_calibration.model AND k.dim = _add_calibration.dim
                FOR UPDATE SKIP LOCKED))
            RETURNING d.n, d.total, d.squares
        )
        SELECT pg_catalog.sum(f.n), public.sum(f.total), public.sum(f.squares)
        INTO seen, summed, summed_squares FROM folded AS f;
        IF seen IS NULL THEN
            RETURN false;
        END IF;
        INSERT INTO embedding_gate._calibration_deltas AS d (model, dim, n, total, squares)
        VALUES (_add_calibration.model, _add_calibration.dim, seen, summed, summed_squares);
        IF seen < min_rows THEN
            RETURN false;
        END IF;
        -- the mean (a kept one's off the silent dimensions), and the spread:
        -- sqrt(E[x^2] - E[x]^2), in float8, with its median
        WITH s AS (
            SELECT u.x, u.k, pg_catalog.sqrt(GREATEST(
                       u.q::float8 / seen - (u.x::float8 / seen) ^ 2, 0)) AS sd
            FROM unnest(summed::real[], summed_squares::real[]) WITH ORDINALITY AS u(x, q, k)
        ), m AS (
            SELECT pg_catalog.percentile_cont(0.5) WITHIN GROUP (ORDER BY s.sd) AS median
            FROM s
        )
        INSERT INTO embedding_gate.model_calibrations AS c
            (model, mean, spread, sample_size, source)
        SELECT _add_calibration.model,
               -- (values below float4's range are 0: a cast would fail on them)
               pg_catalog.array_agg(
                   CASE WHEN kept_mean IS NOT NULL AND s.sd >= 1e-3 * m.median
                        THEN kept_mean[s.k]
                        ELSE (CASE WHEN abs(s.x::float8 / seen) < 1e-37 THEN 0
                                   ELSE s.x::float8 / seen END)::real END ORDER BY s.k),
               pg_catalog.array_agg((CASE WHEN s.sd < 1e-37 THEN 0 ELSE s.sd END)::real
                                    ORDER BY s.k),
               LEAST(seen, 2147483647)::integer, COALESCE(had_source, 'stored rows')
        FROM s CROSS JOIN m
        ON CONFLICT ON CONSTRAINT model_calibrations_pkey DO UPDATE
            SET mean = excluded.mean, spread = excluded.spread,
                sample_size = excluded.sample_size,
                source = excluded.source, recorded_at = pg_catalog.now(),
                recorded_by = SESSION_USER;
    EXCEPTION WHEN serialization_failure THEN
        RETURN false;  -- another fold took them first: the next statement's turn
    END;
    RETURN had IS NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._add_calibration(text, integer, bigint, public.vector, public.vector, integer) IS
    'Appends the count, sum and sum of squares of the vectors of a model one statement '
    'wrote, and records their mean and spread over every statement as the model''s '
    'calibration (source ''stored rows'') once there are min_rows of them (where the '
    'loader''s sample or a writer gave the mean, it stays: the rows give the spread and the '
    'mean on the silent dimensions); true when this recorded the model''s first calibration.';
REVOKE EXECUTE ON FUNCTION embedding_gate._add_calibration(text, integer, bigint, public.vector, public.vector, integer)
    FROM PUBLIC;
