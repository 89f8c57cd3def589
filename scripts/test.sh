#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/pytest "$@"
