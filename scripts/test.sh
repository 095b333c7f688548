#!/usr/bin/env bash
# The whole test suite, on SQLite and PostgreSQL: lint, format check, type check, pytest.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh -k sqlite -x    # arguments go to pytest
#
# Sets up .venv (scripts/bootstrap.sh) and, unless DATONG_TEST_PG_URL points at a server already,
# starts a throwaway PostgreSQL (scripts/postgres.sh, installing it when absent) and stops it on exit.
# DATONG_TEST_SKIP_PG=1 (with no DATONG_TEST_PG_URL) starts no PostgreSQL and skips its tests.
# Every step runs even when an earlier one failed; the exit status is non-zero if any failed.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n========== %s ==========\n' "$*"; }

section "bootstrap (.venv)"
bash scripts/bootstrap.sh
BIN="$ROOT/.venv/bin"

if [[ -n "${DATONG_TEST_PG_URL:-}" ]]; then
    section "PostgreSQL: using DATONG_TEST_PG_URL"
elif [[ "${DATONG_TEST_SKIP_PG:-}" == "1" ]]; then
    section "PostgreSQL: skipped (DATONG_TEST_SKIP_PG=1)"
else
    section "PostgreSQL: starting a throwaway cluster"
    # Installed before starting so that a start that fails half way is cleaned up too.
    trap 'bash "$ROOT/scripts/postgres.sh" stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    bash scripts/postgres.sh start
    DATONG_TEST_PG_URL="$(bash scripts/postgres.sh url)"
fi
export DATONG_TEST_PG_URL="${DATONG_TEST_PG_URL:-}"

failed=()

run_step() {
    local name="$1"
    shift
    section "$name"
    local status=0
    "$@" || status=$?
    if [[ "$status" -ne 0 ]]; then
        printf '%s: FAILED (exit %s)\n' "$name" "$status"
        failed+=("$name")
    fi
}

# ruff is given only the directories that hold Python files (bench/ may still be empty).
lint_dirs=()
for dir in src tests bench; do
    if [[ -d "$dir" ]] && [[ -n "$(find "$dir" -name '*.py' -print -quit)" ]]; then
        lint_dirs+=("$dir")
    fi
done

run_step "ruff check ${lint_dirs[*]}" "$BIN/ruff" check "${lint_dirs[@]}"
run_step "ruff format --check ${lint_dirs[*]}" "$BIN/ruff" format --check "${lint_dirs[@]}"
run_step "mypy" "$BIN/mypy"
# pytest's exit 5 (no tests collected) is a failure like any other non-zero exit.
run_step "pytest" "$BIN/python" -m pytest "$@"

if [[ "${#failed[@]}" -ne 0 ]]; then
    section "FAILED"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
