"""A table's owner who attaches it cannot run code with the gate's rights.

Mallory may create tables in one schema and nothing else. She attaches tables carrying
every hook PostgreSQL runs code from (her own types and casts, triggers of every kind, a
column default, a generated column, a check, a domain, a policy, an index expression,
operators and functions that shadow built-in ones on her search_path), then drives every
path of the gate: writes in each mode, quarantine, restore, check_existing, attach and
detach, partitions created later (an event trigger), a superuser's recheck and reports.
Her payload tries to make her a superuser and logs who ran it: after every path she is no
superuser, and the log names no role but hers, while the gate still did its work."""

import numpy as np
import psycopg
import pytest

from tests.helpers import (
    ENGINE,
    MANAGED_OWNER,
    follow_partitions,
    forget_dropped,
    url_for,
    vec,
)

D = 8
GOOD = vec(np.full(D, 1 / np.sqrt(D)) * np.array([1, -1, 1, -1, 1, -1, 1, 1.5]))
OTHER = vec(np.array([0.9, 0.1, -0.3, 0.2, 0.1, -0.1, 0.05, 0.2]))
ZERO = vec(np.zeros(D))

# the payload: logs who runs it and tries to make mallory a superuser
PAYLOAD = """
CREATE TABLE m.log (what text, who text);
GRANT INSERT, SELECT ON m.log TO PUBLIC;
CREATE FUNCTION m.payload(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO m.log VALUES (what, current_user::text);
    BEGIN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION m.payload(text) TO PUBLIC;
-- what a generated column and an index expression call (they must be immutable)
CREATE FUNCTION m.payload_imm(what text, x bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM m.payload(what); RETURN x; END $$;
CREATE FUNCTION m.fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM m.payload(TG_NAME);
    RETURN CASE WHEN TG_LEVEL = 'ROW' AND TG_OP <> 'DELETE' THEN NEW
                WHEN TG_LEVEL = 'ROW' THEN OLD END;
END $$;
"""

# a table with every hook, for mallory to attach
HOSTILE_TABLE = """
CREATE TABLE m.{name} (
    id bigint PRIMARY KEY,
    body text,
    emb vector({d}),
    stamp text DEFAULT (m.payload('default'))::text,
    twice bigint GENERATED ALWAYS AS (m.payload_imm('generated', id)) STORED,
    CHECK (m.payload('check'))
);
CREATE INDEX ON m.{name} (m.payload_imm('index', id));
ALTER TABLE m.{name} ENABLE ROW LEVEL SECURITY;
ALTER TABLE m.{name} FORCE ROW LEVEL SECURITY;
CREATE POLICY anyone ON m.{name} USING (m.payload('policy')) WITH CHECK (m.payload('policy'));
"""
ROW_TRIGGERS = """
CREATE TRIGGER {when}_{op}_row {when} {op} ON m.{name}
    FOR EACH ROW EXECUTE FUNCTION m.fire();
CREATE TRIGGER {when}_{op}_statement {when} {op} ON m.{name}
    FOR EACH STATEMENT EXECUTE FUNCTION m.fire();
"""

# look-alikes of what the gate calls, first on mallory's search_path
SHADOWS = """
CREATE FUNCTION m.format(text, VARIADIC text[]) RETURNS text
    LANGUAGE sql AS $$ SELECT m.payload('format')::text $$;
CREATE FUNCTION m.quote_ident(text) RETURNS text
    LANGUAGE sql AS $$ SELECT m.payload('quote_ident')::text $$;
CREATE FUNCTION m.count(anyelement) RETURNS bigint
    LANGUAGE sql AS $$ SELECT m.payload('count')::int::bigint $$;
CREATE FUNCTION m.text_eq(text, text) RETURNS boolean
    LANGUAGE sql AS $$ SELECT m.payload('operator') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR m.= (LEFTARG = text, RIGHTARG = text, FUNCTION = m.text_eq);
CREATE FUNCTION m.int_eq(bigint, bigint) RETURNS boolean
    LANGUAGE sql AS $$ SELECT m.payload('operator') AND $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR m.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = m.int_eq);
CREATE TABLE m.settings (mode text, min_norm float8, min_variance float8,
    near_zero_epsilon float8, max_near_zero_ratio float8, blank_similarity float8);
"""


def _role(db, name: str) -> None:
    db.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')"
        f" THEN CREATE ROLE {name} LOGIN; END IF; END $$"
    )
    db.execute(f"ALTER ROLE {name} NOSUPERUSER")


@pytest.fixture
def mallory(db, postgresql_proc):
    """Mallory's connection: she may create in schema m, and nothing else. Under the SQL
    engine the gate's owner bypasses row-level security (Supabase's postgres does; on RDS an
    admin grants it), so that the gate reads her tables past her policies as a superuser
    owner does: otherwise it refuses to read them at all, and there is less to take over."""
    _role(db, "mallory")
    if ENGINE == "sql":
        db.execute(f"ALTER ROLE {MANAGED_OWNER} BYPASSRLS")
    db.execute("CREATE SCHEMA m")
    db.execute("GRANT USAGE, CREATE ON SCHEMA m TO mallory")
    p = postgresql_proc
    conn = psycopg.connect(url_for(p.host, p.port, "mallory", db.info.dbname), autocommit=True)
    conn.execute(PAYLOAD)
    conn.execute(SHADOWS)
    conn.execute("SET search_path = m, public, embedding_gate, pg_catalog")
    yield conn
    conn.close()
    db.execute("ALTER ROLE mallory NOSUPERUSER")
    if ENGINE == "sql":
        db.execute(f"ALTER ROLE {MANAGED_OWNER} NOBYPASSRLS")


def hostile_table(conn, name: str) -> None:
    conn.execute(HOSTILE_TABLE.format(name=name, d=D))
    for when in ("BEFORE", "AFTER"):
        for op in ("INSERT", "UPDATE", "DELETE"):
            conn.execute(ROW_TRIGGERS.format(when=when, op=op, name=name))
    conn.execute(
        f"CREATE TRIGGER before_truncate BEFORE TRUNCATE ON m.{name}"
        " FOR EACH STATEMENT EXECUTE FUNCTION m.fire()"
    )


def assert_no_takeover(db, path: str, ran: "set[str] | None" = None) -> None:
    """Mallory is no superuser, her payload ran as nobody but her, and (ran) it did run
    from these hooks, so the path really went through them."""
    assert db.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'").fetchone() == (
        False,
    ), f"{path}: mallory became a superuser"
    who = db.execute("SELECT DISTINCT who FROM m.log").fetchall()
    assert set(who) <= {("mallory",)}, f"{path}: her code ran as {who}"
    if ran:
        seen = {w for (w,) in db.execute("SELECT what FROM m.log").fetchall()}
        assert ran <= seen, f"{path}: {ran - seen} never ran"
    db.execute("DELETE FROM m.log")


def test_every_write_path_runs_the_owner_s_code_as_the_owner_only(db, mallory):
    """Inserts, updates, deletes in flag, quarantine and reject modes; restore; check_existing;
    detach: every hook of hers runs (as her), none as the gate's owner."""
    hostile_table(mallory, "notes")
    mallory.execute("INSERT INTO m.notes (id, body, emb) VALUES (1, 'stored', %s)", [ZERO])
    assert_no_takeover(db, "set-up")

    got = mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.notes', 'emb', content_column => 'body')"
    ).fetchone()
    assert got == ("m.notes", 1, 1)
    assert_no_takeover(db, "attach", {"policy"})

    mallory.execute(
        "INSERT INTO m.notes (id, body, emb) VALUES (2, 'good', %s), (3, 'bad', %s)",
        [GOOD, ZERO],
    )
    mallory.execute("UPDATE m.notes SET emb = %s WHERE id = 2", [ZERO])
    mallory.execute("UPDATE m.notes SET emb = %s WHERE id = 2", [OTHER])
    flagged = db.execute(
        "SELECT row_id FROM low_quality_embeddings WHERE table_name = 'm.notes' ORDER BY 1"
    ).fetchall()
    assert flagged == [("1",), ("3",)]
    assert_no_takeover(
        db,
        "insert and update",
        {
            "default",
            "generated",
            "check",
            "index",
            "policy",
            "before_insert_row",
            "after_update_statement",
        },
    )

    mallory.execute(
        "SELECT embedding_gate.set_table_settings('m.notes', '{\"mode\": \"quarantine\"}')"
    )
    mallory.execute("INSERT INTO m.notes (id, body, emb) VALUES (4, 'bad', %s)", [ZERO])
    assert mallory.execute("SELECT count(*) FROM m.notes WHERE id = 4").fetchone() == (0,)
    assert db.execute(
        "SELECT row_id, row ->> 'body' FROM embedding_gate.quarantine"
    ).fetchall() == [("4", "bad")]
    assert_no_takeover(db, "quarantine", {"before_delete_row", "after_delete_statement"})

    assert mallory.execute(
        "SELECT embedding_gate.restore('m.notes', '4', jsonb_build_object('emb', %s::text))",
        [GOOD],
    ).fetchone() == (True,)
    assert mallory.execute("SELECT body FROM m.notes WHERE id = 4").fetchone() == ("bad",)
    assert_no_takeover(db, "restore", {"before_insert_row", "index", "generated"})

    mallory.execute("SELECT embedding_gate.set_table_settings('m.notes', '{\"mode\": \"reject\"}')")
    with pytest.raises(psycopg.Error, match='row "5" of m.notes rejected'):
        mallory.execute("INSERT INTO m.notes (id, body, emb) VALUES (5, 'bad', %s)", [ZERO])
    mallory.execute("DELETE FROM m.notes WHERE id = 3")
    mallory.execute("CALL embedding_gate.check_existing('m.notes')")
    assert_no_takeover(db, "reject, delete, check_existing", {"after_delete_row"})

    mallory.execute("SELECT embedding_gate.detach('m.notes')")
    assert_no_takeover(db, "detach")


def test_a_superuser_s_recheck_and_reports_run_none_of_her_code(db, mallory):
    """The deploying superuser rechecks, verifies and reads every report over her table: the
    gate reads it, her policy, index and types never run."""
    hostile_table(mallory, "notes")
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.notes', 'emb', content_column => 'body')"
    )
    mallory.execute(
        "INSERT INTO m.notes (id, body, emb) VALUES (1, 'a', %s), (2, 'b', %s), (3, 'c', %s)",
        [GOOD, ZERO, GOOD],
    )
    db.execute("DELETE FROM m.log")
    db.execute("UPDATE embedding_gate.settings SET min_norm = 0.05")
    db.execute("CALL recheck_embeddings()")
    for sql in (
        "SELECT * FROM verify_embeddings(10)",
        "SELECT * FROM embedding_measures()",
        "SELECT * FROM preview_thresholds(min_norm => 0.5)",
        "SELECT * FROM low_quality_embeddings",
        "SELECT * FROM embedding_quality_summary",
        "SELECT * FROM embedding_gate.attached",
        "SELECT * FROM embedding_gate.recount()",
    ):
        db.execute(sql)
    # the recheck found the duplicate and the zero vector; nothing of hers ran
    assert db.execute(
        "SELECT row_id, issues FROM low_quality_embeddings WHERE table_name = 'm.notes' ORDER BY 1"
    ).fetchall() == [("2", ["low_norm", "low_variance", "sparse"]), ("3", ["duplicate_vector"])]
    assert db.execute("SELECT count(*) FROM m.log").fetchone() == (0,)
    assert_no_takeover(db, "recheck and reports")


def test_partitions_created_later_and_a_drop_run_none_of_her_code(db, mallory):
    """The event triggers (a superuser's) give her later partitions the gate's triggers
    and forget her dropped table, without running her code."""
    mallory.execute(
        "CREATE TABLE m.parts (id bigint, body text, emb vector(8), PRIMARY KEY (id))"
        " PARTITION BY RANGE (id)"
    )
    mallory.execute("CREATE TABLE m.parts_1 PARTITION OF m.parts FOR VALUES FROM (0) TO (100)")
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.parts', 'emb', content_column => 'body')"
    )
    mallory.execute("CREATE TABLE m.parts_2 PARTITION OF m.parts FOR VALUES FROM (100) TO (200)")
    # without event triggers (the SQL engine) she gives it the gate's triggers herself
    assert follow_partitions(mallory) == ([] if ENGINE == "plpython" else [("m.parts_2", "added")])
    mallory.execute(
        "CREATE TRIGGER t BEFORE INSERT ON m.parts_2 FOR EACH ROW EXECUTE FUNCTION m.fire()"
    )
    mallory.execute("ALTER TABLE m.parts_2 ADD CHECK (m.payload('check'))")
    mallory.execute("INSERT INTO m.parts_2 (id, body, emb) VALUES (150, 'x', %s)", [ZERO])
    assert db.execute(
        "SELECT row_id FROM low_quality_embeddings WHERE table_name = 'm.parts'"
    ).fetchall() == [("150",)]
    assert_no_takeover(db, "partition", {"t", "check"})
    mallory.execute("DROP TABLE m.parts")
    forget_dropped(db)  # without event triggers: the gate's owner's repair() forgets it
    assert db.execute(
        "SELECT count(*) FROM embedding_gate.attached_tables WHERE table_oid::text LIKE 'm.%'"
    ).fetchone() == (0,)
    assert_no_takeover(db, "drop")


@pytest.mark.parametrize(
    "column, ddl",
    [
        # a cast of her own type to text, which the gate's reads would call
        (
            "id",
            "CREATE TYPE m.tag AS ENUM ('1', '2', '3');"
            "CREATE FUNCTION m.tag_text(m.tag) RETURNS text LANGUAGE sql"
            " AS $$ SELECT m.payload('cast')::text $$;"
            "CREATE CAST (m.tag AS text) WITH FUNCTION m.tag_text(m.tag) AS ASSIGNMENT;"
            "CREATE TABLE m.t (id m.tag PRIMARY KEY, body text, emb vector(8))",
        ),
        # a domain whose check is hers
        (
            "body",
            "CREATE DOMAIN m.checked AS text CHECK (m.payload('domain'));"
            "CREATE TABLE m.t (id int PRIMARY KEY, body m.checked, emb vector(8))",
        ),
        # a composite of her own as the content
        (
            "body",
            "CREATE TYPE m.pair AS (a text, b text);"
            "CREATE TABLE m.t (id int PRIMARY KEY, body m.pair, emb vector(8))",
        ),
    ],
)
def test_columns_of_her_own_types_are_refused_at_attach(db, mallory, column, ddl):
    mallory.execute(ddl)
    with pytest.raises(psycopg.errors.DatatypeMismatch, match=f"column {column} is of type m\\."):
        mallory.execute(
            "SELECT * FROM embedding_gate.attach('m.t', 'emb', content_column => 'body')"
        )
    assert_no_takeover(db, "attach refused")


def test_a_type_changed_after_attach_stops_the_gate_reading_it(db, mallory):
    """ALTER TABLE after attach gives the id column her type with her cast: the next write
    fails with what to do, before the gate reads a value of it."""
    mallory.execute(
        "CREATE TYPE m.tag AS ENUM ('1', '2');"
        "CREATE FUNCTION m.tag_text(m.tag) RETURNS text LANGUAGE sql"
        " AS $$ SELECT m.payload('cast')::text $$;"
        "CREATE CAST (m.tag AS text) WITH FUNCTION m.tag_text(m.tag);"
        "CREATE TABLE m.t (id text PRIMARY KEY, body text, emb vector(8))"
    )
    mallory.execute("SELECT * FROM embedding_gate.attach('m.t', 'emb', content_column => 'body')")
    mallory.execute("ALTER TABLE m.t ALTER COLUMN id TYPE m.tag USING id::m.tag")
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="will not read m.t: its id column"):
        mallory.execute("INSERT INTO m.t VALUES ('1', 'x', %s)", [ZERO])
    # a superuser's recheck and reports leave the table out (the others still get theirs)
    db.execute("CALL recheck_embeddings()")
    db.execute("SELECT * FROM verify_embeddings(10)")
    db.execute("SELECT * FROM embedding_measures()")
    assert_no_takeover(db, "type changed")
    mallory.execute("SELECT embedding_gate.detach('m.t')")


def test_every_gate_function_she_may_call_leaves_her_as_she_was(db, mallory):
    """Each function of the gate that PUBLIC may execute, called by her on her own table and
    on chunks, with her look-alike functions and operators first on her search_path."""
    hostile_table(mallory, "notes")
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.notes', 'emb', content_column => 'body')"
    )
    callable_ = db.execute(
        "SELECT p.oid::regprocedure::text, p.prokind FROM pg_proc AS p"
        " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
        " WHERE n.nspname IN ('embedding_gate', 'public') AND p.prokind IN ('f', 'p')"
        " AND p.prorettype <> 'trigger'::regtype AND p.prorettype <> 'event_trigger'::regtype"
        " AND has_function_privilege('mallory', p.oid, 'EXECUTE')"
        " AND p.proname NOT LIKE 'vector%' AND p.proname NOT LIKE 'halfvec%'"
        " AND p.proname NOT LIKE 'sparsevec%' AND p.oid NOT IN"
        "  (SELECT objid FROM pg_depend WHERE refobjid = (SELECT oid FROM pg_extension"
        "   WHERE extname = 'vector') AND deptype = 'e')"
    ).fetchall()
    assert len(callable_) > 10
    for signature, kind in callable_:
        name, args = signature.split("(", 1)
        types = [a.strip() for a in args.rstrip(")").split(",") if a.strip()]
        values = [_argument(t) for t in types]
        verb = "CALL" if kind == "p" else "SELECT"
        with mallory.transaction(force_rollback=True) as _:
            try:
                with mallory.transaction():
                    mallory.execute(f"{verb} {name}({', '.join(values)})")
            except psycopg.Error:
                pass  # refused or bad arguments: what matters is who ran what
        assert_no_takeover(db, signature)


def _argument(t: str) -> str:
    return {
        "regclass": "'m.notes'::regclass",
        "text": "'1'",
        "name": "'emb'",
        "jsonb": '\'{"mode": "flag"}\'::jsonb',
        "integer": "1",
        "bigint": "1",
        "smallint": "1::smallint",
        "boolean": "true",
        "double precision": "0.5",
        "vector": f"'{GOOD}'::vector",
        "text[]": "ARRAY['1']",
        "jsonb[]": "ARRAY['{}'::jsonb]",
        "real[]": "ARRAY[1.0]::real[]",
        "bigint[]": "ARRAY[1]::bigint[]",
        "halfvec": f"'{GOOD}'::halfvec",
    }.get(t, "NULL")


# --- what a review found, each tried as she would -----------------------------------------


def test_the_gate_s_trigger_functions_run_from_no_trigger_of_hers(db, mallory):
    """Her own triggers calling the gate's trigger functions, without the transition tables
    they read, and her temporary views named like them: refused before anything is read."""
    mallory.execute("CREATE TABLE m.t (id text PRIMARY KEY, body text, emb vector(8))")
    mallory.execute("SELECT * FROM embedding_gate.attach('m.t', 'emb', content_column => 'body')")
    mallory.execute(
        "CREATE TRIGGER zz AFTER INSERT ON m.t FOR EACH STATEMENT"
        " EXECUTE FUNCTION embedding_gate._check_attached()"
    )
    mallory.execute(
        "CREATE TRIGGER zy AFTER DELETE ON m.t FOR EACH STATEMENT"
        " EXECUTE FUNCTION embedding_gate._forget_rows()"
    )
    for name in ("gate_new", "gate_old"):
        mallory.execute(
            f"CREATE TEMP VIEW {name} AS SELECT m.payload('temp view')::text AS id,"
            f" '{GOOD}'::vector AS emb, 'x'::text AS body"
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only as the gate's own"):
        mallory.execute("INSERT INTO m.t VALUES ('1', 'a', %s)", [GOOD])
    mallory.execute("DROP TRIGGER zz ON m.t")
    mallory.execute("INSERT INTO m.t VALUES ('1', 'a', %s)", [GOOD])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only as the gate's own"):
        mallory.execute("DELETE FROM m.t")
    assert_no_takeover(db, "her triggers on the gate's functions")


def test_code_run_for_her_by_analyze_cannot_act_on_another_s_table(db, mallory):
    """An index expression of hers runs in ANALYZE (by the superuser, or autovacuum) with the
    session's user a superuser: it cannot change another table's settings, take its
    quarantined rows or detach it."""
    db.execute("CREATE TABLE public.vt (id text PRIMARY KEY, body text, emb vector(8))")
    db.execute("SELECT * FROM embedding_gate.attach('vt', 'emb', content_column => 'body')")
    db.execute("SELECT embedding_gate.set_table_settings('vt', '{\"mode\": \"quarantine\"}')")
    db.execute("INSERT INTO vt VALUES ('q', 'SECRET', %s)", [ZERO])
    mallory.execute(
        """CREATE FUNCTION m.steal() RETURNS int LANGUAGE plpgsql AS $$
        BEGIN
            BEGIN
                PERFORM embedding_gate.set_table_settings('public.vt', '{"mode": "flag"}');
                INSERT INTO m.log VALUES ('settings changed', current_user);
            EXCEPTION WHEN OTHERS THEN NULL; END;
            BEGIN
                INSERT INTO m.log VALUES (embedding_gate._take_quarantined('public.vt', 'q')::text,
                                          current_user);
            EXCEPTION WHEN OTHERS THEN NULL; END;
            BEGIN
                PERFORM embedding_gate._unregister('public.vt', true);
                INSERT INTO m.log VALUES ('detached', current_user);
            EXCEPTION WHEN OTHERS THEN NULL; END;
            RETURN 1;
        END $$;
        CREATE FUNCTION m.steal_imm(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE
            AS $$ BEGIN PERFORM m.steal(); RETURN x; END $$;
        CREATE TABLE m.t2 (x int);
        INSERT INTO m.t2 SELECT generate_series(1, 10);
        CREATE INDEX ON m.t2 (m.steal_imm(x));"""
    )
    db.execute("DELETE FROM m.log")
    db.execute("ANALYZE m.t2")
    assert db.execute("SELECT what FROM m.log").fetchall() == []
    assert db.execute(
        "SELECT overrides, (SELECT count(*) FROM embedding_gate.quarantine)"
        " FROM embedding_gate.attached_tables WHERE table_oid = 'vt'::regclass"
    ).fetchone() == ({"mode": "quarantine"}, 1)
    assert_no_takeover(db, "analyze")


def test_a_superuser_does_not_restore_into_her_table(db, mallory):
    """restore() runs the table's triggers as its caller: a superuser's restore would run hers
    with its rights, so it is refused; she restores it herself."""
    hostile_table(mallory, "notes")
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.notes', 'emb', content_column => 'body')"
    )
    mallory.execute(
        "SELECT embedding_gate.set_table_settings('m.notes', '{\"mode\": \"quarantine\"}')"
    )
    mallory.execute("INSERT INTO m.notes (id, body, emb) VALUES (1, 'bad', %s)", [ZERO])
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="a superuser does not"):
        db.execute(
            "SELECT embedding_gate.restore('m.notes', '1', jsonb_build_object('emb', %s::text))",
            [GOOD],
        )
    assert_no_takeover(db, "a superuser's restore")
    assert mallory.execute(
        "SELECT embedding_gate.restore('m.notes', '1', jsonb_build_object('emb', %s::text))",
        [GOOD],
    ).fetchone() == (True,)
    assert_no_takeover(db, "her restore", {"before_insert_row"})


def test_her_rows_do_not_calibrate_a_model_for_everyone(db, mallory):
    """A model's calibration serves chunks and every table: her rows, labelled as a model,
    do not create or move it, neither stored before she attaches (the recheck's mean) nor
    written after (the gate's sums of the rows it sees)."""
    mallory.execute("CREATE TABLE m.cal (id int PRIMARY KEY, body text, emb vector(8), model text)")
    mallory.execute(
        "INSERT INTO m.cal SELECT g, 'c' || g, %s, 'prod-model' FROM generate_series(1, 150) AS g",
        [OTHER],
    )
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.cal', 'emb', content_column => 'body',"
        " model_column => 'model')"
    )
    db.execute("CALL recheck_embeddings()")
    for start in (151, 301):  # two statements of 150 rows each, after the attach
        mallory.execute(
            "INSERT INTO m.cal SELECT g, 'c' || g, %s, 'prod-model'"
            " FROM generate_series(%s::int, %s::int) AS g",
            [OTHER, start, start + 149],
        )
    assert db.execute(
        "SELECT (SELECT count(*) FROM embedding_gate.model_calibrations WHERE model = 'prod-model'),"
        " (SELECT count(*) FROM embedding_gate._calibration_deltas WHERE model = 'prod-model')"
    ).fetchone() == (0, 0)


def test_her_broken_partition_does_not_stop_anyone_s_ddl(db, mallory):
    mallory.execute(
        "CREATE TABLE m.p (id bigint PRIMARY KEY, body text, emb vector(8)) PARTITION BY RANGE (id)"
    )
    mallory.execute("CREATE TABLE m.p1 PARTITION OF m.p FOR VALUES FROM (0) TO (10)")
    mallory.execute("SELECT * FROM embedding_gate.attach('m.p', 'emb', content_column => 'body')")
    mallory.execute("DROP TRIGGER embedding_gate_check_insert ON m.p1")
    db.execute("CREATE TABLE public.someone_else (x int)")
    db.execute("ALTER TABLE public.someone_else ADD COLUMN y int")
    # and her partition has its trigger back: from the event trigger, or (the SQL engine,
    # none) from her own follow_partitions()
    assert follow_partitions(mallory) == ([] if ENGINE == "plpython" else [("m.p1", "added")])
    assert db.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'm.p1'::regclass"
        " AND tgname = 'embedding_gate_check_insert'"
    ).fetchone() == (1,)


def test_a_registry_row_of_hers_cannot_make_detach_drop_another_s_index(db, mallory):
    db.execute("CREATE TABLE public.theirs (id int PRIMARY KEY, note text)")
    db.execute("CREATE INDEX theirs_note_idx ON public.theirs (note)")
    mallory.execute("CREATE TABLE m.t (id int PRIMARY KEY, body text, emb vector(8))")
    mallory.execute(
        "INSERT INTO embedding_gate._attached (table_oid, id_column, id_number,"
        " embedding_column, embedding_number, embedding_type, hash_index, attached_by)"
        " VALUES ('m.t', 'id', 1, 'emb', 3, 'vector', 'public.theirs_note_idx', 'mallory')"
    )
    with pytest.raises(psycopg.Error):  # another table's row is not hers to write
        mallory.execute(
            "INSERT INTO embedding_gate._attached (table_oid, id_column, id_number,"
            " embedding_column, embedding_number, embedding_type, attached_by)"
            " VALUES ('public.theirs', 'id', 1, 'note', 2, 'vector', 'mallory')"
        )
    db.execute("SELECT embedding_gate.detach('m.t')")
    assert db.execute("SELECT to_regclass('public.theirs_note_idx')").fetchone() == (
        "theirs_note_idx",
    )


def test_her_policy_never_runs_for_a_reader_of_the_reports(db, mallory, as_loader):
    """Her table, with a policy of her own function, granted to the loader's role: the
    loader's reports leave it out rather than run her policy as the loader."""
    mallory.execute("CREATE TABLE m.t (id int PRIMARY KEY, body text, emb vector(8))")
    mallory.execute("SELECT * FROM embedding_gate.attach('m.t', 'emb', content_column => 'body')")
    mallory.execute("INSERT INTO m.t VALUES (1, 'x', %s)", [ZERO])
    mallory.execute("ALTER TABLE m.t ENABLE ROW LEVEL SECURITY")
    mallory.execute("CREATE POLICY p ON m.t USING (m.payload('policy'))")
    mallory.execute("GRANT SELECT ON m.t TO embedding_loader")
    db.execute("GRANT USAGE ON SCHEMA m TO embedding_loader")
    db.execute("DELETE FROM m.log")
    for sql in (
        "SELECT * FROM low_quality_embeddings",
        "SELECT * FROM verify_embeddings(10)",
        "SELECT * FROM embedding_measures()",
        "SELECT * FROM preview_thresholds(min_norm => 0.5)",
        "SELECT * FROM embedding_quality_summary",
        "SELECT * FROM embedding_gate.attached",
    ):
        as_loader.execute(sql)
    assert db.execute("SELECT who FROM m.log").fetchall() == []
    assert_no_takeover(db, "reports")


def test_a_type_changed_while_a_check_waits_is_seen_before_the_read(db, mallory, postgresql_proc):
    """She changes a column to her type in a transaction that holds the table while a check
    of it waits: the check looks at the types only once it has the table."""
    import threading

    mallory.execute(
        "CREATE TYPE m.evil AS (s text);"
        "CREATE FUNCTION m.evil_text(m.evil) RETURNS text LANGUAGE sql"
        " AS $$ SELECT m.payload('cast')::text $$;"
        "CREATE CAST (m.evil AS text) WITH FUNCTION m.evil_text(m.evil);"
        "CREATE TABLE m.race (id int PRIMARY KEY, body text, emb vector(8))"
    )
    mallory.execute(
        "SELECT * FROM embedding_gate.attach('m.race', 'emb', content_column => 'body')"
    )
    mallory.execute("INSERT INTO m.race VALUES (1, 'x', %s)", [GOOD])
    p = postgresql_proc
    other = psycopg.connect(url_for(p.host, p.port, "mallory", db.info.dbname), autocommit=True)
    outcome = {}

    def check() -> None:
        try:
            other.execute("CALL embedding_gate.check_existing('m.race')")
            outcome["ran"] = True
        except psycopg.Error as e:
            outcome["error"] = e

    with other, mallory.transaction():
        mallory.execute("ALTER TABLE m.race ALTER COLUMN body TYPE m.evil USING ROW(body)::m.evil")
        waiting = threading.Thread(target=check)
        waiting.start()
        waiting.join(1.0)  # it waits for the table (or has not started): either way, later
    waiting.join(60)
    assert isinstance(outcome.get("error"), psycopg.errors.DatatypeMismatch), outcome
    assert_no_takeover(db, "race")
