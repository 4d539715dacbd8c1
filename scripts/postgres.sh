#!/usr/bin/env bash
# A throwaway PostgreSQL (15 preferred) for tests, CI and benchmarks.
#
#   source scripts/postgres.sh start   # exports SLUICE_TEST_DATABASE_URL, SLUICE_TEST_PG_DIR
#   eval "$(scripts/postgres.sh start)"  # the same, from a subshell
#   scripts/postgres.sh stop [DIR]     # stops the server in DIR (default $SLUICE_TEST_PG_DIR)
#   scripts/postgres.sh status [DIR]
#
# The server listens on 127.0.0.1 only, on a free port, with trust auth, durable commits
# (fsync=on) and max_connections=300; its superuser is `sluice` and it has a database
# `sluice`. Works as root (the server then runs as the `postgres` user, created when
# missing) and as a normal user. Installs Debian's `postgresql` when no server is found.
# `start` reuses a server already running in $SLUICE_TEST_PG_DIR.

_sluice_pg_log() { echo "postgres.sh: $*" >&2; }

# The directory holding initdb/pg_ctl/postgres, installing the server if needed.
_sluice_pg_bindir() {
    local dir
    for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ] && [ -x "$dir/initdb" ]; then
            echo "$dir"
            return 0
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        _sluice_pg_log "no PostgreSQL server found and not root: install the 'postgresql' package"
        return 1
    fi
    _sluice_pg_log "installing postgresql (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || {
        _sluice_pg_log "apt-get install postgresql failed"
        return 1
    }
    for dir in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    _sluice_pg_log "postgresql installed but no pg_ctl found"
    return 1
}

# Runs a command as the server's owner: `postgres` when we are root, else ourselves.
_sluice_pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A TCP port on 127.0.0.1 that nothing answers on.
_sluice_pg_free_port() {
    local port i
    for i in $(seq 1 50); do
        port=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    _sluice_pg_log "no free port found"
    return 1
}

_sluice_pg_start() {
    local bindir base data port url attempt
    # Reuse a running server.
    if [ -n "${SLUICE_TEST_PG_DIR:-}" ] && [ -f "$SLUICE_TEST_PG_DIR/url" ]; then
        bindir=$(_sluice_pg_bindir) || return 1
        if _sluice_pg_as_owner "$bindir/pg_ctl" status -D "$SLUICE_TEST_PG_DIR/data" >/dev/null 2>&1; then
            url=$(cat "$SLUICE_TEST_PG_DIR/url")
            export SLUICE_TEST_DATABASE_URL="$url"
            echo "export SLUICE_TEST_DATABASE_URL='$url' SLUICE_TEST_PG_DIR='$SLUICE_TEST_PG_DIR'"
            return 0
        fi
    fi

    bindir=$(_sluice_pg_bindir) || return 1
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres ||
            { _sluice_pg_log "could not create the postgres user"; return 1; }
    fi

    base=$(mktemp -d "${TMPDIR:-/tmp}/sluice-pg.XXXXXX") || return 1
    chmod 755 "$base"
    data="$base/data"
    mkdir -p "$data" "$base/sock"
    if [ "$(id -u)" = 0 ]; then
        chown -R postgres: "$base"
    fi
    if ! _sluice_pg_as_owner "$bindir/initdb" -D "$data" -U sluice -A trust -E UTF8 \
        --locale=C.UTF-8 >"$base/initdb.log" 2>&1; then
        # Older servers or minimal images may lack C.UTF-8.
        rm -rf "$data" && mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown postgres: "$data"
        _sluice_pg_as_owner "$bindir/initdb" -D "$data" -U sluice -A trust -E UTF8 --locale=C \
            >"$base/initdb.log" 2>&1 || {
            _sluice_pg_log "initdb failed; see $base/initdb.log"
            return 1
        }
    fi

    for attempt in 1 2 3 4 5; do
        port=$(_sluice_pg_free_port) || return 1
        if _sluice_pg_as_owner "$bindir/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 \
            -o "-p $port -k $base/sock -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300" \
            start >/dev/null 2>&1; then
            break
        fi
        port=""
    done
    if [ -z "$port" ]; then
        _sluice_pg_log "server did not start; see $base/server.log"
        return 1
    fi
    for attempt in $(seq 1 60); do
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    if ! "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U sluice -d postgres -c 'CREATE DATABASE sluice' \
        >/dev/null 2>>"$base/server.log"; then
        _sluice_pg_log "could not create database sluice; see $base/server.log"
        return 1
    fi

    url="postgres://sluice@127.0.0.1:$port/sluice"
    echo "$url" >"$base/url"
    export SLUICE_TEST_DATABASE_URL="$url"
    export SLUICE_TEST_PG_DIR="$base"
    echo "export SLUICE_TEST_DATABASE_URL='$url' SLUICE_TEST_PG_DIR='$base'"
}

_sluice_pg_stop() {
    local base="${1:-${SLUICE_TEST_PG_DIR:-}}" bindir
    if [ -z "$base" ] || [ ! -d "$base/data" ]; then
        _sluice_pg_log "stop: no server directory given (or \$SLUICE_TEST_PG_DIR unset)"
        return 1
    fi
    bindir=$(_sluice_pg_bindir) || return 1
    _sluice_pg_as_owner "$bindir/pg_ctl" -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$base"
    if [ "${SLUICE_TEST_PG_DIR:-}" = "$base" ]; then
        unset SLUICE_TEST_PG_DIR SLUICE_TEST_DATABASE_URL
    fi
}

_sluice_pg_status() {
    local base="${1:-${SLUICE_TEST_PG_DIR:-}}" bindir
    [ -n "$base" ] && [ -d "$base/data" ] || { echo "stopped"; return 1; }
    bindir=$(_sluice_pg_bindir) || return 1
    if _sluice_pg_as_owner "$bindir/pg_ctl" status -D "$base/data" >/dev/null 2>&1; then
        echo "running $(cat "$base/url" 2>/dev/null)"
    else
        echo "stopped"
        return 1
    fi
}

_sluice_pg_main() {
    case "${1:-}" in
    start) _sluice_pg_start ;;
    stop) shift; _sluice_pg_stop "$@" ;;
    status) shift; _sluice_pg_status "$@" ;;
    *)
        echo "usage: source scripts/postgres.sh start | scripts/postgres.sh stop [DIR] | status [DIR]" >&2
        return 2
        ;;
    esac
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: run in the caller's shell so the exports stick; never exit it.
    if _sluice_pg_main "$@" >/dev/null; then
        [ "${1:-}" = start ] && _sluice_pg_log "ready: $SLUICE_TEST_DATABASE_URL"
        true
    else
        false
    fi
else
    _sluice_pg_main "$@"
    exit $?
fi
