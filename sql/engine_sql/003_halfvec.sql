-- How the SQL engine reads vectors' bytes (sql/idempotent/003_halfvec.sql and the released
-- baseline use LANGUAGE internal, which only a superuser may use): pgvector's send functions,
-- the bytes in network byte order. Equal vectors give equal bytes and hashes, and the gate
-- only compares them (duplicate_vector compares the bytes of equal hashes; the update
-- triggers, a vector's bytes before and after): migrations/sources.py, _NO_PLPYTHON.
CREATE OR REPLACE FUNCTION embedding_gate.halfvec_bytes(embedding public.halfvec) RETURNS bytea
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN public.halfvec_send(embedding);
COMMENT ON FUNCTION embedding_gate.halfvec_bytes(public.halfvec) IS
    'A halfvec''s bytes (halfvec_send: int16 dim, int16 0, then the float16 components, in '
    'network byte order): how the SQL engine compares halfvecs byte for byte.';

COMMENT ON FUNCTION embedding_gate.vector_bytes(public.vector) IS
    'An embedding''s bytes (vector_send: int16 dim, int16 0, then the float4 components, in '
    'network byte order): how the SQL engine compares vectors byte for byte.';
COMMENT ON FUNCTION embedding_gate._hash_bytes(public.vector, bigint) IS
    'A 64-bit hash of an embedding''s bytes (hashtextextended over vector_send''s hex), seeded '
    '(see vector_hash): the SQL engine''s, not the values of the PL/Python engine''s.';
