-- 0006 duplicate_vector by a stored 64-bit hash: chunks.embedding_hash, computed by the
-- database, and a btree on (embedding_hash, created_at, chunk_id) that answers "the first
-- earlier chunk with this vector" inside the index, without visiting the row itself.
-- Revision 0005's hash index on vector_send(embedding) found the row itself on every probe
-- and fetched it from the heap to rule it out: recheck_embeddings() fell to 15,353 vectors/s.
-- Adding a stored column rewrites chunks once (100,000 768-d rows: 3.6 s, ACCESS EXCLUSIVE).
-- Frozen once released: changes go in a new revision.

-- SQL-standard body: parsed once, here, so no search_path can change what it calls; and
-- inlined into the generated column's expression, so it costs no function call per row.
CREATE FUNCTION embedding_gate.vector_hash(embedding public.vector) RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.hashtextextended(
    pg_catalog.encode(public.vector_send(embedding), 'hex'), 0);
COMMENT ON FUNCTION embedding_gate.vector_hash(public.vector) IS
    'A 64-bit hash of an embedding''s exact bytes (chunks.embedding_hash); equal embeddings '
    'hash equal, and duplicate_vector compares the bytes of the rare equal hashes.';

ALTER TABLE public.chunks
    ADD COLUMN embedding_hash bigint
    GENERATED ALWAYS AS (embedding_gate.vector_hash(embedding)) STORED;
COMMENT ON COLUMN public.chunks.embedding_hash IS
    'embedding_gate.vector_hash(embedding), computed by the database: the key of the '
    'duplicate_vector check.';

DROP INDEX public.chunks_embedding_hash_idx;
CREATE INDEX chunks_embedding_hash_idx ON public.chunks (embedding_hash, created_at, chunk_id)
    WHERE embedding_hash IS NOT NULL;
COMMENT ON INDEX public.chunks_embedding_hash_idx IS
    'duplicate_vector: the chunks with a given embedding hash in (created_at, chunk_id) order.';

-- Which of two identical embeddings is the duplicate is decided by (created_at, chunk_id).
-- With now() every row of a transaction had the same created_at, and the chunk_id order
-- could contradict the insert order across statements: the insert trigger then flagged
-- neither chunk and a later recheck flagged the first one. The time of the row's insert
-- keeps the order of the writes.
ALTER TABLE public.chunks ALTER COLUMN created_at SET DEFAULT pg_catalog.clock_timestamp();
COMMENT ON COLUMN public.chunks.created_at IS
    'When the row was inserted (clock_timestamp(): rows of one transaction keep their order); '
    'of two chunks with the identical embedding, the later one is the duplicate.';

-- _recheck_batch gains the twins parameter: the old signature goes, gate.sql creates the new
-- one, and the migration revokes it from PUBLIC as revision 0004 did the old one
DROP FUNCTION embedding_gate._recheck_batch(text, integer);
