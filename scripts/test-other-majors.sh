#!/usr/bin/env bash
# Run the test suite against PostgreSQL majors this machine's Debian release does not carry:
# 17 from Debian 13 (trixie) and 18 from Debian unstable (sid), each a server inside a
# debootstrap'd tree with Debian's own postgresql-N, postgresql-N-pgvector,
# postgresql-plpython3-N and python3-numpy.
#
#   bash scripts/test-other-majors.sh [MAJOR...]    # default: 17 18; as root (chroot)
#   make test-majors PYTEST_ARGS=tests/test_deployment.py
#   ENGINES="plpython sql" bash scripts/test-other-majors.sh   # both engines, side by side
#
# ENGINES (default plpython) runs the suite once per engine, each against a fresh cluster of
# its own, the engines' suites at the same time (each runs in one process: the two use two
# cores): GATE_ENGINE=sql deploys the SQL engine as a managed service's owner would
# (tests/helpers.py).
#
# The trees are kept between runs under $MAJORS_CACHE (default /var/cache/embedding-gate),
# one per suite, and reused: only the first run downloads (about 2 minutes a tree). The
# packages are installed by scripts/install-server.sh run inside the tree, so each run also
# checks that it picks the release's own major and pgvector package. Each run
# starts a fresh cluster inside the tree as user postgres, listening on 127.0.0.1 on a free
# port (the trees' binaries do not run from the host), and runs pytest from the host
# against it (PG_EXTERNAL=127.0.0.1:PORT, see tests/conftest.py). The archive address is
# the one this machine's /etc/apt already uses.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${MAJORS_CACHE:-/var/cache/embedding-gate}"
VENV="${VENV:-.venv}"
MAJORS=("$@")
[ "${#MAJORS[@]}" -gt 0 ] || MAJORS=(17 18)

say() { printf 'test-other-majors: %s\n' "$*" >&2; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (debootstrap, chroot); run it as root, e.g. sudo make test-majors"
    exit 1
fi

suite_of() {
    case "$1" in
        17) echo trixie ;;
        18) echo sid ;;
        *) say "no Debian suite known for PostgreSQL $1 (17: trixie, 18: sid)"; exit 1 ;;
    esac
}

# The main (non-security) Debian archive address configured in /etc/apt.
archive_uri() {
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] && awk '/^URIs:/ { print $2 }' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && awk '$1 == "deb" { print ($2 ~ /^\[/) ? $3 : $2 }' "$f"
        done
    } | grep -v -- '-security' | grep -E '/debian/?$' | head -n 1
}

tree_for() {  # MAJOR SUITE DIR: a tree with the server, reused when it is complete
    local major="$1" suite="$2" dir="$3" uri
    [ -f "$dir/.embedding-gate-ready" ] && return 0
    uri="$(archive_uri)"
    if [ -z "$uri" ]; then
        say "no Debian archive address found in /etc/apt"
        exit 1
    fi
    command -v debootstrap >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    say "debootstrap $suite into $dir (once; later runs reuse it)"
    rm -rf "$dir"
    mkdir -p "$dir"
    debootstrap --variant=minbase "$suite" "$dir" "$uri" >"$dir.debootstrap.log" 2>&1 || {
        tail -n 20 "$dir.debootstrap.log" >&2
        exit 1
    }
    # no service starts in the tree, and no cluster is created by the packages
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod +x "$dir/usr/sbin/policy-rc.d"
    mkdir -p "$dir/etc/postgresql-common"
    echo "create_main_cluster = false" >"$dir/etc/postgresql-common/createcluster.conf"
    # the Release files of a suite may be older than this machine's clock says they may be
    echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/99embedding-gate"
    touch "$dir/.embedding-gate-ready"
}

install_in_tree() {  # MAJOR DIR: scripts/install-server.sh, run in the tree as on that release
    local major="$1" dir="$2"
    cp scripts/install-server.sh "$dir/tmp/install-server.sh"
    local rc=0
    with_proc "$dir" chroot "$dir" env DEBIAN_FRONTEND=noninteractive \
        bash /tmp/install-server.sh >"$dir.install.log" 2>&1 || rc=$?
    grep -e '^install-server' "$dir.install.log" >&2 || true
    if [ "$rc" != 0 ]; then
        say "scripts/install-server.sh failed in $dir (exit status $rc); its output: $dir.install.log"
        exit 1
    fi
    if [ ! -x "$dir/usr/lib/postgresql/$major/bin/postgres" ]; then
        say "scripts/install-server.sh did not install PostgreSQL $major in $dir"
        exit 1
    fi
}

with_proc() {  # DIR COMMAND...: /proc mounted in the tree for the command's length
    local dir="$1"
    shift
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    local rc=0
    "$@" || rc=$?
    umount "$dir/proc" 2>/dev/null || true
    return "$rc"
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_major() {
    local major="$1" suite dir
    suite="$(suite_of "$major")"
    dir="$CACHE/$suite"
    local start=$SECONDS
    tree_for "$major" "$suite" "$dir"
    # Debian's postgresql-N, postgresql-N-pgvector, postgresql-plpython3-N and python3-numpy,
    # as install-server.sh chooses them for the tree's release (nothing to do once there)
    install_in_tree "$major" "$dir"
    local bin="/usr/lib/postgresql/$major/bin"
    mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
    local engines=(${ENGINES:-plpython}) engine version rc=0 i pids=() logs=() ports=()
    local data_root=/var/tmp/embedding-gate-data  # in the tree; one cluster an engine: -ENGINE
    stop() {  # the suites still running (the script interrupted), then the clusters
        [ "${#pids[@]}" = 0 ] || kill "${pids[@]}" 2>/dev/null || true
        for engine in "${engines[@]}"; do
            chroot "$dir" runuser -u postgres -- "$bin/pg_ctl" -D "$data_root-$engine" \
                -m fast -w stop >/dev/null 2>&1 || true
        done
    }
    trap 'stop; umount "$dir/proc" 2>/dev/null || true' EXIT
    version="$(chroot "$dir" runuser -u postgres -- "$bin/postgres" --version)"
    # one fresh cluster for each engine (the suite creates cluster-wide roles), and the
    # engines' suites side by side: a suite against an external server runs in one process
    # (one core), so two of them use the machine's two; each one's output is printed whole
    # when all have ended
    for engine in "${engines[@]}"; do
        local data="$data_root-$engine" port log
        port="$(free_port)"
        log="$(mktemp "/tmp/embedding-gate-$major-$engine.XXXXXX.log")"
        rm -rf "${dir:?}$data"
        chroot "$dir" runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth=trust \
            -E UTF8 --locale=C.UTF-8 >/dev/null
        chroot "$dir" runuser -u postgres -- "$bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=/tmp" \
            start >/dev/null
        say "$version ($suite) on 127.0.0.1:$port, ready after $((SECONDS - start)) s; the suite" \
            "against the $engine engine"
        # as `make test` runs it: as user postgres, from the host's virtual environment
        runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 HOME=/tmp GATE_ENGINE="$engine" \
            PG_EXTERNAL="127.0.0.1:$port" "$VENV/bin/pytest" -p no:cacheprovider \
            ${PYTEST_ARGS:-} >"$log" 2>&1 &
        pids+=("$!")
        logs+=("$log")
        ports+=("$port")
    done
    for i in "${!engines[@]}"; do
        local engine_rc=0
        wait "${pids[$i]}" || engine_rc=$?
        say "PostgreSQL $major, the ${engines[$i]} engine (127.0.0.1:${ports[$i]}):" \
            "pytest exit status $engine_rc"
        cat "${logs[$i]}"
        rm -f "${logs[$i]}"
        [ "$engine_rc" = 0 ] || rc=1
    done
    pids=()
    stop
    umount "$dir/proc" 2>/dev/null || true
    trap - EXIT
    say "PostgreSQL $major: $((SECONDS - start)) s in all"
    return "$rc"
}

status=0
for major in "${MAJORS[@]}"; do
    run_major "$major" || status=1
done
exit "$status"
