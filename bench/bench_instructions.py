"""What the gate costs per row in CPU instructions, counted by valgrind: the same count on
every run, where this machine's wall time is not (the same 10,000-row COPY took 0.95 s or
1.46 s, rounds apart; `make bench` reports time as the median of paired rounds).

Each design COPYs N rows, and in a second session 2N rows, in a single-user backend
(postgres --single) under cachegrind, each after a 10-row COPY that loads the PL/Python
module; (I(2N) - I(N)) / N is what one row costs the server: parsing, storing, indexing and
the trigger. Not counted: the kernel (writes, temp files) and cache misses, which time
includes. The designs are those of bench_gate.py: the same table without and with its gate's
triggers (six checks), by binary COPY (the baseline) and by text COPY.

    make bench-instructions                     # a throwaway PostgreSQL, N = 2,000
"""

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import psycopg2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import data  # noqa: E402
from bench.bench_gate import NOTES, D, prepare  # noqa: E402
from bench.cluster import BINDIR, throwaway_database  # noqa: E402

# design -> (database, whether the user triggers run)
DESIGNS = {
    "ungated": ("postgres", False),
    "gate": ("postgres", True),
    "ungated text": ("postgres", False),
    "gate text": ("postgres", True),
}


def setup(url: str) -> None:
    """As bench_gate.py: blank_like on for every row."""
    conn = psycopg2.connect(url)
    prepare(conn)
    conn.close()


def instructions(datadir: Path, database: str, triggers: bool, files: list, form: str) -> int:
    """Instructions a single-user backend executes to COPY `files` in turn."""
    script = f"ALTER TABLE chunks {'ENABLE' if triggers else 'DISABLE'} TRIGGER USER;\n"
    script += "TRUNCATE chunks;\n"
    for f in files:
        script += f"COPY chunks ({data.COLUMNS}) FROM '{f}' WITH (FORMAT {form});\n"
    run = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            BINDIR / "postgres",
            "--single",
            "-D",
            datadir,
            "-c",
            "fsync=off",
            "-c",
            "autovacuum=off",
            database,
        ],
        input=script,
        capture_output=True,
        text=True,
        check=True,
    )
    if "ERROR" in run.stdout or "ERROR" in run.stderr:
        raise RuntimeError(f"{database}: the COPY failed:\n{run.stdout}{run.stderr}")
    found = re.search(r"I\s+refs:\s+([\d,]+)", run.stderr)
    if not found:
        raise RuntimeError(f"no instruction count from valgrind:\n{run.stderr}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    try:
        subprocess.run(["valgrind", "--version"], check=True, capture_output=True)
    except FileNotFoundError:
        sys.exit("bench_instructions: needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with throwaway_database(None, tmp) as url:
            setup(url)
        # the cluster is stopped: single-user backends may open its data directory
        n = args.rows
        x = data.vectors(0, 2 * n, D, np.random.default_rng(1))
        files = {}
        for form, write in (("binary", data.binary), ("text", data.text)):
            files[form] = [tmp / f"{name}.{form}" for name in ("warm", "small", "large")]
            # the warm-up COPY loads the PL/Python package; its chunk_ids are others
            files[form][0].write_bytes(write(10**8, x[:10]))
            files[form][1].write_bytes(write(0, x[:n]))
            files[form][2].write_bytes(write(0, x))
        per_row = {}
        for design, (database, triggers) in DESIGNS.items():
            form = "text" if design.endswith(" text") else "binary"
            warm, small, large = files[form]
            once = instructions(tmp / "data", database, triggers, [warm, small], form)
            twice = instructions(tmp / "data", database, triggers, [warm, large], form)
            per_row[design] = (twice - once) / n
            print(f"  {design:10s} {once:,} and {twice:,} instructions", flush=True)
    print(f"{'design':12s} {'instructions/row':>16s}  vs ungated binary COPY")
    for design, cost in per_row.items():
        ratio = per_row["ungated"] / cost
        print(f"{design:12s} {cost:16,.0f}  {ratio:9.3f}x  ({NOTES[design]})")
    print(f"text COPY, gate vs no gate: {per_row['ungated text'] / per_row['gate text']:.3f}x")


if __name__ == "__main__":
    main()
