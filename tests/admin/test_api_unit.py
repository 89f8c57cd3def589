"""The admin package's pure parts: every handler runs on the loop, the token check, who
counts as loopback, secret redaction and the one-word backend state."""
from __future__ import annotations

import inspect

import pytest
from fastapi import HTTPException
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from fulcrum.admin import api
from fulcrum.admin.api import AdminContext, build_app
from fulcrum.admin.auth import MISSING, NO_TOKEN, WRONG, Auth, bearer, require_token
from fulcrum.admin.config_view import REDACTED, redact
from fulcrum.admin.exposure import InsecureAdminListener, check_exposure, is_loopback
from fulcrum.admin.status import backend_state
from fulcrum.balancing.backend import Backend
from fulcrum.resilience.circuit_breaker import CircuitBreaker


def dependencies(dependant):
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependencies(sub)


def test_every_handler_and_dependency_runs_on_the_loop():
    # FastAPI runs a plain `def` on a thread pool, where pools must never be touched.
    routes = [r for router in (api.public, api.reads, api.writes) for r in router.routes]
    assert len(routes) >= 12
    for route in routes:
        assert isinstance(route, APIRoute)
        assert inspect.iscoroutinefunction(route.endpoint), route.path
        for call in [*dependencies(route.dependant), require_token, type(bearer).__call__]:
            target = call if inspect.isfunction(call) else type(call).__call__
            assert inspect.iscoroutinefunction(target), (route.path, call)
    app = build_app(AdminContext(proxy=None, metrics=None), Auth("t", "0.0.0.0"))
    assert all(inspect.iscoroutinefunction(r.endpoint) for r in app.routes if isinstance(r, APIRoute))


def creds(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


@pytest.mark.parametrize(("configured", "sent", "status", "detail"), [
    pytest.param("tok", None, 401, MISSING, id="missing"),
    pytest.param("tok", creds(""), 401, MISSING, id="empty"),
    pytest.param("tok", creds("nope"), 403, WRONG, id="wrong"),
    pytest.param("tok", creds("tok "), 403, WRONG, id="trailing-space"),
    pytest.param("tök", creds("tök"), None, None, id="non-ascii-ok"),
    pytest.param("tok", creds("tok"), None, None, id="right"),
    pytest.param(None, creds("tok"), 403, NO_TOKEN, id="none-configured"),
])
def test_token_check(configured, sent, status, detail):
    auth = Auth(configured, "127.0.0.1")
    if status is None:
        auth.check(sent)
        return
    with pytest.raises(HTTPException) as info:
        auth.check(sent)
    assert (info.value.status_code, info.value.detail) == (status, detail)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.0.0.1", False), ("example.com", False),
])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback
    assert Auth("t", host).reads_need_token is not loopback


def test_off_loopback_without_token_is_refused():
    check_exposure("127.0.0.1", None)
    check_exposure("0.0.0.0", "tok")
    with pytest.raises(InsecureAdminListener, match="admin.listen is 0.0.0.0, not loopback"):
        check_exposure("0.0.0.0", None)


def test_redaction_by_key_name_at_any_depth():
    config = {"admin": {"listen": "x", "token": "s3cret"}, "filters": [{"options": {"api_key": "k", "keep": 1}}],
              "routes": [{"headers": {"Authorization": "Bearer x", "x-user": "u"}}], "empty": {"password": None},
              "pools": {"web": {"options": {"key": "client_ip"}}}}
    assert redact(config) == {
        "admin": {"listen": "x", "token": REDACTED}, "filters": [{"options": {"api_key": REDACTED, "keep": 1}}],
        "routes": [{"headers": {"Authorization": REDACTED, "x-user": "u"}}], "empty": {"password": None},
        "pools": {"web": {"options": {"key": "client_ip"}}}}


def backend(**flags) -> Backend:
    b = Backend("http://127.0.0.1:9001")
    for name, value in flags.items():
        setattr(b, name, value)
    return b


def tripped() -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=1)
    breaker.record_failure(0.0)
    return breaker


@pytest.mark.parametrize(("b", "state"), [
    pytest.param(backend(), "up", id="up"),
    pytest.param(backend(ramp=0.5), "slow_start", id="slow-start"),
    pytest.param(backend(breaker=tripped()), "breaker_open", id="breaker-open"),
    pytest.param(backend(ejected=True), "ejected", id="ejected"),
    pytest.param(backend(healthy=False, ejected=True), "unhealthy", id="unhealthy-wins-over-ejected"),
    pytest.param(backend(enabled=False, in_flight=2), "draining", id="draining"),
    pytest.param(backend(enabled=False, healthy=False), "disabled", id="disabled-wins"),
])
def test_backend_state_names_the_most_important_reason(b, state):
    assert backend_state(b) == state
