"""Helpers shared by the tests: driving alembic, reading the catalog."""

import argparse
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg
from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def url_for(host: str, port: int, user: str, dbname: str, password: str | None = None) -> str:
    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def alembic(url: str, cmd: str, target: str, **x: object) -> None:
    """Run `alembic -x k=v ... <cmd> <target>` against url, in process."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.cmd_opts = argparse.Namespace(x=[f"{k}={v}" for k, v in x.items()])
    getattr(command, cmd)(cfg, target)


def vec(x) -> str:
    """pgvector's text form."""
    return "[" + ",".join(repr(float(v)) for v in np.asarray(x, dtype=np.float32)) + "]"


def raw(x) -> str:
    """A real[] literal, NaN and Infinity included."""
    return (
        "{"
        + ",".join(str(float(v)).replace("inf", "Infinity").replace("nan", "NaN") for v in x)
        + "}"
    )


# One row per object the deployment owns, in a form that does not depend on OIDs, so two
# installs can be compared: up -> down -> up, online and offline.
CATALOG_SQL = """
WITH ns AS (
    SELECT oid, nspname FROM pg_namespace
    WHERE nspname IN ('public', 'embedding_gate')
)
SELECT 'extension ' || extname || ' in ' || extnamespace::regnamespace FROM pg_extension
UNION ALL
SELECT 'schema ' || nspname || coalesce(' -- ' || obj_description(oid, 'pg_namespace'), '')
FROM ns WHERE nspname <> 'public'
UNION ALL
SELECT 'relation ' || c.relkind::text || ' ' || ns.nspname || '.' || c.relname
       || coalesce(' -- ' || obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'S', 'p') AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'column ' || ns.nspname || '.' || c.relname || '.' || a.attname || ' '
       || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
       || coalesce(' -- ' || col_description(c.oid, a.attnum), '')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'm', 'p')
  AND c.relname <> 'alembic_version'
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace IN (SELECT oid FROM ns) AND conrelid <> 0
  AND conrelid::regclass::text <> 'alembic_version'
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace
WHERE c.relname <> 'alembic_version'
UNION ALL
SELECT 'function ' || pg_get_functiondef(p.oid)
       || coalesce(' -- ' || obj_description(p.oid, 'pg_proc'), '')
       || ' acl ' || coalesce(p.proacl::text, 'default')
FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
WHERE NOT EXISTS (SELECT FROM pg_depend dep WHERE dep.objid = p.oid AND dep.deptype = 'e')
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' || c.oid::regclass || ' ' || pg_get_viewdef(c.oid)
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT 'acl ' || c.oid::regclass || ' ' || coalesce(c.relacl::text, 'default')
FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
WHERE c.relkind IN ('r', 'v', 'm', 'p') AND c.relname <> 'alembic_version'
ORDER BY 1
"""


def catalog(url: str) -> list[str]:
    """What the deployment put in the database, one sorted line per object."""
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(CATALOG_SQL)]
