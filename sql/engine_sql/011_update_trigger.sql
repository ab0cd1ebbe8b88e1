-- The SQL engine's update trigger on chunks (issue 25; tests/test_sql_engine.py also
-- installs it in place of the PL/Python one, to hold the two to one behaviour).
-- The row-level BEFORE UPDATE OF embedding, embedding_raw trigger of
-- sql/idempotent/011_update_trigger.sql in PL/pgSQL: a finite embedding_raw becomes the
-- embedding, the new vector is checked by embedding_gate._sql_checks (or _sql_checks_raw
-- where it holds NaN/Inf), the quality columns set; in quarantine mode the update is
-- skipped and the vector goes to embedding_quarantine; in reject mode the rejection is
-- recorded for embedding_gate_reject. The settings: embedding_gate._sql_settings().
CREATE OR REPLACE FUNCTION embedding_gate._sql_check_updated() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t jsonb;
    mode text;
    v record;
    duplicate text;
    reason text;
    raw real[];
BEGIN
    IF NEW.embedding IS NULL AND NEW.embedding_raw IS NOT NULL
       AND NOT EXISTS (SELECT FROM pg_catalog.unnest(NEW.embedding_raw) AS z
                       WHERE z IS NULL OR z IN ('NaN', 'Infinity', '-Infinity')) THEN
        -- pgvector can hold it: store it as a vector
        NEW.embedding := NEW.embedding_raw::public.vector;
        NEW.embedding_raw := NULL;
    END IF;
    IF NEW.embedding IS NULL AND NEW.embedding_raw IS NULL THEN
        NEW.quality_issues := NULL; NEW.quality_reason := NULL; NEW.quality_norm := NULL;
        NEW.quality_variance := NULL; NEW.quality_near_zero_ratio := NULL;
        NEW.quality_blank_similarity := NULL; NEW.quality_duplicate_of := NULL;
        NEW.quality_checked_at := NULL;
        RETURN NEW;
    END IF;
    t := embedding_gate._sql_settings();
    mode := t ->> 'mode';
    IF NEW.embedding IS NOT NULL THEN
        SELECT o.chunk_id INTO duplicate
        FROM (SELECT c.chunk_id, c.content FROM public.chunks AS c
              WHERE c.embedding_hash = embedding_gate.vector_hash(NEW.embedding)
                AND (c.created_at, c.chunk_id) < (NEW.created_at, NEW.chunk_id)
                AND embedding_gate.vector_bytes(c.embedding) = embedding_gate.vector_bytes(NEW.embedding)
              ORDER BY c.created_at, c.chunk_id LIMIT 1) AS o
        WHERE o.content IS DISTINCT FROM NEW.content;
        SELECT * INTO v FROM embedding_gate._sql_checks(
            ARRAY[NEW.embedding], ARRAY[NEW.embedding_model], ARRAY[duplicate],
            (t ->> 'min_norm')::double precision, (t ->> 'min_variance')::double precision,
            (t ->> 'near_zero_epsilon')::double precision,
            (t ->> 'max_near_zero_ratio')::double precision,
            (t ->> 'blank_similarity')::double precision,
            (t ->> 'max_silent_deviation')::double precision);
        raw := NEW.embedding::real[];
    ELSE
        SELECT * INTO v FROM embedding_gate._sql_checks_raw(
            ARRAY[NEW.embedding_raw], ARRAY[NEW.embedding_model],
            (t ->> 'min_norm')::double precision, (t ->> 'min_variance')::double precision,
            (t ->> 'near_zero_epsilon')::double precision,
            (t ->> 'max_near_zero_ratio')::double precision,
            (t ->> 'blank_similarity')::double precision,
            (t ->> 'max_silent_deviation')::double precision);
        raw := NEW.embedding_raw;
    END IF;
    IF pg_catalog.cardinality(v.issues) = 0 THEN
        NEW.quality_issues := NULL; NEW.quality_reason := NULL; NEW.quality_norm := NULL;
        NEW.quality_variance := NULL; NEW.quality_near_zero_ratio := NULL;
        NEW.quality_blank_similarity := NULL; NEW.quality_duplicate_of := NULL;
        NEW.quality_checked_at := pg_catalog.now();
        RETURN NEW;
    END IF;
    reason := embedding_gate._sql_reason(v.issues, v.nonfinite, pg_catalog.cardinality(raw),
                                         v.norm, v.variance, v.near_zero_ratio, v.similarity,
                                         v.similar_kind, v.silent_deviation, v.duplicate_of);
    IF mode = 'reject' THEN
        PERFORM embedding_gate._sql_can_reject();
        -- the row is written flagged; embedding_gate_reject then fails the statement
        PERFORM pg_catalog.set_config('embedding_gate.rejected', pg_catalog.jsonb_build_object(
            'message', 'embedding of chunk "' || NEW.chunk_id || '" rejected: ' || reason,
            'detail', 'chunk ' || NEW.chunk_id || ': ' || reason,
            'sqlstate', 'QG001')::text, true);
    ELSE
        -- one notification per flagged row (PostgreSQL folds identical ones of a transaction)
        PERFORM embedding_gate._sql_notify('public.chunks', mode, 1, 1, v.issues);
    END IF;
    IF mode = 'quarantine' THEN
        INSERT INTO public.embedding_quarantine (
            chunk_id, doc_id, chunk_index, content, drop, metadata, embedding_raw,
            quality_issues, quality_reason, quality_norm, quality_variance,
            quality_near_zero_ratio, embedding_model, quality_blank_similarity,
            quality_duplicate_of)
        VALUES (NEW.chunk_id, NEW.doc_id, NEW.chunk_index, NEW.content, NEW.drop, NEW.metadata,
                raw, v.issues, reason, v.norm, v.variance, v.near_zero_ratio,
                NEW.embedding_model, v.similarity, v.duplicate_of)
        ON CONFLICT (chunk_id) DO UPDATE SET doc_id = excluded.doc_id,
            chunk_index = excluded.chunk_index, content = excluded.content,
            drop = excluded.drop, metadata = excluded.metadata,
            embedding_raw = excluded.embedding_raw, quality_issues = excluded.quality_issues,
            quality_reason = excluded.quality_reason, quality_norm = excluded.quality_norm,
            quality_variance = excluded.quality_variance,
            quality_near_zero_ratio = excluded.quality_near_zero_ratio,
            embedding_model = excluded.embedding_model,
            quality_blank_similarity = excluded.quality_blank_similarity,
            quality_duplicate_of = excluded.quality_duplicate_of,
            quarantined_at = pg_catalog.now();
        RETURN NULL;  -- the row keeps its previous embedding
    END IF;
    NEW.quality_issues := v.issues;
    NEW.quality_reason := reason;
    NEW.quality_norm := v.norm;
    NEW.quality_variance := v.variance;
    NEW.quality_near_zero_ratio := v.near_zero_ratio;
    NEW.quality_blank_similarity := v.similarity;
    NEW.quality_duplicate_of := v.duplicate_of;
    NEW.quality_checked_at := pg_catalog.now();
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_check_updated() IS
    'Trigger (the SQL engine, issue 25): checks a changed embedding and sets the row''s '
    'quality columns; in quarantine mode the update is skipped and the new vector goes to '
    'embedding_quarantine.';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_check_updated() FROM PUBLIC;

CREATE OR REPLACE TRIGGER embedding_gate_update
    BEFORE UPDATE OF embedding, embedding_raw ON public.chunks
    FOR EACH ROW
    WHEN (embedding_gate.vector_bytes(OLD.embedding)
              IS DISTINCT FROM embedding_gate.vector_bytes(NEW.embedding)
          OR OLD.embedding_raw IS DISTINCT FROM NEW.embedding_raw)
    EXECUTE FUNCTION embedding_gate._sql_check_updated();
COMMENT ON TRIGGER embedding_gate_update ON public.chunks IS
    'Runs the embedding quality checks when an UPDATE changes a row''s embedding (the SQL '
    'engine).';
