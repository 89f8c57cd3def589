#!/usr/bin/env bash
# Starts example backends (examples/backend/server.py) in the background, one per port, named
# b<PORT>, and returns once every one answers GET /health. Each one's PID is kept in
# <run dir>/<PORT>.pid and its output in <run dir>/<PORT>.log; scripts/stop-backends.sh stops
# them. Nothing is started when any port is taken; when one fails to come up, the ones this
# run started are stopped again.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
run_dir="$(realpath -m -- "${BACKENDS_RUN_DIR:-$root/.run/backends}")"
python="${PYTHON:-$root/.venv/bin/python}"
host=127.0.0.1
wait_seconds=10

usage() {
    cat <<'EOF'
Usage: scripts/start-backends.sh [--host ADDR] PORT... [-- BACKEND_FLAGS...]

Starts examples/backend/server.py on each PORT in the background, named b<PORT>
(the X-Backend header of its responses), and waits until each answers GET /health.

  --host ADDR   address to bind (default 127.0.0.1)
  -h, --help    this text
  -- FLAGS      passed to every backend, e.g. -- --latency 0.01 --fail-rate 0.1
                (see .venv/bin/python examples/backend/server.py --help)

PIDs go to .run/backends/<PORT>.pid and output to .run/backends/<PORT>.log
(BACKENDS_RUN_DIR names another directory). The backends run on .venv/bin/python
(PYTHON names another interpreter). Stop them with scripts/stop-backends.sh [PORT...].
Example:
  scripts/start-backends.sh 9001 9002 9003 -- --latency 0.005
EOF
}

die() {
    echo "start-backends: $*" >&2
    exit 1
}

ports=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --host) [ $# -ge 2 ] || die "--host needs an address"; host="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        -*) echo "start-backends: unknown option: $1 (backend flags go after --)" >&2; usage >&2; exit 2 ;;
        *)
            if ! [[ "$1" =~ ^[0-9]{1,5}$ ]] || (( 10#$1 < 1 || 10#$1 > 65535 )); then
                die "not a port (1-65535): '$1'"
            fi
            port=$((10#$1))
            for seen in "${ports[@]}"; do [ "$seen" != "$port" ] || die "port $port given twice"; done
            ports+=("$port")
            shift ;;
    esac
done
[ ${#ports[@]} -gt 0 ] || { usage >&2; exit 2; }
[ -x "$python" ] || die "$python not found: run 'make install' (scripts/setup.sh) first, or set PYTHON"

# A pid file names one of our backends only while that process runs examples/backend/server.py
# with this port: a pid reused by some other program after a crash is not ours.
is_our_backend() {  # PID PORT
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
    [ -n "$cmdline" ] && [[ "$cmdline" == *"examples/backend/server.py"*"--port $2 "* ]]
}

mkdir -p "$run_dir"

# 1. Refuse before starting anything: a backend of ours already there, or any other listener.
for port in "${ports[@]}"; do
    pid_file="$run_dir/$port.pid"
    [ -f "$pid_file" ] || continue
    pid="$(cat "$pid_file")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && is_our_backend "$pid" "$port"; then
        die "port $port: backend b$port is already running (pid $pid); stop it with scripts/stop-backends.sh $port"
    fi
    echo "start-backends: port $port: removing stale pid file (pid $pid is not running a backend)" >&2
    rm -f "$pid_file"
done
busy="$("$python" - "$host" "${ports[@]}" <<'PY'
import socket, sys
host, ports = sys.argv[1], sys.argv[2:]
for port in ports:  # bind as the backend will (SO_REUSEADDR), so TIME_WAIT leftovers don't count
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            print(f"{port} ({exc.strerror})")
PY
)"
[ -z "$busy" ] || die "port(s) already in use on $host, nothing started: $(echo "$busy" | paste -sd, - | sed 's/,/, /g')"

# 2. Start them all, then wait for all of them at once.
started=()
for port in "${ports[@]}"; do
    # nohup: they outlive this script and the terminal; no stdin, output to the log file.
    nohup "$python" "$root/examples/backend/server.py" --host "$host" --port "$port" --name "b$port" \
        "${extra[@]}" >"$run_dir/$port.log" 2>&1 </dev/null &
    echo $! >"$run_dir/$port.pid"
    started+=("$port:$!")
done

if ! "$python" - "$host" "$wait_seconds" "$run_dir" "${started[@]}" <<'PY'
"""Wait until every backend answers GET /health 200; report any that died or stayed silent."""
import os, sys, time, urllib.request
host, wait, run_dir, pairs = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4:]
connect = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
connect = f"[{connect}]" if ":" in connect else connect
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
waiting = dict(pair.split(":") for pair in pairs)  # port -> pid
deadline = time.monotonic() + wait
failed = False
while waiting and time.monotonic() < deadline:
    for port, pid in list(waiting.items()):
        try:
            os.kill(int(pid), 0)
            dead = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        except (OSError, ProcessLookupError):
            dead = True
        if dead:
            log = open(os.path.join(run_dir, f"{port}.log"), errors="replace").read().strip()
            print(f"start-backends: b{port} exited on start-up:\n  {log or '(no output)'}", file=sys.stderr)
            del waiting[port]
            failed = True
            continue
        try:
            with opener.open(f"http://{connect}:{port}/health", timeout=1) as response:
                if response.status == 200:
                    del waiting[port]
        except OSError:
            pass
    time.sleep(0.05)
for port in waiting:
    print(f"start-backends: b{port} did not answer GET /health within {wait:g} s "
          f"(see {os.path.join(run_dir, port + '.log')})", file=sys.stderr)
sys.exit(1 if failed or waiting else 0)
PY
then
    for pair in "${started[@]}"; do
        kill "${pair#*:}" 2>/dev/null || true
        rm -f "$run_dir/${pair%%:*}.pid"
    done
    die "stopped the backends this run started"
fi

for pair in "${started[@]}"; do
    port="${pair%%:*}"
    echo "started b$port on $host:$port (pid ${pair#*:}, log $run_dir/$port.log)"
done
