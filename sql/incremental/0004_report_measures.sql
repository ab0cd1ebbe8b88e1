-- 0004 the report draws every measure a check uses: embedding_measures() gains the
-- blank_like similarity and the row's model (a new return type: the old function goes, and
-- sql/idempotent/ creates the new one).

-- IF EXISTS: on a new database the revisions run before any function exists
DROP FUNCTION IF EXISTS public.embedding_measures(double precision);
DELETE FROM embedding_gate._sources WHERE name = '022_embedding_measures.sql';
