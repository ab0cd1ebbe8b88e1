-- Records a model's embedding of empty text (or of whitespace, blank_text, where its server
-- refuses the empty text), the reference of the blank_like check.
CREATE OR REPLACE FUNCTION public.set_blank_reference(
    model text, reference public.vector, blank_text text DEFAULT '')
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_values real[] := reference::real[];
    old_values real[];
BEGIN
    IF model IS NULL OR model = '' OR reference IS NULL THEN
        RAISE EXCEPTION 'set_blank_reference needs a model name and a vector'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF blank_text IS NULL OR btrim(blank_text) <> '' THEN
        RAISE EXCEPTION 'the blank text of model "%" must be empty or whitespace, not %',
            model, quote_nullable(blank_text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT sum(x::float8 * x::float8) FROM unnest(new_values) AS x) = 0 THEN
        RAISE EXCEPTION 'the blank reference of model "%" is a zero vector', model
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a zero vector has no direction to compare with: the low_norm check '
                         'already catches this model''s blank chunks';
    END IF;
    SELECT b.reference INTO old_values FROM embedding_gate.blank_references AS b
    WHERE b.model = set_blank_reference.model FOR UPDATE;
    IF NOT embedding_gate._may_record('blank reference', model, new_values, old_values) THEN
        RETURN;
    END IF;
    INSERT INTO embedding_gate.blank_references AS b (model, reference, blank_text)
    VALUES (set_blank_reference.model, new_values, set_blank_reference.blank_text)
    ON CONFLICT ON CONSTRAINT blank_references_pkey DO UPDATE
        SET reference = excluded.reference, blank_text = excluded.blank_text,
            recorded_at = now(), recorded_by = session_user;
END
$$;
COMMENT ON FUNCTION public.set_blank_reference(text, public.vector, text) IS
    'Records model''s embedding of empty text, the reference of the blank_like check: '
    'SELECT set_blank_reference(''my-model'', <the model''s embedding of "">); where the '
    'model''s server refuses "", its embedding of whitespace, naming that text: '
    'set_blank_reference(''my-model'', <embedding of " ">, '' ''). Recording the first one is '
    'open to writers (the loader does it on start); replacing one needs the right to change '
    'the settings. Existing rows: CALL recheck_embeddings().';
REVOKE EXECUTE ON FUNCTION public.set_blank_reference(text, public.vector, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.set_blank_reference(text, public.vector, text)
    TO embedding_loader;
