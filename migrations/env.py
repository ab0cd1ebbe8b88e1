"""Alembic environment: connects from DATABASE_URL or DB_HOST/DB_PORT/DB_NAME/DB_USER/
DB_PASSWORD and turns database errors into one readable line instead of a traceback."""

import psycopg2
from alembic import context
from alembic.util import CommandError
from sqlalchemy import URL, create_engine, exc, make_url, pool

from loader.db import database_url as env_database_url


def database_url() -> URL:
    # set by programs that drive alembic themselves (the tests), else the environment
    url = context.config.get_main_option("sqlalchemy.url") or env_database_url()
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    # a plain postgresql:// URL means the project's driver, psycopg2
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


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
