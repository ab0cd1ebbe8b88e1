-- Re-evaluates every stored embedding with the current thresholds, committing per batch.
-- A procedure, so that it can commit; it therefore cannot carry a SET search_path clause
-- (PostgreSQL forbids transaction control there) and pins it with set_config instead.
CREATE OR REPLACE PROCEDURE public.recheck_embeddings(
    batch_size integer DEFAULT 10000,
    INOUT checked bigint DEFAULT NULL,
    INOUT low_quality bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    after text;
    twin_hashes bigint[];
    b record;
    attached regclass;
    refused text;
    b_checked bigint;
    b_low bigint;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    -- Its batches run at READ COMMITTED whatever the session's default: each locks the rows
    -- it writes with SKIP LOCKED and compares their version with the one it read, which
    -- under SERIALIZABLE or REPEATABLE READ would fail on a row a writer changed since
    -- (instead of skipping it), and whose reads would add dependencies to the writers'.
    IF pg_catalog.current_setting('transaction_isolation')
       OPERATOR(pg_catalog.<>) 'read committed' THEN
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END IF;
    checked := 0;
    low_quality := 0;
    LOOP
        SELECT * INTO b FROM embedding_gate._recheck_batch(after, batch_size, twin_hashes);
        EXIT WHEN b.checked = 0;
        twin_hashes := b.twins;
        checked := checked + b.checked;
        low_quality := low_quality + b.low_quality;
        after := b.last_chunk_id;
        COMMIT;
        SET TRANSACTION ISOLATION LEVEL READ COMMITTED;
        -- the setting ended with the transaction
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
    -- then every attached table, in id order, committing as it goes
    FOR attached, refused IN
            SELECT a.table_oid, embedding_gate._refusal(a.table_oid, a.id_attnum,
                       a.embedding_attnum, a.content_attnum, a.model_attnum)
            FROM embedding_gate.attached_tables AS a
            JOIN pg_catalog.pg_class AS c ON c.oid = a.table_oid
            WHERE a.table_oid <> 'public.chunks'::regclass
            ORDER BY a.table_oid::oid LOOP
        -- a table the gate will not read (one of its columns has a type of its owner's
        -- now) is left for its owner to mend; the others are rechecked all the same
        IF refused IS NOT NULL THEN
            RAISE WARNING 'embedding gate: % not rechecked: %',
                embedding_gate._qualified(attached), refused;
            CONTINUE;
        END IF;
        CALL embedding_gate.check_existing(attached, batch_size, b_checked, b_low);
        checked := checked + b_checked;
        low_quality := low_quality + b_low;
    END LOOP;
END
$$;
COMMENT ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) IS
    'Re-evaluates every stored embedding, in chunks and in every attached table, with the '
    'current thresholds (after they change), committing every batch_size rows: CALL '
    'recheck_embeddings(). Updates the verdicts only; it never moves or deletes stored rows, '
    'whatever the mode.';
REVOKE EXECUTE ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) FROM PUBLIC;
