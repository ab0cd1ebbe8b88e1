"""Nothing is read through the gate that the table itself hides from the reader.

The roles of a shared database: the owner of a table it attached and granted to nobody; a
team role with SELECT on that table but not on its content column; a tenant role under a
row-level security policy (and a writer that owns a table with FORCE ROW LEVEL SECURITY);
a member of embedding_loader. Secrets sit in flagged and quarantined rows of every table.
Every relation and report function of the gate is read as each role: no secret appears
where that role could not read it directly, and what each may see, it still sees."""

import numpy as np
import psycopg
import pytest

from tests.helpers import url_for, vec

D = 8
ZERO = vec(np.zeros(D))
CHUNK_ZERO = vec(np.zeros(768))  # chunks is deployed at 768 dimensions
GOOD = vec(np.array([0.5, -0.5, 0.5, -0.5, 0.3, -0.3, 0.2, 0.1]))
TWIN = vec(np.array([0.9, 0.1, -0.3, 0.2, 0.1, -0.1, 0.05, 0.2]))

ROLES = ("team_owner", "team_reader", "tenant_a", "forced_owner", "loader_login")


def _role(db, name: str, *, in_loader: bool = False) -> None:
    member = " IN ROLE embedding_loader" if in_loader else ""
    db.execute(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')"
        f" THEN CREATE ROLE {name} LOGIN{member}; END IF; END $$"
    )


@pytest.fixture
def shared(doc, postgresql_proc):
    """A shared database: chunks, another team's table, a multi-tenant table, a table whose
    owner writes under FORCE ROW LEVEL SECURITY; connections as each role."""
    db = doc
    for name in ROLES:
        _role(db, name, in_loader=name == "loader_login")
    db.execute("CREATE SCHEMA apps")
    db.execute("GRANT USAGE ON SCHEMA apps TO PUBLIC")
    db.execute("GRANT CREATE ON SCHEMA apps TO team_owner, forced_owner")
    p = postgresql_proc

    def connect(role: str, tenant: "str | None" = None):
        conn = psycopg.connect(url_for(p.host, p.port, role, db.info.dbname), autocommit=True)
        if tenant:
            conn.execute("SELECT set_config('app.tenant', %s, false)", [tenant])
        return conn

    conns = {
        "team_owner": connect("team_owner"),
        "team_reader": connect("team_reader"),
        "tenant_a": connect("tenant_a", "a"),
        "forced_owner": connect("forced_owner", "a"),
        "loader_login": connect("loader_login"),
    }
    # chunks: one flagged chunk, one quarantined
    db.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES"
        " ('c-flagged', 'd1', 'SECRET-CHUNK flagged', %s)",
        [CHUNK_ZERO],
    )
    db.execute("SET embedding_gate.mode = 'quarantine'")
    db.execute(
        "INSERT INTO chunks (chunk_id, doc_id, content, embedding) VALUES"
        " ('c-quarantined', 'd1', 'SECRET-QCHUNK', %s)",
        [CHUNK_ZERO],
    )
    db.execute("RESET embedding_gate.mode")
    # another team's table, attached by its owner, granted to nobody
    owner = conns["team_owner"]
    owner.execute("CREATE TABLE apps.team (id text PRIMARY KEY, body text, emb vector(8))")
    owner.execute(
        "SELECT * FROM embedding_gate.attach('apps.team', 'emb', content_column => 'body')"
    )
    owner.execute("INSERT INTO apps.team VALUES ('t-flagged', 'SECRET-TEAM flagged', %s)", [ZERO])
    owner.execute(
        "SELECT embedding_gate.set_table_settings('apps.team', '{\"mode\": \"quarantine\"}')"
    )
    owner.execute("INSERT INTO apps.team VALUES ('t-quarantined', 'SECRET-TEAMQ', %s)", [ZERO])
    owner.execute("SELECT embedding_gate.set_table_settings('apps.team', '{\"mode\": null}')")
    # a team role that may read it, but not its content
    owner.execute("GRANT SELECT (id, emb) ON apps.team TO team_reader")
    # a multi-tenant table: tenant a's flagged row, tenant b's flagged row and b's twin
    db.execute(
        "CREATE TABLE apps.tenants (id text PRIMARY KEY, tenant text, body text, emb vector(8))"
    )
    db.execute(
        "SELECT * FROM embedding_gate.attach('apps.tenants', 'emb', content_column => 'body')"
    )
    db.execute(
        "INSERT INTO apps.tenants VALUES ('b-row', 'b', 'SECRET-B', %s), ('b-twin', 'b', 'b words', %s)",
        [ZERO, TWIN],
    )
    db.execute(
        "INSERT INTO apps.tenants VALUES ('a-row', 'a', 'SECRET-A visible', %s),"
        " ('a-twin', 'a', 'a words', %s)",
        [ZERO, TWIN],
    )
    db.execute("ALTER TABLE apps.tenants ENABLE ROW LEVEL SECURITY")
    db.execute(
        "CREATE POLICY tenant ON apps.tenants USING (tenant = current_setting('app.tenant', true))"
    )
    db.execute("GRANT SELECT, INSERT ON apps.tenants TO tenant_a")
    # a writer that owns its table, under FORCE ROW LEVEL SECURITY
    forced = conns["forced_owner"]
    forced.execute(
        "CREATE TABLE apps.forced (id text PRIMARY KEY, tenant text, body text, emb vector(8))"
    )
    forced.execute("ALTER TABLE apps.forced ENABLE ROW LEVEL SECURITY")
    forced.execute("ALTER TABLE apps.forced FORCE ROW LEVEL SECURITY")
    forced.execute(
        "CREATE POLICY tenant ON apps.forced USING (tenant = current_setting('app.tenant', true))"
        " WITH CHECK (tenant = current_setting('app.tenant', true))"
    )
    forced.execute(
        "SELECT * FROM embedding_gate.attach('apps.forced', 'emb', content_column => 'body')"
    )
    forced.execute("INSERT INTO apps.forced VALUES ('fa', 'a', 'SECRET-FA', %s)", [ZERO])
    forced.execute("SELECT set_config('app.tenant', 'b', false)")
    forced.execute("INSERT INTO apps.forced VALUES ('fb', 'b', 'SECRET-FB', %s)", [ZERO])
    forced.execute("SELECT set_config('app.tenant', 'a', false)")
    yield db, conns
    for conn in conns.values():
        conn.close()


# secret -> the roles that may read it from its table directly
READERS = {
    "SECRET-CHUNK": {"loader_login"},
    "SECRET-QCHUNK": set(),  # in chunks' quarantine: the gate's owner's
    "SECRET-TEAM": {"team_owner"},
    "SECRET-TEAMQ": {"team_owner"},  # quarantined: the table's owner's
    "SECRET-A": {"tenant_a"},
    "SECRET-B": set(),
    "b-row": set(),  # a row id of tenant b, the twin of nothing a may see
    "b-twin": set(),
    "SECRET-FA": {"forced_owner"},
    # tenant b's row of the FORCE table: its owner, as tenant a, does not see it
    "SECRET-FB": set(),
}


def everything(conn) -> str:
    """Every relation of the gate's schemas the role may SELECT, and every report, as text."""
    out = []
    relations = conn.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('public', 'embedding_gate') AND c.relkind IN ('r', 'v', 'm', 'p')"
        " AND has_table_privilege(c.oid, 'SELECT') ORDER BY 1"
    ).fetchall()
    for (name,) in relations:
        out.append(f"{name}: {conn.execute(f'SELECT * FROM {name}').fetchall()}")
    # and through a function of the role's own, so cheap that the planner would run it
    # before a view's filters if the view let it: it sees every row it is handed
    seen: list = []
    conn.add_notice_handler(lambda d: seen.append(d.message_primary))
    conn.execute(
        "CREATE OR REPLACE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql"
        " COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'peek %', $1; RETURN true; END $$"
    )
    for (name,) in relations:
        columns = [c.name for c in conn.execute(f"SELECT * FROM {name} LIMIT 0").description]
        each = " AND ".join(f'pg_temp.peek(t."{c}"::text)' for c in columns)
        conn.execute(f"SELECT count(*) FROM {name} AS t WHERE {each}")
    out += seen
    for sql in (
        "SELECT * FROM verify_embeddings(1000)",
        "SELECT * FROM embedding_measures()",
        "SELECT * FROM preview_thresholds(min_norm => 0.5)",
    ):
        out.append(f"{sql}: {conn.execute(sql).fetchall()}")
    for table in ("public.chunks", "apps.team", "apps.tenants", "apps.forced"):
        for fn in ("_visible", "_quarantine_holds", "_take_quarantined", "_pending_moves"):
            args = "%s::regclass, 'b-row'" if fn != "_pending_moves" else "%s::regclass"
            with conn.transaction(force_rollback=True):
                try:
                    with conn.transaction():
                        got = conn.execute(f"SELECT embedding_gate.{fn}({args})", [table])
                        out.append(f"{fn}({table}): {got.fetchall()}")
                except psycopg.Error as e:
                    out.append(f"{fn}({table}) refused: {e.sqlstate}")
    return "\n".join(out)


def test_no_role_reads_through_the_gate_what_the_table_hides(shared):
    db, conns = shared
    for role, conn in conns.items():
        text = everything(conn)
        for secret, readers in READERS.items():
            if role not in readers:
                assert secret not in text, f"{role} read {secret}"


def rows(conn) -> dict:
    return {
        (t, r): (p, q, d)
        for t, r, p, q, d in conn.execute(
            "SELECT table_name, row_id, content_preview, quarantined, duplicate_of"
            " FROM low_quality_embeddings"
        ).fetchall()
    }


def test_what_each_role_may_read_it_still_sees(shared):
    db, conns = shared
    owner = rows(conns["team_owner"])
    assert owner[("apps.team", "t-flagged")][0] == "SECRET-TEAM flagged"
    assert owner[("apps.team", "t-quarantined")][:2] == ("SECRET-TEAMQ", True)
    assert {t for t, _ in owner} == {"apps.team"}
    # the team reader: the verdict, not the content
    reader = rows(conns["team_reader"])
    assert reader == {("apps.team", "t-flagged"): (None, False, None)}
    # tenant a: its own rows, with their content; b's twin is not named
    tenant = rows(conns["tenant_a"])
    assert tenant[("apps.tenants", "a-row")][0] == "SECRET-A visible"
    assert {r for t, r in tenant} == {"a-row", "a-twin"}
    assert tenant[("apps.tenants", "a-twin")][2] is None
    reason = (
        conns["tenant_a"]
        .execute("SELECT reason FROM low_quality_embeddings WHERE row_id = 'a-twin'")
        .fetchone()[0]
    )
    assert "a row you may not read" in reason and "b-twin" not in reason
    # the superuser sees the twin named
    assert rows(db)[("apps.tenants", "a-twin")][2] == "b-twin"
    # its own table under FORCE ROW LEVEL SECURITY: only tenant a's rows
    forced = rows(conns["forced_owner"])
    assert {r for t, r in forced if t == "apps.forced"} == {"fa"}
    # the loader: chunks' flagged rows, not chunks' quarantine, nothing of the others
    loader = rows(conns["loader_login"])
    assert set(loader) == {("public.chunks", "c-flagged")}
    assert loader[("public.chunks", "c-flagged")][0] == "SECRET-CHUNK flagged"


def test_the_summary_counts_only_the_tables_a_role_may_read(shared):
    db, conns = shared
    summary = {
        role: conn.execute(
            "SELECT chunks, embedded, tables FROM embedding_quality_summary"
        ).fetchone()
        for role, conn in conns.items()
    }
    assert summary["team_reader"][0] is None  # may not read chunks
    assert set(summary["team_reader"][2]) == {"apps.team"}
    assert set(summary["loader_login"][2]) == {"public.chunks"}
    # chunks counts the rows in chunks; embedded the quarantined one too
    assert summary["loader_login"][:2] == (1, 2)
    team = summary["team_owner"][2]["apps.team"]
    assert team == {"embedded": 2, "low_quality": 2, "quarantined": 1}
    everyone = db.execute("SELECT tables FROM embedding_quality_summary").fetchone()[0]
    assert set(everyone) == {"public.chunks", "apps.team", "apps.tenants", "apps.forced"}
    listed = {
        role: {t for (t,) in conn.execute("SELECT table_name FROM embedding_gate.attached")}
        for role, conn in conns.items()
    }
    assert listed["team_reader"] == {"apps.team"}
    assert listed["tenant_a"] == {"apps.tenants"}
    assert listed["loader_login"] == {"public.chunks"}


def test_quarantined_rows_are_the_owner_s(shared):
    db, conns = shared
    owner = conns["team_owner"]
    assert owner.execute(
        "SELECT row_id, row ->> 'body' FROM embedding_gate.quarantine"
    ).fetchall() == [("t-quarantined", "SECRET-TEAMQ")]
    for role in ("team_reader", "tenant_a", "loader_login"):
        assert conns[role].execute("SELECT count(*) FROM embedding_gate.quarantine").fetchone() == (
            0,
        ), role
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conns["team_reader"].execute("SELECT embedding_gate.restore('apps.team', 't-quarantined')")


# every SECURITY DEFINER function PUBLIC or embedding_loader may execute, and what holds it
REVIEWED = {
    # trigger functions: no session can call one; each runs only from the gate's own
    # triggers (test_takeover: her triggers on the gate's trigger functions)
    "embedding_gate._check_attached()": "test_takeover",
    "embedding_gate._forget_rows()": "test_takeover",
    # event trigger functions: no session can call one
    "embedding_gate._follow_partitions()": "test_takeover (partitions, her broken partition)",
    "embedding_gate._forget_dropped()": "test_takeover (a drop)",
    # the table's owner or the gate's; reads the table as the gate, writes true verdicts
    "embedding_gate._check_existing(regclass,text,integer)": "test_attach (only the owner)",
    # only the calling transaction's own rows
    "embedding_gate._pending_moves(regclass)": "everything() above",
    "embedding_gate._quarantined(regclass,text[],jsonb[])": "below",
    # counts of the tables the caller may read
    "embedding_gate._quality_summary()": "test_the_summary_counts_only_the_tables_a_role_may_read",
    "embedding_gate._quality_by_day()": "everything() above",
    # the loader's: a model's first vector; replacing one needs the right to tune
    "set_blank_reference(text,vector,text)": "test_security",
    "set_blank_calibration(text,vector,integer,text)": "test_security",
    "set_degenerate_reference(text,vector,text,text)": "test_degenerate (a loader's first vector)",
}


def test_every_security_definer_function_a_role_may_call_is_reviewed(db):
    """A new SECURITY DEFINER function that PUBLIC or the loader may execute fails this test
    until it is reviewed (docs/security.md) and held by a test."""
    callable_ = {
        name
        for (name,) in db.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
            " JOIN pg_namespace AS n ON n.oid = p.pronamespace"
            " WHERE p.prosecdef AND n.nspname IN ('public', 'embedding_gate')"
            " AND (has_function_privilege('public', p.oid, 'EXECUTE')"
            "  OR has_function_privilege('embedding_loader', p.oid, 'EXECUTE'))"
        ).fetchall()
    }
    assert callable_ == set(REVIEWED)


def test_another_role_cannot_fill_in_or_take_a_quarantined_row(shared):
    db, conns = shared
    reader = conns["team_reader"]
    assert reader.execute(
        "SELECT embedding_gate._quarantined('apps.team', ARRAY['t-quarantined'],"
        ' ARRAY[\'{"body": "forged"}\'::jsonb])'
    ).fetchone() == (0,)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only the owner"):
        reader.execute("SELECT embedding_gate._take_quarantined('apps.team', 't-quarantined')")
    assert db.execute("SELECT row ->> 'body' FROM embedding_gate.quarantine").fetchall() == [
        ("SECRET-TEAMQ",)
    ]
