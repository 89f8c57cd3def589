"""The three loads the bench applies to a running balancer, each returning one result record.

- `run_wrk`: a fixed-duration wrk run, with the balancer tree's CPU time read from /proc
  before and after (so CPU per request = CPU delta / requests wrk completed).
- `download` / `upload`: one big body through the balancer from a Python client that reads or
  writes 1 MiB chunks, while a thread samples the balancer tree's RSS every 50 ms.
- `hold_idle`: open N TCP connections that send nothing and measure the RSS they cost.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass

from procs import BenchError, Managed, cpu_seconds, log, open_fds, rss_kb, which

CHUNK = 1 << 20
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}  # wrk time units -> ms


# --- wrk ---------------------------------------------------------------------------------------


@dataclass
class WrkRun:
    balancer: str
    round: int
    rps: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int
    cpu_s: float

    @property
    def cpu_us_per_req(self) -> float:
        return self.cpu_s * 1e6 / self.requests if self.requests else float("nan")


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(text: str) -> dict:
    """requests, rps, p99_ms, socket_errors, non_2xx from `wrk --latency` output."""
    found = {}
    m = re.search(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    found["p99_ms"] = _ms(*m.groups()) if m else float("nan")
    m = re.search(r"(\d+) requests in ", text)
    found["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    found["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    found["socket_errors"] = sum(int(g) for g in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    found["non_2xx"] = int(m.group(1)) if m else 0
    if not found["requests"]:
        raise BenchError(f"could not parse wrk output:\n{text[-1500:]}")
    return found


def run_wrk(child: Managed, round_no: int, connections: int, duration: float, threads: int = 1,
            path: str = "/") -> WrkRun:
    wrk = which("wrk")
    if wrk is None:
        raise BenchError("wrk is not installed")
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency",
           f"http://127.0.0.1:{child.port}{path}"]
    cpu_before = cpu_seconds(child.pid)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    cpu_after = cpu_seconds(child.pid)
    if done.returncode != 0:
        raise BenchError(f"wrk against {child.name} exited {done.returncode}: {done.stderr.strip()[-800:]}")
    if child.proc.poll() is not None:
        raise BenchError(f"{child.name} died during the wrk run: {child.log_tail()}")
    return WrkRun(child.name, round_no, cpu_s=cpu_after - cpu_before, **parse_wrk(done.stdout))


# --- big bodies --------------------------------------------------------------------------------


class RssSampler:
    """Samples a process tree's RSS every `interval` seconds while the `with` block runs."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.before_kb = 0
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self.before_kb = self.peak_kb = rss_kb(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.before_kb) / 1024


@dataclass
class Transfer:
    balancer: str
    direction: str  # "download" | "upload"
    round: int
    nbytes: int
    seconds: float
    rss_before_mb: float
    rss_growth_mb: float
    cpu_s: float  # the balancer tree's CPU time during the transfer

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / (1 << 20) / self.seconds if self.seconds else 0.0

    @property
    def cpu_percent(self) -> float:
        """Near 100 means the (single-worker) balancer was the bottleneck."""
        return 100 * self.cpu_s / self.seconds if self.seconds else float("nan")


def download(child: Managed, round_no: int, path: str, expected: int) -> Transfer:
    """GET `path` through the balancer, reading 1 MiB at a time and discarding it."""
    buf = memoryview(bytearray(CHUNK))
    conn = http.client.HTTPConnection("127.0.0.1", child.port, timeout=60)
    total = 0
    try:
        with RssSampler(child.pid) as rss:
            cpu = cpu_seconds(child.pid)
            start = time.perf_counter()
            conn.request("GET", path)
            resp = conn.getresponse()
            while n := resp.readinto(buf):
                total += n
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(child.pid) - cpu
    finally:
        conn.close()
    if resp.status != 200 or total != expected:
        raise BenchError(f"download through {child.name}: status {resp.status}, {total} of {expected} bytes")
    return Transfer(child.name, "download", round_no, total, seconds, rss.before_kb / 1024, rss.growth_mb, cpu)


def upload(child: Managed, round_no: int, path: str, size: int) -> Transfer:
    """POST `size` bytes to `path` through the balancer in 1 MiB writes; wait for the answer."""
    chunk = bytes(CHUNK)
    conn = http.client.HTTPConnection("127.0.0.1", child.port, timeout=60)
    try:
        with RssSampler(child.pid) as rss:
            cpu = cpu_seconds(child.pid)
            start = time.perf_counter()
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Content-Length", str(size))
            conn.endheaders()
            sent = 0
            while sent < size:
                piece = chunk if size - sent >= CHUNK else chunk[: size - sent]
                conn.send(piece)
                sent += len(piece)
            resp = conn.getresponse()
            resp.read()
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(child.pid) - cpu
    finally:
        conn.close()
    if not 200 <= resp.status < 300:
        raise BenchError(f"upload through {child.name}: status {resp.status}")
    return Transfer(child.name, "upload", round_no, size, seconds, rss.before_kb / 1024, rss.growth_mb, cpu)


# --- idle connections --------------------------------------------------------------------------


@dataclass
class IdleResult:
    balancer: str
    wanted: int
    accepted: int
    rss_before_mb: float
    rss_after_mb: float

    @property
    def kb_per_conn(self) -> float:
        return (self.rss_after_mb - self.rss_before_mb) * 1024 / self.accepted if self.accepted else float("nan")


def _wait_accepted(pid: int, target_fds: int, stall: float = 5.0) -> int:
    """Wait until the tree holds `target_fds` fds or makes no progress for `stall` seconds."""
    best, last_progress = -1, time.monotonic()
    while True:
        fds = open_fds(pid)
        if fds >= target_fds:
            return fds
        if fds > best:
            best, last_progress = fds, time.monotonic()
        elif time.monotonic() - last_progress > stall:
            return fds
        time.sleep(0.01)


def hold_idle(child: Managed, count: int, settle: float = 2.0, batch: int = 100) -> IdleResult:
    """Open `count` connections that send nothing, in batches no larger than a small accept
    backlog, waiting for the balancer to accept each batch; measure RSS `settle` s after the last."""
    socks: list[socket.socket] = []
    base_fds = open_fds(child.pid)
    before = rss_kb(child.pid)
    try:
        while len(socks) < count:
            for _ in range(min(batch, count - len(socks))):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect(("127.0.0.1", child.port))
                socks.append(s)
            fds = _wait_accepted(child.pid, base_fds + len(socks))
            if fds < base_fds + len(socks) - batch:
                log(f"{child.name} stopped accepting at ~{fds - base_fds} idle connections")
                break
        time.sleep(settle)
        accepted = open_fds(child.pid) - base_fds
        after = rss_kb(child.pid)
        if child.proc.poll() is not None:
            raise BenchError(f"{child.name} died holding idle connections: {child.log_tail()}")
    except OSError as exc:
        raise BenchError(f"opening idle connection {len(socks) + 1} to {child.name}: {exc}") from exc
    finally:
        for s in socks:
            s.close()
    return IdleResult(child.name, count, min(accepted, len(socks)), before / 1024, after / 1024)
