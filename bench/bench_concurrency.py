"""Concurrent writers with and without the gate (issue 30), printed as ratios measured in one
run against the same workload on the same table never attached.

The workload is tests/test_concurrency.py's, without its chunk writers (chunks always has
the gate): --writers connections upsert overlapping ids of a langchain-postgres-shaped table
(INSERT ... ON CONFLICT (id) DO UPDATE, ids sorted, 25 rows a statement, 30% zero vectors,
an occasional single-row DELETE), --statements each. Each design runs --repeat times, in
rounds that run every design once, on a new table each time:

  - no gate: the table never attached (the baseline);
  - gate: attached with a content column (every check, duplicate_vector too);
  - gate + recheck: the same while CALL recheck_embeddings(), check_existing and the reports
    loop on other connections;

at READ COMMITTED and at SERIALIZABLE (the writers; the background runs at READ COMMITTED).
It prints per design the errors other than serialization failures (which must be 0), the
serialization failures (40001, and 40P01 at SERIALIZABLE) per 100 statements tried, and the
writers' throughput (statements committed a second) as a ratio to the no-gate run of the
same round: median (lowest-highest).

    runuser -u postgres -- .venv/bin/python bench/bench_concurrency.py
    python bench/bench_concurrency.py --url postgresql://... --repeat 5
"""

import argparse
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.cluster import throwaway_database  # noqa: E402
from tests.test_concurrency import Workload, create_table  # noqa: E402

DESIGNS = {
    "no gate": {"attach": False, "recheck": False},
    "gate": {"attach": True, "recheck": False},
    # (no duplicate_vector: its probe of the hash index is the gate's main read)
    "gate, no content": {"attach": True, "recheck": False, "content": False},
    "gate + recheck": {"attach": True, "recheck": True},
}
LEVELS = ("read committed", "serializable")


def run_once(url: str, design: str, isolation: str, seed: int, n: int, args) -> dict:
    table = f"bench_items_{n}"
    options = DESIGNS[design]
    with psycopg.connect(url, autocommit=True) as db:
        create_table(db, table, attach=options["attach"], content=options.get("content", True))
    outcome = Workload(
        url,
        seed,
        table=table,
        attached=options["attach"],
        writers=args.writers,
        chunk_writers=0,
        statements=args.statements,
        isolation=isolation,
        background_isolation="read committed",
        recheck=options["recheck"],
        reports=options["recheck"],
    ).run()
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"DROP TABLE {table}")
    tried = outcome.committed + outcome.serialization_failures + sum(outcome.errors.values())
    return {
        "errors": sum(outcome.errors.values()),
        "error_lines": outcome.error_lines(),
        "failures": outcome.serialization_failures,
        "tried": tried,
        "throughput": outcome.committed / outcome.writer_seconds,
        "kinds": outcome.failure_kinds,
    }


def spread(values: list) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing database at head (default: a throwaway one)")
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--statements", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, throwaway_database(args.url, Path(tmp)) as url:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("INSERT INTO documents (doc_id) VALUES ('d1') ON CONFLICT DO NOTHING")
        results: dict = {(d, level): [] for d in DESIGNS for level in LEVELS}
        n = 0
        for r in range(args.repeat):
            for level in LEVELS:
                # each round in another order: the machine's speed drifts between runs
                order = list(DESIGNS) if r % 2 == 0 else list(reversed(DESIGNS))
                for design in order:
                    n += 1
                    results[(design, level)].append(run_once(url, design, level, r + 1, n, args))
        print(
            f"{args.writers} writers x {args.statements} upserts (25 rows, 30% zero vectors),"
            f" {args.repeat} rounds"
        )
        print(
            f"{'isolation':<15} {'design':<17} {'errors':>6} {'serialization failures':>24}"
            f" {'per 100 tried':>14} {'throughput vs no gate':>24}"
        )
        for level in LEVELS:
            base = [x["throughput"] for x in results[("no gate", level)]]
            for design in DESIGNS:
                runs = results[(design, level)]
                failures = sum(x["failures"] for x in runs)
                tried = sum(x["tried"] for x in runs)
                ratios = [x["throughput"] / b for x, b in zip(runs, base, strict=True)]
                print(
                    f"{level:<15} {design:<17} {sum(x['errors'] for x in runs):>6}"
                    f" {failures:>24} {100 * failures / tried:>14.1f} {spread(ratios):>24}"
                )
            print(f"{'':<15} (no gate: {spread(base)} statements a second)")
        print("serialization failures by message, per design (all rounds):")
        for (design, level), runs in results.items():
            kinds = sum((x["kinds"] for x in runs), Counter())
            for message, count in kinds.most_common():
                print(f"  {level}, {design}: {count} x {message}")
        for (design, level), runs in results.items():
            for x in runs:
                for line in x["error_lines"]:
                    print(f"  {level}, {design}: {line}")


if __name__ == "__main__":
    main()
