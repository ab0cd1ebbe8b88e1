"""Alembic environment: connects from DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/
DB_PASSWORD (or runs on a connection handed over in config.attributes["connection"], for
an application's own migrations: see loader/deploy.py), runs the revisions, then (on an
upgrade to head) brings the functions, triggers and views up to sql/idempotent/, and turns
database errors into one readable line instead of a traceback.

The gate's revision lives in a version table of its own, public.embedding_gate_alembic_version,
never in public.alembic_version, which belongs to the application's alembic history if the
database has one. A database deployed with 0.1 (the gate's revision in public.alembic_version)
has that row moved to the gate's table by the first run; any other row stays untouched.

The engine of the checks (issue 25) is chosen before any revision runs: `-x engine=plpython`
or `-x engine=sql`, else auto: PL/Python where plpython3u is in the database already or this
role may create it (a superuser on a server that has it), the SQL engine elsewhere (a
managed service's owner role). A database where the gate is deployed keeps its engine
(embedding_gate._deployment.engine; older deployments run PL/Python), and refuses another
one asked for. The --sql script cannot ask the database: auto means plpython there."""

import os

import psycopg2
from alembic import context
from alembic.util import CommandError
from sqlalchemy import URL, create_engine, exc, make_url, pool

from migrations.sources import (
    ENGINES,
    VERSION_TABLE,
    VERSION_TABLE_SCHEMA,
    sync_statements,
    x_arg,
)

VERSIONS = {"version_table": VERSION_TABLE, "version_table_schema": VERSION_TABLE_SCHEMA}
QUALIFIED = f"{VERSION_TABLE_SCHEMA}.{VERSION_TABLE}"
# The deployment's statements name every object with its schema; they run with search_path
# pinned, as the gate's functions do, so that nothing another role put in public (a
# look-alike function or operator) is picked up by the deploying role (a superuser).
PINNED = "pg_catalog, pg_temp"


def database_url() -> URL:
    # set by programs that drive alembic themselves (the tests), else the environment
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if not url:
        env = os.environ.get
        return URL.create(
            "postgresql+psycopg2",
            username=env("DB_USER", "postgres"),
            password=env("DB_PASSWORD") or None,
            host=env("DB_HOST", "localhost"),
            port=int(env("DB_PORT", "5432")),
            database=env("DB_NAME", "postgres"),
        )
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    # a plain postgresql:// URL means the project's driver, psycopg2
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def upgrading_to_head() -> bool:
    """`alembic upgrade head` (or to the head's id): not downgrade, stamp or current."""
    try:
        destination = context.get_revision_argument()
    except KeyError:  # current, check: no destination
        return False
    heads = context.script.get_heads()
    wanted = destination if isinstance(destination, tuple) else (destination,)
    return bool(heads) and set(wanted) == set(heads)


def move_from_shared_table() -> str:
    """SQL that moves the gate's row out of public.alembic_version (0.1's layout) into the
    gate's own table: only where the gate is deployed, its own table does not exist yet, and
    the row is one of the gate's revisions. Other rows stay; the table is dropped only if
    nothing is left in it (the gate created it then). Runs where there is nothing to move
    without a trace, and in the --sql script too."""
    ids = ", ".join(f"'{r.revision}'" for r in context.script.walk_revisions())
    return f"""DO $move$
BEGIN
    IF pg_catalog.to_regclass('public.alembic_version') IS NOT NULL
        AND pg_catalog.to_regclass('{QUALIFIED}') IS NULL
        AND pg_catalog.to_regclass('embedding_gate._deployment') IS NOT NULL THEN
        IF EXISTS (SELECT FROM public.alembic_version WHERE version_num IN ({ids})) THEN
            CREATE TABLE {QUALIFIED} (
                version_num varchar(32) NOT NULL,
                CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num));
            INSERT INTO {QUALIFIED} (version_num)
                SELECT version_num FROM public.alembic_version WHERE version_num IN ({ids});
            DELETE FROM public.alembic_version WHERE version_num IN ({ids});
            IF NOT EXISTS (SELECT FROM public.alembic_version) THEN
                DROP TABLE public.alembic_version;
            END IF;
        END IF;
    END IF;
END
$move$;
"""


# after `downgrade base` the gate's version table is empty: it goes too (base leaves nothing)
DROP_IF_EMPTY = f"""DO $drop$
BEGIN
    IF pg_catalog.to_regclass('{QUALIFIED}') IS NOT NULL
        AND NOT EXISTS (SELECT FROM {QUALIFIED}) THEN
        DROP TABLE {QUALIFIED};
    END IF;
END
$drop$;
"""


def requested_engine() -> str:
    wanted = x_arg("engine", "auto")
    if wanted not in ENGINES + ("auto",):
        raise CommandError(f"engine must be auto, plpython or sql, got {wanted!r}")
    return wanted


# what decides the engine: deployed, the engine recorded, plpython3u there, available, the
# role a superuser (the language trusted: not used)
ENGINE_STATE = """
SELECT pg_catalog.to_regclass('embedding_gate._deployment') IS NOT NULL,
       EXISTS (SELECT FROM pg_catalog.pg_attribute
               WHERE attrelid = pg_catalog.to_regclass('embedding_gate._deployment')
                 AND attname = 'engine' AND NOT attisdropped),
       EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'plpython3u'),
       EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'plpython3u'),
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
       COALESCE((SELECT lanpltrusted FROM pg_catalog.pg_language
                 WHERE lanname = 'plpython3u'), false)
"""


def choose_engine(connection) -> str:
    """The engine of this run (see the module's docstring), recorded in the configuration
    for the revisions (migrations.sources.engine()) and the sync."""
    wanted = requested_engine()
    with connection.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(ENGINE_STATE)
        deployed, recorded, there, available, superuser, trusted = cursor.fetchone()
        if deployed and recorded:
            cursor.execute("SELECT engine FROM embedding_gate._deployment")
            row = cursor.fetchone()
            chosen = row[0] if row else "plpython"
        elif deployed:
            # before revision 0009 only PL/Python deployed, unless a SQL-engine deployment
            # was taken down below 0009: it has no plpython3u
            chosen = "plpython" if there else "sql"
        elif wanted != "auto":
            chosen = wanted
        elif there or (available and superuser):
            chosen = "plpython"
        else:
            chosen = "sql"
    if deployed and wanted not in ("auto", chosen):
        raise CommandError(
            f"the embedding gate is deployed here with the {chosen} engine, not {wanted}:"
            " switching a deployment's engine is not supported yet (issue 25); run the"
            f" upgrade without an engine, or with engine={chosen}"
        )
    context.config.attributes["embedding_gate_engine"] = chosen
    return chosen


def same_engine(engine: str) -> str:
    """For the --sql script, which cannot ask the database first: a DO block that stops
    the script where the gate is deployed with another engine than the script's."""
    return f"""DO $engine$
BEGIN
    -- (nested: the inner statements are planned only where the column exists)
    IF EXISTS (SELECT FROM pg_catalog.pg_attribute
               WHERE attrelid = pg_catalog.to_regclass('embedding_gate._deployment')
                 AND attname = 'engine' AND NOT attisdropped) THEN
        IF (SELECT d.engine FROM embedding_gate._deployment AS d) <> '{engine}' THEN
            RAISE EXCEPTION 'the embedding gate is deployed here with the % engine; this'
                            ' script is for the {engine} engine',
                (SELECT d.engine FROM embedding_gate._deployment AS d)
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'print the script with --engine set to the deployed engine';
        END IF;
    END IF;
END
$engine$;
"""


def downgrading_to_base() -> bool:
    try:
        destination = context.get_revision_argument()
    except KeyError:
        return False
    return destination in ("base", None, ()) and bool(steps_down)


def run_offline() -> None:
    context.configure(
        url=database_url(),
        literal_binds=True,
        transaction_per_migration=True,
        on_version_apply=note_step,
        **VERSIONS,
    )
    wanted = requested_engine()
    engine = "plpython" if wanted == "auto" else wanted
    context.config.attributes["embedding_gate_engine"] = engine
    output = context.get_context().impl.static_output
    output(f"SET search_path = {PINNED};\n")
    output(same_engine(engine))
    output(move_from_shared_table())
    with context.begin_transaction():
        context.run_migrations()
    if downgrading_to_base():
        output(DROP_IF_EMPTY)
    if upgrading_to_head() and not steps_down:
        # the script cannot know what a database holds: it re-applies every file
        output = context.get_context().impl.static_output
        output("BEGIN;\n")
        for sql in sync_statements({}, engine):
            output(sql)
        output("COMMIT;\n")


def run_online() -> None:
    shared = context.config.attributes.get("connection")
    try:
        if shared is not None:
            # an application's migration hands over its connection: its transaction
            run_on(shared, commit=False)
            return
        # UTF8 on the wire whatever the database's encoding, so its errors can be read
        engine = create_engine(
            database_url(), poolclass=pool.NullPool, connect_args={"client_encoding": "utf8"}
        )
        try:
            with engine.connect() as connection:
                run_on(connection, commit=True)
        finally:
            engine.dispose()
    except (exc.DBAPIError, psycopg2.Error) as e:
        # the server's own words (message, DETAIL, HINT) are the clearest explanation
        error = getattr(e, "orig", e)
        raise CommandError((getattr(error, "pgerror", None) or str(error)).strip()) from e


def run_on(connection, commit: bool) -> None:
    if not commit:
        # an application's transaction: pinned for the gate's part, then as it was
        with connection.connection.dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT pg_catalog.current_setting('search_path')")
            kept = cursor.fetchone()[0]
        raw_execute(connection, f"SELECT pg_catalog.set_config('search_path', '{PINNED}', true)")
        try:
            run_pinned(connection, commit)
        finally:
            with connection.connection.dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT pg_catalog.set_config('search_path', %s, true)", [kept])
        return
    raw_execute(connection, f"SET search_path = {PINNED}")
    run_pinned(connection, commit)


def run_pinned(connection, commit: bool) -> None:
    raw_execute(connection, move_from_shared_table())
    engine = choose_engine(connection)
    if commit:
        connection.connection.dbapi_connection.commit()
    context.configure(
        connection=connection,
        transaction_per_migration=True,
        on_version_apply=note_step,
        **VERSIONS,
    )
    with context.begin_transaction():
        context.run_migrations()
    if commit:
        connection.commit()
    if steps_down:
        raw_execute(connection, DROP_IF_EMPTY)
        if commit:
            connection.connection.dbapi_connection.commit()
    if upgrading_to_head() and not steps_down:
        sync_online(connection, commit, engine)


def raw_execute(connection, sql: str) -> None:
    """SQL as written, on the driver's cursor (see sources.execute)."""
    with connection.connection.dbapi_connection.cursor() as cursor:
        cursor.execute(sql)


# revisions applied downwards (or stamped) in this run: then nothing is re-applied
steps_down: list = []


def note_step(*, step, **_) -> None:
    if not step.is_upgrade or getattr(step, "is_stamp", False):
        steps_down.append(step)


def sync_online(connection, commit: bool, engine: str) -> None:
    """Re-apply, in one transaction, the idempotent files whose text changed."""
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT name, sha256 FROM embedding_gate._sources")
        applied = dict(cursor.fetchall())
        for sql in sync_statements(applied, engine):
            cursor.execute(sql)
    if commit:
        raw.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
