-- The embedding gate's functions and triggers. CREATE OR REPLACE: re-applied by every
-- revision that changes them. Placeholders (in double braces): python_source, the text of
-- plpython/embedding_gate.py; python_key, which names that exact source in PL/Python's GD.
-- The functions that read many rows carry SET jit = off: their queries' cost estimates pass
-- jit_above_cost, and JIT compiled each one for 160 ms, more than the query then took.

-- Loads plpython/embedding_gate.py into this session's Python as a module, once.
CREATE OR REPLACE FUNCTION embedding_gate._python_module() RETURNS void
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $python$
import sys, types
source = r'''{{python_source}}'''
name = "embedding_gate_" + "{{python_key}}".split(":")[1]
module = types.ModuleType(name)
module.__file__ = "plpython/embedding_gate.py"
sys.modules[name] = module
# PL/Python indents every line of a function body with a tab: undo that for the module
exec(compile(source.replace("\n\t", "\n"), module.__file__, "exec"), module.__dict__)
GD["{{python_key}}"] = module
$python$;
COMMENT ON FUNCTION embedding_gate._python_module() IS
    'Loads the gate''s Python module (plpython/embedding_gate.py) into the session.';

-- Checks every embedding an INSERT put into chunks (statement level, transition table).
CREATE OR REPLACE FUNCTION embedding_gate._check_inserted() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
GD["{{python_key}}"].check_inserted(plpy)
$python$;
COMMENT ON FUNCTION embedding_gate._check_inserted() IS
    'Trigger: checks the embeddings a statement inserted into chunks, in vectorised batches, '
    'and flags, quarantines or rejects the bad ones. SECURITY DEFINER so that writers need '
    'no rights on the quality columns or the quarantine.';

-- Checks the new embedding of a row whose embedding an UPDATE changed.
CREATE OR REPLACE FUNCTION embedding_gate._check_updated() RETURNS trigger
LANGUAGE plpython3u
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
return GD["{{python_key}}"].check_updated(plpy, TD)
$python$;
COMMENT ON FUNCTION embedding_gate._check_updated() IS
    'Trigger: checks a changed embedding and sets the row''s quality columns; in quarantine '
    'mode the update is skipped and the new vector goes to embedding_quarantine.';

CREATE OR REPLACE TRIGGER embedding_gate_insert
    AFTER INSERT ON public.chunks
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._check_inserted();
COMMENT ON TRIGGER embedding_gate_insert ON public.chunks IS
    'Runs the embedding quality checks on every inserted row.';

CREATE OR REPLACE TRIGGER embedding_gate_update
    BEFORE UPDATE OF embedding, embedding_raw ON public.chunks
    FOR EACH ROW
    WHEN (OLD.embedding IS DISTINCT FROM NEW.embedding
          OR OLD.embedding_raw IS DISTINCT FROM NEW.embedding_raw)
    EXECUTE FUNCTION embedding_gate._check_updated();
COMMENT ON TRIGGER embedding_gate_update ON public.chunks IS
    'Runs the embedding quality checks when an UPDATE changes a row''s embedding.';

-- Fails the statement when the checks recorded a rejection (mode reject).
CREATE OR REPLACE FUNCTION embedding_gate._raise_rejected() RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rejected jsonb := NULLIF(current_setting('embedding_gate.rejected', true), '')::jsonb;
BEGIN
    IF rejected IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = rejected ->> 'message',
            DETAIL = rejected ->> 'detail',
            HINT = 'fix or drop these chunks, or set embedding_gate.settings.mode to '
                   '''flag'' or ''quarantine''',
            ERRCODE = 'QG001',
            SCHEMA = 'public', TABLE = 'chunks', COLUMN = 'embedding';
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate._raise_rejected() IS
    'Trigger: fails the statement with SQLSTATE QG001 when the checks rejected an embedding '
    '(raised from PL/pgSQL so that the error reads cleanly).';

-- after embedding_gate_insert (statement triggers fire in name order)
CREATE OR REPLACE TRIGGER embedding_gate_reject
    AFTER INSERT OR UPDATE ON public.chunks
    FOR EACH STATEMENT EXECUTE FUNCTION embedding_gate._raise_rejected();
COMMENT ON TRIGGER embedding_gate_reject ON public.chunks IS
    'Fails the statement when the embedding quality checks rejected a row (mode reject).';

-- Re-checks a random sample of stored embeddings with the current thresholds.
CREATE OR REPLACE FUNCTION public.verify_embeddings(sample_size integer DEFAULT 100)
RETURNS TABLE (checked bigint, low_quality bigint, low_quality_rate double precision, counts jsonb)
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
return [GD["{{python_key}}"].verify_sample(plpy, sample_size)]
$python$;
COMMENT ON FUNCTION public.verify_embeddings(integer) IS
    'Re-checks a random sample of stored embeddings with the current thresholds and reports '
    'checked, low quality, the rate and counts per issue code. Changes nothing.';

-- One batch of recheck_embeddings(): the next batch_size rows after chunk_id `after`.
-- twins: the embedding hashes stored more than once, which the first call (NULL) computes
-- and returns, and the procedure passes on.
CREATE OR REPLACE FUNCTION embedding_gate._recheck_batch(
    after text, batch_size integer, twins bigint[])
RETURNS TABLE (checked integer, low_quality integer, last_chunk_id text, twins bigint[])
LANGUAGE plpython3u
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
return [GD["{{python_key}}"].recheck_batch(plpy, after, batch_size, twins)]
$python$;
COMMENT ON FUNCTION embedding_gate._recheck_batch(text, integer, bigint[]) IS
    'One batch of recheck_embeddings(), in chunk_id order after the given chunk_id; twins: '
    'the embedding hashes stored more than once (NULL: compute and return them).';

-- Re-evaluates every stored embedding with the current thresholds, committing per batch.
-- A procedure, so that it can commit; it therefore cannot carry a SET search_path clause
-- (PostgreSQL forbids transaction control there) and pins it with set_config instead.
CREATE OR REPLACE PROCEDURE public.recheck_embeddings(
    batch_size integer DEFAULT 10000,
    INOUT checked bigint DEFAULT NULL,
    INOUT low_quality bigint DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    after text;
    twin_hashes bigint[];
    b record;
BEGIN
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    checked := 0;
    low_quality := 0;
    LOOP
        SELECT * INTO b FROM embedding_gate._recheck_batch(after, batch_size, twin_hashes);
        EXIT WHEN b.checked = 0;
        twin_hashes := b.twins;
        checked := checked + b.checked;
        low_quality := low_quality + b.low_quality;
        after := b.last_chunk_id;
        COMMIT;
        -- the setting ended with the transaction
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    END LOOP;
END
$$;
COMMENT ON PROCEDURE public.recheck_embeddings(integer, bigint, bigint) IS
    'Re-evaluates every stored embedding with the current thresholds (after they change), '
    'committing every batch_size rows: CALL recheck_embeddings(). Updates the quality '
    'columns only; it never moves or deletes stored rows, whatever the mode.';

-- The measures of every stored embedding, computed now (clean rows store none).
CREATE OR REPLACE FUNCTION public.embedding_measures(near_zero_epsilon double precision DEFAULT NULL)
RETURNS TABLE (chunk_id text, norm double precision, variance double precision,
               near_zero_ratio double precision, issues text[])
LANGUAGE plpython3u
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
return GD["{{python_key}}"].measures(plpy, near_zero_epsilon)
$python$;
COMMENT ON FUNCTION public.embedding_measures(double precision) IS
    'Norm, variance and near-zero ratio of every stored embedding, and the issue codes the '
    'current thresholds give it (near_zero_epsilon: count near-zero components with this '
    'epsilon instead). Computed on the fly, in batches; changes nothing.';

-- What a proposed set of thresholds would do, before anyone applies it.
CREATE OR REPLACE FUNCTION public.preview_thresholds(
    min_norm double precision DEFAULT NULL,
    min_variance double precision DEFAULT NULL,
    near_zero_epsilon double precision DEFAULT NULL,
    max_near_zero_ratio double precision DEFAULT NULL,
    blank_similarity double precision DEFAULT NULL)
RETURNS TABLE (check_code text, measure text, current_threshold double precision,
               proposed_threshold double precision, embeddings bigint,
               p0 double precision, p1 double precision, p5 double precision,
               p25 double precision, p50 double precision, p75 double precision,
               p95 double precision, p99 double precision, p100 double precision,
               flagged_now bigint, flagged_proposed bigint,
               flagged_proposed_pct double precision, note text)
LANGUAGE plpython3u
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $python$
if "{{python_key}}" not in GD:
    plpy.execute("SELECT embedding_gate._python_module()")
return GD["{{python_key}}"].preview(plpy, {
    "min_norm": min_norm,
    "min_variance": min_variance,
    "near_zero_epsilon": near_zero_epsilon,
    "max_near_zero_ratio": max_near_zero_ratio,
    "blank_similarity": blank_similarity,
})
$python$;
COMMENT ON FUNCTION public.preview_thresholds(double precision, double precision,
                                              double precision, double precision,
                                              double precision) IS
    'Threshold tuning without changing anything: per check, the percentiles of its measure '
    'over every stored embedding and how many embeddings the current and the proposed '
    'thresholds flag (NULL keeps the current value), e.g. '
    'SELECT * FROM preview_thresholds(min_norm => 0.2, min_variance => 0.01).';

-- Records a model's embedding of empty text, the reference of the blank_like check.
CREATE OR REPLACE FUNCTION public.set_blank_reference(model text, reference vector)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    new_values real[] := reference::real[];
    old_values real[];
    caller name := CASE WHEN current_setting('role') = 'none' THEN session_user
                        ELSE current_setting('role')::name END;
    -- vector(n) keeps n as its type modifier
    dim integer := (SELECT a.atttypmod FROM pg_attribute AS a
                    WHERE a.attrelid = 'public.chunks'::regclass AND a.attname = 'embedding');
BEGIN
    IF model IS NULL OR model = '' OR reference IS NULL THEN
        RAISE EXCEPTION 'set_blank_reference needs a model name and a vector'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF (SELECT sum(x::float8 * x::float8) FROM unnest(new_values) AS x) = 0 THEN
        RAISE EXCEPTION 'the blank reference of model "%" is a zero vector', model
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'a zero vector has no direction to compare with: the low_norm check '
                         'already catches this model''s blank chunks';
    END IF;
    IF dim > 0 AND cardinality(new_values) <> dim THEN
        RAISE EXCEPTION 'the blank reference of model "%" has % dimensions, chunks.embedding has %',
            model, cardinality(new_values), dim
            USING ERRCODE = 'data_exception',
                  HINT = 'record the embedding of "" by the model that embeds the chunks';
    END IF;
    SELECT b.reference INTO old_values FROM embedding_gate.blank_references AS b
    WHERE b.model = set_blank_reference.model FOR UPDATE;
    IF old_values = new_values THEN
        RETURN;
    END IF;
    IF old_values IS NOT NULL
       AND NOT has_table_privilege(caller, 'embedding_gate.settings', 'UPDATE') THEN
        RAISE EXCEPTION 'model "%" already has a different blank reference', model
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'replacing it needs UPDATE on embedding_gate.settings (the '
                         'deployment''s owner); the first reference of a model anyone may record';
    END IF;
    INSERT INTO embedding_gate.blank_references AS b (model, reference)
    VALUES (set_blank_reference.model, new_values)
    ON CONFLICT ON CONSTRAINT blank_references_pkey DO UPDATE
        SET reference = excluded.reference, recorded_at = now(), recorded_by = session_user;
END
$$;
COMMENT ON FUNCTION public.set_blank_reference(text, vector) IS
    'Records model''s embedding of empty text, the reference of the blank_like check: '
    'SELECT set_blank_reference(''my-model'', <the model''s embedding of "">). Recording the '
    'first one is open to writers (the loader does it on start); replacing one needs the '
    'right to change the settings. Existing rows: CALL recheck_embeddings().';
