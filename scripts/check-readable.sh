#!/usr/bin/env bash
# As root the tests run as user postgres: the checkout must be readable (and its parents
# traversable) by that user. Say so plainly instead of failing deep inside pytest.
set -euo pipefail
as_user="$1" dir="$2"
[ -n "$as_user" ] || exit 0
if ! $as_user test -r "$dir/pyproject.toml" -a -x "$dir/.venv/bin/python"; then
    echo "make test: as root the tests run as user postgres, which cannot read $dir;" \
         "clone the repository somewhere world-readable (for example under /srv or /tmp)" >&2
    exit 1
fi
