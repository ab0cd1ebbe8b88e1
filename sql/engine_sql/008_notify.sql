-- What the SQL engine's triggers and scans share (issue 25): the issue codes in their order,
-- and the notification of a statement's flagged rows (the PL/Python engine's
-- triggers.Statement.notify).

-- The issue codes, in the contract's order (checks.CODES).
CREATE OR REPLACE FUNCTION embedding_gate._codes() RETURNS text[]
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT ARRAY['nan_or_inf', 'low_norm', 'low_variance', 'sparse', 'blank_like',
             'duplicate_vector', 'model_mismatch']
$$;
COMMENT ON FUNCTION embedding_gate._codes() IS
    'The issue codes in their order (DESIGN.md), for the SQL engine''s counts per code '
    '(its reports and NOTIFY payloads).';

-- NOTIFY embedding_gate of a statement that flagged rows: codes holds every flagged row's
-- issue codes one after the other (the payload counts them per code, in the contract's
-- order). json, not jsonb: the keys in the PL/Python engine's order.
CREATE OR REPLACE FUNCTION embedding_gate._sql_notify(
    table_name text, mode text, checked bigint, flagged bigint, codes text[]
) RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.pg_notify('embedding_gate', pg_catalog.json_build_object(
    'table', table_name, 'mode', mode, 'checked', checked, 'flagged', flagged,
    'flagged_share', pg_catalog.round(flagged::numeric / checked, 4)::double precision,
    'issues', (SELECT pg_catalog.json_object_agg(k.code, k.n ORDER BY k.i)
               FROM (SELECT k.code, k.i, pg_catalog.count(*) AS n
                     FROM pg_catalog.unnest(embedding_gate._codes())
                              WITH ORDINALITY AS k(code, i)
                     JOIN pg_catalog.unnest(codes) AS x(code) ON x.code = k.code
                     GROUP BY k.code, k.i) AS k))::text)
$$;
COMMENT ON FUNCTION embedding_gate._sql_notify(text, text, bigint, bigint, text[]) IS
    'NOTIFY embedding_gate with the payload of a statement that flagged rows (the table, the '
    'mode, rows checked and flagged, the flagged share and the count of each issue code).';
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_notify(text, text, bigint, bigint, text[])
    FROM PUBLIC;
