-- The SQL engine's check of an attached table's stored rows (issue 25): one batch of
-- embedding_gate.check_existing() and of attach()'s check (sql/idempotent/026_attach.sql, which
-- both engines apply), what attached.check_batch() does in the PL/Python engine
-- (sql/idempotent/026_check_existing.sql, which this engine leaves out): the next batch_size
-- stored rows after row id `after`, in id order, checked with the table's settings and
-- flagged, never moved or rejected; the first batch also calibrates the table's models where
-- due and forgets the verdicts of rows that are gone. The same rights and locks: the table's
-- owner or the gate's calls it, the table is locked against ALTER TABLE first, the gate reads
-- it as its owner with row_security off (refused where a policy would apply), and it writes
-- a verdict only where the row is still the version it read (embedding_gate._sql_judge_stored,
-- sql/engine_sql/014_check_attached.sql).
CREATE OR REPLACE FUNCTION embedding_gate._check_existing(
    table_name regclass, after text, batch_size integer)
RETURNS TABLE (checked integer, low_quality integer, last_row_id text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
SET jit = off
AS $$
DECLARE
    a record;
    model text;
BEGIN
    IF NOT embedding_gate._caller_may_check(table_name) THEN
        RAISE EXCEPTION 'only the owner of the table (or the gate''s owner) may check its rows'
            USING ERRCODE = '42501';
    END IF;
    IF table_name = 'public.chunks'::pg_catalog.regclass THEN
        RAISE EXCEPTION 'public.chunks has checks of its own: CALL recheck_embeddings()'
            USING ERRCODE = '55000';
    END IF;
    -- no ALTER TABLE between the gate's look at the column types and its reads
    PERFORM embedding_gate._lock_for_reading(table_name);
    SELECT * INTO a FROM embedding_gate._sql_attached(table_name);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table with oid % is not attached to the embedding gate', table_name::oid
            USING ERRCODE = '55000';
    END IF;
    IF NOT a.readable THEN
        RAISE EXCEPTION 'the embedding gate''s owner would read % under its row-level security '
                        'policies, and the gate runs no code of a table''s owner', a.name
            USING ERRCODE = '42501',
                  HINT = 'let the gate''s owner bypass row-level security (ALTER ROLE ... '
                         'BYPASSRLS), or check the rows as the table''s owner with SELECT * '
                         'FROM preview_thresholds()';
    END IF;
    IF after IS NULL THEN
        -- the first batch: calibrate the table's models where due (only a table whose owner
        -- may tune the gate: a model's calibration serves every table of that model, chunks
        -- too, and another owner's rows must not move it), and forget the verdicts of rows
        -- that are gone
        model := CASE WHEN a.model_column IS NOT NULL
                      THEN pg_catalog.format('i.%I::text', a.model_column)
                      ELSE pg_catalog.format('%L::text', a.model) END;
        IF COALESCE((SELECT pg_catalog.has_table_privilege(c.relowner, 'embedding_gate.settings',
                                                            'UPDATE')
                     FROM pg_catalog.pg_class AS c WHERE c.oid = a.table_oid), false) THEN
            -- each model's mean over its stored rows (those not flagged model_mismatch),
            -- where it has 100 here and no calibration yet, or twice as many rows as its
            -- calibration from stored rows; never over a mean the loader's sample or a writer
            -- gave, nor where the writes keep it (it has a spread)
            EXECUTE pg_catalog.format(
                'WITH stored AS (SELECT %1$s AS model, i.%2$I::public.vector AS e'
                ' FROM %3$s AS i WHERE i.%2$I IS NOT NULL'
                '  AND NOT EXISTS (SELECT FROM embedding_gate.verdicts AS v'
                '   WHERE v.table_oid = $2 AND v.row_id = i.%4$I::text'
                '   AND ''model_mismatch'' = ANY (v.issues))),'
                ' counts AS (SELECT s.model, pg_catalog.count(*) AS n FROM stored AS s'
                '  WHERE s.model IS NOT NULL GROUP BY s.model),'
                ' due AS (SELECT c.model FROM counts AS c'
                '  LEFT JOIN embedding_gate.model_calibrations AS m ON m.model = c.model'
                '  WHERE c.n >= $1 AND m.spread IS NULL AND (m.model IS NULL'
                '   OR (m.source = ''stored rows'' AND c.n >= 2 * m.sample_size)))'
                ' INSERT INTO embedding_gate.model_calibrations AS c'
                '  (model, mean, sample_size, source)'
                ' SELECT s.model, public.avg(s.e)::real[], pg_catalog.count(*)::integer,'
                '  ''stored rows'''
                ' FROM stored AS s WHERE s.model IN (SELECT d.model FROM due AS d)'
                ' GROUP BY s.model'
                ' ON CONFLICT (model) DO UPDATE SET mean = excluded.mean,'
                ' sample_size = excluded.sample_size, source = excluded.source,'
                ' recorded_at = pg_catalog.now(), recorded_by = SESSION_USER',
                model, a.embedding_column, a.name, a.id_column)
                USING 100, a.table_oid;
        END IF;
        -- (a dropped or detached partition, a write with the triggers off; skipping a
        -- verdict another transaction holds: a writer's, whose row is there)
        EXECUTE pg_catalog.format(
            'DELETE FROM embedding_gate.verdicts AS v WHERE v.ctid = ANY (ARRAY('
            'SELECT o.ctid FROM embedding_gate.verdicts AS o WHERE o.table_oid = $1'
            ' AND NOT EXISTS (SELECT FROM %1$s AS t'
            ' WHERE t.%2$I = o.row_id::%3$s) FOR UPDATE OF o SKIP LOCKED))',
            a.name, a.id_column, a.id_type)
            USING a.table_oid;
    END IF;
    RETURN QUERY
    SELECT j.checked, j.low_quality, j.last_row_id
    FROM embedding_gate._sql_judge_stored(a.table_oid, after, batch_size, NULL, NULL) AS j;
END
$$;
COMMENT ON FUNCTION embedding_gate._check_existing(regclass, text, integer) IS
    'One batch of check_existing() (the SQL engine): the next batch_size stored rows after row '
    'id `after`, in id order, checked with the table''s settings and flagged (never moved or '
    'rejected).';
GRANT EXECUTE ON FUNCTION embedding_gate._check_existing(regclass, text, integer) TO PUBLIC;
