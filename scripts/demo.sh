#!/usr/bin/env bash
# The demo: three example backends (ports 9001-9003) behind Fulcrum with the
# annotated config.yaml. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

pids=()
cleanup() {
    trap - INT TERM EXIT
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

for i in 1 2 3; do
    .venv/bin/python examples/backend/server.py --port "900$i" --name "backend-$i" &
    pids+=($!)
done
# A token so the dashboard's drain/enable/weight buttons work (without one the API is read-only).
export FULCRUM_ADMIN__TOKEN="${FULCRUM_ADMIN__TOKEN:-demo-token}"
.venv/bin/fulcrum run --config config.yaml &
pids+=($!)

for _ in $(seq 50); do
    if .venv/bin/python - <<'PY' 2>/dev/null; then break; fi
import urllib.request; urllib.request.urlopen("http://127.0.0.1:8080/", timeout=1)
PY
    sleep 0.2
done
cat <<MSG

Fulcrum is serving on http://127.0.0.1:8080 in front of three example backends.
Try:
  curl -i http://127.0.0.1:8080/                   # answered in turn by backend-1, -2, -3
  curl -s 'http://127.0.0.1:8080/?echo=1'          # what the backend received (X-Forwarded-*, X-Request-ID)
  curl -s 'http://127.0.0.1:8080/?size=10000000' | wc -c   # a streamed 10 MB body
  curl -i 'http://127.0.0.1:8080/?status=404'      # a backend status passed through
  curl -i 'http://127.0.0.1:8080/?status=503'      # a gateway failure: retried on the other backends first
Dashboard: http://127.0.0.1:9090/ (token for its buttons: $FULCRUM_ADMIN__TOKEN)
Metrics:   curl -s http://127.0.0.1:9090/metrics | grep '^fulcrum_requests'
Press Ctrl-C to stop.
MSG
wait "${pids[-1]}"
