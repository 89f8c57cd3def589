#!/usr/bin/env bash
# Stops example backends started by scripts/start-backends.sh: those on the given ports, or
# every one it tracks when no port is given. SIGTERM first (the backend closes its
# connections and exits), SIGKILL after a few seconds. Pid files are removed; a stale one (its
# process gone, or the pid now some other program's) is removed without killing anything.
# Log files are kept for reading.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
run_dir="$(realpath -m -- "${BACKENDS_RUN_DIR:-$root/.run/backends}")"
grace_tenths=50  # 5 s between SIGTERM and SIGKILL

usage() {
    cat <<'EOF'
Usage: scripts/stop-backends.sh [PORT...]

Stops the example backends that scripts/start-backends.sh started on the given
ports, or all of them when no port is given, and removes their pid files.
Pid files live in .run/backends (BACKENDS_RUN_DIR names another directory);
logs (.run/backends/<PORT>.log) are kept.
EOF
}

die() {
    echo "stop-backends: $*" >&2
    exit 2
}

pid_files=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        -*) echo "stop-backends: unknown option: $arg" >&2; usage >&2; exit 2 ;;
    esac
    if ! [[ "$arg" =~ ^[0-9]{1,5}$ ]] || (( 10#$arg < 1 || 10#$arg > 65535 )); then
        die "not a port (1-65535): '$arg'"
    fi
    pid_files+=("$run_dir/$((10#$arg)).pid")
done
if [ $# -eq 0 ]; then
    shopt -s nullglob
    pid_files=("$run_dir"/*.pid)
    shopt -u nullglob
    if [ ${#pid_files[@]} -eq 0 ]; then
        echo "stop-backends: no backends tracked in $run_dir: nothing to stop"
        exit 0
    fi
fi

# Running, as opposed to gone or a zombie waiting to be reaped by its parent.
running() {
    local state
    state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# The pid is one of our backends only while it runs examples/backend/server.py on this port.
is_our_backend() {  # PID PORT
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"examples/backend/server.py"*"--port $2 "* ]]
}

status=0
for pid_file in "${pid_files[@]}"; do
    port="$(basename "$pid_file" .pid)"
    if [ ! -f "$pid_file" ]; then
        echo "port $port: no backend tracked (no $pid_file): nothing to stop"
        continue
    fi
    pid="$(cat "$pid_file")"
    if ! [[ "$pid" =~ ^[0-9]+$ ]] || ! running "$pid"; then
        echo "port $port: stale pid file (pid '$pid' is not running): removed"
        rm -f "$pid_file"
        continue
    fi
    if ! is_our_backend "$pid" "$port"; then
        echo "port $port: pid $pid is not an example backend on port $port (pid reused?): pid file removed, process left alone"
        rm -f "$pid_file"
        continue
    fi
    if ! kill -TERM "$pid" 2>/dev/null; then
        echo "stop-backends: port $port: cannot signal pid $pid (not ours to stop?)" >&2
        status=1
        continue
    fi
    for _ in $(seq "$grace_tenths"); do
        running "$pid" || break
        sleep 0.1
    done
    how="SIGTERM"
    if running "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        how="SIGKILL: it did not exit within $((grace_tenths / 10)) s of SIGTERM"
    fi
    rm -f "$pid_file"
    echo "stopped b$port (pid $pid, port $port; $how)"
done
exit "$status"
