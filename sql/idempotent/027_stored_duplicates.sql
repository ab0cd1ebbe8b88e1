-- The rows of attached tables the gate flagged duplicate_vector, and the row each repeats,
-- as the current role may see them (the filter of low_quality_embeddings: the table's id and
-- embedding columns, its row-level security for the role; the other row only where the role
-- sees it too). A recheck and verify_embeddings read it to judge a table's duplicates as
-- its writes did: the row a write found first stays the original, whatever the ids' order.
-- security_barrier: the reader's own conditions run after the filter (see
-- 030_low_quality_embeddings.sql); its table_oid and row_id conditions still reach the
-- primary key of embedding_gate.verdicts.
CREATE OR REPLACE VIEW embedding_gate._stored_duplicates WITH (security_barrier) AS
SELECT v.table_oid,
       v.row_id,
       CASE WHEN r.all_rows OR embedding_gate._visible(r.table_oid, v.duplicate_of)
            THEN v.duplicate_of END AS duplicate_of
FROM embedding_gate.verdicts AS v
JOIN embedding_gate._readable AS r ON r.table_oid = v.table_oid
WHERE 'duplicate_vector' = ANY (v.issues)
  AND r.may
  AND (r.all_rows OR embedding_gate._visible(r.table_oid, v.row_id));
COMMENT ON VIEW embedding_gate._stored_duplicates IS
    'Rows of attached tables flagged duplicate_vector and the row each repeats, as the '
    'current role may see them: what a recheck and verify_embeddings keep of their writes'' '
    'order.';
GRANT SELECT ON embedding_gate._stored_duplicates TO PUBLIC;
