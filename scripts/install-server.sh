#!/usr/bin/env bash
# Install what the PostgreSQL server needs for the embedding gate:
# PostgreSQL (the major version this Debian release carries: 15 on Debian 12, 17 on
# Debian 13; PG_MAJOR=N to choose), PL/Python (plpython3u), numpy for the server's own
# Python, and pgvector (plus python3-venv, for the project's environment on the same
# interpreter).
#
# Idempotent: where everything is already there it installs nothing and returns in well
# under a second. Installing needs Debian (apt-get) and root; elsewhere it lists what is
# missing and how to get it, and exits 1.
#
# pgvector is Debian's package postgresql-N-pgvector where the release has one (Debian 13
# and later). Debian 12 has none: there it is built from the source package of Debian's
# next release (a deb-src entry for that suite, on the archive address already configured
# in /etc/apt, kept in a throwaway apt state so the machine's own apt config is not touched).
set -euo pipefail

metapackage_major() {
    apt-cache depends postgresql 2>/dev/null \
        | awk '/Depends: postgresql-[0-9]+$/ { sub(/.*postgresql-/, ""); print; exit }'
}

# The PostgreSQL major version of this machine's Debian release.
release_major() {
    local version codename
    version="$(. /etc/os-release 2>/dev/null && echo "${VERSION_ID:-}")"
    codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
    [ -n "$version" ] || version="$(cut -d. -f1 /etc/debian_version 2>/dev/null || true)"
    case "$version:$codename" in
        12*|*:bookworm) echo 15 ;;
        13*|*:trixie) echo 17 ;;
        *)
            # another release (testing, unstable): the major its `postgresql` package names
            local dep
            dep="$(metapackage_major)"
            if [ -z "$dep" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get update -qq >&2 && dep="$(metapackage_major)"
            fi
            echo "${dep:-15}"
            ;;
    esac
}

PG_MAJOR="${PG_MAJOR:-$(release_major)}"
PGVECTOR_SUITE="${PGVECTOR_SUITE:-trixie}"

say() { printf 'install-server: %s\n' "$*" >&2; }

pg_config_bin() {
    local c="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
    if [ -x "$c" ]; then echo "$c"; elif command -v pg_config >/dev/null; then command -v pg_config; fi
}

# Print one line per missing piece: "<what>|<debian package>".
missing() {
    local pgc sharedir
    pgc="$(pg_config_bin)"
    if [ -z "$pgc" ] || [ ! -x "$("$pgc" --bindir)/postgres" ]; then
        echo "PostgreSQL $PG_MAJOR server|postgresql-$PG_MAJOR"
        echo "PL/Python (plpython3u)|postgresql-plpython3-$PG_MAJOR"
        echo "pgvector (vector)|postgresql-$PG_MAJOR-pgvector"
    else
        sharedir="$("$pgc" --sharedir)/extension"
        [ -f "$sharedir/plpython3u.control" ] || echo "PL/Python (plpython3u)|postgresql-plpython3-$PG_MAJOR"
        [ -f "$sharedir/vector.control" ] || echo "pgvector (vector)|postgresql-$PG_MAJOR-pgvector"
    fi
    # PL/Python runs the server's interpreter, /usr/bin/python3, not a virtual environment.
    if ! /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1; then
        echo "numpy for the server's Python (/usr/bin/python3)|python3-numpy"
    fi
    # the project's virtual environment is built on the same interpreter (see the Makefile)
    if ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "venv for /usr/bin/python3 (the project's environment)|python3-venv"
    fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The main Debian archive address configured in /etc/apt (deb822 or one-line format).
debian_archive_uri() {
    local codename
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            awk -v cn="$codename" '
                /^[[:space:]]*$/ { if (uri != "" && suites ~ "(^| )" cn "( |$)") print uri; uri=""; suites=""; next }
                /^URIs:/ { uri=$2 } /^Suites:/ { $1=""; suites=$0 }
                END { if (uri != "" && suites ~ "(^| )" cn "( |$)") print uri }' "$f"
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            awk -v cn="$codename" '$1 == "deb" { u=$2; s=$3; if ($2 ~ /^\[/) { u=$3; s=$4 } if (s == cn) print u }' "$f"
        done
    } | grep -v -- '-security' | head -n 1
}

build_pgvector() {
    local pgc uri
    pgc="$(pg_config_bin)"
    uri="$(debian_archive_uri)"
    if [ -z "$uri" ]; then
        say "no Debian archive address found in /etc/apt; cannot fetch the pgvector source package"
        exit 1
    fi
    apt_install "postgresql-server-dev-$PG_MAJOR" make gcc libc6-dev
    work="$(mktemp -d)"  # global: the EXIT trap runs after this function returns
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/parts"
    printf 'deb-src %s %s main\n' "$uri" "$PGVECTOR_SUITE" >"$work/sources.list"
    local -a opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=$work/parts"
        -o "Dir::State::Lists=$work/lists" -o "APT::Sandbox::User=root")
    say "fetching the pgvector source package ($PGVECTOR_SUITE)"
    apt-get "${opts[@]}" update -qq
    (cd "$work" && apt-get "${opts[@]}" source --download-only -qq pgvector >/dev/null)
    tar -xf "$work"/pgvector_*.orig.tar.* -C "$work"
    local src
    src="$(find "$work" -maxdepth 1 -type d -name 'pgvector-*' | head -n 1)"
    say "building $(basename "$src") against $("$pgc" --version)"
    make -s -C "$src" PG_CONFIG="$pgc" >/dev/null
    make -s -C "$src" PG_CONFIG="$pgc" install >/dev/null
}

main() {
    local todo
    todo="$(missing)"
    if [ -z "$todo" ]; then
        say "PostgreSQL $PG_MAJOR, plpython3u, pgvector and the server's numpy are installed; nothing to do"
        return 0
    fi
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        say "missing, and this script can only install them as root on Debian:"
        while IFS='|' read -r what pkg; do
            say "  - $what: Debian package '$pkg'"
        done <<<"$todo"
        say "where Debian has no pgvector package (Debian 12): build it from https://github.com/pgvector/pgvector (make && make install)"
        exit 1
    fi
    local -a pkgs=()
    while IFS='|' read -r _ pkg; do
        [ "$pkg" = "postgresql-$PG_MAJOR-pgvector" ] || pkgs+=("$pkg")
    done <<<"$todo"
    [ "${#pkgs[@]}" = 0 ] || apt_install "${pkgs[@]}"
    local pgc
    pgc="$(pg_config_bin)"
    if [ ! -f "$("$pgc" --sharedir)/extension/vector.control" ]; then
        # Debian's package where the release has one (Debian 13 and later), or where a
        # configured repository carries one (for example PGDG); else built from source
        if [ "$apt_updated" = 0 ]; then
            say "apt-get update"
            apt-get update -qq
            apt_updated=1
        fi
        if [ -n "$(apt-cache policy "postgresql-$PG_MAJOR-pgvector" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)"')" ]; then
            apt_install "postgresql-$PG_MAJOR-pgvector"
        else
            build_pgvector
        fi
    fi
    todo="$(missing)"
    if [ -n "$todo" ]; then
        say "still missing after install: $(cut -d'|' -f1 <<<"$todo" | paste -sd, -)"
        exit 1
    fi
    say "done"
}

main "$@"
