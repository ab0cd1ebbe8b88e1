-- The SQL engine's insert trigger on chunks (issue 25; tests/test_sql_engine.py also
-- installs it in place of the PL/Python one, to hold the two to one behaviour).
-- The same statement-level AFTER INSERT trigger as sql/idempotent/010_insert_trigger.sql,
-- in PL/pgSQL over the transition table: the checks of embedding_gate._sql_checks (one
-- query for the statement's vectors, one for its embedding_raw rows), the settings with the
-- table's and the transaction's overrides, the verdicts written on flagged rows only
-- (flag), moved to embedding_quarantine (quarantine) or recorded for
-- embedding_gate_reject to raise (reject), stale verdicts cleared, NOTIFY when any row was
-- flagged, the row count. A finite embedding_raw row is promoted to `embedding` here and
-- checked by the update trigger (011_update_trigger.sql). The statement's vectors join their
-- models' calibrations (016_calibration_deltas.sql) as in the PL/Python engine, and a model's
-- first calibration has the rows stored before it judged (009_calibration.sql).
-- A statement's verdicts as rows, from the jsonb array the insert trigger keeps them in.
CREATE OR REPLACE FUNCTION embedding_gate._sql_verdicts(verdicts jsonb)
RETURNS TABLE (ord bigint, chunk_id text, had_issues boolean, raw boolean, issues text[],
               reason text, norm double precision, variance double precision,
               ratio double precision, similarity double precision, duplicate_of text)
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT e.i, e.value ->> 'chunk_id', (e.value ->> 'had_issues')::boolean,
       (e.value ->> 'raw')::boolean,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e.value -> 'issues')),
       e.value ->> 'reason', (e.value ->> 'norm')::double precision,
       (e.value ->> 'variance')::double precision, (e.value ->> 'ratio')::double precision,
       (e.value ->> 'similarity')::double precision, e.value ->> 'duplicate_of'
FROM pg_catalog.jsonb_array_elements(_sql_verdicts.verdicts) WITH ORDINALITY AS e(value, i)
$$;
COMMENT ON FUNCTION embedding_gate._sql_verdicts(jsonb) IS
    'The SQL engine''s insert trigger: a statement''s verdicts as rows, from their jsonb array.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_verdicts(jsonb) FROM PUBLIC;

-- Reject mode needs embedding_gate_reject on chunks to fail the statement: without it a
-- rejected chunk would be stored, flagged, and the statement would go through.
CREATE OR REPLACE FUNCTION embedding_gate._sql_can_reject() RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g
                   WHERE g.tgrelid = 'public.chunks'::pg_catalog.regclass
                     AND g.tgname = 'embedding_gate_reject') THEN
        RAISE EXCEPTION 'reject mode on public.chunks: the embedding gate''s trigger '
                        'embedding_gate_reject is gone from it, and without it the gate cannot '
                        'fail the statement'
            USING ERRCODE = '55000',
                  HINT = 'create it again: DELETE FROM embedding_gate._sources WHERE name = '
                         '''012_reject_trigger.sql'', then embedding-gate db upgrade (or alembic '
                         'upgrade head)';
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_can_reject() IS
    'The SQL engine''s triggers in reject mode: fails unless embedding_gate_reject, which '
    'fails a rejected statement, is still on chunks.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_can_reject() FROM PUBLIC;

CREATE OR REPLACE FUNCTION embedding_gate._sql_check_inserted() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
    mode text;
    t jsonb;
    inserted_rows bigint;
    raw_rows bigint;
    flagged bigint;
    checked bigint;
    rejected record;
    batch_verdicts jsonb;
    -- the calibrations (settings.judged_then_calibrated()): whether the table feeds them,
    -- the statement's models, those without a reference yet, those whose first calibration
    -- this statement recorded, the rows flagged model_mismatch (never added)
    feeds boolean;
    models text[];
    new_models text[] := '{}';
    first_models text[] := '{}';
    mismatched text[] := '{}';
    phase integer;
    attempt integer;
    add record;
    got text[];
    -- per model and dimension, the count, sum and sum of squares of the rows to add ($1: the
    -- new models, $2: the rows flagged model_mismatch, $3: the step below, 1 or 3; %s: the
    -- squares)
    sums constant text := 'SELECT i.embedding_model AS model, public.vector_dims(i.embedding) AS d, '
        'pg_catalog.count(*) AS n, public.sum(i.embedding) AS total, public.sum(%s) AS squares '
        'FROM inserted AS i WHERE i.embedding IS NOT NULL AND i.embedding_model IS NOT NULL '
        'AND CASE WHEN $3 = 1 THEN i.embedding_model = ANY ($1) '
        'ELSE i.embedding_model <> ALL ($1) AND i.chunk_id <> ALL ($2) END '
        'GROUP BY 1, 2 ORDER BY 1, 2';
BEGIN
    -- the settings, then the table's own overrides, then SET LOCAL embedding_gate.<name>
    t := embedding_gate._sql_settings();
    mode := t ->> 'mode';

    -- the statement's vectors join their models' calibrations where the table's owner may
    -- tune the gate (a model's calibration serves every table of that model)
    SELECT COALESCE(pg_catalog.has_table_privilege(c.relowner, 'embedding_gate.settings',
                                                   'UPDATE'), false)
    INTO feeds FROM pg_catalog.pg_class AS c WHERE c.oid = 'public.chunks'::pg_catalog.regclass;
    IF feeds THEN
        models := ARRAY(SELECT DISTINCT i.embedding_model FROM inserted AS i
                        WHERE i.embedding IS NOT NULL AND i.embedding_model IS NOT NULL);
        new_models := ARRAY(SELECT m FROM pg_catalog.unnest(models) AS m
                            EXCEPT SELECT r.model FROM embedding_gate._sql_referenced(models) AS r);
        -- a statement of settled models only (their calibrations kept by the writes, over
        -- settings.SETTLED_ROWS or more) adds nothing, 99 times in 100
        IF pg_catalog.cardinality(new_models) = 0 AND pg_catalog.random() >= 0.01 THEN
            feeds := EXISTS (SELECT FROM embedding_gate._sql_referenced(models) AS r
                             WHERE NOT (r.kept AND r.sample_size >= 10000));
        END IF;
    END IF;
    -- three steps: 1 and 3 add rows to their models' calibrations (1, before the checks:
    -- the new models' rows, so that a bulk load is judged with the calibration its own rows
    -- give; 3: the others' rows but those flagged model_mismatch, whose vectors must not blur
    -- the fingerprint they fail), 2 checks the statement's rows
    FOR phase IN 1..3 LOOP
        IF phase = 2 THEN
            -- the statement's rows and their verdicts (one query per kind), kept as one
            -- jsonb array (not a temporary table: one the caller created first under that
            -- name would be used, in pg_temp, with its owner's triggers running as the gate's
            -- owner). Only the rows the writes below act on are kept: the flagged ones and
            -- the clean ones that carried a verdict (an upsert's); the others are counted.
            -- One aggregate builds the batch's arrays, parallel by construction (one pass,
            -- no ORDER BY: no sort of the vectors, no second read of them), and ord maps a
            -- verdict back to its row through the same arrays; the same pass counts the
            -- statement's rows and its embedding_raw rows.
            WITH batch AS (
                SELECT pg_catalog.array_agg(i.embedding) FILTER (WHERE i.embedding IS NOT NULL) AS v,
                       pg_catalog.array_agg(i.embedding_model) FILTER (WHERE i.embedding IS NOT NULL) AS m,
                       pg_catalog.array_agg(
                           (SELECT o.chunk_id FROM (SELECT c.chunk_id, c.content FROM public.chunks AS c
                             WHERE c.embedding_hash = i.embedding_hash
                               AND (c.created_at, c.chunk_id) < (i.created_at, i.chunk_id)
                               AND embedding_gate.vector_bytes(c.embedding)
                                   = embedding_gate.vector_bytes(i.embedding)
                             ORDER BY c.created_at, c.chunk_id LIMIT 1) AS o
                            WHERE o.content IS DISTINCT FROM i.content))
                           FILTER (WHERE i.embedding IS NOT NULL) AS dup,
                       pg_catalog.array_agg(i.chunk_id) FILTER (WHERE i.embedding IS NOT NULL) AS ids,
                       pg_catalog.array_agg(i.quality_issues IS NOT NULL)
                           FILTER (WHERE i.embedding IS NOT NULL) AS had,
                       pg_catalog.array_agg(public.vector_dims(i.embedding))
                           FILTER (WHERE i.embedding IS NOT NULL) AS d,
                       pg_catalog.count(*) FILTER (WHERE i.embedding IS NOT NULL) AS n,
                       pg_catalog.count(*) AS inserted_rows,
                       pg_catalog.count(*) FILTER (WHERE i.embedding IS NULL AND i.embedding_raw IS NOT NULL)
                           AS raw_rows
                FROM inserted AS i
            )
            SELECT b.inserted_rows, b.raw_rows, b.n,
                   COALESCE((
                       SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                  'chunk_id', x.chunk_id, 'had_issues', x.had_issues, 'raw', false,
                                  'issues', c.issues,
                                  'reason', embedding_gate._sql_reason(c.issues, c.nonfinite, x.d, c.norm,
                                                c.variance, c.near_zero_ratio, c.similarity,
                                                c.similar_kind, c.silent_deviation, c.duplicate_of),
                                  'norm', c.norm, 'variance', c.variance, 'ratio', c.near_zero_ratio,
                                  'similarity', c.similarity, 'duplicate_of', c.duplicate_of)
                                  ORDER BY c.ord)
                                  FILTER (WHERE pg_catalog.cardinality(c.issues) > 0 OR x.had_issues)
                       FROM embedding_gate._sql_checks(
                           b.v, b.m, b.dup, (t ->> 'min_norm')::double precision,
                           (t ->> 'min_variance')::double precision,
                           (t ->> 'near_zero_epsilon')::double precision,
                           (t ->> 'max_near_zero_ratio')::double precision,
                           (t ->> 'blank_similarity')::double precision,
                           (t ->> 'max_silent_deviation')::double precision) AS c
                       JOIN ROWS FROM (pg_catalog.unnest(b.ids), pg_catalog.unnest(b.had),
                                       pg_catalog.unnest(b.d))
                            WITH ORDINALITY AS x(chunk_id, had_issues, d, n) ON x.n = c.ord
                       WHERE b.v IS NOT NULL), '[]')
            INTO inserted_rows, raw_rows, checked, batch_verdicts
            FROM batch AS b;
            mismatched := ARRAY(SELECT v.chunk_id FROM embedding_gate._sql_verdicts(batch_verdicts) AS v
                                WHERE 'model_mismatch' = ANY (v.issues));
            CONTINUE;
        END IF;
        CONTINUE WHEN NOT feeds OR (phase = 1 AND pg_catalog.cardinality(new_models) = 0);
        -- the squares by vector_mul, or where it refused an underflow, in float8 (the
        -- subtransaction's deltas are undone first); sums beyond float4's range add nothing
        FOR attempt IN 1..2 LOOP
            BEGIN
                got := '{}';
                FOR add IN EXECUTE pg_catalog.format(sums, CASE attempt
                        WHEN 1 THEN 'public.vector_mul(i.embedding, i.embedding)'
                        ELSE 'embedding_gate._squares(i.embedding)' END)
                        USING new_models, mismatched, phase LOOP
                    IF embedding_gate._add_calibration(add.model, add.d, add.n, add.total,
                                                       add.squares, 100) THEN
                        got := got || add.model;
                    END IF;
                END LOOP;
                first_models := first_models || got;
                EXIT;
            EXCEPTION WHEN numeric_value_out_of_range THEN
                NULL;
            END;
        END LOOP;
    END LOOP;
    -- embedding_raw: NaN/Inf rows flagged, finite ones promoted (unless the mode acts on them)
    IF raw_rows > 0 THEN
        IF (SELECT pg_catalog.count(DISTINCT pg_catalog.cardinality(i.embedding_raw))
            FROM inserted AS i WHERE i.embedding IS NULL AND i.embedding_raw IS NOT NULL) > 1 THEN
            RAISE EXCEPTION 'embedding_raw vectors of different dimensions in one statement'
                USING ERRCODE = '22000';
        END IF;
        WITH raw AS (
            SELECT i.chunk_id, i.quality_issues IS NOT NULL AS had_issues, i.embedding_raw,
                   i.embedding_model AS model, pg_catalog.cardinality(i.embedding_raw) AS d,
                   pg_catalog.row_number() OVER () AS n
            FROM inserted AS i WHERE i.embedding IS NULL AND i.embedding_raw IS NOT NULL
        ),
        batch AS (
            SELECT pg_catalog.array_agg(x.embedding_raw ORDER BY x.n) AS r,
                   pg_catalog.array_agg(x.model ORDER BY x.n) AS m
            FROM raw AS x
        )
        SELECT batch_verdicts || COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                   'chunk_id', x.chunk_id, 'had_issues', x.had_issues, 'raw', true,
                   'issues', c.issues,
                   'reason', embedding_gate._sql_reason(c.issues, c.nonfinite, x.d, c.norm,
                                 c.variance, c.near_zero_ratio, c.similarity, c.similar_kind,
                                 c.silent_deviation, c.duplicate_of),
                   'norm', c.norm, 'variance', c.variance, 'ratio', c.near_zero_ratio,
                   'similarity', c.similarity, 'duplicate_of', c.duplicate_of) ORDER BY c.ord),
               '[]')
        INTO batch_verdicts
        FROM batch AS b
        CROSS JOIN LATERAL embedding_gate._sql_checks_raw(
            b.r, b.m, (t ->> 'min_norm')::double precision,
            (t ->> 'min_variance')::double precision,
            (t ->> 'near_zero_epsilon')::double precision,
            (t ->> 'max_near_zero_ratio')::double precision,
            (t ->> 'blank_similarity')::double precision,
            (t ->> 'max_silent_deviation')::double precision) AS c
        JOIN raw AS x ON x.n = c.ord;
        -- finite raw rows the mode does not act on become vectors (the update trigger
        -- checks them); the others stay raw and are acted on below
        UPDATE public.chunks AS c SET embedding = c.embedding_raw::public.vector, embedding_raw = NULL
        FROM embedding_gate._sql_verdicts(batch_verdicts) AS v
        WHERE v.raw AND c.chunk_id = v.chunk_id AND NOT ('nan_or_inf' = ANY (v.issues))
          AND (pg_catalog.cardinality(v.issues) = 0 OR mode = 'flag');
        SELECT COALESCE(pg_catalog.jsonb_agg(e.value ORDER BY e.i), '[]') INTO batch_verdicts
        FROM pg_catalog.jsonb_array_elements(batch_verdicts) WITH ORDINALITY AS e(value, i)
        WHERE NOT ((e.value ->> 'raw')::boolean
                   AND NOT (e.value -> 'issues') ? 'nan_or_inf'
                   AND (pg_catalog.jsonb_array_length(e.value -> 'issues') = 0 OR mode = 'flag'));
        -- (the raw rows left are checked here; the promoted ones by the update trigger)
        checked := checked + (SELECT pg_catalog.count(*)
                              FROM pg_catalog.jsonb_array_elements(batch_verdicts) AS e(value)
                              WHERE (e.value ->> 'raw')::boolean);
    END IF;

    -- stale verdicts of clean rows (an upsert's row that carried some) are cleared
    UPDATE public.chunks AS c SET quality_issues = NULL, quality_reason = NULL,
           quality_norm = NULL, quality_variance = NULL, quality_near_zero_ratio = NULL,
           quality_blank_similarity = NULL, quality_duplicate_of = NULL,
           quality_checked_at = pg_catalog.now()
    FROM embedding_gate._sql_verdicts(batch_verdicts) AS v
    WHERE v.had_issues AND pg_catalog.cardinality(v.issues) = 0 AND c.chunk_id = v.chunk_id;

    SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.cardinality(v.issues) > 0)
    INTO flagged FROM embedding_gate._sql_verdicts(batch_verdicts) AS v;
    IF flagged > 0 THEN
        IF mode = 'reject' THEN
            PERFORM embedding_gate._sql_can_reject();
            SELECT pg_catalog.array_agg(v.chunk_id ORDER BY v.ord) AS ids,
                   pg_catalog.array_agg(v.reason ORDER BY v.ord) AS reasons
            INTO rejected
            FROM (SELECT v.chunk_id, v.reason, v.ord
                  FROM embedding_gate._sql_verdicts(batch_verdicts) AS v
                  WHERE pg_catalog.cardinality(v.issues) > 0) AS v;
            PERFORM pg_catalog.set_config('embedding_gate.rejected', pg_catalog.jsonb_build_object(
                'message', 'embedding of chunk "' || rejected.ids[1] || '" rejected: '
                           || rejected.reasons[1]
                           || CASE WHEN pg_catalog.cardinality(rejected.ids) > 1
                                   THEN ' (and ' || (pg_catalog.cardinality(rejected.ids) - 1)
                                        || ' more)' ELSE '' END,
                'detail', (SELECT pg_catalog.string_agg('chunk ' || r.id || ': ' || r.reason, E'\n'
                                                        ORDER BY r.o)
                           FROM ROWS FROM (pg_catalog.unnest(rejected.ids[1:20]),
                                           pg_catalog.unnest(rejected.reasons[1:20]))
                                WITH ORDINALITY AS r(id, reason, o))
                          || CASE WHEN pg_catalog.cardinality(rejected.ids) > 20
                                  THEN E'\n... and ' || (pg_catalog.cardinality(rejected.ids) - 20)
                                       || ' more' ELSE '' END,
                'sqlstate', 'QG001')::text, true);
            RETURN NULL;  -- embedding_gate_reject fails the statement
        ELSIF mode = 'quarantine' THEN
            WITH moved AS (
                DELETE FROM public.chunks AS c USING embedding_gate._sql_verdicts(batch_verdicts) AS v
                WHERE c.chunk_id = v.chunk_id AND pg_catalog.cardinality(v.issues) > 0
                RETURNING c.chunk_id, c.doc_id, c.chunk_index, c.content, c.drop, c.metadata,
                          COALESCE(c.embedding::real[], c.embedding_raw) AS raw, c.embedding_model
            )
            INSERT INTO public.embedding_quarantine (
                chunk_id, doc_id, chunk_index, content, drop, metadata, embedding_raw,
                quality_issues, quality_reason, quality_norm, quality_variance,
                quality_near_zero_ratio, embedding_model, quality_blank_similarity,
                quality_duplicate_of)
            SELECT m.chunk_id, m.doc_id, m.chunk_index, m.content, m.drop, m.metadata, m.raw,
                   v.issues, v.reason, v.norm, v.variance, v.ratio, m.embedding_model,
                   v.similarity, v.duplicate_of
            FROM moved AS m JOIN embedding_gate._sql_verdicts(batch_verdicts) AS v ON v.chunk_id = m.chunk_id
            ON CONFLICT (chunk_id) DO UPDATE SET doc_id = excluded.doc_id,
                chunk_index = excluded.chunk_index, content = excluded.content,
                drop = excluded.drop, metadata = excluded.metadata,
                embedding_raw = excluded.embedding_raw, quality_issues = excluded.quality_issues,
                quality_reason = excluded.quality_reason, quality_norm = excluded.quality_norm,
                quality_variance = excluded.quality_variance,
                quality_near_zero_ratio = excluded.quality_near_zero_ratio,
                embedding_model = excluded.embedding_model,
                quality_blank_similarity = excluded.quality_blank_similarity,
                quality_duplicate_of = excluded.quality_duplicate_of,
                quarantined_at = pg_catalog.now();
        ELSE
            UPDATE public.chunks AS c SET quality_issues = v.issues, quality_reason = v.reason,
                   quality_norm = v.norm, quality_variance = v.variance,
                   quality_near_zero_ratio = v.ratio, quality_blank_similarity = v.similarity,
                   quality_duplicate_of = v.duplicate_of, quality_checked_at = pg_catalog.now()
            FROM embedding_gate._sql_verdicts(batch_verdicts) AS v
            WHERE c.chunk_id = v.chunk_id AND pg_catalog.cardinality(v.issues) > 0;
        END IF;
        PERFORM embedding_gate._sql_notify(
            'public.chunks', mode, checked, flagged,
            ARRAY(SELECT pg_catalog.unnest(v.issues)
                  FROM embedding_gate._sql_verdicts(batch_verdicts) AS v));
    END IF;
    -- the rows of a model that earlier statements stored before its first calibration,
    -- judged once now that it has one
    IF pg_catalog.cardinality(first_models) > 0 THEN
        PERFORM embedding_gate._sql_judge_earlier(first_models, t);
    END IF;
    PERFORM embedding_gate._add_rows('chunks', inserted_rows);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_check_inserted() IS
    'Trigger (the SQL engine, issue 25): checks the embeddings a statement inserted into '
    'chunks with embedding_gate._sql_checks, and flags, quarantines or rejects the bad ones.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_check_inserted() FROM PUBLIC;

CREATE OR REPLACE TRIGGER embedding_gate_insert
    AFTER INSERT ON public.chunks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._sql_check_inserted();
COMMENT ON TRIGGER embedding_gate_insert ON public.chunks IS
    'Runs the embedding quality checks on every inserted row (the SQL engine).';
