#!/usr/bin/env bash
# Sets up the development environment: .venv (Python 3.11+) with datong and its dev extra installed
# in editable mode. Safe to rerun: it reinstalls only when pyproject.toml is newer than the stamp.
#
#   bash scripts/bootstrap.sh
#
# DATONG_PYTHON=/path/to/python picks the interpreter used to create .venv (default: python3.11,
# then python3 when it is 3.11 or newer).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.installed-stamp"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

is_311_or_newer() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in "${DATONG_PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if is_311_or_newer "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 1
    fi
}

create_venv() {
    local python version
    if ! python="$(find_python)"; then
        die "Python 3.11 or newer is required: none of python3.11 / python3 on PATH is 3.11+ (found: $(python3 --version 2>&1 || echo 'no python3')). Install Python 3.11, or set DATONG_PYTHON=/path/to/python3.11."
    fi
    say "creating .venv with $python ($("$python" --version 2>&1))"
    if "$python" -m venv "$VENV"; then
        return 0
    fi
    rm -rf "$VENV"
    # Debian/Ubuntu split venv/ensurepip into a separate package.
    version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    if command -v apt-get >/dev/null 2>&1; then
        say "python -m venv failed; installing python${version}-venv with apt-get"
        if as_root env DEBIAN_FRONTEND=noninteractive apt-get update \
            && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
                "python${version}-venv" \
            && "$python" -m venv "$VENV"; then
            return 0
        fi
        rm -rf "$VENV"
    fi
    die "could not create .venv with $python: install the venv module (Debian: apt-get install python${version}-venv)"
}

if [[ ! -x "$VENV/bin/python" ]]; then
    [[ -e "$VENV" ]] && die ".venv exists but has no bin/python: remove it (rm -rf .venv) and rerun"
    create_venv
elif ! is_311_or_newer "$VENV/bin/python"; then
    die ".venv does not run Python 3.11+ ($("$VENV/bin/python" --version 2>&1)): remove it (rm -rf .venv) and rerun"
fi

if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" ]]; then
    say "installing datong with the dev extra into .venv (pip install -e '.[dev]')"
    "$VENV/bin/python" -m pip install --progress-bar off --no-input -e '.[dev]'
    touch "$STAMP"
else
    say ".venv is up to date"
fi
