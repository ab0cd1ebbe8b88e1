"""What the revisions install, and how.

- sql/incremental/NNNN_*.sql: the tables, roles and rights, run once by revision NNNN. A
  released file never changes: its revision pins its sha256 (see DEVELOPMENT.md).
- sql/idempotent/*.sql: the functions, triggers and views, CREATE OR REPLACE. They are not
  history: `alembic upgrade head` applies them from the tree, after the revisions, and
  re-applies only the files whose text (as rendered for this database) changed since.
- plpython/embedding_gate/: the PL/Python package, whose sources go into the body of
  embedding_gate._python_package() (sql/idempotent/002_python_package.sql).
- sql/engine_sql/*.sql: the SQL engine's own files (issue 25), for databases where plpython3u
  cannot be created. Deployed with the SQL engine, the gate applies sql/idempotent/ without
  its PL/Python files (plpython_only()) and these beside them, recorded in _sources as
  engine_sql/<name>. Which engine a deployment runs is chosen once, at its first upgrade
  (migrations/env.py), and kept in embedding_gate._deployment.engine.
"""

import hashlib
import re
from pathlib import Path

from alembic import context, op

ROOT = Path(__file__).resolve().parent.parent
INCREMENTAL = ROOT / "sql" / "incremental"
IDEMPOTENT = ROOT / "sql" / "idempotent"
ENGINE_SQL = ROOT / "sql" / "engine_sql"
PACKAGE = ROOT / "plpython" / "embedding_gate"

# the gate's alembic version table: its own, beside an application's public.alembic_version
VERSION_TABLE = "embedding_gate_alembic_version"
VERSION_TABLE_SCHEMA = "public"

ENGINES = ("plpython", "sql")
# the files of sql/idempotent/ the SQL engine does not apply: those with a function in
# PL/Python, or (003) in LANGUAGE internal, which only a superuser may use. sql/engine_sql/
# has the SQL engine's versions; a file's PL/pgSQL and SQL functions both engines share go in
# a file of their own (026_attach.sql beside 026_check_existing.sql, for example).
_ENGINE_ONLY = re.compile(r"^LANGUAGE (plpython3u|internal)\b", re.MULTILINE)


def plpython_only(path: Path) -> bool:
    """Whether the SQL engine leaves out this file of sql/idempotent/ (see _ENGINE_ONLY)."""
    return bool(_ENGINE_ONLY.search(path.read_text(encoding="utf-8")))


_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# the objects in public an idempotent file creates (the baseline's downgrade drops them)
_PUBLIC_OBJECT = re.compile(
    r"^CREATE OR REPLACE (FUNCTION|PROCEDURE|VIEW) (public\.\w+)", re.MULTILINE
)


class PinMismatch(RuntimeError):
    """A released incremental file no longer has the hash its revision pins."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def incremental(name: str, pin: "str | None") -> str:
    """The text of sql/incremental/<name>; pin: its sha256 once released (None before)."""
    text = (INCREMENTAL / name).read_text(encoding="utf-8")
    if pin is not None and sha256(text) != pin:
        raise PinMismatch(
            f"sql/incremental/{name} is released with sha256 {pin}, but now has {sha256(text)}."
            f" A released revision must not change meaning: restore it (git checkout"
            f" <release tag> -- sql/incremental/{name}) and put the change in a new revision."
        )
    return text


def render(template: str, **values: object) -> str:
    """Fill `{{name}}` placeholders; every placeholder must have a value."""

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no value for placeholder {{{{{m.group(1)}}}}}")
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(fill, template)


def python_package() -> dict:
    """Placeholders that embed the PL/Python package in a function body: its module sources
    as a dict literal of raw strings, and a key naming these exact sources in GD."""
    modules = {p.stem: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}
    for module, source in modules.items():
        for bad, why in (("'''", "a ''' string"), ("$python$", "the text $python$")):
            if bad in source:
                raise ValueError(f"{module}.py cannot contain {why}: it is embedded in SQL")
        if source.rstrip("\n").endswith("\\"):
            raise ValueError(f"{module}.py cannot end with a backslash")
    literal = "{\n" + "".join(f"    {m!r}: r'''{s}''',\n" for m, s in modules.items()) + "}"
    key = sha256("".join(f"{m}\0{s}\0" for m, s in modules.items()))[:16]
    return {"python_sources": literal, "python_key": "embedding_gate:" + key}


def idempotent(engine: str = "plpython") -> "list[tuple[str, str]]":
    """The files the engine applies, in the order of their file names, rendered: (name,
    SQL). plpython: every file of sql/idempotent/. sql: those but plpython_only() ones, and
    sql/engine_sql/'s files (named engine_sql/<file>; one of them comes after the
    sql/idempotent/ file of the same name)."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "plpython":
        values = python_package()
        return [
            (p.name, render(p.read_text(encoding="utf-8"), **values)) for p in _idempotent_files()
        ]
    files = [(p.name, p.name, p) for p in _idempotent_files() if not plpython_only(p)]
    files += [(p.name, f"engine_sql/{p.name}", p) for p in _engine_sql_files()]
    return [(name, render(p.read_text(encoding="utf-8"))) for _, name, p in sorted(files)]


def _idempotent_files() -> list:
    return sorted(IDEMPOTENT.glob("*.sql"))


def _engine_sql_files() -> list:
    return sorted(ENGINE_SQL.glob("*.sql"))


def sync_statements(applied: dict, engine: str = "plpython") -> "list[str]":
    """What brings the functions, triggers and views up to the tree: each file the engine
    applies whose rendered text has another sha256 than `applied` (name -> sha256, from
    embedding_gate._sources) records, followed by the record of its new hash."""
    out = []
    for name, sql in idempotent(engine):
        digest = sha256(sql)
        if applied.get(name) != digest:
            out.append(sql.rstrip() + "\n")
            out.append(
                "INSERT INTO embedding_gate._sources (name, sha256)"
                f" VALUES ('{name}', '{digest}') ON CONFLICT (name) DO UPDATE"
                " SET sha256 = excluded.sha256, applied_at = pg_catalog.now();\n"
            )
    return out


def drop_public_objects() -> str:
    """DROP statements for what the idempotent files create in public (functions,
    procedures, views), for `alembic downgrade base`; the rest lives in embedding_gate."""
    found = []
    for path in reversed(_idempotent_files() + _engine_sql_files()):
        found += reversed(_PUBLIC_OBJECT.findall(path.read_text(encoding="utf-8")))
    return "".join(f"DROP {kind} IF EXISTS {name} CASCADE;\n" for kind, name in found)


def execute(sql: str) -> None:
    """Run SQL as written, through the driver's cursor with no parameters, so `:name` and
    `%` in PL/Python bodies survive (SQLAlchemy's text() and even exec_driver_sql() would
    read them as bind parameters). Offline (--sql), the text goes to the script unchanged."""
    migration = op.get_context()
    if migration.as_sql:
        migration.impl.static_output(sql.rstrip() + "\n")
    else:
        with op.get_bind().connection.cursor() as cursor:
            cursor.execute(sql)


# the released baseline's comment on embedding_loader (as it stands there)
_ROLE_COMMENT = (
    "'Writers of the RAG corpus (the loader): insert and update documents and chunks, read the '"
    "\n    'reports. Grant it to a login role: CREATE ROLE app LOGIN PASSWORD ... IN ROLE"
    " embedding_loader.';"
)


# What the SQL engine's baseline (revision 0001 deployed with engine=sql) changes in the
# released file: no plpython3u, and the two LANGUAGE internal functions (which only a
# superuser may create) in LANGUAGE sql over pgvector's vector_send: a vector's bytes in
# network byte order (the same on every server), and their hash, hash_any_extended over
# their hex text (hashtextextended). Equal vectors have equal bytes and hashes, which is all
# the gate asks of them (it compares the bytes of equal hashes); the values are not the
# PL/Python deployment's (each deployment keeps its engine). Building the stored form's bytes
# and hash in SQL instead (a regexp over the hex text, an oidvector of its 32-bit words) gave
# the same values as the internal functions at about 0.5-0.8 ms a 768-d vector, against 8 µs
# this way: the cost of every insert into chunks (its embedding_hash) and of an attached
# table's hash index. tests/test_sql_engine_deploy.py holds them to the internal functions'
# equalities. Each piece must occur once in the file as released.
_NO_PLPYTHON = (
    (
        "    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions"
        " WHERE name = 'plpython3u') THEN\n"
        "        RAISE EXCEPTION 'PL/Python is not installed on this PostgreSQL server"
        ' (extension "plpython3u" is not available)\'\n'
        "            USING ERRCODE = 'undefined_file',\n"
        "                  HINT = 'install it on the database server: on Debian, apt-get"
        " install postgresql-plpython3-15 '\n"
        "                         '(or run scripts/install-server.sh as root)';\n"
        "    END IF;\n",
        "",
    ),
    (
        "FOREACH ext IN ARRAY ARRAY['vector', 'plpython3u'] LOOP",
        "FOREACH ext IN ARRAY ARRAY['vector'] LOOP",
    ),
    (
        """            IF ext = 'vector' THEN
                CREATE EXTENSION vector SCHEMA public;
            ELSE
                CREATE EXTENSION plpython3u;
            END IF;
""",
        """            CREATE EXTENSION vector SCHEMA public;
""",
    ),
    (
        """-- PL/Python runs the server's own Python: numpy must be importable there.
DO LANGUAGE plpython3u $$
import sys
try:
    import numpy
except ImportError:
    plpy.error(
        "numpy is not importable by the PostgreSQL server's Python (%s)" % sys.version.split()[0],
        hint="install it for the server's interpreter, not a virtual environment: on Debian, "
             "apt-get install python3-numpy (or run scripts/install-server.sh as root)",
    )
$$;
""",
        "",
    ),
    (
        """CREATE FUNCTION embedding_gate.vector_bytes(embedding public.vector) RETURNS bytea
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'byteasend';""",
        """CREATE FUNCTION embedding_gate.vector_bytes(embedding public.vector) RETURNS bytea
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN public.vector_send(embedding);""",
    ),
    (
        "CREATE FUNCTION embedding_gate._hash_bytes(embedding public.vector, seed bigint)"
        """ RETURNS bigint
LANGUAGE internal
IMMUTABLE STRICT PARALLEL SAFE
AS 'hashvarlenaextended';""",
        "CREATE FUNCTION embedding_gate._hash_bytes(embedding public.vector, seed bigint)"
        """ RETURNS bigint
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
RETURN pg_catalog.hashtextextended(
    pg_catalog.encode(public.vector_send(embedding), 'hex'), seed);""",
    ),
    (
        # PostgreSQL 16 on: a comment on a role needs its ADMIN option, which a managed
        # service's owner has on the roles it created, not on an embedding_loader another
        # role created first (for another database of the same server, say)
        "COMMENT ON ROLE embedding_loader IS\n    " + _ROLE_COMMENT + "\n",
        "DO $$\nBEGIN\n    COMMENT ON ROLE embedding_loader IS\n    " + _ROLE_COMMENT + "\n"
        "EXCEPTION WHEN insufficient_privilege THEN\n"
        "    RAISE NOTICE 'role embedding_loader was created by another role:"
        " its comment stays as it is';\nEND\n$$;\n",
    ),
)


def without_plpython(baseline: str) -> str:
    """The released baseline as the SQL engine deploys it (see _NO_PLPYTHON)."""
    for old, new in _NO_PLPYTHON:
        if baseline.count(old) != 1:
            raise ValueError(f"the baseline no longer holds, once, the text {old[:60]!r}")
        baseline = baseline.replace(old, new)
    return baseline


def engine() -> str:
    """The engine this run deploys (plpython or sql), chosen by migrations/env.py."""
    return context.config.attributes.get("embedding_gate_engine", "plpython")


def x_arg(name: str, default: str) -> str:
    """An `alembic -x name=value` option."""
    return context.get_x_argument(as_dictionary=True).get(name, default)
