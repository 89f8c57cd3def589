#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite against the compiled core (arguments go
# to pytest), then the core, framing and fuzzer tests against the pure-Python core
# (FULCRUM_NO_EXTENSIONS=1; skipped when arguments pick the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/pytest "$@"
if [ $# -eq 0 ]; then
    echo "test: again with the pure-Python core (FULCRUM_NO_EXTENSIONS=1): core, framing and fuzzer tests" >&2
    FULCRUM_NO_EXTENSIONS=1 .venv/bin/pytest \
        tests/proxy tests/http tests/fuzz tests/integration/test_core_choice.py \
        tests/integration/test_framing.py tests/integration/test_smuggling.py \
        tests/integration/test_forwarding.py tests/integration/test_limits.py \
        tests/integration/test_slow_peers.py tests/integration/test_streaming.py
fi
