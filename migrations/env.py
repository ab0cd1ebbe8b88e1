"""Alembic environment: connects from DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/
DB_PASSWORD, runs the revisions, then (on an upgrade to head) brings the functions,
triggers and views up to sql/idempotent/, and turns database errors into one readable
line instead of a traceback."""

import os

import psycopg2
from alembic import context
from alembic.util import CommandError
from sqlalchemy import URL, create_engine, exc, make_url, pool

from migrations.sources import sync_statements


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


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    if upgrading_to_head() and not steps_down:
        # the script cannot know what a database holds: it re-applies every file
        output = context.get_context().impl.static_output
        output("BEGIN;\n")
        for sql in sync_statements({}):
            output(sql)
        output("COMMIT;\n")


def run_online() -> None:
    # UTF8 on the wire whatever the database's encoding, so its errors can be read
    engine = create_engine(
        database_url(), poolclass=pool.NullPool, connect_args={"client_encoding": "utf8"}
    )
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                transaction_per_migration=True,
                on_version_apply=note_step,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
            if upgrading_to_head() and not steps_down:
                sync_online(connection)
    except (exc.DBAPIError, psycopg2.Error) as e:
        # the server's own words (message, DETAIL, HINT) are the clearest explanation
        error = getattr(e, "orig", e)
        raise CommandError((getattr(error, "pgerror", None) or str(error)).strip()) from e
    finally:
        engine.dispose()


# revisions applied downwards (or stamped) in this run: then nothing is re-applied
steps_down: list = []


def note_step(*, step, **_) -> None:
    if not step.is_upgrade or getattr(step, "is_stamp", False):
        steps_down.append(step)


def sync_online(connection) -> None:
    """Re-apply, in one transaction, the idempotent files whose text changed."""
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute("SELECT name, sha256 FROM embedding_gate._sources")
        applied = dict(cursor.fetchall())
        for sql in sync_statements(applied):
            cursor.execute(sql)
    raw.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
