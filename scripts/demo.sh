#!/usr/bin/env bash
# make demo: the main job end to end on embedded defaults. A PostgreSQL of its own under
# .demo/ (started once, left running for the next run), `alembic upgrade head`, the bundled
# embedding server (all-MiniLM-L6-v2, 384 dimensions), the sample corpus, the report (in the
# terminal, and as .demo/report.html and .demo/quality.png).
# Set EMBED_API_URL to use your own embedding server instead (then set EMBEDDING_DIM too).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
demo=$root/.demo
venv=${VENV:-$root/.venv}
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
port=${DEMO_PG_PORT:-55432}
embed_port=${DEMO_EMBED_PORT:-8001}
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); fi

mkdir -p "$demo"
if [ ${#as_pg[@]} -gt 0 ]; then chown postgres "$demo"; fi
if [ ! -f "$demo/pg/PG_VERSION" ]; then
    echo "demo: creating a PostgreSQL cluster in $demo/pg"
    "${as_pg[@]}" "$pgbin/initdb" -D "$demo/pg" -U postgres --auth=trust -E UTF8 \
        --locale=C.UTF-8 >/dev/null
fi
if ! "${as_pg[@]}" "$pgbin/pg_ctl" -D "$demo/pg" status >/dev/null 2>&1; then
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$demo/pg" -l "$demo/pg.log" -w \
        -o "-p $port -k $demo -c listen_addresses=''" start >/dev/null
fi
export DATABASE_URL="postgresql://postgres@/rag?host=$demo&port=$port"
"$pgbin/psql" -qAt "postgresql://postgres@/postgres?host=$demo&port=$port" \
    -c "SELECT 1 FROM pg_database WHERE datname = 'rag'" | grep -q 1 \
    || "$pgbin/createdb" -h "$demo" -p "$port" -U postgres rag

server_pid=
cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [ -z "${EMBED_API_URL:-}" ]; then
    export EMBED_API_URL="http://127.0.0.1:$embed_port/embed"
    export EMBEDDING_DIM=384
    echo "demo: starting the bundled embedding server (all-MiniLM-L6-v2) on port $embed_port"
    "$venv/bin/embedding-gate" serve --port "$embed_port" >"$demo/embed.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 240); do
        if "$venv/bin/embedding-gate" check-server >/dev/null 2>&1; then break; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "demo: the embedding server stopped; its log:" >&2
            cat "$demo/embed.log" >&2
            exit 1
        fi
        sleep 0.5
    done
fi
"$venv/bin/embedding-gate" check-server

"$venv/bin/alembic" -c "$root/alembic.ini" upgrade head
"$venv/bin/embedding-gate" load "$root/data/sample" --no-report
"$venv/bin/embedding-gate" report --png "$demo/quality.png" --html "$demo/report.html"
cat <<MSG

demo: the report, to open in a browser: $demo/report.html
demo: the measures the checks use, drawn: $demo/quality.png
demo: PostgreSQL keeps running for the next run:
  psql "$DATABASE_URL" -c 'SELECT * FROM low_quality_embeddings'
  ${as_pg[*]} $pgbin/pg_ctl -D $demo/pg stop      # to stop it
MSG
