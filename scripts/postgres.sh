#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests.
#
#   bash scripts/postgres.sh start    # initdb + start on 127.0.0.1:<free port>, create datong_test
#   bash scripts/postgres.sh url      # postgresql+psycopg://USER@127.0.0.1:PORT/datong_test
#   bash scripts/postgres.sh status   # running or not (exit 0 / 3)
#   bash scripts/postgres.sh stop     # stop it and delete its data
#   bash scripts/postgres.sh bindir   # where the binaries were found (installs them if absent)
#
# Binaries: $DATONG_PG_BINDIR, `pg_config --bindir`, initdb on PATH, the newest
# /usr/lib/postgresql/*/bin; if none, Debian's `postgresql` package (as root, or with `sudo -n`),
# else the `pgserver` wheel from PyPI installed into .venv (it ships the PostgreSQL binaries).
# DATONG_PG_PROVIDER=pgserver skips the system look-up and uses the wheel.
#
# initdb refuses to run as root, so as root the cluster runs as the `postgres` system user (or a
# `datong-pg` system user created for it), in a temporary directory owned by that user.
# State (data dir path, port, user, bin dir, pid) is kept in var/pg/ under the repository.
# Settings are for tests only: fsync off, trust authentication, listening on 127.0.0.1 only.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/var/pg"
VENV="$ROOT/.venv"
DBNAME="datong_test"
PG_VERSIONS_DIR="/usr/lib/postgresql"

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# A directory holding a usable server: initdb, pg_ctl, postgres and createdb.
valid_bindir() {
    local dir="$1"
    [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" && -x "$dir/createdb" ]]
}

# Prints the first usable bin directory of an installed PostgreSQL; returns 1 if there is none.
find_system_bindir() {
    local dir initdb_path
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if valid_bindir "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    if initdb_path="$(command -v initdb 2>/dev/null)"; then
        # Debian links /usr/bin wrappers and others symlink the real binary: use the real directory.
        dir="$(dirname "$(readlink -f "$initdb_path")")"
        if valid_bindir "$dir"; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    if [[ -d "$PG_VERSIONS_DIR" ]]; then
        # Newest major version first (sort -V orders 9.6 < 10 < 15 < 16).
        while IFS= read -r dir; do
            if valid_bindir "$dir"; then
                printf '%s\n' "$dir"
                return 0
            fi
        done < <(find "$PG_VERSIONS_DIR" -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -rV)
    fi
    return 1
}

# Runs a command as root: directly, or through passwordless sudo. Returns 1 if neither is possible.
as_root() {
    if is_root; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

can_be_root() {
    is_root || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

apt_install_postgresql() {
    command -v apt-get >/dev/null 2>&1 || return 1
    can_be_root || return 1
    say "no PostgreSQL found: installing Debian's postgresql package with apt-get"
    # Do not let the package create and start a "main" cluster on port 5432: we only need binaries.
    as_root mkdir -p /etc/postgresql-common/createcluster.d
    if [[ ! -e /etc/postgresql-common/createcluster.d/datong-no-main-cluster.conf ]]; then
        printf 'create_main_cluster = false\n' \
            | as_root tee /etc/postgresql-common/createcluster.d/datong-no-main-cluster.conf >/dev/null
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update || return 1
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
        </dev/null || return 1
}

# Prints the pgserver wheel's bin directory, installing the wheel into .venv first if needed.
pgserver_bindir() {
    local python="$VENV/bin/python" pkgdir
    if [[ ! -x "$python" ]]; then
        bash "$ROOT/scripts/bootstrap.sh" >&2
    fi
    # find_spec does not import pgserver (importing it warns about XDG_RUNTIME_DIR).
    local find='import importlib.util as u; s = u.find_spec("pgserver"); print(s.submodule_search_locations[0] if s else "")'
    pkgdir="$("$python" -c "$find")"
    if [[ -z "$pkgdir" ]]; then
        say "installing the pgserver wheel (PostgreSQL binaries from PyPI) into .venv"
        "$python" -m pip install --progress-bar off --no-input pgserver >&2
        pkgdir="$("$python" -c "$find")"
    fi
    valid_bindir "$pkgdir/pginstall/bin" || die "pgserver is installed but $pkgdir/pginstall/bin lacks initdb/pg_ctl/postgres/createdb"
    printf '%s\n' "$pkgdir/pginstall/bin"
}

find_or_install_bindir() {
    local dir
    if [[ -n "${DATONG_PG_BINDIR:-}" ]]; then
        valid_bindir "$DATONG_PG_BINDIR" || die "DATONG_PG_BINDIR=$DATONG_PG_BINDIR has no initdb/pg_ctl/postgres/createdb"
        printf '%s\n' "$DATONG_PG_BINDIR"
        return 0
    fi
    if [[ "${DATONG_PG_PROVIDER:-auto}" != "pgserver" ]]; then
        if dir="$(find_system_bindir)"; then
            printf '%s\n' "$dir"
            return 0
        fi
        if apt_install_postgresql && dir="$(find_system_bindir)"; then
            printf '%s\n' "$dir"
            return 0
        fi
        say "PostgreSQL is not installed and apt-get is not available to this user (not root, no sudo -n): using the pgserver wheel"
    fi
    pgserver_bindir
}

# The OS user that runs the cluster: ourselves, or (as root) postgres / datong-pg.
cluster_user() {
    if ! is_root; then
        id -un
    elif id -u postgres >/dev/null 2>&1; then
        printf 'postgres\n'
    else
        if ! id -u datong-pg >/dev/null 2>&1; then
            say "creating system user datong-pg to run PostgreSQL (initdb refuses to run as root)"
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin datong-pg
        fi
        printf 'datong-pg\n'
    fi
}

# Runs a command as the cluster user (from / so that an unreadable working directory does not matter).
run_as() {
    local user="$1"
    shift
    if [[ "$user" == "$(id -un)" ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$user" -- "$@")
    else
        local quoted
        printf -v quoted '%q ' "$@"
        (cd / && su "$user" -s /bin/sh -c "$quoted")
    fi
}

free_port() {
    local python
    python="$(command -v python3 || command -v python || true)"
    [[ -x "$VENV/bin/python" ]] && python="$VENV/bin/python"
    [[ -n "$python" ]] || die "python is needed to pick a free port"
    "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

state() { cat "$STATE/$1" 2>/dev/null || true; }

is_running() {
    local datadir bindir user
    datadir="$(state datadir)"
    bindir="$(state bindir)"
    user="$(state user)"
    [[ -n "$datadir" && -d "$datadir" && -n "$bindir" && -n "$user" ]] || return 1
    run_as "$user" "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1
}

cmd_start() {
    if is_running; then
        say "already running: $(cmd_url)"
        return 0
    fi
    # A leftover from a run that was killed: clean it up first.
    [[ -e "$STATE" ]] && cmd_stop

    local bindir user port tmp datadir log
    bindir="$(find_or_install_bindir)"
    user="$(cluster_user)"
    port="$(free_port)"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/datong-pg.XXXXXX")"
    datadir="$tmp/data"
    log="$tmp/postgres.log"

    mkdir -p "$STATE"
    printf '%s\n' "$tmp" >"$STATE/tmpdir"
    printf '%s\n' "$datadir" >"$STATE/datadir"
    printf '%s\n' "$bindir" >"$STATE/bindir"
    printf '%s\n' "$user" >"$STATE/user"
    printf '%s\n' "$port" >"$STATE/port"
    printf '%s\n' "$log" >"$STATE/log"

    if [[ "$user" != "$(id -un)" ]]; then
        chown "$user" "$tmp"
        # The cluster user must be able to run the binaries (a bin dir under /root would not do).
        run_as "$user" test -x "$bindir/postgres" \
            || die "user $user cannot execute $bindir/postgres (set DATONG_PG_BINDIR to a readable install)"
    fi
    chmod 700 "$tmp"

    say "initdb in $datadir as $user ($("$bindir/postgres" --version))"
    # The database superuser is named after the OS user that owns the cluster.
    if ! run_as "$user" "$bindir/initdb" -D "$datadir" -U "$user" --auth=trust --encoding=UTF8 \
        --locale=C --no-sync >"$STATE/initdb.log" 2>&1; then
        cat "$STATE/initdb.log" >&2
        die "initdb failed"
    fi
    # Tests only: no durability, loopback only, the socket inside the data dir.
    cat <<EOF | run_as "$user" tee -a "$datadir/postgresql.conf" >/dev/null

# datong test cluster (scripts/postgres.sh)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$datadir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

    say "starting on 127.0.0.1:$port"
    if ! run_as "$user" "$bindir/pg_ctl" -D "$datadir" -l "$log" -w -t 60 start >/dev/null; then
        run_as "$user" cat "$log" >&2 || true
        die "PostgreSQL did not start (log above)"
    fi
    run_as "$user" head -n 1 "$datadir/postmaster.pid" >"$STATE/pid"

    if ! run_as "$user" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$user" "$DBNAME"; then
        die "could not create database $DBNAME"
    fi
    say "ready: $(cmd_url)"
}

cmd_stop() {
    local datadir bindir user tmp pid
    datadir="$(state datadir)"
    bindir="$(state bindir)"
    user="$(state user)"
    tmp="$(state tmpdir)"
    pid="$(state pid)"
    if [[ -n "$datadir" && -f "$datadir/postmaster.pid" && -n "$bindir" && -n "$user" ]]; then
        if ! run_as "$user" "$bindir/pg_ctl" -D "$datadir" -m immediate -w -t 30 stop >/dev/null 2>&1; then
            say "pg_ctl stop failed; killing pid $pid"
            if [[ -n "$pid" ]]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        say "stopped"
    elif [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        # Data dir gone but the postmaster is still there (should not happen): do not leave it running.
        kill -KILL "$pid" 2>/dev/null || true
        say "killed pid $pid"
    fi
    # Only ever delete a directory this script made.
    if [[ -n "$tmp" && "$(basename "$tmp")" == datong-pg.* && -d "$tmp" ]]; then
        rm -rf "$tmp"
    fi
    rm -rf "$STATE"
}

cmd_url() {
    local port user
    port="$(state port)"
    user="$(state user)"
    [[ -n "$port" && -n "$user" ]] || die "not started: run 'bash scripts/postgres.sh start' first"
    printf 'postgresql+psycopg://%s@127.0.0.1:%s/%s\n' "$user" "$port" "$DBNAME"
}

cmd_status() {
    if is_running; then
        printf 'running: %s\n' "$(cmd_url)"
    else
        printf 'not running\n'
        return 3
    fi
}

main() {
    case "${1:-}" in
        start) cmd_start ;;
        stop) cmd_stop ;;
        url) cmd_url ;;
        status) cmd_status ;;
        bindir) find_or_install_bindir ;;
        *)
            printf 'usage: %s start|stop|url|status|bindir\n' "$0" >&2
            exit 2
            ;;
    esac
}

# Sourcing the file (for testing the look-up functions) defines them without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
