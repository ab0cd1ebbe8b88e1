-- What the SQL engine does not implement yet (issue 25), attached tables: attach() and the
-- functions of attached tables (sql/idempotent/026_attach.sql), failing with
-- embedding_gate._not_yet() (090_not_yet.sql). The PL/Python engine never applies this file.

CREATE OR REPLACE FUNCTION embedding_gate.attach(
    table_name regclass,
    embedding_column name DEFAULT 'embedding',
    content_column name DEFAULT NULL,
    id_column name DEFAULT NULL,
    model text DEFAULT NULL,
    model_column name DEFAULT NULL,
    check_existing boolean DEFAULT true,
    hash_index name DEFAULT NULL)
RETURNS TABLE (attached text, checked bigint, low_quality bigint)
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_gate.attach()');
END
$$;
COMMENT ON FUNCTION embedding_gate.attach(regclass, name, name, name, text, name, boolean, name) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE FUNCTION embedding_gate.detach(
    table_name regclass, drop_quarantined boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_gate.detach()');
END
$$;
COMMENT ON FUNCTION embedding_gate.detach(regclass, boolean) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE PROCEDURE embedding_gate.check_existing(
    table_name regclass,
    batch_size integer DEFAULT 10000,
    INOUT checked bigint DEFAULT NULL,
    INOUT low_quality bigint DEFAULT NULL)
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_gate.check_existing()');
END
$$;
COMMENT ON PROCEDURE embedding_gate.check_existing(regclass, integer, bigint, bigint) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE FUNCTION embedding_gate.set_table_settings(table_name regclass, settings jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_gate.set_table_settings()');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate.set_table_settings(regclass, jsonb) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';

CREATE OR REPLACE FUNCTION embedding_gate.restore(
    table_name regclass, row_id text, fix jsonb DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM embedding_gate._not_yet('embedding_gate.restore()');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION embedding_gate.restore(regclass, text, jsonb) IS
    'Not available with the SQL engine yet (issue 25): raises feature_not_supported.';
