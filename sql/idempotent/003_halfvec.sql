-- halfvec columns (pgvector 0.7+), read and hashed by their stored bytes like vectors (see
-- vector_bytes and vector_hash in the baseline): attached tables may store half floats.
CREATE OR REPLACE FUNCTION embedding_gate.halfvec_bytes(embedding public.halfvec) RETURNS bytea
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'byteasend';
COMMENT ON FUNCTION embedding_gate.halfvec_bytes(public.halfvec) IS
    'A halfvec''s stored bytes (int16 dim, int16 0, then the float16 components in the '
    'server''s byte order).';

CREATE OR REPLACE FUNCTION embedding_gate._hash_halfvec(embedding public.halfvec, seed bigint)
RETURNS bigint
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'hashvarlenaextended';
COMMENT ON FUNCTION embedding_gate._hash_halfvec(public.halfvec, bigint) IS
    'PostgreSQL''s 64-bit hash of a halfvec''s stored bytes, seeded (see halfvec_hash).';

CREATE OR REPLACE FUNCTION embedding_gate.halfvec_hash(embedding public.halfvec) RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN embedding_gate._hash_halfvec(embedding, 0);
COMMENT ON FUNCTION embedding_gate.halfvec_hash(public.halfvec) IS
    'A 64-bit hash of a halfvec''s stored bytes: the key of duplicate_vector on attached '
    'halfvec columns.';
