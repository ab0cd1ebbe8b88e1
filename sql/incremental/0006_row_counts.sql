-- 0006 the row counts of chunks and documents, kept by triggers, so that the summary does
-- not count 10,000,000 rows: right after a bulk load, before VACUUM has set the visibility
-- map, counting read the whole heap (8.4 s at 10M chunks). Each statement appends its delta
-- (no row is updated, so concurrent writers never wait on one another); the triggers fold
-- the deltas together now and then. The triggers, and the first count of the rows already
-- stored, are in sql/idempotent/013_row_counts.sql.

CREATE TABLE embedding_gate._row_counts (
    relation  text NOT NULL
              CONSTRAINT _row_counts_relation_check CHECK (relation IN ('chunks', 'documents')),
    delta     bigint NOT NULL
);
COMMENT ON TABLE embedding_gate._row_counts IS
    'Rows added to (or removed from) chunks and documents, one row per statement, folded '
    'together now and then: sum(delta) is the table''s row count (embedding_quality_summary).';
REVOKE ALL ON embedding_gate._row_counts FROM PUBLIC;
