"""Deploy the embedding gate from the installed package: `embedding-gate db upgrade|downgrade|
current|history`, and `upgrade()` / `downgrade()` for an application's own alembic revisions.

The package carries the gate's alembic environment, its revisions, sql/ and the PL/Python
package (loader/deployment/ in a wheel; the checkout's own folders in a checkout), so it
deploys from any directory, exactly as `alembic upgrade head` does in a checkout. The gate's
revision lives in its own version table (public.embedding_gate_alembic_version): an
application's public.alembic_version is never touched.

In an application's alembic revision (the gate joins the app's history, in its transaction):

    from loader import deploy

    def upgrade():
        deploy.upgrade("head", connection=op.get_bind(), embedding_dim=384)

    def downgrade():
        deploy.downgrade("base", connection=op.get_bind())
"""

import argparse
import contextlib
import io
import sys
from pathlib import Path

import psycopg2

# alembic is imported where a command uses it: building the command line (every
# `embedding-gate` command, `load` included) imports this module, and alembic's import
# alone took 0.25 s of a 2.7 s load of 40,000 chunks

HERE = Path(__file__).resolve().parent


def files_root() -> Path:
    """The folder holding migrations/, sql/ and plpython/: the wheel's loader/deployment/,
    else the checkout this module sits in."""
    from alembic.util import CommandError

    for root in (HERE / "deployment", HERE.parent):
        if (root / "migrations" / "env.py").is_file() and (root / "sql").is_dir():
            return root
    raise CommandError(f"the gate's migrations are not installed beside {HERE}")


def config(
    url: "str | None" = None,
    connection=None,
    embedding_dim: "int | None" = None,
    stdout=None,
    engine: "str | None" = None,
):
    """The alembic configuration a checkout's alembic.ini gives, built for the package."""
    from alembic.config import Config

    root = files_root()
    cfg = Config(stdout=stdout or sys.stdout)
    cfg.set_main_option("script_location", str(root / "migrations"))
    cfg.set_main_option("path_separator", "os")
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    x = [] if embedding_dim is None else [f"embedding_dim={embedding_dim}"]
    if engine is not None:
        x.append(f"engine={engine}")
    cfg.cmd_opts = argparse.Namespace(x=x)
    return cfg


@contextlib.contextmanager
def _gate_environment(root: Path):
    """The gate's `migrations` package importable (env.py and the revisions import
    migrations.sources), for the length of one command: an application's own `migrations`
    package, if one is loaded, is set aside and put back; so are alembic's `context` and
    `op` of an application's migration that calls upgrade()/downgrade()."""
    from alembic import context, op

    def ours(name: str) -> bool:
        return name == "migrations" or name.startswith("migrations.")

    loaded = sys.modules.get("migrations")
    origin = getattr(loaded, "__file__", None)
    foreign = loaded is not None and (
        origin is None or Path(origin).resolve().parent != (root / "migrations").resolve()
    )
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if ours(k)} if foreign else {}
    outer = [getattr(m, "_proxy", None) for m in (context, op)]
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        if foreign:
            for k in [k for k in sys.modules if ours(k)]:
                del sys.modules[k]
            sys.modules.update(saved)
        for proxy in outer:
            if proxy is not None:
                proxy._install_proxy()


def upgrade(
    revision: str = "head",
    *,
    url: "str | None" = None,
    connection=None,
    embedding_dim: "int | None" = None,
    sql: bool = False,
    engine: "str | None" = None,
) -> None:
    """Bring the gate to `revision` (head: the revisions and the functions of this package).
    connection: a SQLAlchemy connection (an application's `op.get_bind()`), whose
    transaction it joins; else url (default DATABASE_URL / DB_*). engine: plpython, sql or
    auto (None: auto; a deployed gate keeps its engine; the --sql script takes auto for
    plpython)."""
    from alembic import command

    with _gate_environment(files_root()):
        command.upgrade(config(url, connection, embedding_dim, engine=engine), revision, sql=sql)


def downgrade(revision: str, *, url: "str | None" = None, connection=None, sql=False) -> None:
    """Take the gate down to `revision` (base: nothing of it is left)."""
    from alembic import command

    with _gate_environment(files_root()):
        command.downgrade(config(url, connection), revision, sql=sql)


def current(url: "str | None" = None) -> str:
    """The gate's revision in the database ("" where it is not deployed)."""
    from alembic import command

    out = io.StringIO()
    with _gate_environment(files_root()):
        command.current(config(url, stdout=out))
    return out.getvalue().strip()


def history() -> str:
    from alembic import command

    out = io.StringIO()
    with _gate_environment(files_root()):
        command.history(config(stdout=out))
    return out.getvalue().rstrip()


# What a first deployment needs of the server and the role, checked before anything runs.
PREFLIGHT = """
SELECT current_user::text,
       pg_catalog.current_database()::text,
       pg_catalog.current_setting('server_version_num')::int / 10000,
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
       (SELECT rolcreaterole FROM pg_catalog.pg_roles WHERE rolname = current_user),
       pg_catalog.has_database_privilege(current_database(), 'CREATE'),
       pg_catalog.has_schema_privilege('public', 'CREATE'),
       EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'embedding_loader'),
       pg_catalog.to_regclass('embedding_gate._deployment') IS NOT NULL,
       (SELECT pg_catalog.array_agg(DISTINCT e.name || ':' || (e.installed_version IS NOT NULL
                                     OR (v.trusted AND has_database_privilege(
                                         current_database(), 'CREATE')))::text)
        FROM pg_catalog.pg_available_extensions AS e
        JOIN pg_catalog.pg_available_extension_versions AS v
          ON v.name = e.name AND v.version = e.default_version
        WHERE e.name IN ('vector', 'plpython3u')),
       coalesce((SELECT lanpltrusted FROM pg_catalog.pg_language WHERE lanname = 'plpython3u'),
                false),
       EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'plpython3u')
"""


def preflight(url: str, engine: str = "auto") -> "str | None":
    """What is missing for a first `upgrade`, in one line with what to run (None: nothing).
    engine: plpython, sql or auto (plpython where this role can use plpython3u, as
    migrations/env.py chooses)."""
    conn = psycopg2.connect(url, client_encoding="utf8", application_name="embedding-gate")
    try:
        with conn.cursor() as cur:
            cur.execute(PREFLIGHT)
            (user, db, major, superuser, createrole, create_db, create_public, loader_role,
             deployed, extensions, trusted, plpython_there) = cur.fetchone()  # fmt: skip
    finally:
        conn.close()
    if deployed:
        return None
    available = dict(e.split(":") for e in extensions or [])
    if "vector" not in available:
        return (
            'pgvector is not installed on this PostgreSQL server (extension "vector" is not'
            f" available): install it on the database server (Debian: apt-get install"
            f" postgresql-{major}-pgvector; elsewhere https://github.com/pgvector/pgvector,"
            " make && make install), then run `embedding-gate db upgrade` again"
        )
    # as migrations/env.py chooses: plpython3u in the database already, or creatable here
    usable = "plpython3u" in available and (plpython_there or superuser)
    chose = engine == "auto"
    if chose:
        engine = "plpython" if usable else "sql"
    if engine == "sql":
        # the SQL engine needs pgvector (a provider creates it) and the rights below
        if available["vector"] != "true" and not superuser:
            return (
                f"role {user} may not create the extension vector in database {db}: have"
                " a superuser (a managed service's admin role) run `CREATE EXTENSION vector;`"
                " in it, then run `embedding-gate db upgrade` again"
                + (
                    " (plpython3u cannot be created by this role: the gate deploys its SQL"
                    " engine, see docs/deploy.md; or create plpython3u too for PL/Python)"
                    if chose
                    else ""
                )
            )
        return _rights(user, db, createrole, create_db, create_public, loader_role)
    if "plpython3u" not in available:
        return (
            'PL/Python is not installed on this PostgreSQL server (extension "plpython3u" is'
            f" not available): install it on the database server (Debian: apt-get install"
            f" postgresql-plpython3-{major} python3-numpy), then run `embedding-gate db"
            " upgrade` again"
        )
    if superuser:
        return None
    # not there yet, and this role may not create it (untrusted, or no CREATE on the database)
    missing = [e for e in ("vector", "plpython3u") if available[e] != "true"]
    if missing:
        creates = "; ".join(f"CREATE EXTENSION {e}" for e in missing)
        return (
            f"role {user} may not create the extension{'s' if len(missing) > 1 else ''}"
            f" {' and '.join(missing)} in database {db}: have a superuser run `{creates};` in"
            f" it, or run `embedding-gate db upgrade` as a superuser (DB_USER=postgres)"
        )
    if not trusted:
        # plpython3u is untrusted: only a superuser creates functions in it
        return (
            f"role {user} is not a superuser, and the gate's functions are written in PL/Python"
            " (plpython3u, an untrusted language) in which only a superuser may create"
            " functions: run `embedding-gate db upgrade` as a superuser (DB_USER=postgres),"
            " or deploy the SQL engine (--engine sql, docs/deploy.md)"
        )
    return _rights(user, db, createrole, create_db, create_public, loader_role)


def _rights(user, db, createrole, create_db, create_public, loader_role) -> "str | None":
    if not create_db:
        return (
            f"role {user} may not create a schema in database {db}: have a superuser run"
            f" `GRANT CREATE ON DATABASE {db} TO {user};`"
        )
    if not create_public:
        return (
            f"role {user} may not create tables in schema public: have a superuser run"
            f" `GRANT CREATE ON SCHEMA public TO {user};`"
        )
    if not loader_role and not createrole:
        return (
            f"role embedding_loader does not exist and {user} may not create roles: have a"
            " superuser run `CREATE ROLE embedding_loader NOLOGIN;`"
        )
    return None


def engine_note(url: str) -> "str | None":
    """What to know of the engine a deployment runs where it is not PL/Python (the SQL
    engine, chosen where this role could not create plpython3u): None for PL/Python."""
    conn = psycopg2.connect(url, client_encoding="utf8", application_name="embedding-gate")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_catalog.to_regclass('embedding_gate.engine') IS NOT NULL")
            if not cur.fetchone()[0]:
                return None
            cur.execute("SELECT engine, description FROM embedding_gate.engine")
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None or row[0] == "plpython":
        return None
    return f'engine: {row[0]}, {row[1]} (docs/deploy.md, "Managed PostgreSQL")'


def one_line(message: str) -> str:
    """A server's message with its DETAIL and HINT, on one line."""
    return "; ".join(
        " ".join(line.split()) for line in message.strip().splitlines() if line.strip()
    )


def cmd_db(args) -> int:
    from alembic.util import CommandError

    url = args.database_url
    try:
        if args.db_command == "upgrade":
            if not args.sql:
                problem = preflight(url, args.engine)
                if problem:
                    print(f"error: {problem}", file=sys.stderr)
                    return 1
            upgrade(
                args.revision,
                url=url,
                embedding_dim=args.embedding_dim,
                sql=args.sql,
                engine=args.engine,
            )
            if not args.sql:
                print(f"embedding gate: {current(url) or 'not deployed'}")
                if note := engine_note(url):
                    print(note)
        elif args.db_command == "downgrade":
            downgrade(args.revision, url=url, sql=args.sql)
            if not args.sql:
                print(f"embedding gate: {current(url) or 'not deployed (base)'}")
        elif args.db_command == "current":
            print(current(url) or "not deployed (no revision of the embedding gate here)")
        else:
            print(history())
    except CommandError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except psycopg2.Error as e:
        print(f"error: {one_line(e.pgerror or str(e))}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub) -> None:
    """`embedding-gate db ...` (hooked into loader/cli.py)."""
    db = sub.add_parser(
        "db", help="deploy, upgrade or remove the gate in the database (alembic, from the package)"
    )
    dbs = db.add_subparsers(dest="db_command", required=True)
    up = dbs.add_parser("upgrade", help="bring the gate to REVISION (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    up.add_argument(
        "--embedding-dim",
        type=int,
        default=None,
        metavar="N",
        help="the embedding column's dimension, chosen at the first upgrade (default"
        " EMBEDDING_DIM, else 768)",
    )
    up.add_argument(
        "--engine",
        choices=("auto", "plpython", "sql"),
        default="auto",
        help="the checks' engine, chosen at the first upgrade: plpython (PL/Python with"
        " numpy), sql (set-based SQL over pgvector, for managed services where plpython3u"
        " cannot be created; some functions not yet: docs/deploy.md), or auto (default:"
        " plpython where this role can use plpython3u, else sql; with --sql, plpython)",
    )
    down = dbs.add_parser("downgrade", help="take the gate down to REVISION (base: remove it)")
    down.add_argument("revision")
    for p in (up, down):
        p.add_argument(
            "--sql", action="store_true", help="print the SQL script instead of running it"
        )
    dbs.add_parser("current", help="the gate's revision in the database")
    dbs.add_parser("history", help="the gate's revisions")
    db.set_defaults(func=cmd_db)
