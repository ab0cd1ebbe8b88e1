"""The package deploys the gate by itself: a wheel built with `pip wheel .`, installed in an
empty virtual environment, runs `embedding-gate db upgrade` / `db downgrade base` from an
empty directory; and `embedding-gate db upgrade` refuses, in one line, what it cannot do.

The virtual environment is kept between runs (in the temporary directory, keyed by nothing
but its path): a later run reinstalls only the freshly built wheel, without its
dependencies."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tests.helpers import ROOT, alembic, catalog

# what the wheel is built from: the files pyproject.toml names, nothing else of the checkout
SOURCES = ("pyproject.toml", "README.md", "MANIFEST.in", "embedding_server.py")
FOLDERS = ("loader", "migrations", "sql", "plpython")
KEPT = Path(tempfile.gettempdir()) / f"embedding-gate-wheel-{os.getuid()}"
HEAD = ScriptDirectory(str(ROOT / "migrations")).get_current_head()


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel .` of a copy of the sources (the checkout may not be writable)."""
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        shutil.copy(ROOT / name, src / name)
    for name in FOLDERS:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    built = run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
        "-w", str(dist), str(src),
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (found,) = dist.glob("embedding_gate-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel) -> Path:
    """An empty virtual environment with the wheel installed: its bin/ directory."""
    venv = KEPT / "venv"
    if not (venv / "bin" / "python").exists():
        shutil.rmtree(venv, ignore_errors=True)
        made = run("/usr/bin/python3", "-m", "venv", str(venv))
        assert made.returncode == 0, made.stderr
    marker = venv / ".dependencies"
    requires = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    if marker.exists() and marker.read_text() == requires:
        # the dependencies are there from an earlier run: the new wheel only
        done = run(*pip, "--force-reinstall", "--no-deps", str(wheel))
    else:
        done = run(*pip, "--force-reinstall", str(wheel))
        marker.write_text(requires)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def test_the_wheel_carries_everything_a_deployment_needs(wheel):
    """The revisions, the alembic environment, sql/ and the PL/Python package, every file."""
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        *ROOT.glob("migrations/*.py"),
        ROOT / "migrations/script.py.mako",
        *ROOT.glob("migrations/versions/*.py"),
        *ROOT.glob("sql/*/*.sql"),
        *ROOT.glob("plpython/embedding_gate/*.py"),
    ]
    assert len(needed) > 40
    missing = [
        str(p.relative_to(ROOT))
        for p in needed
        if f"loader/deployment/{p.relative_to(ROOT)}" not in names
    ]
    assert missing == []
    assert "loader/deploy.py" in names
    # nothing of the checkout lands as a top-level package (no `migrations` in site-packages)
    assert not any(n.startswith(("migrations/", "sql/", "plpython/", "tests/")) for n in names)


def clean_env(**extra: str) -> dict:
    """The environment of a user's shell: no PYTHONPATH into the checkout, no DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
    return {**env, **extra}


def test_the_installed_package_deploys_and_removes_the_gate_from_an_empty_directory(
    installed, empty_db, other_empty_db, tmp_path
):
    """`embedding-gate db upgrade --embedding-dim 384` from an empty directory gives the
    catalog that `alembic upgrade head` in the checkout gives; current, history and --sql
    answer; `db downgrade base` leaves the database as it was."""
    empty = tmp_path / "empty"
    empty.mkdir()
    gate = str(installed / "embedding-gate")
    env = clean_env(DATABASE_URL=empty_db)
    where = run(
        str(installed / "python"), "-c", "import loader.deploy as d; print(d.files_root())",
        cwd=empty, env=env,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(KEPT)), where.stdout + where.stderr

    up = run(gate, "db", "upgrade", "--embedding-dim", "384", cwd=empty, env=env)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"embedding gate: {HEAD} (head)"
    alembic(other_empty_db, "upgrade", "head", embedding_dim=384)
    assert catalog(empty_db) == catalog(other_empty_db)

    # the DB_* variables, as alembic reads them
    info = psycopg.conninfo.conninfo_to_dict(empty_db)
    db_vars = {
        "DB_HOST": info["host"],
        "DB_PORT": str(info["port"]),
        "DB_NAME": info["dbname"],
        "DB_USER": info["user"],
    }
    current = run(gate, "db", "current", cwd=empty, env=clean_env(**db_vars))
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == f"{HEAD} (head)"
    history = run(gate, "db", "history", cwd=empty, env=env)
    assert "<base> -> 0001, Baseline of release 0.1.0" in history.stdout
    script = run(gate, "db", "upgrade", "--sql", cwd=empty, env=env)
    assert script.returncode == 0, script.stderr
    assert "CREATE TABLE public.chunks" in script.stdout
    assert "CREATE TABLE public.embedding_gate_alembic_version" in script.stdout

    down = run(gate, "db", "downgrade", "base", cwd=empty, env=env)
    assert down.returncode == 0, down.stderr
    assert catalog(empty_db) == ["extension plpgsql in pg_catalog"]
    assert list(empty.iterdir()) == []  # it wrote nothing where it ran


# --- what `embedding-gate db upgrade` refuses, before it changes anything ---


def db_upgrade(url: str, *options: str) -> subprocess.CompletedProcess:
    return run(
        sys.executable, "-m", "loader", "db", "upgrade", *options, cwd=ROOT,
        env=clean_env(DATABASE_URL=url),
    )  # fmt: skip


def nothing_deployed(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT to_regnamespace('embedding_gate') IS NULL"
            " AND to_regclass('public.embedding_gate_alembic_version') IS NULL"
            " AND to_regclass('public.chunks') IS NULL"
        ).fetchone() == (True,)


def test_db_upgrade_without_pgvector_says_what_to_install_in_one_line(server_without_pgvector):
    result = db_upgrade(server_without_pgvector)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: pgvector is not installed on this PostgreSQL server")
    with psycopg.connect(server_without_pgvector) as conn:
        major = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
    assert f"apt-get install postgresql-{major[0]}-pgvector" in line
    assert nothing_deployed(server_without_pgvector)


@pytest.fixture
def owner_url(empty_db) -> str:
    """A login role that is not a superuser but may create schemas in the empty database
    (its owner's rights), and the URL of the database as that role."""
    role = "app_owner_" + hashlib.sha256(empty_db.encode()).hexdigest()[:8]
    info = psycopg.conninfo.conninfo_to_dict(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CREATE ON DATABASE {info['dbname']} TO {role}")
        conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
    yield psycopg.conninfo.make_conninfo(empty_db, user=role)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(f"REVOKE ALL ON DATABASE {info['dbname']} FROM {role}")
        conn.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
        conn.execute(f"DROP ROLE {role}")


def test_db_upgrade_by_a_role_that_may_not_create_what_it_needs_says_what_to_run(
    owner_url, empty_db
):
    """Not a superuser: first the extensions a superuser must create (named, with the
    statement: vector alone for the SQL engine that auto would choose, both for
    --engine plpython), then, once they are there, that PL/Python functions need a superuser.
    Exit status 1 and nothing of the gate in the database, each time."""
    role = psycopg.conninfo.conninfo_to_dict(owner_url)["user"]
    first = db_upgrade(owner_url)
    assert first.returncode == 1
    (line,) = first.stderr.splitlines()
    assert line.startswith(f"error: role {role} may not create the extension vector")
    # auto: plpython3u cannot be created by this role, so the SQL engine would deploy
    assert "the gate deploys its SQL engine" in line
    with_plpython = db_upgrade(owner_url, "--engine", "plpython")
    assert with_plpython.returncode == 1
    assert "CREATE EXTENSION vector; CREATE EXTENSION plpython3u" in with_plpython.stderr
    assert nothing_deployed(empty_db)
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
        conn.execute("CREATE EXTENSION plpython3u")
    second = db_upgrade(owner_url)
    assert second.returncode == 1
    (line,) = second.stderr.splitlines()
    assert line.startswith(f"error: role {role} is not a superuser")
    assert "run `embedding-gate db upgrade` as a superuser" in line
    assert nothing_deployed(empty_db)


def test_db_errors_from_the_server_are_one_line(postgresql_proc):
    """A database that is not UTF8: the server's message and its hint, on one line."""
    p = postgresql_proc
    admin = f"postgresql://{p.user}@{p.host}:{p.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "CREATE DATABASE wheel_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C'"
            " TEMPLATE template0"
        )
    try:
        result = db_upgrade(f"postgresql://{p.user}@{p.host}:{p.port}/wheel_ascii")
        assert result.returncode == 1
        (line,) = result.stderr.splitlines()
        assert 'database "wheel_ascii" uses encoding SQL_ASCII' in line
        assert "HINT: create the database with ENCODING 'UTF8'" in line
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE wheel_ascii")
