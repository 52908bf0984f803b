#!/usr/bin/env bash
# Sets up offrecord and runs the demo: two parties, the whole protocol, and
# what the network sees.  Extra arguments go to `offrecord demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/offrecord demo "$@"
