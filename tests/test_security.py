"""The gate cannot be bypassed by the loader's role, nor fooled by its search_path."""

import ast
import math

import numpy as np
import psycopg
import pytest

from loader import report
from loader.db import connect
from tests.embed_server import EmbedServer
from tests.helpers import ENGINE, ROOT, load_corpus, raw, vec, write_corpus


def insert_doc(conn) -> None:
    conn.execute("INSERT INTO documents (doc_id) VALUES ('d') ON CONFLICT DO NOTHING")


def test_the_loader_role_loads_a_corpus_and_reads_every_report(db, loader_url, tmp_path):
    server = EmbedServer()
    try:
        extra = [{"doc_id": "z", "chunks": [{"chunk_id": "z-0", "content": "<zero>"}]}]
        f = write_corpus(tmp_path / "a.json", documents=2, chunks=3, extra=extra)
        _, stats = load_corpus(loader_url, [f], server.url)
        assert stats.chunks == 7
        # a rerun reads the quarantine's chunk_ids: quarantine mode, one more bad chunk
        db.execute("UPDATE embedding_gate.settings SET mode = 'quarantine'")
        extra.append({"doc_id": "y", "chunks": [{"chunk_id": "y-0", "content": "<zero>"}]})
        f = write_corpus(tmp_path / "a.json", documents=2, chunks=3, extra=extra)
        _, stats = load_corpus(loader_url, [f], server.url)
        assert (stats.chunks, stats.skipped) == (1, 7)
        _, stats = load_corpus(loader_url, [f], server.url)
        assert (stats.chunks, stats.skipped) == (0, 8)
    finally:
        server.close()
    conn = connect(loader_url)
    try:
        text = report.report(conn)
        assert "Low-quality embeddings:           2" in text
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM short_content_chunks")
            cur.execute("SELECT count(*) FROM embedding_measures()")
            assert cur.fetchone()[0] == 7
            cur.execute("SELECT * FROM preview_thresholds(min_norm => 0.5)")
            cur.execute("SELECT checked FROM verify_embeddings(10)")
            assert cur.fetchone()[0] == 7
    finally:
        conn.close()


# What the loader's role must not be able to do: each refused with insufficient_privilege.
# chunks' insert trigger function, in each engine
CHECK = "_sql_check_inserted" if ENGINE == "sql" else "_check_inserted"
REFUSED = {
    "disable the insert trigger": "ALTER TABLE chunks DISABLE TRIGGER embedding_gate_insert",
    "disable all user triggers": "ALTER TABLE chunks DISABLE TRIGGER USER",
    "drop the trigger": "DROP TRIGGER embedding_gate_insert ON chunks",
    "replica mode skips triggers": "SET session_replication_role = replica",
    "change a threshold": "UPDATE embedding_gate.settings SET min_norm = 0",
    "change the mode": "UPDATE embedding_gate.settings SET mode = 'flag'",
    "override a threshold for a transaction": "SET LOCAL embedding_gate.min_norm = '0';"
    " INSERT INTO chunks (chunk_id, doc_id) VALUES ('o', 'd')",
    "replace a check function": f"CREATE OR REPLACE FUNCTION embedding_gate.{CHECK}()"
    " RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'",
    "drop a check function": f"DROP FUNCTION embedding_gate.{CHECK}() CASCADE",
    "rename a check function": f"ALTER FUNCTION embedding_gate.{CHECK}() RENAME TO x",
    "shadow a function in public": "CREATE FUNCTION public.vector_send(vector) RETURNS bytea"
    " LANGUAGE sql AS 'SELECT NULL::bytea'",
    "create a schema": "CREATE SCHEMA mine",
    "clear a flag": "UPDATE chunks SET quality_issues = NULL",
    "insert a row as already checked": "INSERT INTO chunks (chunk_id, doc_id, quality_checked_at)"
    " VALUES ('c', 'd', now())",
    "read the quarantine's vectors": "SELECT embedding_raw FROM embedding_quarantine",
    "write to the quarantine": "INSERT INTO embedding_quarantine (chunk_id, embedding_raw,"
    " quality_issues, quality_reason) VALUES ('q', '{0}', '{}', 'x')",
    "empty the quarantine": "DELETE FROM embedding_quarantine",
    "delete chunks": "DELETE FROM chunks",
    "truncate chunks": "TRUNCATE chunks",
    "rewrite the quality columns by recheck": "CALL recheck_embeddings()",
    "fake the summary's totals": "INSERT INTO embedding_gate._row_counts VALUES ('chunks', 1000)",
    "fake them through the gate's own function": "SELECT embedding_gate._add_rows('chunks', 1000)",
    "call a trigger function": "SELECT embedding_gate._recheck_batch(NULL, 10, NULL)",
}


@pytest.mark.parametrize("attempt", REFUSED.values(), ids=REFUSED.keys())
def test_the_loader_role_cannot_switch_off_tune_or_bypass_the_gate(db, as_loader, attempt):
    insert_doc(db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), as_loader.transaction():
        as_loader.execute(attempt)
    # and the gate still flags what the loader writes
    dim = db.execute("SELECT embedding_dim FROM embedding_gate._deployment").fetchone()[0]
    as_loader.execute(
        "INSERT INTO chunks (chunk_id, doc_id, embedding) VALUES ('zero', 'd', %s)",
        [vec(np.zeros(dim))],
    )
    issues = db.execute(
        "SELECT quality_issues FROM chunks WHERE chunk_id OPERATOR(pg_catalog.=) 'zero'"
    ).fetchone()
    assert issues == (["low_norm", "low_variance", "sparse"],)


LOOK_ALIKES = """
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO embedding_loader;
-- every vector would read as a clean one, every text as long, every comparison as true
CREATE FUNCTION evil.vector_send(public.vector) RETURNS bytea LANGUAGE sql
    AS $$ SELECT public.vector_send(public.array_to_vector(
        array_fill(0.5::real, ARRAY[public.vector_dims($1)]), public.vector_dims($1), true)) $$;
CREATE FUNCTION evil.vector_bytes(public.vector) RETURNS bytea LANGUAGE sql
    AS $$ SELECT embedding_gate.vector_bytes(public.array_to_vector(
        array_fill(0.5::real, ARRAY[public.vector_dims($1)]), public.vector_dims($1), true)) $$;
CREATE FUNCTION evil.vector_hash(public.vector) RETURNS bigint LANGUAGE sql AS 'SELECT 0::bigint';
CREATE FUNCTION evil.char_length(text) RETURNS integer LANGUAGE sql AS 'SELECT 1000';
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql AS $$ SELECT 'evil' $$;
CREATE FUNCTION evil.current_setting(text, boolean) RETURNS text LANGUAGE sql AS 'SELECT ''0''';
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT 'epoch'::timestamptz $$;
CREATE FUNCTION evil.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
CREATE FUNCTION evil.f8lt(float8, float8) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR evil.< (LEFTARG = float8, RIGHTARG = float8, FUNCTION = evil.f8lt);
CREATE TABLE evil.settings AS SELECT * FROM embedding_gate.settings;
UPDATE evil.settings SET min_norm = 0, min_variance = 0, max_near_zero_ratio = 1;
GRANT SELECT ON evil.settings TO embedding_loader;
"""


def test_a_hostile_search_path_does_not_change_what_the_gate_finds(db, as_loader):
    db.execute(LOOK_ALIKES)
    insert_doc(db)
    dim = db.execute("SELECT embedding_dim FROM embedding_gate._deployment").fetchone()[0]
    rng = np.random.default_rng(3)
    clean = rng.standard_normal(dim)
    clean /= np.linalg.norm(clean)
    nan = np.full(dim, math.nan)
    # evil first, before pg_catalog: unqualified names in the gate would resolve here
    as_loader.execute("SET search_path = evil, pg_catalog, public")
    as_loader.execute("CREATE TEMP TABLE settings AS SELECT * FROM evil.settings")
    with as_loader.cursor().copy(
        "COPY public.chunks (chunk_id, doc_id, content, embedding, embedding_raw) FROM STDIN"
    ) as copy:
        copy.write_row(["clean", "d", "a real paragraph", vec(clean), None])
        copy.write_row(["zero", "d", ".", vec(np.zeros(dim)), None])
        copy.write_row(["nan", "d", "?", None, raw(nan)])
    as_loader.execute(
        "UPDATE public.chunks SET embedding = %s WHERE chunk_id OPERATOR(pg_catalog.=) 'clean'",
        [vec(np.zeros(dim))],
    )
    as_loader.execute(
        "UPDATE public.chunks SET content = 'ok' WHERE chunk_id OPERATOR(pg_catalog.=) 'zero'"
    )
    found = dict(db.execute("SELECT chunk_id, quality_issues FROM chunks"))
    assert found == {
        "clean": ["low_norm", "low_variance", "sparse"],
        "zero": ["low_norm", "low_variance", "sparse"],
        "nan": ["nan_or_inf"],
    }
    # the reports and the measures, read through the same session, are not fooled either
    norms = dict(as_loader.execute("SELECT chunk_id, norm FROM public.embedding_measures()"))
    assert norms == {"clean": 0.0, "zero": 0.0, "nan": None}
    short = as_loader.execute(
        "SELECT chunk_id, content_length FROM public.short_content_chunks ORDER BY 1"
    ).fetchall()
    assert short == [("clean", 16), ("nan", 1), ("zero", 2)]
    summary = as_loader.execute(
        "SELECT low_quality, issue_counts FROM public.embedding_quality_summary"
    ).fetchone()
    assert summary == (3, {"low_norm": 2, "low_variance": 2, "nan_or_inf": 1, "sparse": 2})


PACKAGE = ROOT / "plpython/embedding_gate"


def _statement_constants() -> dict:
    """The statements of queries.py: module-level names bound to text built only from
    string constants, other such names, + and * (no f-string, format or call)."""
    tree = ast.parse((PACKAGE / "queries.py").read_text())
    found: dict = {}

    def constant(node) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, (str, int))
        if isinstance(node, ast.Name):
            return found.get(node.id, False)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            return constant(node.left) and constant(node.right)
        if isinstance(node, ast.List):
            return all(constant(e) for e in node.elts)
        return False

    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.lstrip("_").isupper():
                found[name] = constant(node.value)
    return found


def _attached_statements() -> set:
    """The fields of attached.Statements: the statements of one attached table, which name
    its columns, each quoted by quote_ident (test_attach runs them on hostile names)."""
    tree = ast.parse((PACKAGE / "attached.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Statements")
    return {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign)}


def names_a_statement(node, fn: ast.FunctionDef, statements: dict) -> bool:
    """queries.X, s.X of an attached table's Statements, a choice between such (a if c else
    b), the plan of one (queries.plan), or a local name only ever bound to those."""
    if isinstance(node, ast.Attribute):
        if ast.unparse(node.value) == "s":
            return node.attr in _attached_statements()
        return ast.unparse(node.value) == "queries" and statements.get(node.attr, False)
    if isinstance(node, ast.IfExp):
        return all(names_a_statement(n, fn, statements) for n in (node.body, node.orelse))
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "queries.plan":
        return names_a_statement(node.args[1], fn, statements)
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "plpy.prepare":
        return names_a_statement(node.args[0], fn, statements)
    if isinstance(node, ast.Name):
        bound = [
            a.value
            for a in ast.walk(fn)
            if isinstance(a, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == node.id for t in a.targets)
        ]
        return bool(bound) and all(names_a_statement(v, fn, statements) for v in bound)
    return False


# functions that run the SQL their callers pass (the argument at this index): checked at
# the callers instead
PASS_THROUGH = {
    ("queries.py", "plan"): 1,
    ("queries.py", "run"): 1,
    ("triggers.py", "run_statement"): 1,
}


def test_the_pl_python_package_builds_no_sql_from_data():
    """Every statement the package runs is a constant of queries.py, built from constants
    alone, or one of an attached table's Statements (names quoted): values always travel as
    parameters. Every call that runs SQL (plpy.execute, prepare, cursor; queries.run, plan;
    run_statement) names one of them."""
    statements = _statement_constants()
    assert statements and all(statements.values()), statements
    passed_on = {fn: i for (_, fn), i in PASS_THROUGH.items()}
    checked = 0
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            if (path.name, fn.name) in PASS_THROUGH:
                continue  # they run what their callers pass: checked at the callers
            for call in [n for n in ast.walk(fn) if isinstance(n, ast.Call)]:
                f = call.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                owner = ast.unparse(f.value) if isinstance(f, ast.Attribute) else None
                if name in ("execute", "prepare", "cursor") and owner == "plpy":
                    sql = call.args[0]
                elif name in ("run", "plan") and owner == "queries":
                    sql = call.args[1]
                elif name == "run_statement" and owner in (None, "triggers"):
                    sql = call.args[passed_on[name]]
                else:
                    continue
                checked += 1
                assert names_a_statement(sql, fn, statements), (
                    f"{path.name}: {fn.name}, line {sql.lineno}: SQL from {ast.unparse(sql)}"
                )
    assert checked >= 15


def test_every_function_of_the_gate_pins_its_search_path(db):
    """A function that looks names up at run time runs with search_path = pg_catalog,
    pg_temp. The only others look nothing up when they run: SQL-standard bodies (resolved
    once, at CREATE) and LANGUAGE internal (a C function of the server, bound by name).
    A procedure that commits cannot carry the SET clause: it pins the path with set_config
    at its start and again after every COMMIT."""
    rows = db.execute(
        "SELECT p.oid::regprocedure::text, l.lanname, p.prosqlbody IS NOT NULL, p.proconfig,"
        " p.prokind, p.prosrc"
        " FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace"
        " JOIN pg_language AS l ON l.oid = p.prolang"
        " WHERE n.nspname IN ('public', 'embedding_gate') AND NOT EXISTS ("
        "  SELECT FROM pg_depend AS d WHERE d.classid = 'pg_proc'::regclass"
        "  AND d.objid = p.oid AND d.deptype = 'e')"
    ).fetchall()
    kinds = {row[1] for row in rows}
    # the SQL engine (a managed service's owner) may use neither plpython3u nor internal
    if ENGINE == "sql":
        assert kinds == {"plpgsql", "sql"}, kinds
    else:
        assert {"plpython3u", "plpgsql", "sql", "internal"} <= kinds, kinds
    pin = "set_config('search_path', 'pg_catalog, pg_temp', true)"
    unpinned = [
        (name, lang, config)
        for name, lang, standard, config, kind, source in rows
        if not (lang == "internal" or standard)
        and "search_path=pg_catalog, pg_temp" not in (config or [])
        and not (kind == "p" and source.count(pin) == source.count("COMMIT;") + 1)
    ]
    assert unpinned == []
