-- Keeps embedding_gate._row_counts: each statement that inserts into, deletes from or
-- truncates chunks or documents appends its delta; once a relation has 64 deltas, the
-- statement folds them into one row. Concurrent writers never wait on one another here: a
-- fold takes only the deltas no other fold holds (SKIP LOCKED) and sums what it deleted.
-- Under SERIALIZABLE the deltas are not counted on every statement (that read would be a
-- read/write dependency on every concurrent writer's append): one statement in 64, at
-- random, folds instead, and a fold that loses a race with another gives up quietly.
CREATE OR REPLACE FUNCTION embedding_gate._add_rows(relation text, delta bigint) RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fold boolean;
BEGIN
    IF delta <> 0 THEN
        INSERT INTO embedding_gate._row_counts AS r (relation, delta)
        VALUES (_add_rows.relation, _add_rows.delta);
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') = 'serializable' THEN
        fold := pg_catalog.random() < 1.0 / 64;
    ELSE
        fold := (SELECT count(*) FROM embedding_gate._row_counts AS r
                 WHERE r.relation = _add_rows.relation) >= 64;
    END IF;
    IF fold THEN
        BEGIN
            WITH folded AS (
                DELETE FROM embedding_gate._row_counts AS r
                WHERE r.ctid = ANY (ARRAY(
                    SELECT k.ctid FROM embedding_gate._row_counts AS k
                    WHERE k.relation = _add_rows.relation FOR UPDATE SKIP LOCKED))
                RETURNING r.delta
            )
            INSERT INTO embedding_gate._row_counts (relation, delta)
            SELECT _add_rows.relation, sum(f.delta) FROM folded AS f HAVING count(*) > 0;
        EXCEPTION WHEN serialization_failure THEN
            NULL;  -- another fold took them first: the next statement's turn
        END;
    END IF;
END
$$;
COMMENT ON FUNCTION embedding_gate._add_rows(text, bigint) IS
    'Appends a statement''s change in the row count of chunks or documents, and folds the '
    'relation''s deltas once there are 64.';
REVOKE EXECUTE ON FUNCTION embedding_gate._add_rows(text, bigint) FROM PUBLIC;

-- Counts what a statement removed from chunks, and what it added to or removed from
-- documents. (Rows inserted into chunks are counted by the gate's insert trigger, which
-- reads the statement's rows anyway: a second reader of the transition table cost 1 µs a
-- 768-d row.)
CREATE OR REPLACE FUNCTION embedding_gate._count_rows() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    delta bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -count(*) INTO delta FROM old_rows;
    ELSE  -- TRUNCATE: the table is locked against every other writer; it holds no rows now
        SELECT -COALESCE(sum(r.delta), 0) INTO delta FROM embedding_gate._row_counts AS r
        WHERE r.relation = TG_TABLE_NAME;
    END IF;
    PERFORM embedding_gate._add_rows(TG_TABLE_NAME, delta);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._count_rows() IS
    'Trigger: appends a statement''s change in the row count of chunks or documents to '
    'embedding_gate._row_counts (the summary''s counts), and folds the deltas now and then.';
REVOKE EXECUTE ON FUNCTION embedding_gate._count_rows() FROM PUBLIC;

CREATE OR REPLACE TRIGGER embedding_gate_count_delete
    AFTER DELETE ON public.chunks REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._count_rows();
CREATE OR REPLACE TRIGGER embedding_gate_count_truncate
    AFTER TRUNCATE ON public.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._count_rows();
CREATE OR REPLACE TRIGGER embedding_gate_count_insert
    AFTER INSERT ON public.documents REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._count_rows();
CREATE OR REPLACE TRIGGER embedding_gate_count_delete
    AFTER DELETE ON public.documents REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._count_rows();
CREATE OR REPLACE TRIGGER embedding_gate_count_truncate
    AFTER TRUNCATE ON public.documents
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._count_rows();
COMMENT ON TRIGGER embedding_gate_count_delete ON public.chunks IS
    'Keeps the row count of chunks for the summary (the insert trigger counts insertions).';
COMMENT ON TRIGGER embedding_gate_count_insert ON public.documents IS
    'Keeps the row count of documents for the summary.';

-- The first count, of the rows stored before the triggers existed: the triggers above lock
-- both tables against writers until this transaction ends, so no row is counted twice or
-- missed.
INSERT INTO embedding_gate._row_counts (relation, delta)
SELECT t.relation, t.n FROM (
    SELECT 'chunks' AS relation, (SELECT count(*) FROM public.chunks) AS n
    UNION ALL
    SELECT 'documents', (SELECT count(*) FROM public.documents)
) AS t
WHERE NOT EXISTS (SELECT FROM embedding_gate._row_counts AS r WHERE r.relation = t.relation);

-- Counts both tables again, and the embedded rows of every attached table, for when the
-- triggers were switched off (only the owner can) and the totals drifted, or after a
-- restore from a dump (an attached table's count is keyed by its oid, which a restore
-- changes): locks them against writers until the transaction ends.
CREATE OR REPLACE FUNCTION embedding_gate.recount() RETURNS TABLE (relation text, total bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    n bigint;
BEGIN
    LOCK TABLE public.chunks, public.documents IN SHARE MODE;
    DELETE FROM embedding_gate._row_counts;
    INSERT INTO embedding_gate._row_counts (relation, delta)
    VALUES ('chunks', (SELECT count(*) FROM public.chunks)),
           ('documents', (SELECT count(*) FROM public.documents));
    -- (a table dropped without the event trigger is left out)
    FOR a IN SELECT t.table_oid, t.row_key,
                    embedding_gate._column(t.table_oid, t.embedding_attnum) AS e
             FROM embedding_gate.attached_tables AS t
             JOIN pg_catalog.pg_class AS c ON c.oid = t.table_oid
             WHERE t.table_oid <> 'public.chunks'::regclass LOOP
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', a.table_oid);
        EXECUTE format('SELECT count(*) FROM %s AS t WHERE t.%I IS NOT NULL',
                       a.table_oid, a.e) INTO n;
        INSERT INTO embedding_gate._row_counts (relation, delta)
        VALUES (a.row_key::text, n);
    END LOOP;
    RETURN QUERY
        SELECT r.relation, r.delta FROM embedding_gate._row_counts AS r
        WHERE r.relation IN ('chunks', 'documents')
        UNION ALL
        SELECT embedding_gate._qualified(t.table_oid), r.delta
        FROM embedding_gate._row_counts AS r
        JOIN embedding_gate.attached_tables AS t ON r.relation = t.row_key::text
        ORDER BY 1;
END
$$;
COMMENT ON FUNCTION embedding_gate.recount() IS
    'Counts chunks, documents and the embedded rows of every attached table again for '
    'embedding_quality_summary and embedding_gate.attached (after the owner has switched '
    'the triggers off, say, or a restore from a dump): SELECT * FROM embedding_gate.recount(). '
    'Locks them against writers until the transaction ends.';
REVOKE EXECUTE ON FUNCTION embedding_gate.recount() FROM PUBLIC;
