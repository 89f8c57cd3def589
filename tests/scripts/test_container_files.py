"""The Dockerfile, docker-compose.yml and deploy/ checked without a Docker engine: the image's
HEALTHCHECK command run against a real Fulcrum, the compose files read as data, and the
compose configuration validated by `fulcrum check`. (Building the image needs an engine.)
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from tests.support.processes import ROOT, admin_url, pool_config, run_cli

TOKEN = "test-token-0123456789"


def dockerfile() -> str:
    """The Dockerfile with its line continuations joined."""
    return (ROOT / "Dockerfile").read_text().replace("\\\n", "")


def instruction(name: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^{name}\s+(.*)$", dockerfile(), re.M)]


def healthcheck_command() -> list[str]:
    (line,) = instruction("HEALTHCHECK")
    return json.loads(line.split(" CMD ", 1)[1])


def image_env() -> dict[str, str]:
    env = {}
    for line in instruction("ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", line)))
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_image_runs_unprivileged_with_mounted_config_and_public_listeners():
    env = image_env()
    assert env["FULCRUM_CONFIG"] == "/etc/fulcrum/config.yaml"
    assert env["FULCRUM_LISTEN"] == "0.0.0.0:8080"
    assert env["FULCRUM_ADMIN__LISTEN"] == "0.0.0.0:9090"
    assert instruction("USER") == ["fulcrum:fulcrum"]
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim", instruction("FROM")[-1])
    for source in ("pyproject.toml", "README.md", "src", "examples/backend/server.py"):  # what COPY needs
        assert (ROOT / source).exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "bench"} <= set(ignored)
    assert not {"src", "README.md", "pyproject.toml", "examples"} & set(ignored)


def test_healthcheck_sends_the_admin_token(backends, fulcrum):
    """The image's HEALTHCHECK, run here against an admin listener off loopback (token required)."""
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}, "admin": {"listen": "0.0.0.0:0", "token": TOKEN}})
    port = admin_url(proc).rsplit(":", 1)[1]
    command = [sys.executable if arg == "python" else arg for arg in healthcheck_command()]
    assert command[1] == "-c"

    def check(token: str | None) -> int:
        env = {"FULCRUM_ADMIN__LISTEN": f"0.0.0.0:{port}", "PATH": "/usr/bin:/bin"}
        if token is not None:
            env["FULCRUM_ADMIN__TOKEN"] = token
        return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode

    assert check(TOKEN) == 0
    assert check("wrong") == 1  # 403
    assert check(None) == 1  # 401


def test_compose_runs_fulcrum_before_three_backends_by_name(compose):
    services = compose["services"]
    fulcrum = services["fulcrum"]
    assert fulcrum["build"] == "."
    assert "./deploy/compose-config.yaml:/etc/fulcrum/config.yaml:ro" in fulcrum["volumes"]
    assert "FULCRUM_ADMIN__TOKEN" in fulcrum["environment"]
    config = yaml.safe_load((ROOT / "deploy" / "compose-config.yaml").read_text())
    urls = [b["url"] for b in config["pools"]["web"]["backends"]]
    assert urls == [f"http://backend{i}:900{i}" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        backend = services[f"backend{i}"]
        assert backend["image"] == fulcrum["image"]  # the same image, built once
        argv = backend["entrypoint"] + backend["command"]
        assert argv[:2] == ["python", "/app/examples/backend/server.py"]
        assert argv[2:] == ["--host", "0.0.0.0", "--port", f"900{i}", "--name", f"b{i}"]
        assert f"http://127.0.0.1:900{i}/health" in " ".join(backend["healthcheck"]["test"])
        assert fulcrum["depends_on"][f"backend{i}"] == {"condition": "service_healthy"}


def test_compose_prometheus_is_optional_and_scrapes_with_the_token(compose):
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    (secret,) = prometheus["secrets"]
    assert compose["secrets"][secret] == {"environment": "FULCRUM_ADMIN_TOKEN"}
    assert "${FULCRUM_ADMIN_TOKEN" in compose["services"]["fulcrum"]["environment"]["FULCRUM_ADMIN__TOKEN"]
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    (job,) = scrape
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["fulcrum:9090"]}]
    assert job["authorization"] == {"type": "Bearer", "credentials_file": f"/run/secrets/{secret}"}


def test_compose_bind_mounts_exist(compose):
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert (ROOT / source).is_file(), f"{volume}: {source} is missing"


def test_compose_config_is_valid_and_needs_the_token():
    checked = run_cli("check", "--config", "deploy/compose-config.yaml", env={"FULCRUM_ADMIN__TOKEN": TOKEN})
    assert checked.returncode == 0, checked.stderr
    assert "pools: web (3 backends, round_robin)" in checked.stdout
    refused = run_cli("check", "--config", "deploy/compose-config.yaml", env={"FULCRUM_ADMIN__TOKEN": ""})
    assert refused.returncode == 2 and "admin.token" in refused.stderr
