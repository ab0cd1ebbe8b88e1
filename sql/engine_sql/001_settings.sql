-- The SQL engine's settings (issue 25): what settings.current_settings() gives the PL/Python
-- engine, for chunks and for attached tables (each with its own overrides).
-- (table_name: a row of the registry, chunks or an attached table, whose overrides apply)
CREATE OR REPLACE FUNCTION embedding_gate._sql_table_settings(table_name regclass) RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    overrides jsonb;
    t jsonb;
    name text;
    value text;
    number double precision;
    overridden text[] := '{}';
BEGIN
    SELECT * INTO s FROM embedding_gate.settings;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'embedding_gate.settings has no row: the embedding gate has no mode or '
                        'thresholds to check this write with'
            USING ERRCODE = '55000',
                  HINT = 'put the defaults back (then set what differed): INSERT INTO '
                         'embedding_gate.settings DEFAULT VALUES';
    END IF;
    t := pg_catalog.jsonb_build_object(
        'mode', s.mode, 'min_norm', s.min_norm, 'min_variance', s.min_variance,
        'near_zero_epsilon', s.near_zero_epsilon, 'max_near_zero_ratio', s.max_near_zero_ratio,
        'blank_similarity', s.blank_similarity, 'max_silent_deviation', s.max_silent_deviation);
    SELECT a.overrides INTO overrides FROM embedding_gate.attached_tables AS a
    WHERE a.table_oid = _sql_table_settings.table_name;
    SELECT t || COALESCE(pg_catalog.jsonb_object_agg(o.key, o.value), '{}')
    INTO t
    FROM pg_catalog.jsonb_each(COALESCE(overrides, '{}')) AS o
    WHERE t ? o.key;
    FOR name IN SELECT k FROM pg_catalog.jsonb_object_keys(t) AS k LOOP
        value := pg_catalog.current_setting('embedding_gate.' || name, true);
        IF value IS NOT NULL AND value <> '' THEN
            overridden := overridden || ('embedding_gate.' || name);
            IF name = 'mode' THEN
                IF value NOT IN ('flag', 'quarantine', 'reject') THEN
                    RAISE EXCEPTION 'embedding_gate.mode is %, expected one of flag, quarantine, '
                                    'reject', pg_catalog.quote_literal(value)
                        USING ERRCODE = '22023';
                END IF;
                t := t || pg_catalog.jsonb_build_object('mode', value);
            ELSE
                BEGIN
                    number := value::double precision;
                EXCEPTION WHEN invalid_text_representation THEN
                    number := 'NaN';
                END;
                IF number = 'NaN' OR number = 'Infinity' OR number < 0 THEN
                    RAISE EXCEPTION 'embedding_gate.% is %, expected a non-negative number',
                        name, pg_catalog.quote_literal(value)
                        USING ERRCODE = '22023';
                END IF;
                t := t || pg_catalog.jsonb_build_object(name, number);
            END IF;
        END IF;
    END LOOP;
    IF pg_catalog.cardinality(overridden) > 0 AND NOT embedding_gate._caller_may_tune() THEN
        RAISE EXCEPTION 'this role may not override the embedding gate''s settings (%)',
            pg_catalog.array_to_string(overridden, ', ')
            USING ERRCODE = '42501',
                  HINT = 'overrides need UPDATE on embedding_gate.settings; RESET them';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_table_settings(regclass) IS
    'The SQL engine''s mode and thresholds for a guarded table, as jsonb: the settings, the '
    'table''s own overrides (embedding_gate.set_table_settings), then SET LOCAL '
    'embedding_gate.<name> where the caller may tune the gate.';
-- (the SQL engine's scans, verify_embeddings and the others, run as their caller and call
-- it: it reads what every role may read, and refuses SET LOCAL overrides to a role that may
-- not tune the gate)
GRANT EXECUTE ON FUNCTION embedding_gate._sql_table_settings(regclass) TO PUBLIC;

-- chunks' (its triggers call this)
CREATE OR REPLACE FUNCTION embedding_gate._sql_settings() RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN embedding_gate._sql_table_settings('public.chunks'::pg_catalog.regclass);
END
$$;
COMMENT ON FUNCTION embedding_gate._sql_settings() IS
    'The SQL engine''s mode and thresholds for chunks, as jsonb: the settings, chunks'' own '
    'overrides, then SET LOCAL embedding_gate.<name> where the caller may tune the gate.';
GRANT EXECUTE ON FUNCTION embedding_gate._sql_settings() TO PUBLIC;
