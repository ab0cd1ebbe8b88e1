-- 0007 the gate reads and hashes an embedding's stored bytes. Through revision 0006 every
-- insert ran pgvector's vector_send() twice, once to compute embedding_hash (then hex and
-- a text hash over 6 KB) and once for the trigger to read the vector: 768 byte-swapped
-- floats each time. Over 50,000 stored 768-d rows, on top of reading them: vector_send
-- 3.7 µs a row, the 0006 hash 8.5 µs. The two functions below are PostgreSQL's own C
-- functions bound to the vector type, which copy or hash the bytes as they are: 0.3 µs
-- for the copy, 1.3 µs for the hash.
-- embedding_hash changes value, so the column is computed again: a rewrite of chunks under
-- ACCESS EXCLUSIVE, like revision 0006's (100,000 768-d rows: 3.7 s).
-- Frozen once released: changes go in a new revision.

-- byteasend returns a copy of its varlena argument as bytea: here pgvector's stored form,
-- int16 dim, int16 unused (always 0), then the float4 components in the server's byte order.
-- LANGUAGE internal names a function compiled into the server; it looks nothing up by name,
-- so there is no search_path to pin.
CREATE FUNCTION embedding_gate.vector_bytes(embedding public.vector) RETURNS bytea
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'byteasend';
COMMENT ON FUNCTION embedding_gate.vector_bytes(public.vector) IS
    'An embedding''s stored bytes (int16 dim, int16 0, then the float4 components in the '
    'server''s byte order): how the gate reads vectors, and compares them byte for byte.';

-- hashvarlenaextended is the hash of bytea (its hash opclass): hash_any over the value's
-- bytes, with a seed
CREATE FUNCTION embedding_gate._hash_bytes(embedding public.vector, seed bigint) RETURNS bigint
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'hashvarlenaextended';
COMMENT ON FUNCTION embedding_gate._hash_bytes(public.vector, bigint) IS
    'PostgreSQL''s 64-bit hash of an embedding''s stored bytes, seeded (see vector_hash).';

-- the column depends on vector_hash: drop it (and its index), give vector_hash its new
-- body, add the column again, computed by the new body
ALTER TABLE public.chunks DROP COLUMN embedding_hash;

CREATE OR REPLACE FUNCTION embedding_gate.vector_hash(embedding public.vector) RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN embedding_gate._hash_bytes(embedding, 0);
COMMENT ON FUNCTION embedding_gate.vector_hash(public.vector) IS
    'A 64-bit hash of an embedding''s stored bytes (chunks.embedding_hash); equal embeddings '
    'hash equal, and duplicate_vector compares the bytes of the rare equal hashes.';

ALTER TABLE public.chunks
    ADD COLUMN embedding_hash bigint
    GENERATED ALWAYS AS (embedding_gate.vector_hash(embedding)) STORED;
COMMENT ON COLUMN public.chunks.embedding_hash IS
    'embedding_gate.vector_hash(embedding), computed by the database: the key of the '
    'duplicate_vector check.';

CREATE INDEX chunks_embedding_hash_idx ON public.chunks (embedding_hash, created_at, chunk_id)
    WHERE embedding_hash IS NOT NULL;
COMMENT ON INDEX public.chunks_embedding_hash_idx IS
    'duplicate_vector: the chunks with a given embedding hash in (created_at, chunk_id) order.';
