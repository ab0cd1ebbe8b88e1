-- The SQL engine's scan of one attached table (issue 25), for verify_embeddings,
-- embedding_measures and preview_thresholds (sql/engine_sql/020-023): what attached.scan_all()
-- yields for a table in the PL/Python engine. Every stored embedding (sample_size NULL), in
-- batches of 4,096 rows in id order, or a uniform random sample of sample_size rows (their
-- ids drawn first, the rows then read 4,096 at a time), judged with the thresholds t (jsonb as
-- embedding_gate._sql_settings() gives them) and duplicate_vector as a scan finds it (the
-- verdicts' order of the writes kept, embedding_gate._sql_stored_rows). It runs as its caller
-- (SECURITY INVOKER): the table's privileges and row-level security apply to its reads as to
-- any SELECT of the caller's, so a row the caller may not read is not returned, and where the
-- caller reads the table under a policy there is no duplicate probe (as in the PL/Python
-- scans). The caller leaves out the tables whose _refusal() is not NULL (this fails on them).
CREATE OR REPLACE FUNCTION embedding_gate._sql_scan_attached(
    table_name regclass, t jsonb, sample_size integer)
RETURNS TABLE (row_id text, model text, issues text[], norm double precision,
               variance double precision, near_zero_ratio double precision,
               blank_similarity double precision, silent_deviation double precision)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    a record;
    batch constant integer := 4096;
    sample text[];
    lo integer;
    after text;
    ids text[];
    vectors public.vector[];
    models text[];
    contents text[];
    versions text[];
    dups text[];
BEGIN
    -- no ALTER TABLE between the look at the column types and the reads
    PERFORM embedding_gate._lock_for_reading(table_name);
    SELECT * INTO a FROM embedding_gate._sql_attached(table_name);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF sample_size IS NOT NULL THEN
        EXECUTE pg_catalog.format(
            'SELECT pg_catalog.array_agg(s.id) FROM (SELECT i.%1$I::text AS id FROM %2$s AS i'
            ' WHERE i.%3$I IS NOT NULL ORDER BY pg_catalog.random() LIMIT $1) AS s',
            a.id_column, a.name, a.embedding_column)
            USING GREATEST(sample_size, 0)
            INTO sample;
    END IF;
    lo := 1;
    LOOP
        IF sample_size IS NOT NULL THEN
            EXIT WHEN sample IS NULL OR lo > pg_catalog.cardinality(sample);
            EXECUTE 'SELECT pg_catalog.array_agg(s.row_id), pg_catalog.array_agg(s.v),'
                    ' pg_catalog.array_agg(s.model), pg_catalog.array_agg(s.content),'
                    ' pg_catalog.array_agg(s.x), pg_catalog.array_agg(s.dup) FROM ('
                    || embedding_gate._sql_stored_rows(
                           a.table_oid, a.readable,
                           pg_catalog.format('AND i.%I = ANY ($1::text[]::%s[]) ORDER BY i.%I',
                                             a.id_column, a.id_type, a.id_column))
                    || ') AS s'
                USING sample[lo:lo + batch - 1]
                INTO ids, vectors, models, contents, versions, dups;
            lo := lo + batch;
        ELSE
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
                USING after, batch
                INTO ids, vectors, models, contents, versions, dups;
            EXIT WHEN ids IS NULL;
            after := ids[pg_catalog.cardinality(ids)];
        END IF;
        CONTINUE WHEN ids IS NULL;
        RETURN QUERY
        SELECT x.id, x.model, c.issues, c.norm, c.variance, c.near_zero_ratio,
               c.similarity, c.silent_deviation
        FROM embedding_gate._sql_checks(
                 vectors, models, dups, (t ->> 'min_norm')::double precision,
                 (t ->> 'min_variance')::double precision,
                 (t ->> 'near_zero_epsilon')::double precision,
                 (t ->> 'max_near_zero_ratio')::double precision,
                 (t ->> 'blank_similarity')::double precision,
                 (t ->> 'max_silent_deviation')::double precision) AS c
        -- (the arrays unnested in step, not subscripted: ids[c.ord] walks a flat array of text
        -- from its start, and a batch's subscripts took time in its rows squared)
        JOIN ROWS FROM (pg_catalog.unnest(ids), pg_catalog.unnest(models))
             WITH ORDINALITY AS x(id, model, n) ON x.n = c.ord
        ORDER BY c.ord;
    END LOOP;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_scan_attached(regclass, jsonb, integer) IS
    'The SQL engine''s scan of an attached table for the reports'' functions: every stored '
    'embedding (sample_size NULL) or a random sample, judged with the thresholds t, in '
    'batches, as the caller (the rows it may read).';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_scan_attached(regclass, jsonb, integer) TO PUBLIC;
