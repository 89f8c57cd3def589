"""The admin token, through real processes: every change needs it, reads need it only off
loopback, a wrong or missing token gets a 403 or 401 saying which, a Fulcrum with no token
is read-only, a non-loopback admin listener without a token (or with one shorter than 16
characters) never starts, and wrong tokens are throttled (429 with Retry-After).
"""
from __future__ import annotations

import json

import httpx
import pytest

from tests.support.admin_client import TOKEN
from tests.support.processes import Fulcrum, admin_url, pool_config, run_cli

CHANGES = [
    pytest.param("POST", "/api/v1/pools/web/backends", {"url": "http://127.0.0.1:1"}, id="add"),
    pytest.param("PATCH", "/api/v1/pools/web/backends/{b1}", {"weight": 2}, id="patch"),
    pytest.param("POST", "/api/v1/pools/web/backends/{b1}/drain", None, id="drain"),
    pytest.param("DELETE", "/api/v1/pools/web/backends/{b1}", None, id="delete"),
    pytest.param("POST", "/api/v1/reload", None, id="reload"),
]
READS = ["/health", "/ready", "/metrics", "/api/v1/status", "/api/v1/config", "/api/v1/openapi.json",
         "/api/v1/pools/web/backends"]


def call(url: str, method: str, path: str, body, token: str | None = None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return httpx.request(method, url + path, json=body, headers=headers, trust_env=False, timeout=10)


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
@pytest.mark.parametrize(("token", "scheme", "status", "says"), [
    pytest.param(None, "Bearer", 401, "missing bearer token", id="no-header"),
    pytest.param(TOKEN, "Basic", 401, "missing bearer token", id="not-bearer"),
    pytest.param("wrong", "Bearer", 403, "invalid bearer token", id="wrong-token"),
    pytest.param(TOKEN + "x", "Bearer", 403, "invalid bearer token", id="longer-token"),
])
def test_changes_need_the_token(shared, method, path, body, token, scheme, status, says):
    lb, b1 = shared
    response = call(admin_url(lb), method, path.format(b1=f"127.0.0.1:{b1.port}"), body, token, scheme)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert "Bearer" in response.headers["www-authenticate"]
    backends = httpx.get(admin_url(lb) + "/api/v1/pools/web/backends", trust_env=False).json()
    assert [(b["id"], b["weight"], b["enabled"]) for b in backends] == [(f"127.0.0.1:{b1.port}", 1, True)]


@pytest.mark.parametrize("path", READS)
def test_reads_are_open_on_loopback(shared, path):
    lb, _ = shared
    response = httpx.get(admin_url(lb) + path, trust_env=False)
    assert response.status_code == 200, response.text


def test_right_token_is_accepted(shared):
    lb, b1 = shared
    response = call(admin_url(lb), "PATCH", f"/api/v1/pools/web/backends/127.0.0.1:{b1.port}", {}, TOKEN)
    assert response.status_code == 200, response.text


def test_without_a_token_the_api_is_read_only(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(b1)}})
    url = admin_url(lb)
    assert httpx.get(url + "/api/v1/status", trust_env=False).status_code == 200
    for token in (None, "anything"):
        response = call(url, "POST", f"/api/v1/pools/web/backends/127.0.0.1:{b1.port}/drain", None, token)
        assert response.status_code == 403, response.text
        assert "read-only: no admin token is configured" in response.json()["detail"]


def test_token_from_the_environment(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(b1)}}, env={"FULCRUM_ADMIN__TOKEN": "from-env"})
    path = f"/api/v1/pools/web/backends/127.0.0.1:{b1.port}"
    assert call(admin_url(lb), "PATCH", path, {"weight": 2}, "from-env").json()["weight"] == 2
    assert call(admin_url(lb), "PATCH", path, {"weight": 3}, TOKEN).status_code == 403


def test_off_loopback_everything_needs_the_token_but_the_page(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum({"admin": {"listen": "0.0.0.0:0", "token": TOKEN}, "pools": {"web": pool_config(b1)}})
    url = admin_url(lb).replace("0.0.0.0", "127.0.0.1")
    for path in READS:
        missing = httpx.get(url + path, trust_env=False)
        assert missing.status_code == 401, (path, missing.text)
        assert "missing bearer token" in missing.json()["detail"]
        assert call(url, "GET", path, None, "wrong").status_code == 403, path
        assert call(url, "GET", path, None, TOKEN).status_code == 200, path
    # The page holds no data (it asks for the token to fetch any), so it is served to all.
    page = httpx.get(url + "/", trust_env=False)
    assert page.status_code == 200 and "<title>Fulcrum</title>" in page.text


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_off_loopback_without_a_token_refuses_to_start(tmp_path, backends, log_format):
    (b1,) = backends(1)
    path = tmp_path / "fulcrum.yaml"
    path.write_text(json.dumps({"listen": "127.0.0.1:0", "admin": {"listen": "0.0.0.0:0"},
                                "log": {"format": log_format}, "pools": {"web": pool_config(b1)}}))
    result = run_cli("run", "--config", str(path))
    assert result.returncode == 2, result
    output = result.stdout + result.stderr
    assert "admin.token" in output and "loopback" in output, output
    assert "listening" not in output, output
    assert httpx.get(f"{b1.url}/_stats", trust_env=False).json()["requests"] == 0


@pytest.mark.parametrize("env", [pytest.param(False, id="in-file"), pytest.param(True, id="from-env")])
def test_off_loopback_a_short_token_refuses_to_start(tmp_path, backends, env):
    (b1,) = backends(1)
    short = "only-15-chars.."
    admin = {"listen": "0.0.0.0:0"} if env else {"listen": "0.0.0.0:0", "token": short}
    path = tmp_path / "fulcrum.yaml"
    path.write_text(json.dumps({"listen": "127.0.0.1:0", "admin": admin, "pools": {"web": pool_config(b1)}}))
    result = run_cli("run", "--config", str(path), env={"FULCRUM_ADMIN__TOKEN": short} if env else None)
    assert result.returncode == 2, result
    output = result.stdout + result.stderr
    assert "admin.token: must be at least 16 characters" in output and "got 15 characters" in output, output
    assert "FULCRUM_ADMIN__TOKEN" in output and short not in output, output
    assert "listening" not in output, output


def test_wrong_tokens_are_throttled_per_client(backends, fulcrum):
    from fulcrum.admin.auth import MAX_FAILURES

    (b1,) = backends(1)
    lb = fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(b1)}})
    url, path = admin_url(lb), f"/api/v1/pools/web/backends/127.0.0.1:{b1.port}"
    answers = [call(url, "PATCH", path, {"weight": 2}, "guess").status_code for _ in range(MAX_FAILURES)]
    assert answers == [403] * MAX_FAILURES
    throttled = call(url, "PATCH", path, {"weight": 2}, TOKEN)  # the right token, no longer compared
    assert throttled.status_code == 429, throttled.text
    assert 0 < int(throttled.headers["retry-after"]) <= 60
    assert "too many wrong admin tokens from 127.0.0.1" in throttled.json()["detail"]
    assert any("admin authentication throttled" in line and "client=127.0.0.1" in line for line in lb.lines)
    assert httpx.get(url + path, trust_env=False).json()["weight"] == 1  # reads on loopback need no token


def test_json_log_stays_json_with_the_admin_listener(backends, tmp_path):
    (b1,) = backends(1)
    proc = Fulcrum({"pools": {"web": pool_config(b1)}, "log": {"format": "json"}}, tmp_path)
    try:
        url = admin_url(proc)
        httpx.get(url + "/api/v1/status", trust_env=False)
        httpx.post(url + "/api/v1/reload", trust_env=False)
    finally:
        assert proc.stop() == 0, proc.output
    events = [json.loads(line)["event"] for line in proc.lines]  # every line is JSON
    assert events.index("listening") < events.index("admin listening") < events.index("stopped")


@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1", True), ("localhost", True), ("[::1]", True), ("127.0.0.2", True),
    ("evil.example", False), ("10.0.0.1", False), ("localhost.evil.example", False),
])
def test_loopback_listener_answers_only_loopback_host_names(shared, host, allowed):
    # DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own Host.
    lb, _ = shared
    url = admin_url(lb)
    port = url.rsplit(":", 1)[1]
    response = httpx.get(url + "/api/v1/status", headers={"Host": f"{host}:{port}"}, trust_env=False, timeout=10)
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert "not a loopback name" in response.json()["detail"]
