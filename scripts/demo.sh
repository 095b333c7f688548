#!/usr/bin/env bash
# The demo on SQLite: sets up .venv, then `datong demo` creates the database, generates ~50,000
# people, imports and unifies them, and serves the API on http://127.0.0.1:8000.
# Arguments go to `datong demo` (see `bash scripts/demo.sh --help`).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh
exec "$ROOT/.venv/bin/datong" demo "$@"
