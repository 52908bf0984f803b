#!/usr/bin/env bash
# Sets up everything the tests need (Debian packages included) and runs the
# whole suite: lint, strict typing, then pytest with the libotr interop tests,
# which must run (never skip) here.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --system
export OFFRECORD_REQUIRE_LIBOTR=1 OFFRECORD_REQUIRE_SERVERS=1
echo "== ruff"
.venv/bin/ruff check src tests benchmarks fuzz
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/pytest -q "$@"
