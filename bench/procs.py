"""Child processes for the benchmark and what /proc says about them.

Every process the bench starts is a `Managed` child in its own session (so Ctrl-C reaches only
the bench, which then stops each child by its process-group id). CPU, RSS and open-fd figures are
always summed over a child's whole process tree (nginx master + worker, a supervisor + workers).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])


_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A setup step failed; the message says which process and why."""


# --- tools ---------------------------------------------------------------------------------


def which(tool: str) -> str | None:
    return shutil.which(tool, path=SBIN_PATH)


def ensure_packages(packages: list[str]) -> None:
    """Install Debian packages that provide missing tools (apt-get update once, then install)."""
    missing = [p for p in packages if which(p) is None]
    if not missing:
        return
    if which("apt-get") is None:
        raise BenchError(f"missing {', '.join(missing)} and no apt-get to install them")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if which("sudo") is None:
            raise BenchError(f"missing {', '.join(missing)}; install them as root (apt-get install -y ...)")
        prefix = ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    log(f"installing {' '.join(missing)} with apt-get")
    for cmd in (["apt-get", *lock, "update"], ["apt-get", *lock, "install", "-y", *missing]):
        done = subprocess.run(prefix + cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=900)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd[:1] + cmd[3:])} failed: {done.stderr.strip()[-800:]}")
    still = [p for p in missing if which(p) is None]
    if still:
        raise BenchError(f"apt-get ran but {', '.join(still)} is still not on PATH")


def tool_version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def raise_nofile(wanted: int) -> int:
    """Raise this process's soft fd limit toward `wanted` (children inherit it); return it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


# --- /proc ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # [0] is field 3 (state), [1] ppid, [11] utime, [12] stime


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_seconds(root: int) -> float:
    """utime + stime of the whole tree, in seconds."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def rss_kb(root: int) -> int:
    """VmRSS of the whole tree, in KiB."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def open_fds(root: int) -> int:
    """Open fds of the whole tree; its growth counts accepted connections."""
    total = 0
    for pid in process_tree(root):
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


# --- managed children -------------------------------------------------------------------------


@dataclass
class Managed:
    """A started child: its name, Popen, and the file that holds its stdout+stderr."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    port: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, chars: int = 1500) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        text = text.strip()
        return text[-chars:] if text else "(empty log)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after `grace` seconds."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class Children:
    """Every child the bench started; `stop_all()` in a finally block ends them all."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.started: list[Managed] = []

    def start(self, name: str, cmd: list[str], port: int = 0, env: dict | None = None) -> Managed:
        log_path = self.tmp / f"{name}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env or os.environ.copy(), cwd=self.tmp)
        child = Managed(name, proc, log_path, port)
        self.started.append(child)
        return child

    def stop(self, child: Managed) -> None:
        child.stop()
        if child in self.started:
            self.started.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self.started):
            try:
                child.stop()
            except Exception as exc:  # keep stopping the others
                log(f"could not stop {child.name} (pid {child.pid}): {exc}")
        self.started.clear()


def wait_ready(child: Managed, port: int, path: str = "/", deadline: float = 10.0) -> None:
    """Poll a TCP connect + a real GET until it answers 200; raise with the log tail otherwise."""
    end = time.monotonic() + deadline
    last = "no answer"
    while time.monotonic() < end:
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} failed to start (exit {child.proc.returncode}): {child.log_tail()}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                return
            last = f"GET {path} answered {resp.status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        except http.client.HTTPException as exc:
            last = f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()
        time.sleep(0.1)
    raise BenchError(f"{child.name} failed to start: not ready after {deadline:.0f}s ({last}); "
                     f"log: {child.log_tail()}")
