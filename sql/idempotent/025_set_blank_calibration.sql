-- Records a model's calibration for blank_like: its mean embedding over ordinary texts.
CREATE OR REPLACE FUNCTION public.set_blank_calibration(
    model text, mean public.vector, sample_size integer, source text DEFAULT 'given')
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_values real[] := mean::real[];
    old_values real[];
BEGIN
    IF model IS NULL OR model = '' OR mean IS NULL OR sample_size IS NULL OR sample_size < 1 THEN
        RAISE EXCEPTION 'set_blank_calibration needs a model name, a vector and a sample size of 1 or more'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF source IS NULL OR source NOT IN ('sample', 'given') THEN
        RAISE EXCEPTION 'the source of a calibration is ''sample'' or ''given'', not %',
            quote_nullable(source)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'CALL recheck_embeddings() computes one from the stored rows';
    END IF;
    SELECT c.mean INTO old_values FROM embedding_gate.model_calibrations AS c
    WHERE c.model = set_blank_calibration.model FOR UPDATE;
    IF NOT embedding_gate._may_record('calibration', model, new_values, old_values) THEN
        RETURN;
    END IF;
    INSERT INTO embedding_gate.model_calibrations AS c (model, mean, sample_size, source)
    VALUES (set_blank_calibration.model, new_values, set_blank_calibration.sample_size,
            set_blank_calibration.source)
    ON CONFLICT ON CONSTRAINT model_calibrations_pkey DO UPDATE
        SET mean = excluded.mean, sample_size = excluded.sample_size, source = excluded.source,
            spread = NULL, recorded_at = now(), recorded_by = session_user;
    -- a replaced mean starts the model's calibration again (a changed model behind the same
    -- name, --accept-model-change): the old rows' spread and sums are not its fingerprint;
    -- the writes record them again from the model's next 100 rows
    IF old_values IS NOT NULL THEN
        DELETE FROM embedding_gate._calibration_deltas AS d
        WHERE d.model = set_blank_calibration.model;
    END IF;
END
$$;
COMMENT ON FUNCTION public.set_blank_calibration(text, public.vector, integer, text) IS
    'Records model''s mean embedding over sample_size ordinary texts, the calibration of the '
    'blank_like check (which removes it before comparing with the blank reference): '
    'SELECT set_blank_calibration(''my-model'', <mean vector>, 40). The loader records one '
    'from its sample of sentences (source ''sample''); recording the first one is open to '
    'writers, replacing one needs the right to change the settings (and starts the model''s '
    'fingerprint again: its spread is recorded anew from the next rows written). The writes '
    'keep this mean as blank_like''s centre and add only their spread (and their mean on the '
    'silent dimensions); a model without one is calibrated from its first stored rows.';
REVOKE EXECUTE ON FUNCTION public.set_blank_calibration(text, public.vector, integer, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.set_blank_calibration(text, public.vector, integer, text)
    TO embedding_loader;
