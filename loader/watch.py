"""`embedding-gate watch`: LISTEN embedding_gate and print one line per statement that stored
flagged embeddings; past a flagged share, page someone (run a command, or exit non-zero)."""

import json
import select
import subprocess
import sys
from datetime import datetime, timezone

import psycopg2
import psycopg2.extensions

from loader.db import connect
from loader.report import printable

CHANNEL = "embedding_gate"
# the exit status when a statement passes --max-flagged-share and no --exec is given
PASSED = 3


def describe(event: dict) -> str:
    """One line for an event, every value from the data made printable."""
    issues = ", ".join(f"{printable(k)} {v}" for k, v in (event.get("issues") or {}).items())
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} {printable(event.get('table'))}:"
        f" {event.get('flagged', 0):,} of {event.get('checked', 0):,} flagged"
        f" ({100 * float(event.get('flagged_share', 0)):.1f}%, mode {printable(event.get('mode'))})"
        + (f": {issues}" if issues else "")
    )


def watch(
    url: str,
    *,
    max_flagged_share: "float | None" = None,
    command: "str | None" = None,
    events: "int | None" = None,
    out=sys.stdout,
) -> int:
    """Print each event; with max_flagged_share, run `command` (the event on its stdin)
    when a statement passes it, or return PASSED. Returns 0 after `events` events."""
    conn = connect(url)
    conn.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    seen = 0
    try:
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        print(f"listening on {CHANNEL}", file=out, flush=True)
        while events is None or seen < events:
            if select.select([conn], [], [], 60) == ([], [], []):
                continue
            conn.poll()
            while conn.notifies:
                notice = conn.notifies.pop(0)
                seen += 1
                try:
                    event = json.loads(notice.payload)
                except ValueError:
                    event = {"table": notice.payload}
                print(describe(event), file=out, flush=True)
                share = float(event.get("flagged_share", 0))
                if max_flagged_share is not None and share > max_flagged_share:
                    if not command:
                        print(
                            f"flagged share {share:.4f} passed {max_flagged_share:g}",
                            file=sys.stderr,
                        )
                        return PASSED
                    subprocess.run(command, shell=True, input=notice.payload, text=True)
    except KeyboardInterrupt:
        return 0
    finally:
        conn.close()
    return 0
