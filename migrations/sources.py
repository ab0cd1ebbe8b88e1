"""What the revisions install, and how.

- sql/incremental/NNNN_*.sql: the tables, roles and rights, run once by revision NNNN. A
  released file never changes: its revision pins its sha256 (see DEVELOPMENT.md).
- sql/idempotent/*.sql: the functions, triggers and views, CREATE OR REPLACE. They are not
  history: `alembic upgrade head` applies them from the tree, after the revisions, and
  re-applies only the files whose text (as rendered for this database) changed since.
- plpython/embedding_gate/: the PL/Python package, whose sources go into the body of
  embedding_gate._python_package() (sql/idempotent/002_python_package.sql).
"""

import hashlib
import re
from pathlib import Path

from alembic import context, op

ROOT = Path(__file__).resolve().parent.parent
INCREMENTAL = ROOT / "sql" / "incremental"
IDEMPOTENT = ROOT / "sql" / "idempotent"
PACKAGE = ROOT / "plpython" / "embedding_gate"

# the gate's alembic version table: its own, beside an application's public.alembic_version
VERSION_TABLE = "embedding_gate_alembic_version"
VERSION_TABLE_SCHEMA = "public"

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


def idempotent() -> "list[tuple[str, str]]":
    """Every file of sql/idempotent/, in name order, rendered: (name, SQL)."""
    values = python_package()
    return [(p.name, render(p.read_text(encoding="utf-8"), **values)) for p in _idempotent_files()]


def _idempotent_files() -> list:
    return sorted(IDEMPOTENT.glob("*.sql"))


def sync_statements(applied: dict) -> "list[str]":
    """What brings the functions, triggers and views up to the tree: each idempotent file
    whose rendered text has another sha256 than `applied` (name -> sha256, from
    embedding_gate._sources) records, followed by the record of its new hash."""
    out = []
    for name, sql in idempotent():
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
    for path in reversed(_idempotent_files()):
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


def x_arg(name: str, default: str) -> str:
    """An `alembic -x name=value` option."""
    return context.get_x_argument(as_dictionary=True).get(name, default)
