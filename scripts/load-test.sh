#!/usr/bin/env bash
# Sends load to one URL and prints a summary: rate, latency percentiles, status counts and
# the per-backend distribution (the X-Backend header of the example backends). Uses wrk when
# installed (with scripts/wrk-report.lua for the status and backend tables), else - or with
# --python - scripts/loadgen.py, a standard-library generator with a progress bar. It stops
# by itself: after the duration (default 10 s) or, with -n, that many requests.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"

usage() {
    cat <<'EOF'
Usage: scripts/load-test.sh [options] URL

Sends GET requests to URL over keep-alive connections, then prints a summary:
requests, rate (req/s), latency p50/p90/p99/max, status counts and how many
responses each backend gave (by its X-Backend header).

Options:
  -c N          concurrent connections (default 50)
  -d DURATION   how long to run: seconds or 10s / 2m (default 10s; wrk: whole seconds)
  -n N          stop after N requests (Python generator only: implies --python)
  -t N          wrk threads (default 2; ignored by the Python generator)
  -H 'N: V'     extra request header, repeatable (e.g. -H 'Host: api.example.com')
  --timeout S   per-request timeout in seconds (default 10)
  --python      use scripts/loadgen.py even when wrk is installed
  -h, --help    this text

The Python generator runs on .venv/bin/python when it exists (uvloop makes it
faster), else python3; it needs nothing beyond the standard library. It draws a
progress bar on stderr when that is a terminal, and stops early (exit 1) when
nothing accepts connections at the URL's address.
Examples:
  scripts/load-test.sh http://127.0.0.1:8080/
  scripts/load-test.sh -c 20 -d 30s 'http://127.0.0.1:8080/?latency=0.01'
  scripts/load-test.sh --python -n 1000 -c 4 http://127.0.0.1:8080/
EOF
}

die() {
    echo "load-test: $*" >&2
    echo "Run scripts/load-test.sh -h for usage." >&2
    exit 2
}

connections=50
duration=""
requests=""
threads=2
timeout=10
use_python=0
url=""
headers=()

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -c) [ $# -ge 2 ] || die "-c needs a value"; connections="$2"; shift 2 ;;
        -d) [ $# -ge 2 ] || die "-d needs a value"; duration="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || die "-n needs a value"; requests="$2"; shift 2 ;;
        -t) [ $# -ge 2 ] || die "-t needs a value"; threads="$2"; shift 2 ;;
        -H) [ $# -ge 2 ] || die "-H needs a value"; headers+=("$2"); shift 2 ;;
        --timeout) [ $# -ge 2 ] || die "--timeout needs a value"; timeout="$2"; shift 2 ;;
        --python) use_python=1; shift ;;
        -*) die "unknown option: $1" ;;
        *) [ -z "$url" ] || die "one URL only (got '$url' and '$1')"; url="$1"; shift ;;
    esac
done

[ -n "$url" ] || { usage >&2; exit 2; }
[[ "$url" =~ ^https?:// ]] || die "URL must start with http:// (got '$url')"
[[ "$connections" =~ ^[1-9][0-9]*$ ]] || die "-c wants a positive integer (got '$connections')"
[[ "$threads" =~ ^[1-9][0-9]*$ ]] || die "-t wants a positive integer (got '$threads')"
[ -z "$requests" ] || [[ "$requests" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive integer (got '$requests')"
[ -z "$duration" ] || [[ "$duration" =~ ^[0-9]+(\.[0-9]+)?(ms|s|m)?$ ]] \
    || die "-d wants seconds, or a number with ms, s or m (got '$duration')"
[[ "$timeout" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--timeout wants seconds (got '$timeout')"

run_python() {
    local python="$root/.venv/bin/python"
    [ -x "$python" ] || python="python3"
    command -v "$python" >/dev/null || die "no Python: run 'make install' (or install python3)"
    local args=("$url" -c "$connections" --timeout "$timeout")
    [ -z "$duration" ] || args+=(-d "$duration")
    [ -z "$requests" ] || args+=(-n "$requests")
    local h
    for h in "${headers[@]}"; do args+=(-H "$h"); done
    exec "$python" "$root/scripts/loadgen.py" "${args[@]}"
}

run_wrk() {
    local d="${duration:-10s}"
    # wrk takes whole seconds (or 2m); the Python generator also takes fractions and ms.
    [[ "$d" =~ ^[0-9]+(s|m)?$ ]] || die "wrk wants whole seconds for -d (got '$d'); or use --python"
    (( connections >= threads )) || threads="$connections"  # wrk refuses fewer connections than threads
    local args=(-t "$threads" -c "$connections" -d "$d" --timeout "${timeout}s" --latency
                -s "$root/scripts/wrk-report.lua")
    local h
    for h in "${headers[@]}"; do args+=(-H "$h"); done
    echo "load-test: wrk ${args[*]} $url" >&2
    exec wrk "${args[@]}" "$url"
}

if [[ "$url" =~ ^https:// ]] && { [ "$use_python" = 1 ] || [ -n "$requests" ]; }; then
    die "the Python generator speaks http:// only; use wrk for https (without --python and -n)"
fi
if [ "$use_python" = 1 ]; then
    run_python
elif [ -n "$requests" ]; then
    echo "load-test: -n (a request count) needs the Python generator: using it" >&2
    run_python
elif command -v wrk >/dev/null; then
    run_wrk
else
    echo "load-test: wrk is not installed (apt-get install -y wrk): using the Python generator" >&2
    run_python
fi
