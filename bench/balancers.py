"""Start the bench's servers: the nginx backend pair, the upload sink and the balancers.

Configs come from the *.tmpl files beside this one ({{name}} placeholders) or, for Fulcrum, are
generated here. Every balancer runs ``--workers`` workers (default 1) on a free 127.0.0.1 port, round robin over the
given backend ports, with keep-alive to them; `start_balancer` returns only once a real GET
through it answered 200.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from procs import BenchError, Children, Managed, free_ports, log, wait_ready, which

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# Also the order inside each round. The "-edge" variants turn on per-client rate limiting
# (a limit no request reaches, so the whole bucket path runs) and an access log to a file.
BALANCERS = ("nginx", "fulcrum", "haproxy", "nginx-edge", "fulcrum-edge")
EDGE_RATE = 100_000_000  # requests/s: never reached
UPLOAD_BACKEND = REPO / "examples" / "backend" / "server.py"


def render(template: str, **values: object) -> str:
    """Fill {{name}} placeholders; a placeholder without a value is an error."""
    text = (HERE / template).read_text()

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key not in values:
            raise BenchError(f"{template}: no value for placeholder {{{{{key}}}}}")
        return str(values[key])

    return re.sub(r"\{\{(\w+)\}\}", fill, text)


def fulcrum_yaml(port: int, admin_port: int, backends: list[int], idle: bool, edge_log: Path | None = None,
                 workers: int = 1) -> str:
    lines = [
        f'listen: "127.0.0.1:{port}"',
        f"workers: {workers}",
        f'admin: {{listen: "127.0.0.1:{admin_port}"}}',
        "log: {level: warning}",
        "limits: {max_connections: 0}",  # as nginx and HAProxy here: bounded by the fd limit only
    ]
    if edge_log is None:
        lines.append("access_log: {enabled: false}")  # nginx runs with access_log off
    else:
        lines.append(f'access_log: {{output: "{edge_log}"}}')
        lines.append(f"rate_limit: {{requests_per_second: {EDGE_RATE}, burst: {EDGE_RATE}}}")
    if idle:  # idle connections send nothing; keep them past the 10 s client_header default
        lines.append("timeouts: {client_header: 60s}")
    lines += ["pools:", "  web:", "    strategy: round_robin", "    backends:"]
    lines += [f'      - url: "http://127.0.0.1:{p}"' for p in backends]
    return "\n".join(lines) + "\n"


def find_fulcrum(explicit: str | None) -> str:
    for candidate in (explicit, str(REPO / ".venv" / "bin" / "fulcrum"), str(Path(sys.executable).parent / "fulcrum"),
                      which("fulcrum")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BenchError("fulcrum failed to start: no `fulcrum` executable (run `pip install -e .` in the venv)")


@dataclass
class Lab:
    """The temp dir and children of one bench run, plus what the balancers need to start."""

    tmp: Path
    children: Children
    fulcrum_bin: str | None
    nofile: int
    workers: int = 1
    user_directive: str = "user root;" if os.geteuid() == 0 else ""

    def _nginx_cmd(self, conf: Path, name: str) -> list[str]:
        nginx = which("nginx")
        if nginx is None:
            raise BenchError("nginx is not installed")
        return [nginx, "-p", str(self.tmp), "-e", str(self.tmp / f"{name}.error.log"), "-c", str(conf)]

    # --- backends -----------------------------------------------------------------------------

    def start_backends(self, big_bytes: int) -> tuple[Managed, list[int]]:
        """One nginx, one worker, two ports; `/big` serves a sparse file of `big_bytes`."""
        big = self.tmp / "big.bin"
        with open(big, "wb") as f:
            f.truncate(big_bytes)
        p1, p2 = free_ports(2)
        conf = self.tmp / "backend-nginx.conf"
        conf.write_text(render("nginx_backend.conf.tmpl", user=self.user_directive, tmp=self.tmp,
                               port1=p1, port2=p2, big_file=big))
        child = self.children.start("backend-nginx", self._nginx_cmd(conf, "backend-nginx"), p1)
        wait_ready(child, p1)
        wait_ready(child, p2)
        return child, [p1, p2]

    def start_upload_sink(self) -> tuple[Managed | None, str]:
        """The project's example backend, which reads request bodies as they stream in."""
        if not UPLOAD_BACKEND.exists():
            return None, f"{UPLOAD_BACKEND.relative_to(REPO)} does not exist"
        (port,) = free_ports(1)
        cmd = [sys.executable, str(UPLOAD_BACKEND), "--port", str(port), "--name", "up"]
        child = self.children.start("upload-backend", cmd, port)
        try:
            wait_ready(child, port)
        except BenchError as exc:
            self.children.stop(child)
            return None, str(exc)
        return child, ""

    # --- balancers ----------------------------------------------------------------------------

    def start_balancer(self, name: str, backends: list[int], idle: bool = False) -> Managed:
        starter = {"nginx": self._start_nginx, "haproxy": self._start_haproxy, "fulcrum": self._start_fulcrum,
                   "nginx-edge": self._start_nginx_edge, "fulcrum-edge": self._start_fulcrum_edge}
        child = starter[name](backends, idle)
        try:
            wait_ready(child, child.port)
        except BenchError:
            self.children.stop(child)
            raise
        log(f"{name} ready on 127.0.0.1:{child.port} (pid {child.pid})")
        return child

    def _start_nginx(self, backends: list[int], idle: bool, edge: bool = False) -> Managed:
        (port,) = free_ports(1)
        conf = self.tmp / f"nginx-proxy-{port}.conf"
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in backends)
        edge_values = dict(access_log="access_log off;", limit_zone="", limit_req="")
        if edge:
            edge_values = dict(
                access_log=f"access_log {self.tmp}/nginx-access-{port}.log;",
                limit_zone=f"limit_req_zone $binary_remote_addr zone=perip:10m rate={EDGE_RATE}r/s;",
                limit_req=f"limit_req zone=perip burst={EDGE_RATE} nodelay;")
        conf.write_text(render("nginx_proxy.conf.tmpl", user=self.user_directive, tmp=self.tmp, port=port,
                               workers=self.workers,
                               servers=servers, nofile=max(self.nofile, 1024),
                               worker_connections=max(1024, self.nofile - 64), **edge_values))
        return self.children.start("nginx-edge" if edge else "nginx", self._nginx_cmd(conf, f"nginx-proxy-{port}"), port)

    def _start_nginx_edge(self, backends: list[int], idle: bool) -> Managed:
        return self._start_nginx(backends, idle, edge=True)

    def _start_haproxy(self, backends: list[int], idle: bool) -> Managed:
        haproxy = which("haproxy")
        if haproxy is None:
            raise BenchError("haproxy is not installed (pass --haproxy to install it)")
        (port,) = free_ports(1)
        conf = self.tmp / f"haproxy-{port}.cfg"
        servers = "\n".join(f"    server b{i} 127.0.0.1:{p}" for i, p in enumerate(backends, 1))
        conf.write_text(render("haproxy.cfg.tmpl", port=port, servers=servers,
                               maxconn=max(1000, self.nofile - 100), workers=self.workers))
        return self.children.start("haproxy", [haproxy, "-f", str(conf), "-db"], port)

    def _start_fulcrum(self, backends: list[int], idle: bool, edge: bool = False) -> Managed:
        fulcrum = find_fulcrum(self.fulcrum_bin)
        port, admin_port = free_ports(2)
        conf = self.tmp / f"fulcrum-{port}.yaml"
        edge_log = self.tmp / f"fulcrum-access-{port}.log" if edge else None
        conf.write_text(fulcrum_yaml(port, admin_port, backends, idle, edge_log, self.workers))
        # FULCRUM_* variables in the environment pass through (the CLI reads them as overrides).
        name = "fulcrum-edge" if edge else "fulcrum"
        return self.children.start(name, [fulcrum, "run", "--config", str(conf)], port)

    def _start_fulcrum_edge(self, backends: list[int], idle: bool) -> Managed:
        return self._start_fulcrum(backends, idle, edge=True)
