-- The reports: views a person reads. A view can only gain columns at the end; a revision
-- that drops or retypes one drops the view first (see DEVELOPMENT.md).

-- Each row shows only what its reader could read from the table itself (embedding_gate.
-- _readable, evaluated as the reader): rows of tables whose id and embedding columns it may
-- SELECT, under the table's row-level security policies for it; the content preview and
-- length only with SELECT on the content column; a duplicate's other row only where it sees
-- that row too; quarantined rows only for the table's owner (they are no longer in the table).
-- security_barrier: the reader's own conditions run after these filters, never before (a
-- cheap function of the reader's in a WHERE clause, pushed below the filters, saw other
-- tenants' previews and other tables' quarantined rows).
CREATE OR REPLACE VIEW embedding_gate._low_quality WITH (security_barrier) AS
WITH r AS MATERIALIZED (SELECT * FROM embedding_gate._readable)
SELECT c.chunk_id,
       c.doc_id,
       c.quality_issues AS issues,
       CASE WHEN d.shown THEN c.quality_reason
            ELSE pg_catalog.regexp_replace(c.quality_reason,
                     'same embedding as chunk .*?, whose content differs',
                     'same embedding as a chunk you may not read, whose content differs')
       END AS reason,
       c.quality_norm AS norm,
       c.quality_variance AS variance,
       c.quality_near_zero_ratio AS near_zero_ratio,
       CASE WHEN r.content THEN c.content_length END AS content_length,
       CASE WHEN r.content THEN pg_catalog.left(c.content, 100) END AS content_preview,
       c.quality_checked_at AS checked_at,
       false AS quarantined,
       c.quality_blank_similarity AS blank_similarity,
       CASE WHEN d.shown THEN c.quality_duplicate_of END AS duplicate_of,
       c.embedding_model,
       'public.chunks' AS table_name,
       c.chunk_id AS row_id
FROM public.chunks AS c
JOIN r ON r.table_oid = 'public.chunks'::regclass
CROSS JOIN LATERAL (SELECT c.quality_duplicate_of IS NULL OR r.all_rows
                           OR embedding_gate._visible(r.table_oid, c.quality_duplicate_of)
                           AS shown) AS d
WHERE c.quality_issues IS NOT NULL
  AND CASE WHEN NOT r.may THEN false
           WHEN r.all_rows THEN true
           ELSE embedding_gate._visible(r.table_oid, c.chunk_id) END
UNION ALL
SELECT q.chunk_id,
       q.doc_id,
       q.quality_issues,
       q.quality_reason,
       q.quality_norm,
       q.quality_variance,
       q.quality_near_zero_ratio,
       pg_catalog.char_length(q.content),
       pg_catalog.left(q.content, 100),
       q.quarantined_at,
       true,
       q.quality_blank_similarity,
       q.quality_duplicate_of,
       q.embedding_model,
       'public.chunks',
       q.chunk_id
FROM public.embedding_quarantine AS q
JOIN r ON r.table_oid = 'public.chunks'::regclass
WHERE r.owner
UNION ALL
SELECT NULL, NULL, v.issues,
       CASE WHEN d.shown THEN v.reason
            ELSE pg_catalog.regexp_replace(v.reason,
                     'same embedding as row .*?, whose content differs',
                     'same embedding as a row you may not read, whose content differs')
       END,
       v.norm, v.variance, v.near_zero_ratio,
       CASE WHEN r.content THEN v.content_length END,
       CASE WHEN r.content THEN v.content_preview END,
       v.checked_at, false, v.blank_similarity,
       CASE WHEN d.shown THEN v.duplicate_of END,
       v.embedding_model, embedding_gate._qualified(v.table_oid), v.row_id
FROM embedding_gate.verdicts AS v
-- (a table dropped without the event trigger has no row in _readable: left out)
JOIN r ON r.table_oid = v.table_oid
CROSS JOIN LATERAL (SELECT v.duplicate_of IS NULL OR r.all_rows
                           OR embedding_gate._visible(r.table_oid, v.duplicate_of)
                           AS shown) AS d
WHERE CASE WHEN NOT r.may THEN false
           WHEN r.all_rows THEN true
           ELSE embedding_gate._visible(r.table_oid, v.row_id) END
UNION ALL
SELECT NULL, NULL, q.issues, q.reason, q.norm, q.variance, q.near_zero_ratio, q.content_length,
       q.content_preview, q.quarantined_at, true, q.blank_similarity, q.duplicate_of,
       q.embedding_model, embedding_gate._qualified(q.table_oid), q.row_id
FROM embedding_gate.quarantine AS q
JOIN r ON r.table_oid = q.table_oid
WHERE r.owner AND q.row IS NOT NULL
ORDER BY checked_at DESC, table_name, row_id;
COMMENT ON VIEW embedding_gate._low_quality IS
    'The rows of low_quality_embeddings (read through _low_quality_embeddings(), without JIT).';
GRANT SELECT ON embedding_gate._low_quality TO PUBLIC;

-- Read through a function that turns JIT off, as the other reports are: right after a bulk
-- load (no statistics yet) the planner's estimate over a million chunks made PostgreSQL
-- spend a second compiling a query that runs in milliseconds. SECURITY INVOKER, so that the
-- filters of the view above still run as the reader. enable_seqscan = off: without
-- statistics the planner guesses that `quality_issues IS NOT NULL` holds for a large share
-- of chunks and reads the whole heap (LIMIT 10 took 3.6 s right after a 1,000,000-row load)
-- rather than the small partial index of flagged chunks.
CREATE OR REPLACE FUNCTION embedding_gate._low_quality_embeddings()
RETURNS SETOF embedding_gate._low_quality
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET enable_seqscan = off
AS $$
SELECT * FROM embedding_gate._low_quality
$$;
COMMENT ON FUNCTION embedding_gate._low_quality_embeddings() IS
    'The rows of the view low_quality_embeddings (without JIT), as its reader may see them.';

CREATE OR REPLACE VIEW public.low_quality_embeddings AS
SELECT * FROM embedding_gate._low_quality_embeddings() AS l
ORDER BY l.checked_at DESC, l.table_name, l.row_id;
COMMENT ON VIEW public.low_quality_embeddings IS
    'One row per embedding the gate flagged, in chunks and in every attached table: flagged '
    'rows (quarantined = false) and the rows a quarantine holds instead (quarantined = true). '
    'Newest first. Each reader sees only the rows it could read from the table itself (its '
    'privileges and row-level security), the preview only with SELECT on the content, and '
    'quarantined rows only of the tables it owns.';
COMMENT ON COLUMN public.low_quality_embeddings.chunk_id IS 'The chunk (NULL for a row of an attached table).';
COMMENT ON COLUMN public.low_quality_embeddings.doc_id IS 'Its document (NULL for a row of an attached table).';
COMMENT ON COLUMN public.low_quality_embeddings.issues IS
    'Every issue code that applies: nan_or_inf, low_norm, low_variance, sparse, blank_like, '
    'duplicate_vector, model_mismatch.';
COMMENT ON COLUMN public.low_quality_embeddings.reason IS
    'Readable reasons with the measured values, e.g. "norm too low (0.0234)".';
COMMENT ON COLUMN public.low_quality_embeddings.norm IS 'L2 norm (NULL with NaN/Inf).';
COMMENT ON COLUMN public.low_quality_embeddings.variance IS
    'Population variance of the components (NULL with NaN/Inf).';
COMMENT ON COLUMN public.low_quality_embeddings.near_zero_ratio IS
    'Share of components with abs(x) < near_zero_epsilon.';
COMMENT ON COLUMN public.low_quality_embeddings.content_length IS
    'Length of the content in characters.';
COMMENT ON COLUMN public.low_quality_embeddings.content_preview IS
    'The first 100 characters of the content (characters, not bytes).';
COMMENT ON COLUMN public.low_quality_embeddings.checked_at IS
    'When the gate flagged it, or quarantined it.';
COMMENT ON COLUMN public.low_quality_embeddings.quarantined IS
    'true: the row is in embedding_quarantine, not in chunks (mode quarantine).';
COMMENT ON COLUMN public.low_quality_embeddings.blank_similarity IS
    'blank_like: cosine similarity to the model''s embedding of empty text.';
COMMENT ON COLUMN public.low_quality_embeddings.duplicate_of IS
    'duplicate_vector: the earlier row with the identical embedding and other content.';
COMMENT ON COLUMN public.low_quality_embeddings.embedding_model IS
    'The model that embedded the chunk, where the writer recorded it.';
COMMENT ON COLUMN public.low_quality_embeddings.table_name IS
    'The table the row is (or was, when quarantined) in, with its schema: public.chunks or an '
    'attached table.';
COMMENT ON COLUMN public.low_quality_embeddings.row_id IS
    'The row''s id in that table, as text (chunk_id for chunks).';
-- every role may read it: it shows each only what that role could read from the tables
GRANT SELECT ON public.low_quality_embeddings TO PUBLIC;
