"""Real processes for integration tests: example backends and Fulcrum itself.

Both are started on port 0 and report the port they bound in their first log
line, so tests never race for ports.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BACKEND = ROOT / "examples" / "backend" / "server.py"
PYTHON = sys.executable


class Process:
    """A child process whose output is collected in the background."""

    def __init__(self, argv: list[str], ready: re.Pattern, env: dict | None = None, timeout: float = 15.0) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.match: re.Match | None = None
        self._pattern = ready
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"{argv[:4]} did not become ready:\n" + self.output)

    def _pump(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            if self.match is None:
                m = self._pattern.search(line)
                if m:
                    self.match = m
                    self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Backend(Process):
    """``examples/backend/server.py`` on a free port."""

    def __init__(self, name: str, *flags: str) -> None:
        super().__init__(
            [PYTHON, str(BACKEND), "--port", "0", "--name", name, *flags],
            re.compile(r"listening on ([\d.]+):(\d+)"),
        )
        self.name = name
        self.port = int(self.match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"


class Fulcrum(Process):
    """``python -m fulcrum run`` with a config written from a dict."""

    def __init__(self, config: dict, workdir: Path, env: dict | None = None) -> None:
        config = {"listen": "127.0.0.1:0", **config}
        config["admin"] = {"listen": "127.0.0.1:0", **config.get("admin", {})}  # admin_url() reads the port
        config.setdefault("log", {"level": "info"})
        self.config_path = workdir / f"fulcrum-{time.monotonic_ns()}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        full_env = {**os.environ, **(env or {})}
        super().__init__(
            [PYTHON, "-m", "fulcrum", "run", "--config", str(self.config_path)],
            re.compile(r"listening address=([\d.]+):(\d+)|\"event\": \"listening\".*\"address\": \"([\d.]+):(\d+)\""),
            env=full_env,
        )
        if self.proc.poll() is not None:
            raise RuntimeError("fulcrum exited:\n" + self.output)
        groups = [g for g in self.match.groups() if g]
        self.host, self.port = groups[0], int(groups[1])
        self.url = f"http://127.0.0.1:{self.port}"


# A pool with every resilience mechanism off: the plain proxy, for tests of the
# data plane itself (health checks would probe fake backends, retries would hide
# the very failures under test). Resilience tests pass resilience=True.
PLAIN = {
    "health_check": {"enabled": False},
    "outlier_detection": {"enabled": False},
    "circuit_breaker": {"enabled": False},
    "retry": {"attempts": 1},
}


def pool_config(*backends: Backend, strategy: str = "round_robin", resilience: bool = False, **extra) -> dict:
    base = {} if resilience else dict(PLAIN)
    return {**base, "strategy": strategy, "backends": [{"url": b.url} for b in backends], **extra}


def run_cli(*args: str, env: dict | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "fulcrum", *args], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def stats(backend: Backend) -> dict:
    import httpx
    return httpx.get(f"{backend.url}/_stats").json()


__all__ = ["Backend", "Fulcrum", "PLAIN", "Process", "pool_config", "run_cli", "stats", "json"]


# -- the admin listener ----------------------------------------------------------------------
ADMIN_LISTENING = re.compile(
    r"admin listening address=([\d.]+):(\d+)|\"event\": \"admin listening\".*\"address\": \"([\d.]+):(\d+)\"")


def admin_url(proc: Fulcrum, timeout: float = 10.0) -> str:
    """``http://127.0.0.1:PORT`` of a running Fulcrum's admin listener (from its log line,
    written just after the proxy's "listening" line)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in list(proc.lines):
            m = ADMIN_LISTENING.search(line)
            if m:
                host, port = [g for g in m.groups() if g]
                return f"http://{host}:{port}"
        if time.monotonic() > deadline or proc.proc.poll() is not None:
            raise RuntimeError("no 'admin listening' line:\n" + proc.output)
        time.sleep(0.01)
