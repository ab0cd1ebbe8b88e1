"""Alembic environment: connects from DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/
DB_PASSWORD and turns database errors into one readable line instead of a traceback."""

import os

import psycopg2
from alembic import context
from alembic.util import CommandError
from sqlalchemy import URL, create_engine, exc, make_url, pool


def database_url() -> URL:
    # set by programs that drive alembic themselves (the tests, the loader's CLI)
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL")
    if url:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1))
        # a plain postgresql:// URL means the project's driver, psycopg2
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return parsed
    return URL.create(
        "postgresql+psycopg2",
        username=os.environ.get("DB_USER", "postgres"),
        password=os.environ.get("DB_PASSWORD") or None,
        host=os.environ.get("DB_HOST", "localhost"),
        port=int(os.environ.get("DB_PORT", "5432")),
        database=os.environ.get("DB_NAME", "postgres"),
    )


def run_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    # UTF8 on the wire whatever the database's encoding, so its errors can be read
    engine = create_engine(
        database_url(), poolclass=pool.NullPool, connect_args={"client_encoding": "utf8"}
    )
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=True)
            with context.begin_transaction():
                context.run_migrations()
    except (exc.DBAPIError, psycopg2.Error) as e:
        # the server's own words (message, DETAIL, HINT) are the clearest explanation
        error = getattr(e, "orig", e)
        raise CommandError((getattr(error, "pgerror", None) or str(error)).strip()) from e
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
