-- Records a model's embedding of a short degenerate text besides the empty text:
-- punctuation alone, or characters its tokenizer does not know. blank_like takes the
-- highest cosine over the model's references (this and its blank reference).
CREATE OR REPLACE FUNCTION public.set_degenerate_reference(
    model text, reference public.vector, text text, kind text)
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
    IF model IS NULL OR model = '' OR reference IS NULL OR text IS NULL THEN
        RAISE EXCEPTION 'set_degenerate_reference needs a model name, a vector and its text'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF kind IS NULL OR kind NOT IN ('punctuation', 'unknown') THEN
        RAISE EXCEPTION 'the kind of a degenerate reference is ''punctuation'' or ''unknown'', not %',
            quote_nullable(kind)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the embedding of empty text is set with set_blank_reference';
    END IF;
    IF length(text) NOT BETWEEN 1 AND 16 OR btrim(text) = '' THEN
        RAISE EXCEPTION 'the text of a degenerate reference of model "%" is 1 to 16 characters, not all whitespace',
            model
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (SELECT sum(x::float8 * x::float8) FROM unnest(new_values) AS x) = 0 THEN
        RAISE EXCEPTION 'the reference of model "%" for % is a zero vector', model,
            quote_literal(text)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT r.reference INTO old_values FROM embedding_gate.degenerate_references AS r
    WHERE r.model = set_degenerate_reference.model AND r.text = set_degenerate_reference.text
    FOR UPDATE;
    IF NOT embedding_gate._may_record('reference for ' || quote_literal(text), model,
                                      new_values, old_values) THEN
        RETURN;
    END IF;
    INSERT INTO embedding_gate.degenerate_references AS r (model, text, kind, reference)
    VALUES (set_degenerate_reference.model, set_degenerate_reference.text,
            set_degenerate_reference.kind, new_values)
    ON CONFLICT ON CONSTRAINT degenerate_references_pkey DO UPDATE
        SET reference = excluded.reference, kind = excluded.kind,
            recorded_at = now(), recorded_by = session_user;
END
$$;
COMMENT ON FUNCTION public.set_degenerate_reference(text, public.vector, text, text) IS
    'Records model''s embedding of a short degenerate text besides the empty text, a further '
    'reference of the blank_like check: SELECT set_degenerate_reference(''my-model'', '
    '<embedding of "?">, ''?'', ''punctuation''), or kind ''unknown'' for characters its '
    'tokenizer does not know (''𓀀''). Recording the first one of a text is open to writers; '
    'replacing one needs the right to change the settings. Existing rows: CALL '
    'recheck_embeddings().';
REVOKE EXECUTE ON FUNCTION public.set_degenerate_reference(text, public.vector, text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.set_degenerate_reference(text, public.vector, text, text)
    TO embedding_loader;
