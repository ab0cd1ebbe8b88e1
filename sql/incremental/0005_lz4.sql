-- 0005 embeddings compressed with lz4 instead of pglz. A 768-d vector (3 KB) is over the
-- TOAST threshold, so PostgreSQL tries to compress every one before storing it inline; the
-- floats of an embedding do not compress, and pglz took 20% of a binary COPY's time
-- failing to (a profile of the gated COPY). lz4 fails fast: measured on 30,000 768-d rows,
-- binary COPY 18.0 -> 14.0 µs a row without the gate, 23.5 -> 19.6 µs with it. Rows stored
-- before keep their form; where the server was built without lz4, pglz stays.
DO $$
BEGIN
    ALTER TABLE public.chunks ALTER COLUMN embedding SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL was built without lz4: embeddings stay compressed with pglz';
END
$$;
