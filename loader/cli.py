"""embedding-gate: load JSON corpora through an embedding server into PostgreSQL, check the
server, print the quality report. The database checks the embeddings; this only moves them."""

import argparse
import sys
from pathlib import Path

from loader.db import connect, database_url


def cmd_report(args) -> int:
    from loader import report

    conn = connect(args.database_url)
    try:
        print(report.report(conn, limit=args.limit))
        if args.png:
            n = report.write_histogram(conn, Path(args.png))
            print(f"\nwrote {args.png} ({n:,} embeddings)")
    finally:
        conn.close()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="embedding-gate", description=__doc__)
    p.add_argument(
        "--database-url",
        default=None,
        help="libpq URL (default: DATABASE_URL, or DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("report", help="print the quality summary and the low-quality chunks")
    r.add_argument("--limit", type=int, default=10, help="low-quality chunks to show (10)")
    r.add_argument("--png", metavar="FILE", help="also write a histogram of norms and variances")
    r.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.database_url is None:
        args.database_url = database_url()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
