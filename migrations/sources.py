"""What a revision installs: SQL and PL/Python files pinned by their sha256.

A revision names each file it installs with the hash it was released with. While the file
in sql/ or plpython/ still has that hash it is read from there; once the file has moved on,
the released copy lives under migrations/frozen/<revision>/<same path>. Either way a
revision installs exactly what it was released with, so it never changes meaning when
today's code changes.
"""

import hashlib
import re
from pathlib import Path

from alembic import context, op

ROOT = Path(__file__).resolve().parent.parent
FROZEN = Path(__file__).resolve().parent / "frozen"

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class PinMismatch(RuntimeError):
    """A file a revision installs no longer has the hash the revision pins."""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pinned(revision: str, path: str, digest: str) -> str:
    """The text of `path` as revision `revision` released it."""
    found = []
    for candidate in (FROZEN / revision / path, ROOT / path):
        if candidate.is_file():
            text = candidate.read_text(encoding="utf-8")
            if sha256(text) == digest:
                return text
            found.append(f"{candidate.relative_to(ROOT)} has {sha256(text)}")
    raise PinMismatch(
        f"revision {revision} installs {path} with sha256 {digest}, but "
        + ("; ".join(found) or "the file is missing")
        + f". A released revision must not change meaning: keep the released text at "
        f"migrations/frozen/{revision}/{path} (git show <commit>:{path}) and put the change "
        f"in a new revision; if {revision} was never released, update its pin instead."
    )


def render(template: str, **values: object) -> str:
    """Fill `{{name}}` placeholders; every placeholder must have a value."""

    def fill(m: re.Match) -> str:
        if m.group(1) not in values:
            raise KeyError(f"no value for placeholder {{{{{m.group(1)}}}}}")
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(fill, template)


def python_module(source: str) -> dict:
    """Placeholders that embed a PL/Python module in a function body: the source as a raw
    string literal, and a key naming this exact version in PL/Python's GD."""
    for bad, why in (("'''", "a ''' string"), ("$python$", "the text $python$")):
        if bad in source:
            raise ValueError(f"a PL/Python module cannot contain {why}: it is embedded in SQL")
    if source.rstrip("\n").endswith("\\"):
        raise ValueError("a PL/Python module cannot end with a backslash")
    return {"python_source": source, "python_key": "embedding_gate:" + sha256(source)[:16]}


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


# NAME = ("path", "sha256"): a revision's own pin. Pins of other revisions' files end in
# _NNNN (e.g. MODULE_0002, what a downgrade puts back) and are never touched.
_PIN = re.compile(r'^(\w+) = \(\s*"([^"]+)",\s*"([0-9a-f]*)",?\s*\)', re.MULTILINE)
_OTHER_REVISION = re.compile(r"_\d{4}$")


def repin(revision_file: Path) -> list[str]:
    """Update the pins of an UNRELEASED revision to its files' current hashes; returns what
    changed. Never use it on a released revision: freeze the old file instead."""
    text = revision_file.read_text(encoding="utf-8")
    changed = []

    def update(m: re.Match) -> str:
        name, path, digest = m.groups()
        if _OTHER_REVISION.search(name):
            return m.group(0)
        current = sha256((ROOT / path).read_text(encoding="utf-8"))
        if current != digest:
            changed.append(path)
        return f'{name} = (\n    "{path}",\n    "{current}",\n)'  # as ruff formats it

    revision_file.write_text(_PIN.sub(update, text), encoding="utf-8")
    return changed


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "repin":
        sys.exit("usage: python -m migrations.sources repin migrations/versions/NNNN_name.py")
    print("\n".join(repin(Path(sys.argv[2]))) or "pins up to date")
