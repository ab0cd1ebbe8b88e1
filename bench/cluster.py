"""A throwaway PostgreSQL for the benchmarks: initdb in a temporary directory, start on a
free port, deploy with `alembic upgrade head`, stop and delete afterwards.

It runs with fsync=off and autovacuum=off: the benchmarks compare the CPU cost of designs,
and on this machine (50% iowait) a flush, or an autovacuum of the previous run's rows, put
8-10 s into some timed runs of a design and not others (100,000 rows: 15 s or 24 s)."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from port_for import get_port

ROOT = Path(__file__).resolve().parent.parent
# the newest PostgreSQL major installed (15 on Debian 12, 17 on Debian 13), or PG_BINDIR
BINDIR = Path(
    os.environ.get("PG_BINDIR")
    or max(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        default=Path("/usr/lib/postgresql/15/bin"),
    )
)


@contextlib.contextmanager
def throwaway_database(url: "str | None", tmp: Path, embedding_dim: int = 768) -> Iterator[str]:
    if url:
        yield url
        return
    port = get_port(None)
    data = tmp / "data"
    subprocess.run(
        [
            BINDIR / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [
            BINDIR / "pg_ctl",
            "-D",
            data,
            "-l",
            tmp / "log",
            "-w",
            "-o",
            f"-p {port} -k {tmp} -c max_wal_size=4GB -c fsync=off -c autovacuum=off",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        subprocess.run(
            [sys.executable, "-m", "alembic", "-c", ROOT / "alembic.ini"]
            + ["-x", f"embedding_dim={embedding_dim}", "upgrade", "head"],
            check=True,
            env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        )
        yield url
    finally:
        subprocess.run(
            [BINDIR / "pg_ctl", "-D", data, "-m", "fast", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
        )
