-- 0002 which blank text a model's reference embeds: the empty text, or (for servers that
-- refuse "", as OpenAI's API does) a text of whitespace alone. set_blank_reference gains
-- the text as a third parameter: its old signature goes, and sql/idempotent/ creates the
-- new one (the row in _sources goes too, so that the sync re-creates it).

ALTER TABLE embedding_gate.blank_references
    ADD COLUMN blank_text text NOT NULL DEFAULT ''
    CONSTRAINT blank_references_blank_text_check CHECK (pg_catalog.btrim(blank_text) = '');
COMMENT ON COLUMN embedding_gate.blank_references.blank_text IS
    'The text the reference embeds: '''' (the empty text), or whitespace where the model''s '
    'server refuses the empty text.';

-- IF EXISTS: on a new database the revisions run before any function exists
DROP FUNCTION IF EXISTS public.set_blank_reference(text, public.vector);
DELETE FROM embedding_gate._sources WHERE name = '024_set_blank_reference.sql';
