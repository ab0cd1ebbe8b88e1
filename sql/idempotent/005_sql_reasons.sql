-- The SQL engine's reasons (issue 25): the text of checks.describe() for a row's codes and
-- measures, in Python's own formats (.4g, .1%, .3f, .3g, repr), so that a chunk flagged by
-- either engine reads the same. tests/test_sql_engine.py compares them with describe().

-- Python's format(x, '.<digits>g'): the digits come from printf's %e (to_char's EEEE), as
-- Python's do, correctly rounded; fixed notation for exponents -4 to digits - 1, trailing
-- zeros dropped, a two-digit exponent at least.
CREATE OR REPLACE FUNCTION embedding_gate._format_g(x double precision, digits integer)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE STRICT PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text;
    sign text := '';
    mantissa text;
    exponent integer;
    figures text;
    whole text;
    fraction text;
BEGIN
    IF x = 'NaN'::double precision THEN
        RETURN 'nan';
    ELSIF x = 'Infinity'::double precision THEN
        RETURN 'inf';
    ELSIF x = '-Infinity'::double precision THEN
        RETURN '-inf';
    ELSIF x = 0 THEN
        RETURN CASE WHEN pg_catalog.float8send(x) = pg_catalog.float8send(0::double precision)
                    THEN '0' ELSE '-0' END;
    END IF;
    e := pg_catalog.btrim(pg_catalog.to_char(
        x, '9.' || pg_catalog.repeat('9', GREATEST(digits, 2) - 1) || 'EEEE'));
    IF pg_catalog.left(e, 1) = '-' THEN
        sign := '-';
        e := pg_catalog.substr(e, 2);
    END IF;
    mantissa := pg_catalog.split_part(e, 'e', 1);
    exponent := pg_catalog.split_part(e, 'e', 2)::integer;
    IF digits = 1 THEN  -- (to_char cannot print a lone digit before EEEE)
        mantissa := pg_catalog.left(mantissa, 1);
    END IF;
    IF exponent < -4 OR exponent >= digits THEN
        IF pg_catalog.strpos(mantissa, '.') > 0 THEN
            mantissa := pg_catalog.rtrim(pg_catalog.rtrim(mantissa, '0'), '.');
        END IF;
        RETURN sign || mantissa || 'e' || CASE WHEN exponent < 0 THEN '-' ELSE '+' END
            || CASE WHEN pg_catalog.abs(exponent) < 10 THEN '0' ELSE '' END
            || pg_catalog.abs(exponent)::text;
    END IF;
    figures := pg_catalog.replace(mantissa, '.', '');
    IF exponent >= 0 THEN
        whole := pg_catalog.rpad(pg_catalog.left(figures, exponent + 1), exponent + 1, '0');
        fraction := pg_catalog.substr(figures, exponent + 2);
    ELSE
        whole := '0';
        fraction := pg_catalog.repeat('0', -exponent - 1) || figures;
    END IF;
    fraction := pg_catalog.rtrim(fraction, '0');
    RETURN sign || whole || CASE WHEN fraction <> '' THEN '.' || fraction ELSE '' END;
END
$$;
COMMENT ON FUNCTION embedding_gate._format_g(double precision, integer) IS
    'Python''s format(x, ''.<digits>g''), for the SQL engine''s reasons.';

-- Python's repr() of a str: single quotes unless the text holds one and no double quote;
-- backslashes, the quote, \t \n \r and the control characters (C0, DEL, C1, U+00A0, U+00AD)
-- escaped. (Python escapes some other non-printable characters too, U+2028 among them: an
-- id holding one reads otherwise.)
CREATE OR REPLACE FUNCTION embedding_gate._py_repr(s text) RETURNS text
LANGUAGE plpgsql
IMMUTABLE STRICT PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    quote text := CASE WHEN pg_catalog.strpos(s, '''') > 0 AND pg_catalog.strpos(s, '"') = 0
                       THEN '"' ELSE '''' END;
    out text := '';
    c text;
    code integer;
BEGIN
    IF s = '' THEN
        RETURN '''''';
    END IF;
    FOREACH c IN ARRAY pg_catalog.regexp_split_to_array(s, '') LOOP
        code := pg_catalog.ascii(c);
        out := out || CASE
            WHEN c = '\' THEN '\\'
            WHEN c = quote THEN '\' || quote
            WHEN code = 9 THEN '\t'
            WHEN code = 10 THEN '\n'
            WHEN code = 13 THEN '\r'
            WHEN code < 32 OR code BETWEEN 127 AND 160 OR code = 173
                THEN '\x' || pg_catalog.lpad(pg_catalog.to_hex(code), 2, '0')
            ELSE c END;
    END LOOP;
    RETURN quote || out || quote;
END
$$;
COMMENT ON FUNCTION embedding_gate._py_repr(text) IS
    'Python''s repr() of a text, for the SQL engine''s reasons (duplicate_vector names a row).';

-- The reason of one row's verdict: describe() of each code, joined by '; '. dims: the
-- vector's dimension; noun: what a row is called ('chunk', 'row' on attached tables).
CREATE OR REPLACE FUNCTION embedding_gate._sql_reason(
    issues text[],
    nonfinite integer,
    dims integer,
    norm double precision,
    variance double precision,
    near_zero_ratio double precision,
    similarity double precision,
    similar_kind text,
    silent_deviation double precision,
    duplicate_of text,
    noun text DEFAULT 'chunk'
) RETURNS text
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.string_agg(CASE c.code
    WHEN 'nan_or_inf' THEN
        'NaN or Inf in ' || _sql_reason.nonfinite || ' of ' || _sql_reason.dims || ' components'
    WHEN 'low_norm' THEN
        'norm too low (' || embedding_gate._format_g(_sql_reason.norm, 4) || ')'
    WHEN 'low_variance' THEN
        'variance too low (' || embedding_gate._format_g(_sql_reason.variance, 4) || ')'
    WHEN 'sparse' THEN
        'too many near-zero components ('
        || pg_catalog.to_char(_sql_reason.near_zero_ratio * 100, 'FM9999999990.0') || '%)'
    WHEN 'blank_like' THEN
        'like the model''s embedding of '
        || CASE COALESCE(_sql_reason.similar_kind, 'blank')
               WHEN 'punctuation' THEN 'punctuation alone'
               WHEN 'unknown' THEN 'characters its tokenizer does not know'
               ELSE 'empty text' END
        || ' (cosine ' || pg_catalog.to_char(_sql_reason.similarity, 'FM9999999990.000')
        || ', the model''s mean removed)'
    WHEN 'duplicate_vector' THEN
        'same embedding as ' || _sql_reason.noun || ' '
        || embedding_gate._py_repr(_sql_reason.duplicate_of) || ', whose content differs'
    WHEN 'model_mismatch' THEN
        'unlike the rows of its model: it varies where they never do (deviation '
        || embedding_gate._format_g(_sql_reason.silent_deviation, 3)
        || ' of their spread on their silent dimensions)'
    END, '; ' ORDER BY c.i)
FROM pg_catalog.unnest(_sql_reason.issues) WITH ORDINALITY AS c(code, i)
$$;
COMMENT ON FUNCTION embedding_gate._sql_reason(text[], integer, integer, double precision,
    double precision, double precision, double precision, text, double precision, text, text) IS
    'The SQL engine''s readable reason for a verdict: checks.describe() of each code with its '
    'measured value, joined by ''; ''.';

-- (_format_g is pure, and preview_thresholds' notes in the SQL engine call it as their
-- caller)
GRANT EXECUTE ON FUNCTION embedding_gate._format_g(double precision, integer) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION embedding_gate._py_repr(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION embedding_gate._sql_reason(text[], integer, integer,
    double precision, double precision, double precision, double precision, text,
    double precision, text, text) FROM PUBLIC;
