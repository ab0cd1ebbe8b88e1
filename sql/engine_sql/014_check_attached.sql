-- The SQL engine's check of attached tables (issue 25): embedding_gate._check_attached(),
-- the statement-level AFTER INSERT and AFTER UPDATE trigger attach() creates, in PL/pgSQL
-- over the transition tables gate_new and gate_old, doing what
-- plpython/embedding_gate/attached.py's check_statement() does in the PL/Python engine
-- (sql/idempotent/014_check_attached.sql, which this engine leaves out): the same refusals,
-- the table's settings, the checks of embedding_gate._sql_checks, duplicate_vector, the
-- verdicts in embedding_gate.verdicts, the quarantine, reject, NOTIFY, the row counts and the
-- calibration the writes feed. Every statement that names a table's columns is built here
-- from the registry (embedding_gate.attached_tables) with format('%I'); values travel as
-- parameters. As in the PL/Python engine, it runs as the gate's owner and runs no code of the
-- table's owner: it reads the transition tables and the table only while their columns are
-- of trusted types (embedding_gate._refusal()), with row_security off (a policy is never
-- evaluated as the gate: where the gate's owner would read the table under one, there is no
-- duplicate probe), and it never writes the table (quarantine mode's move is
-- _move_quarantined(), the writer's own, sql/idempotent/014_attached_triggers.sql).
-- Differences from the PL/Python engine: a statement's rows are checked as one batch (the
-- PL/Python engine reads 4,096 at a time), so a statement of more rows than that in reject
-- mode names all its rejected rows of the first dimension, not those of its first 4,096
-- rows; and the statement's rows join their models' calibrations in one batch too.

-- halfvec's hash (the key of duplicate_vector on attached halfvec columns): the PL/Python
-- engine's (sql/idempotent/003_halfvec.sql) is LANGUAGE internal, which only a superuser may
-- create. This one hashes halfvec_send's bytes; equal halfvecs hash equal, which is all the
-- gate asks of it (it compares the bytes of equal hashes).
-- (a SQL-standard body, as vector_hash's: resolved once, at CREATE, and inlined into an
-- index's expression)
CREATE OR REPLACE FUNCTION embedding_gate.halfvec_hash(embedding public.halfvec) RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.hashtextextended(pg_catalog.encode(public.halfvec_send(embedding), 'hex'), 0);
COMMENT ON FUNCTION embedding_gate.halfvec_hash(public.halfvec) IS
    'A 64-bit hash of a halfvec''s bytes (the SQL engine''s): the key of duplicate_vector on '
    'attached halfvec columns.';

-- The registry's row of an attached table (or of the partitioned table above a partition
-- that is attached), with its columns' names as they are now: attached.lookup(). No row: not
-- attached. Fails where the gate will not read the table (a column of another type now) or
-- where its id or embedding column was dropped.
CREATE OR REPLACE FUNCTION embedding_gate._sql_attached(relid oid)
RETURNS TABLE (table_oid regclass, name text, id_column name, id_type text,
               embedding_column name, embedding_type text, content_column name, model text,
               model_column name, overrides jsonb, row_key bigint, readable boolean)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT a.table_oid::pg_catalog.regclass AS table_oid,
           embedding_gate._qualified(a.table_oid) AS name,
           embedding_gate._column(a.table_oid, a.id_attnum) AS id_column,
           pg_catalog.format_type(i.atttypid, i.atttypmod) AS id_type,
           embedding_gate._column(a.table_oid, a.embedding_attnum) AS embedding_column,
           a.embedding_type::text AS embedding_type,
           embedding_gate._column(a.table_oid, a.content_attnum) AS content_column,
           a.model::text AS model,
           embedding_gate._column(a.table_oid, a.model_attnum) AS model_column,
           a.overrides::jsonb AS overrides, a.row_key::bigint AS row_key,
           embedding_gate._refusal(a.table_oid, a.id_attnum, a.embedding_attnum,
                                   a.content_attnum, a.model_attnum) AS problem,
           COALESCE(embedding_gate._reads_all(a.table_oid), false) AS readable
      INTO r
      FROM embedding_gate.attached_tables AS a
      JOIN pg_catalog.pg_attribute AS i ON i.attrelid = a.table_oid AND i.attnum = a.id_attnum
     WHERE a.table_oid = _sql_attached.relid
        OR a.table_oid IN (SELECT p.relid
                           FROM pg_catalog.pg_partition_ancestors(_sql_attached.relid) AS p);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF r.problem IS NOT NULL THEN
        RAISE EXCEPTION 'the embedding gate will not read %: %', r.name, r.problem
            USING ERRCODE = '42804',
                  HINT = pg_catalog.format('change the column back, or detach the table: '
                                           'SELECT embedding_gate.detach(''%s'')', r.name);
    END IF;
    IF r.embedding_column IS NULL OR r.id_column IS NULL THEN
        RAISE EXCEPTION 'the % column attached on % was dropped',
            CASE WHEN r.embedding_column IS NULL THEN 'embedding' ELSE 'id' END, r.name
            USING ERRCODE = '55000',
                  HINT = pg_catalog.format('detach it: SELECT embedding_gate.detach(''%s'')',
                                           r.name);
    END IF;
    RETURN QUERY SELECT r.table_oid, r.name, r.id_column, r.id_type, r.embedding_column,
                        r.embedding_type, r.content_column, r.model, r.model_column,
                        r.overrides, r.row_key, r.readable;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_attached(oid) IS
    'The SQL engine: the registry''s row of an attached table (or of the attached table above '
    'a partition) with its column names; fails where the gate will not read it or a column it '
    'needs was dropped.';
-- (the scans, verify_embeddings and the others, call it as their caller)
GRANT EXECUTE ON FUNCTION embedding_gate._sql_attached(oid) TO PUBLIC;

-- The statement that reads an attached table's stored rows (embedding not NULL) with their
-- duplicate_vector verdict as a scan finds it (attached.find_duplicates with scan=True): a row
-- stays the duplicate of the row its verdict names (embedding_gate._stored_duplicates, as the
-- current role sees it) while that row still repeats its vector with other content; otherwise
-- the first row of the same vector and other content before it, the rows not flagged
-- duplicate_vector first, then id order. Without a content column, or where the current role
-- reads the table under a row-level security policy (readable false), no duplicate. `extra`
-- is put after the row filter (a condition on i, ORDER BY, LIMIT; $1, $2 ... as the caller
-- binds them). Columns: row_id, v (public.vector), model, content, x (xmin as text), dup.
CREATE OR REPLACE FUNCTION embedding_gate._sql_stored_rows(
    table_name regclass, readable boolean, extra text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    k text;
    content text;
    model text;
    dup text := 'NULL::text';
    flagged_g text;
    flagged_r text;
BEGIN
    SELECT * INTO a FROM embedding_gate._sql_attached(table_name);
    k := a.embedding_type;
    content := CASE WHEN a.content_column IS NOT NULL
                    THEN pg_catalog.format('i.%I::text', a.content_column) ELSE 'NULL::text' END;
    model := CASE WHEN a.model IS NOT NULL THEN pg_catalog.format('%L::text', a.model)
                  WHEN a.model_column IS NOT NULL
                  THEN pg_catalog.format('i.%I::text', a.model_column)
                  ELSE 'NULL::text' END;
    IF a.content_column IS NOT NULL AND readable THEN
        flagged_g := pg_catalog.format(
            'EXISTS (SELECT FROM embedding_gate._stored_duplicates AS s'
            ' WHERE s.table_oid = %L::pg_catalog.regclass AND s.row_id = g.%I::text)',
            a.table_oid::oid, a.id_column);
        flagged_r := pg_catalog.format(
            'EXISTS (SELECT FROM embedding_gate._stored_duplicates AS s'
            ' WHERE s.table_oid = %L::pg_catalog.regclass AND s.row_id = r.id::text)',
            a.table_oid::oid);
        dup := pg_catalog.format(
            'COALESCE((SELECT s.duplicate_of FROM embedding_gate._stored_duplicates AS s, %1$s AS g'
            ' WHERE s.table_oid = %2$L::pg_catalog.regclass AND s.row_id = r.id::text'
            '   AND s.duplicate_of IS NOT NULL AND g.%3$I = s.duplicate_of::%4$s'
            '   AND embedding_gate.%5$s_hash(g.%6$I) = r.h'
            '   AND embedding_gate.%5$s_bytes(g.%6$I) = embedding_gate.%5$s_bytes(r.emb)'
            '   AND g.%7$I::text IS DISTINCT FROM r.content LIMIT 1),'
            ' (SELECT g.%3$I::text FROM %1$s AS g'
            ' WHERE embedding_gate.%5$s_hash(g.%6$I) = r.h'
            '   AND g.%6$I OPERATOR(public.=) r.emb'
            '   AND embedding_gate.%5$s_bytes(g.%6$I) = embedding_gate.%5$s_bytes(r.emb)'
            '   AND g.%7$I::text IS DISTINCT FROM r.content'
            '   AND (%8$s, g.%3$I) < (%9$s, r.id)'
            ' ORDER BY %8$s, g.%3$I LIMIT 1))',
            a.name, a.table_oid::oid, a.id_column, a.id_type, k, a.embedding_column,
            a.content_column, flagged_g, flagged_r);
    END IF;
    -- (the duplicate probe runs on the rows the inner query keeps, after its LIMIT; each
    -- row's hash once, OFFSET 0 keeping the planner from repeating it where it is used)
    RETURN pg_catalog.format(
        'SELECT r.id::text AS row_id, r.emb::public.vector AS v, r.model, r.content, r.x,'
        ' %1$s AS dup'
        ' FROM (SELECT r.*, %8$s AS h FROM (SELECT i.%2$I AS id, i.%3$I AS emb,'
        '  %4$s AS content, %5$s AS model, i.xmin::text AS x FROM %6$s AS i'
        '  WHERE i.%3$I IS NOT NULL %7$s) AS r OFFSET 0) AS r',
        dup, a.id_column, a.embedding_column, content, model, a.name, COALESCE(extra, ''),
        CASE WHEN dup = 'NULL::text' THEN 'NULL::bigint'
             ELSE pg_catalog.format('embedding_gate.%s_hash(r.emb)', k) END);
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_stored_rows(regclass, boolean, text) IS
    'The SQL engine: the statement that reads an attached table''s stored embeddings with '
    'their duplicate_vector verdict as a scan finds it (extra: its condition, order and limit).';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_stored_rows(regclass, boolean, text) TO PUBLIC;

-- Adds rows to their models' calibrations (settings.calibrate()): per model and dimension,
-- the count, sum and sum of squares of the vectors (keep: which of them), through
-- embedding_gate._add_calibration. Returns the models whose first calibration this recorded.
-- The sums by pgvector's sum() and vector_mul() (float4, as numpy's); where a square is below
-- float4's range (pgvector raises on the underflow, numpy gives 0: real models' vectors have
-- components of 1e-23), the sums are taken again per component in float8, and rounded to
-- float4 by pgvector's input, which takes a value below the range as 0.
CREATE OR REPLACE FUNCTION embedding_gate._sql_calibrate(
    vectors public.vector[], models text[], keep boolean[])
RETURNS text[]
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    BEGIN
        RETURN ARRAY(
            SELECT DISTINCT g.model
            FROM (SELECT u.model, public.vector_dims(u.v) AS d, pg_catalog.count(*) AS n,
                         public.sum(u.v) AS total,
                         public.sum(public.vector_mul(u.v, u.v)) AS squares
                  FROM ROWS FROM (pg_catalog.unnest(vectors), pg_catalog.unnest(models),
                                  pg_catalog.unnest(keep)) AS u(v, model, keep)
                  WHERE u.v IS NOT NULL AND u.model IS NOT NULL AND u.keep
                  GROUP BY u.model, public.vector_dims(u.v)
                  ORDER BY 1, 2) AS g
            WHERE embedding_gate._add_calibration(g.model, g.d, g.n, g.total, g.squares, 100)
            ORDER BY 1);
    EXCEPTION WHEN numeric_value_out_of_range THEN
        RETURN ARRAY(
            SELECT DISTINCT g.model
            FROM (SELECT s.model, s.d, pg_catalog.max(s.n) AS n,
                         pg_catalog.array_agg(s.total ORDER BY s.k)::public.vector AS total,
                         pg_catalog.array_agg(s.squares ORDER BY s.k)::public.vector AS squares
                  FROM (SELECT u.model, u.d, z.k, pg_catalog.count(*) AS n,
                               pg_catalog.sum(z.x::double precision) AS total,
                               pg_catalog.sum(z.x::double precision * z.x::double precision)
                                   AS squares
                        FROM (SELECT u.v, u.model, public.vector_dims(u.v) AS d
                              FROM ROWS FROM (pg_catalog.unnest(vectors),
                                              pg_catalog.unnest(models),
                                              pg_catalog.unnest(keep)) AS u(v, model, keep)
                              WHERE u.v IS NOT NULL AND u.model IS NOT NULL AND u.keep) AS u
                        CROSS JOIN LATERAL pg_catalog.unnest(u.v::real[])
                            WITH ORDINALITY AS z(x, k)
                        GROUP BY u.model, u.d, z.k) AS s
                  GROUP BY s.model, s.d
                  ORDER BY 1, 2) AS g
            WHERE embedding_gate._add_calibration(g.model, g.d, g.n, g.total, g.squares, 100)
            ORDER BY 1);
    END;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_calibrate(public.vector[], text[], boolean[]) IS
    'The SQL engine: adds the kept vectors to their models'' calibrations '
    '(embedding_gate._add_calibration, 100 rows for a first one); returns the models whose '
    'first calibration this recorded.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_calibrate(public.vector[], text[], boolean[])
    FROM PUBLIC;

-- Whether a model has a calibration blank_like or model_mismatch can use (settings
-- .references_for gives it a reference): a finite 1-d mean, and a reference of another text
-- or a spread.
CREATE OR REPLACE FUNCTION embedding_gate._sql_calibrated(model text) RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN EXISTS (
        SELECT FROM embedding_gate.model_calibrations AS c
        WHERE c.model = _sql_calibrated.model AND pg_catalog.array_ndims(c.mean) = 1
          AND NOT EXISTS (SELECT FROM pg_catalog.unnest(c.mean) AS m(x)
                          WHERE m.x IS NULL OR m.x IN ('NaN', 'Infinity', '-Infinity'))
          AND (c.spread IS NOT NULL
               OR EXISTS (SELECT FROM embedding_gate.blank_references AS b
                          WHERE b.model = c.model)
               OR EXISTS (SELECT FROM embedding_gate.degenerate_references AS g
                          WHERE g.model = c.model)));
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_calibrated(text) IS
    'The SQL engine: whether the model has a calibration its checks can use.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_calibrated(text) FROM PUBLIC;

-- Judges stored rows of an attached table in flag mode, as a scan (attached.check_batch's
-- and judge_earlier's part): the next `size` rows in id order after row id `after` (NULL: from
-- the first), of those only the rows of `models` (NULL: all) that are not in `exclude`,
-- checked with the table's settings; writes only the verdicts that change (write_judged):
-- a flagged row whose stored verdict differs or is missing, a clean one that has one; and
-- only where the row is still the version the scan read, locked FOR SHARE (skipping any a
-- writer holds) where the gate's owner may lock it, else compared as it writes. Returns the
-- rows read, the flagged ones, and the last row id read.
CREATE OR REPLACE FUNCTION embedding_gate._sql_judge_stored(
    table_name regclass, after text, size integer, models text[], exclude text[])
RETURNS TABLE (checked integer, low_quality integer, last_row_id text)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
    a record;
    t jsonb;
    ids text[];
    vectors public.vector[];
    row_models text[];
    contents text[];
    versions text[];
    dups text[];
    judged jsonb;
    wanted jsonb;
    mine text[];
    may_lock boolean;
    waited text;
BEGIN
    SELECT * INTO a FROM embedding_gate._sql_attached(table_name);
    t := embedding_gate._sql_table_settings(a.table_oid);
    -- (the rows in id order, as the ordered subquery gives them)
    EXECUTE 'SELECT pg_catalog.array_agg(s.row_id), pg_catalog.array_agg(s.v),'
            ' pg_catalog.array_agg(s.model), pg_catalog.array_agg(s.content),'
            ' pg_catalog.array_agg(s.x), pg_catalog.array_agg(s.dup) FROM ('
            || embedding_gate._sql_stored_rows(
                   a.table_oid, a.readable,
                   CASE WHEN after IS NULL THEN ''
                        ELSE pg_catalog.format('AND i.%I > $1::text::%s', a.id_column,
                                               a.id_type) END
                   || pg_catalog.format(' ORDER BY i.%I LIMIT $2', a.id_column))
            || ') AS s'
        USING after, size
        INTO ids, vectors, row_models, contents, versions, dups;
    checked := COALESCE(pg_catalog.cardinality(ids), 0);
    last_row_id := COALESCE(ids[checked], after);
    low_quality := 0;
    IF checked = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- every judged row (of the models asked for, not excluded): its verdict, flagged or not
    SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
               'row_id', x.id, 'x', x.version, 'flagged', pg_catalog.cardinality(c.issues) > 0,
               'issues', c.issues,
               'reason', embedding_gate._sql_reason(c.issues, c.nonfinite, x.d, c.norm,
                             c.variance, c.near_zero_ratio, c.similarity, c.similar_kind,
                             c.silent_deviation, c.duplicate_of, 'row'),
               'norm', c.norm, 'variance', c.variance, 'ratio', c.near_zero_ratio,
               'similarity', c.similarity, 'duplicate_of', c.duplicate_of, 'model', x.model,
               'length', pg_catalog.length(x.content), 'preview', pg_catalog.left(x.content, 100))
               ORDER BY c.ord), '[]')
    INTO judged
    FROM (SELECT pg_catalog.array_agg(u.v ORDER BY u.n) AS v,
                 pg_catalog.array_agg(u.model ORDER BY u.n) AS m,
                 pg_catalog.array_agg(u.dup ORDER BY u.n) AS dup,
                 pg_catalog.array_agg(u.n ORDER BY u.n) AS n
          FROM ROWS FROM (pg_catalog.unnest(vectors), pg_catalog.unnest(row_models),
                          pg_catalog.unnest(dups), pg_catalog.unnest(ids))
               WITH ORDINALITY AS u(v, model, dup, id, n)
          WHERE (models IS NULL OR u.model = ANY (models))
            AND (exclude IS NULL OR u.id <> ALL (exclude))) AS b
    CROSS JOIN LATERAL embedding_gate._sql_checks(
        b.v, b.m, b.dup, (t ->> 'min_norm')::double precision,
        (t ->> 'min_variance')::double precision, (t ->> 'near_zero_epsilon')::double precision,
        (t ->> 'max_near_zero_ratio')::double precision,
        (t ->> 'blank_similarity')::double precision,
        (t ->> 'max_silent_deviation')::double precision) AS c
    -- (the arrays unnested in step, not subscripted: see _check_attached())
    JOIN (SELECT pg_catalog.unnest(ids) AS id, pg_catalog.unnest(versions) AS version,
                 public.vector_dims(pg_catalog.unnest(vectors)) AS d,
                 pg_catalog.unnest(row_models) AS model, pg_catalog.unnest(contents) AS content,
                 pg_catalog.generate_series(1::bigint, checked) AS n) AS x ON x.n = b.n[c.ord]
    WHERE b.v IS NOT NULL;
    low_quality := (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(judged) AS e
                    WHERE (e.value ->> 'flagged')::boolean);
    -- the verdicts that change: a verdict the scan only confirms is left as it is
    SELECT COALESCE(pg_catalog.jsonb_agg(e.value ORDER BY e.i), '[]') INTO wanted
    FROM pg_catalog.jsonb_array_elements(judged) WITH ORDINALITY AS e(value, i)
    LEFT JOIN embedding_gate.verdicts AS v
           ON v.table_oid = a.table_oid AND v.row_id = e.value ->> 'row_id'
    WHERE CASE WHEN (e.value ->> 'flagged')::boolean
               THEN v.row_id IS NULL
                    OR (v.issues, v.reason, v.norm, v.variance, v.near_zero_ratio,
                        v.blank_similarity, v.duplicate_of, v.embedding_model, v.content_length,
                        v.content_preview)
                       IS DISTINCT FROM
                       (ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e.value -> 'issues')),
                        e.value ->> 'reason', (e.value ->> 'norm')::double precision,
                        (e.value ->> 'variance')::double precision,
                        (e.value ->> 'ratio')::double precision,
                        (e.value ->> 'similarity')::double precision,
                        e.value ->> 'duplicate_of', e.value ->> 'model',
                        (e.value ->> 'length')::integer, e.value ->> 'preview')
               ELSE v.row_id IS NOT NULL END;
    IF pg_catalog.jsonb_array_length(wanted) = 0 THEN
        RETURN NEXT;
        RETURN;
    END IF;
    -- only the rows still as the scan read them, that no writer holds: locked and skipped
    -- where the caller may lock them (FOR SHARE needs UPDATE on a column); where not (the SQL
    -- engine's owner has SELECT only), the rows whose current version a transaction still
    -- running is replacing or locking (its xmax; a running transaction holds the lock of
    -- its own id)
    may_lock := pg_catalog.has_any_column_privilege(a.table_oid, 'UPDATE');
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(m.row_id) FROM (SELECT t.%1$I::text AS row_id FROM %2$s AS t'
        ' JOIN pg_catalog.jsonb_to_recordset($1) AS k(row_id text, x text)'
        ' ON t.%1$I = k.row_id::%3$s WHERE t.xmin::text = k.x%5$s ORDER BY t.%1$I%4$s) AS m',
        a.id_column, a.name, a.id_type,
        CASE WHEN may_lock THEN ' FOR SHARE OF t SKIP LOCKED' ELSE '' END,
        CASE WHEN may_lock THEN '' ELSE ' AND t.xmax OPERATOR(pg_catalog.<>) ALL ($2)' END)
        USING wanted,
              CASE WHEN NOT may_lock THEN ARRAY(
                  SELECT l.transactionid FROM pg_catalog.pg_locks AS l
                  WHERE l.locktype = 'transactionid' AND l.transactionid IS NOT NULL) END
        INTO mine;
    -- Without the right to lock the rows, a writer may still take one of them after the look
    -- above, and write its verdict in the same transaction as verdicts of rows the scan is
    -- writing (an upsert's INSERT and UPDATE triggers write in two passes): the two would
    -- deadlock, and the writer's statement fail. So the scan waits at most 100 ms for a
    -- verdict a writer holds, and otherwise leaves this batch's verdicts (that writer writes
    -- its rows' own; the next recheck writes the others).
    IF NOT may_lock THEN
        waited := pg_catalog.current_setting('lock_timeout');
        PERFORM pg_catalog.set_config('lock_timeout', '100ms', true);
    END IF;
    BEGIN
        INSERT INTO embedding_gate.verdicts AS v (table_oid, row_id, issues, reason, norm, variance,
            near_zero_ratio, blank_similarity, duplicate_of, embedding_model, content_length,
            content_preview)
        SELECT a.table_oid, w.row_id, w.issues, w.reason, w.norm, w.variance, w.ratio,
               w.similarity, w.duplicate_of, w.model, w.length, w.preview
        FROM pg_catalog.jsonb_to_recordset(wanted) AS w(row_id text, flagged boolean, issues text[],
             reason text, norm double precision, variance double precision, ratio double precision,
             similarity double precision, duplicate_of text, model text, length integer,
             preview text)
        WHERE w.flagged AND w.row_id = ANY (mine)
        ORDER BY w.row_id
        ON CONFLICT (table_oid, row_id) DO UPDATE SET issues = excluded.issues,
            reason = excluded.reason, norm = excluded.norm, variance = excluded.variance,
            near_zero_ratio = excluded.near_zero_ratio,
            blank_similarity = excluded.blank_similarity,
            duplicate_of = excluded.duplicate_of, embedding_model = excluded.embedding_model,
            content_length = excluded.content_length, content_preview = excluded.content_preview,
            checked_at = pg_catalog.now();
        DELETE FROM embedding_gate.verdicts AS v
        WHERE v.table_oid = a.table_oid
          AND v.row_id = ANY (ARRAY(
              SELECT w.row_id
              FROM pg_catalog.jsonb_to_recordset(wanted) AS w(row_id text, flagged boolean)
              WHERE NOT w.flagged AND w.row_id = ANY (mine)));
    EXCEPTION WHEN lock_not_available THEN
        RAISE NOTICE 'embedding gate: % rows of % are being written: their verdicts are left to '
                     'the writers and the next recheck', pg_catalog.cardinality(mine), a.name;
    END;
    IF NOT may_lock THEN
        PERFORM pg_catalog.set_config('lock_timeout', waited, true);
    END IF;
    RETURN NEXT;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_judge_stored(regclass, text, integer, text[], text[]) IS
    'The SQL engine: judges the next stored rows of an attached table in flag mode, as a scan, '
    'and writes the verdicts that change where the rows are still as it read them.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_judge_stored(regclass, text, integer, text[], text[])
    FROM PUBLIC;

CREATE OR REPLACE FUNCTION embedding_gate._check_attached() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET row_security = off
SET jit = off
AS $$
DECLARE
    a record;
    here text := pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    is_update boolean := TG_OP = 'UPDATE';
    t jsonb;
    mode text;
    companion text;
    feeds boolean;
    k text;
    content text;
    model text;
    source text;
    changed text;
    dup text := 'NULL::text';
    hash text := 'NULL::bigint';
    ids text[];
    vectors public.vector[];
    models text[];
    contents text[];
    dups text[];
    nulls text[];
    fresh text[] := '{}';
    first text[] := '{}';
    keep boolean[];
    checked bigint;
    flagged bigint;
    codes text[];
    verdicts jsonb;
    clean text[];
    mismatch bigint[];
    rejected record;
    vanished text[];
    delta bigint;
BEGIN
    IF NOT embedding_gate._gate_trigger(TG_RELID, TG_NAME, TG_LEVEL, TG_WHEN, TG_OP) THEN
        RAISE EXCEPTION 'embedding_gate._check_attached() runs only as the gate''s own trigger, '
                        'created by embedding_gate.attach()'
            USING ERRCODE = '42501';
    END IF;
    SELECT * INTO a FROM embedding_gate._sql_attached(TG_RELID);
    IF NOT FOUND THEN
        -- (without event triggers, as where a role that is not a superuser deployed the gate,
        -- also a partition detached from an attached table, which keeps the gate's triggers)
        RAISE EXCEPTION 'table % has the embedding gate''s trigger but is not attached (its row '
                        'of embedding_gate.attached_tables is gone)', here
            USING ERRCODE = '55000',
                  HINT = CASE WHEN NOT EXISTS (
                                  SELECT FROM pg_catalog.pg_event_trigger AS e
                                  WHERE e.evtname = 'embedding_gate_follow_partitions')
                              THEN 'a partition detached from an attached table: its owner '
                                   'takes the gate''s triggers off with SELECT * FROM '
                                   'embedding_gate.follow_partitions(). Otherwise: '
                              ELSE '' END
                         || pg_catalog.format(
                      'attach it again: SELECT * FROM embedding_gate.attach(''%s'', ...), naming '
                      'its gate index with hash_index => ''...''; or take the gate off it: DROP '
                      'TRIGGER embedding_gate_check_insert ON %s, and its other '
                      'embedding_gate_* triggers', here, here);
    END IF;
    t := embedding_gate._sql_table_settings(a.table_oid);
    mode := t ->> 'mode';
    companion := CASE mode WHEN 'reject' THEN 'embedding_gate_raise_rejected'
                           WHEN 'quarantine' THEN 'embedding_gate_move_quarantined' END;
    IF companion IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS g
                       WHERE g.tgrelid = TG_RELID AND g.tgname = companion) THEN
        RAISE EXCEPTION '% mode on %: the embedding gate''s trigger % is gone from %, and '
                        'without it the gate cannot %', mode, a.name, companion, here,
                        CASE mode WHEN 'reject' THEN 'fail the statement'
                                  ELSE 'move the flagged rows out' END
            USING ERRCODE = '55000',
                  HINT = 'put the gate''s triggers back: CALL embedding_gate.repair()';
    END IF;
    -- (only a table whose owner may tune the gate feeds a model's calibration)
    feeds := COALESCE((SELECT pg_catalog.has_table_privilege(c.relowner, 'embedding_gate.settings',
                                                              'UPDATE')
                       FROM pg_catalog.pg_class AS c WHERE c.oid = a.table_oid), false);

    -- the statement's rows whose embedding is new: one read of the transition table(s)
    k := a.embedding_type;
    content := CASE WHEN a.content_column IS NOT NULL
                    THEN pg_catalog.format('i.%I::text', a.content_column) ELSE 'NULL::text' END;
    model := CASE WHEN a.model IS NOT NULL THEN pg_catalog.format('%L::text', a.model)
                  WHEN a.model_column IS NOT NULL
                  THEN pg_catalog.format('i.%I::text', a.model_column)
                  ELSE 'NULL::text' END;
    IF is_update THEN
        changed := pg_catalog.format('embedding_gate.%1$s_bytes(o.%2$I)'
                                     ' IS DISTINCT FROM embedding_gate.%1$s_bytes(i.%2$I)',
                                     k, a.embedding_column);
        IF a.model_column IS NOT NULL THEN
            changed := changed || pg_catalog.format(
                ' OR o.%1$I::text IS DISTINCT FROM i.%1$I::text', a.model_column);
        END IF;
        IF a.content_column IS NOT NULL THEN
            changed := changed || pg_catalog.format(
                ' OR o.%1$I::text IS DISTINCT FROM i.%1$I::text', a.content_column);
        END IF;
        source := pg_catalog.format('gate_new AS i LEFT JOIN gate_old AS o ON o.%1$I = i.%1$I'
                                    ' WHERE o.%1$I IS NULL OR %2$s', a.id_column, changed);
    ELSE
        source := 'gate_new AS i';
    END IF;
    -- duplicate_vector as a write finds it (attached.find_duplicates): the first row of the
    -- table, in id order, with the same vector and other content that is earlier than this
    -- one or was written by another transaction (its xmin differs from this row's)
    IF a.content_column IS NOT NULL AND a.readable THEN
        -- (the row's hash computed once, r.h; m is the row's own stored version)
        dup := pg_catalog.format(
            '(SELECT g.%3$I::text FROM %1$s AS m, %1$s AS g'
            ' WHERE m.%3$I = r.id AND m.%4$I OPERATOR(public.=) r.emb'
            '   AND embedding_gate.%2$s_hash(g.%4$I) = r.h'
            '   AND g.%4$I OPERATOR(public.=) r.emb'
            '   AND embedding_gate.%2$s_bytes(g.%4$I) = embedding_gate.%2$s_bytes(r.emb)'
            '   AND g.%5$I::text IS DISTINCT FROM r.content'
            '   AND (g.%3$I < m.%3$I OR g.xmin::text <> m.xmin::text)'
            ' ORDER BY g.%3$I LIMIT 1)',
            a.name, k, a.id_column, a.embedding_column, a.content_column);
        hash := pg_catalog.format('embedding_gate.%s_hash(i.%I)', k, a.embedding_column);
    END IF;
    EXECUTE pg_catalog.format(
        'SELECT pg_catalog.array_agg(r.id::text) FILTER (WHERE r.emb IS NOT NULL),'
        ' pg_catalog.array_agg(r.emb::public.vector) FILTER (WHERE r.emb IS NOT NULL),'
        ' pg_catalog.array_agg(r.model) FILTER (WHERE r.emb IS NOT NULL),'
        ' pg_catalog.array_agg(r.content) FILTER (WHERE r.emb IS NOT NULL),'
        ' pg_catalog.array_agg(CASE WHEN r.emb IS NOT NULL THEN %1$s END)'
        '  FILTER (WHERE r.emb IS NOT NULL),'
        ' pg_catalog.array_agg(r.id::text) FILTER (WHERE r.emb IS NULL)'
        ' FROM (SELECT i.%2$I AS id, i.%3$I AS emb, %4$s AS content, %5$s AS model,'
        '  %7$s AS h FROM %6$s OFFSET 0) AS r',
        dup, a.id_column, a.embedding_column, content, model, source, hash)
        INTO ids, vectors, models, contents, dups, nulls;
    checked := COALESCE(pg_catalog.cardinality(ids), 0);
    IF is_update AND nulls IS NOT NULL THEN  -- an embedding set to NULL: nothing to judge
        DELETE FROM embedding_gate.verdicts AS v
        WHERE v.table_oid = a.table_oid AND v.row_id = ANY (nulls);
    END IF;

    flagged := 0;
    IF checked > 0 THEN
        -- the rows join their models' calibrations (settings.judged_then_calibrated): first,
        -- for a model without one yet (a bulk load is judged with the calibration its own
        -- rows give); after judging for the others, less the rows flagged model_mismatch; a
        -- statement of settled models only (calibrations the writes keep, over 10,000 rows)
        -- adds nothing 99 times in 100
        IF feeds THEN
            -- once a model, not once a row: OFFSET 0 keeps the planner from pushing the
            -- lookup below the DISTINCT
            fresh := ARRAY(SELECT d.m
                           FROM (SELECT DISTINCT m FROM pg_catalog.unnest(models) AS m
                                 WHERE m IS NOT NULL OFFSET 0) AS d
                           WHERE NOT embedding_gate._sql_calibrated(d.m));
            IF pg_catalog.cardinality(fresh) = 0 AND pg_catalog.random() >= 1.0 / 100 THEN
                feeds := EXISTS (
                    SELECT FROM embedding_gate.model_calibrations AS c
                    WHERE c.model = ANY (models)
                      AND NOT (c.spread IS NOT NULL AND c.sample_size >= 10000));
            END IF;
            IF pg_catalog.cardinality(fresh) > 0 AND feeds THEN
                first := embedding_gate._sql_calibrate(
                    vectors, models, ARRAY(SELECT m = ANY (fresh)
                                           FROM pg_catalog.unnest(models) WITH ORDINALITY AS u(m, o)
                                           ORDER BY u.o));
            END IF;
        END IF;
        WITH c AS MATERIALIZED (
            SELECT c.*, x.id, x.model, x.content, x.d,
                   pg_catalog.min(c.ord) OVER (PARTITION BY x.d) AS part
            FROM embedding_gate._sql_checks(
                     vectors, models, dups, (t ->> 'min_norm')::double precision,
                     (t ->> 'min_variance')::double precision,
                     (t ->> 'near_zero_epsilon')::double precision,
                     (t ->> 'max_near_zero_ratio')::double precision,
                     (t ->> 'blank_similarity')::double precision,
                     (t ->> 'max_silent_deviation')::double precision) AS c
            -- (the arrays unnested in step, not subscripted: ids[c.ord] walks a flat array of
            -- text from its start, and n rows' subscripts took time in n squared; in the select
            -- list, as _sql_checks does, not ROWS FROM as chunks' trigger joins its small
            -- arrays: a function scan would write the statement's vectors to a tuplestore)
            JOIN (SELECT pg_catalog.unnest(ids) AS id, pg_catalog.unnest(models) AS model,
                         pg_catalog.unnest(contents) AS content,
                         public.vector_dims(pg_catalog.unnest(vectors)) AS d,
                         pg_catalog.generate_series(1::bigint, checked) AS o) AS x
              ON x.o = c.ord
        )
        SELECT (SELECT pg_catalog.count(*) FROM c WHERE pg_catalog.cardinality(c.issues) > 0),
               ARRAY(SELECT pg_catalog.unnest(c.issues) FROM c),
               (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                           'row_id', c.id, 'issues', c.issues,
                           'reason', embedding_gate._sql_reason(c.issues, c.nonfinite, c.d,
                                         c.norm, c.variance, c.near_zero_ratio, c.similarity,
                                         c.similar_kind, c.silent_deviation, c.duplicate_of,
                                         'row'),
                           'norm', c.norm, 'variance', c.variance, 'ratio', c.near_zero_ratio,
                           'similarity', c.similarity, 'duplicate_of', c.duplicate_of,
                           'model', c.model, 'length', pg_catalog.length(c.content),
                           'preview', pg_catalog.left(c.content, 100), 'part', c.part)
                           ORDER BY c.part, c.ord), '[]')
                FROM c WHERE pg_catalog.cardinality(c.issues) > 0),
               ARRAY(SELECT c.id FROM c WHERE pg_catalog.cardinality(c.issues) = 0
                     ORDER BY c.ord),
               ARRAY(SELECT c.ord FROM c WHERE 'model_mismatch' = ANY (c.issues))
        INTO flagged, codes, verdicts, clean, mismatch;
        IF feeds THEN
            first := first || embedding_gate._sql_calibrate(
                vectors, models, ARRAY(SELECT u.o <> ALL (mismatch)
                                              AND (u.m IS NULL OR u.m <> ALL (fresh))
                                       FROM pg_catalog.unnest(models) WITH ORDINALITY AS u(m, o)
                                       ORDER BY u.o));
        END IF;
        IF flagged > 0 AND mode = 'reject' THEN
            -- (the rows of the first dimension with flagged rows, as the PL/Python engine
            -- rejects its first part)
            SELECT pg_catalog.array_agg(e.value ->> 'row_id' ORDER BY e.i) AS ids,
                   pg_catalog.array_agg(e.value ->> 'reason' ORDER BY e.i) AS reasons
            INTO rejected
            FROM pg_catalog.jsonb_array_elements(verdicts) WITH ORDINALITY AS e(value, i)
            WHERE e.value -> 'part' = verdicts -> 0 -> 'part';
            PERFORM pg_catalog.set_config('embedding_gate.rejected', pg_catalog.jsonb_build_object(
                'message', 'embedding of row "' || rejected.ids[1] || '" of ' || a.name
                           || ' rejected: ' || rejected.reasons[1]
                           || CASE WHEN pg_catalog.cardinality(rejected.ids) > 1
                                   THEN ' (and ' || (pg_catalog.cardinality(rejected.ids) - 1)
                                        || ' more)' ELSE '' END,
                'detail', (SELECT pg_catalog.string_agg('row ' || r.id || ': ' || r.reason, E'\n'
                                                        ORDER BY r.o)
                           FROM ROWS FROM (pg_catalog.unnest(rejected.ids[1:20]),
                                           pg_catalog.unnest(rejected.reasons[1:20]))
                                WITH ORDINALITY AS r(id, reason, o))
                          || CASE WHEN pg_catalog.cardinality(rejected.ids) > 20
                                  THEN E'\n... and ' || (pg_catalog.cardinality(rejected.ids) - 20)
                                       || ' more' ELSE '' END,
                'sqlstate', 'QG001')::text, true);
            RETURN NULL;  -- embedding_gate_raise_rejected fails the statement
        ELSIF flagged > 0 AND mode = 'quarantine' THEN
            -- why each row goes, as the gate; the writer's own trigger moves them out
            INSERT INTO embedding_gate.quarantine AS q (table_oid, row_id, row, moving_xid,
                issues, reason, norm, variance, near_zero_ratio, blank_similarity, duplicate_of,
                embedding_model, content_length, content_preview)
            SELECT a.table_oid, w.row_id, NULL, pg_catalog.pg_current_xact_id(), w.issues,
                   w.reason, w.norm, w.variance, w.ratio, w.similarity, w.duplicate_of, w.model,
                   w.length, w.preview
            FROM pg_catalog.jsonb_to_recordset(verdicts) AS w(row_id text, issues text[],
                 reason text, norm double precision, variance double precision,
                 ratio double precision, similarity double precision, duplicate_of text,
                 model text, length integer, preview text)
            ORDER BY w.row_id
            ON CONFLICT (table_oid, row_id) DO UPDATE SET row = NULL,
                moving_xid = excluded.moving_xid, issues = excluded.issues,
                reason = excluded.reason, norm = excluded.norm, variance = excluded.variance,
                near_zero_ratio = excluded.near_zero_ratio,
                blank_similarity = excluded.blank_similarity,
                duplicate_of = excluded.duplicate_of, embedding_model = excluded.embedding_model,
                content_length = excluded.content_length,
                content_preview = excluded.content_preview, quarantined_at = pg_catalog.now();
            PERFORM pg_catalog.set_config('embedding_gate.moving', 'on', true);
        ELSIF flagged > 0 THEN
            INSERT INTO embedding_gate.verdicts AS v (table_oid, row_id, issues, reason, norm,
                variance, near_zero_ratio, blank_similarity, duplicate_of, embedding_model,
                content_length, content_preview)
            SELECT a.table_oid, w.row_id, w.issues, w.reason, w.norm, w.variance, w.ratio,
                   w.similarity, w.duplicate_of, w.model, w.length, w.preview
            FROM pg_catalog.jsonb_to_recordset(verdicts) AS w(row_id text, issues text[],
                 reason text, norm double precision, variance double precision,
                 ratio double precision, similarity double precision, duplicate_of text,
                 model text, length integer, preview text)
            -- in row order: two writers of one table take the locks in one order
            ORDER BY w.row_id
            ON CONFLICT (table_oid, row_id) DO UPDATE SET issues = excluded.issues,
                reason = excluded.reason, norm = excluded.norm, variance = excluded.variance,
                near_zero_ratio = excluded.near_zero_ratio,
                blank_similarity = excluded.blank_similarity,
                duplicate_of = excluded.duplicate_of, embedding_model = excluded.embedding_model,
                content_length = excluded.content_length,
                content_preview = excluded.content_preview, checked_at = pg_catalog.now();
        END IF;
        IF is_update AND pg_catalog.cardinality(clean) > 0 THEN
            DELETE FROM embedding_gate.verdicts AS v
            WHERE v.table_oid = a.table_oid AND v.row_id = ANY (clean);
        END IF;
    END IF;

    -- the rows earlier statements stored before a model's first calibration, judged once
    -- now that it has one (attached.judge_earlier): the table's first 1,000 rows
    IF pg_catalog.cardinality(first) > 0 AND checked <= 1000 AND a.readable THEN
        PERFORM embedding_gate._sql_judge_stored(a.table_oid, NULL, 1000, first, ids);
    END IF;
    IF is_update THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.array_agg(o.%1$I::text) FROM gate_old AS o'
            ' WHERE NOT EXISTS (SELECT FROM gate_new AS i WHERE i.%1$I = o.%1$I)', a.id_column)
            INTO vanished;
        IF vanished IS NOT NULL THEN
            DELETE FROM embedding_gate.verdicts AS v
            WHERE v.table_oid = a.table_oid AND v.row_id = ANY (vanished);
        END IF;
        EXECUTE pg_catalog.format(
            'SELECT (SELECT pg_catalog.count(*) FROM gate_new AS i WHERE i.%1$I IS NOT NULL)'
            ' - (SELECT pg_catalog.count(*) FROM gate_old AS i WHERE i.%1$I IS NOT NULL)',
            a.embedding_column)
            INTO delta;
    ELSE
        delta := checked;
    END IF;
    PERFORM embedding_gate._add_rows(a.row_key::text, delta);
    IF flagged > 0 THEN
        PERFORM embedding_gate._sql_notify(a.name, mode, checked, flagged, codes);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._check_attached() IS
    'Trigger of attached tables (the SQL engine): checks the embeddings a statement inserted '
    'or changed, and flags (embedding_gate.verdicts), quarantines (embedding_gate.quarantine) '
    'or rejects the bad ones. SECURITY DEFINER so that writers need no rights on the gate''s '
    'tables; it evaluates nothing the table''s owner controls and never writes the table.';
-- CREATE TRIGGER needs EXECUTE on the function (attach() runs as the table's owner); a
-- session cannot call a trigger function, and it acts only on attached tables
GRANT EXECUTE ON FUNCTION embedding_gate._check_attached() TO PUBLIC;
