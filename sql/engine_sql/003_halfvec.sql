-- halfvec's stored bytes for the SQL engine (sql/idempotent/003_halfvec.sql uses LANGUAGE
-- internal, which only a superuser may use): pgvector's halfvec_send gives them in network
-- byte order, each 16-bit field (dim, unused, the float16 components) swapped here to the
-- server's (little-endian, as vector_bytes in the SQL engine's baseline). Nothing of the SQL
-- engine hashes halfvec yet: attach, their only user, is not available with it (issue 25),
-- so halfvec_hash is left out.
CREATE OR REPLACE FUNCTION embedding_gate.halfvec_bytes(embedding public.halfvec) RETURNS bytea
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.decode(pg_catalog.regexp_replace(
    pg_catalog.encode(public.halfvec_send(embedding), 'hex'), '(..)(..)', '\2\1', 'g'), 'hex');
COMMENT ON FUNCTION embedding_gate.halfvec_bytes(public.halfvec) IS
    'A halfvec''s stored bytes (int16 dim, int16 0, then the float16 components in the '
    'server''s byte order).';
