"""Backends changed at run time through the admin API, through real processes and sockets:
an added backend takes requests at once, a drained one takes none while the requests it
holds finish (a scripted backend holds one until the test lets it go), DELETE drains before
it removes, a weight change shows in the very next picks, and every refusal names its cause.
Who answered is read from X-Backend.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import httpx
import pytest

from tests.support.admin_client import TOKEN
from tests.support.fake_backend import wait_until
from tests.support.holding import Holding, held_request
from tests.support.processes import pool_config

FAST_CHECKS = {"interval": "0.2s", "timeout": "0.5s", "unhealthy_threshold": 2, "healthy_threshold": 2}


def served_by(url: str, n: int, path: str = "/") -> list[str]:
    with httpx.Client(trust_env=False, timeout=15) as client:
        return [client.get(url + path).headers["x-backend"] for _ in range(n)]


def start(fulcrum, *backends, **pool) -> object:
    return fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(*backends, **pool)}})


def backend_id(backend) -> str:
    return f"127.0.0.1:{backend.port}"


@contextmanager
def one_request_held(backends, fulcrum, admin_for) -> Iterator[tuple]:
    """Fulcrum over a Holding backend and "other1", with one request held by the first:
    ``(held, other, lb, admin, thread, result)``; the held request's thread and result list."""
    (other,) = backends(1, prefix="other")
    with Holding() as held:
        lb = start(fulcrum, held, other)
        admin = admin_for(lb)
        thread, result = held_request(lb.url)  # round robin: the first pick is "held"
        assert held.wait_for_requests(1)
        yield held, other, lb, admin, thread, result


def test_added_backend_takes_requests_at_once(backends, fulcrum, admin_for):
    b1, b2 = backends(2)
    lb = start(fulcrum, b1)
    admin = admin_for(lb)
    response = admin.add("web", b2.url)
    assert response.status_code == 201, response.text
    row = response.json()
    assert (row["id"], row["url"], row["state"], row["weight"]) == (backend_id(b2), b2.url, "up", 1)
    assert sorted(served_by(lb.url, 4)) == ["b1", "b1", "b2", "b2"]  # round robin over both
    assert [b["id"] for b in admin.backends("web")] == [backend_id(b1), backend_id(b2)]


def test_added_backend_can_start_disabled_and_be_enabled(backends, fulcrum, admin_for):
    b1, b2 = backends(2)
    lb = start(fulcrum, b1)
    admin = admin_for(lb)
    assert admin.add("web", b2.url, id="spare", enabled=False).json()["state"] == "disabled"
    assert set(served_by(lb.url, 6)) == {"b1"}
    assert admin.patch("web", "spare", enabled=True).json()["state"] == "up"
    assert set(served_by(lb.url, 6)) == {"b1", "b2"}


def test_drained_backend_finishes_in_flight_and_gets_no_new_requests(backends, fulcrum, admin_for):
    with one_request_held(backends, fulcrum, admin_for) as (held, other, lb, admin, thread, result):

        drained = admin.drain("web", backend_id(held))
        assert drained.status_code == 200, drained.text
        assert (drained.json()["state"], drained.json()["in_flight"]) == ("draining", 1)
        assert set(served_by(lb.url, 20)) == {"other1"}
        held.release()
        thread.join(30)
        assert result and result[0][:2] == (200, "held"), result  # it finished, where it was
        after = admin.backend("web", backend_id(held))
        assert (after["state"], after["in_flight"], after["enabled"]) == ("disabled", 0, False)
        assert set(served_by(lb.url, 10)) == {"other1"}

        assert admin.patch("web", backend_id(held), enabled=True).json()["state"] == "up"
        assert set(served_by(lb.url, 10)) == {"held", "other1"}


def test_delete_drains_first_then_removes(backends, fulcrum, admin_for):
    with one_request_held(backends, fulcrum, admin_for) as (held, other, lb, admin, thread, result):
        with ThreadPoolExecutor(1) as pool:
            deleting = pool.submit(lambda: (admin.delete("web", backend_id(held)), time.monotonic()))
            assert wait_until(lambda: not admin.backend("web", backend_id(held))["enabled"], 10)
            assert set(served_by(lb.url, 10)) == {"other1"}
            assert not deleting.done()  # still waiting for the request in flight
            held.release()
            response, deleted_at = deleting.result(30)
        thread.join(30)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == backend_id(held)
        assert result and result[0][0] == 200 and result[0][2] <= deleted_at  # in flight finished first
        assert [b["id"] for b in admin.backends("web")] == [backend_id(other)]
        assert set(served_by(lb.url, 10)) == {"other1"}

        # The same backend can come back under the same id.
        assert admin.add("web", held.url).status_code == 201
        assert set(served_by(lb.url, 10)) == {"held", "other1"}


def test_delete_gives_up_after_its_timeout_and_leaves_the_backend_drained(backends, fulcrum, admin_for):
    with one_request_held(backends, fulcrum, admin_for) as (held, other, lb, admin, thread, result):
        response = admin.delete("web", backend_id(held), timeout=0.2)
        assert response.status_code == 409, response.text
        assert "still has 1 requests in flight after 0.2s" in response.json()["detail"]
        assert admin.backend("web", backend_id(held))["enabled"] is False
        held.release()
        thread.join(30)
        assert result[0][:2] == (200, "held")


def test_weight_change_applies_to_the_next_picks(backends, fulcrum, admin_for):
    b1, b2 = backends(2)
    lb = start(fulcrum, b1, b2, strategy="weighted_round_robin")
    admin = admin_for(lb)
    assert sorted(served_by(lb.url, 4)) == ["b1", "b1", "b2", "b2"]
    response = admin.patch("web", backend_id(b2), weight=3)
    assert response.status_code == 200, response.text
    assert (response.json()["weight"], response.json()["share_of_weight"]) == (3, 0.75)
    assert sorted(served_by(lb.url, 8)) == ["b1"] * 2 + ["b2"] * 6


def test_added_backend_gets_health_checks_and_a_breaker(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    lb = start(fulcrum, b1, resilience=True, health_check=FAST_CHECKS)
    admin = admin_for(lb)
    from tests.integration.test_resilience import closed_port
    dead = f"http://127.0.0.1:{closed_port()}"
    row = admin.add("web", dead, id="dead").json()
    assert row["breaker"]["state"] == "closed" and row["health_check"]["state"] == "healthy"
    assert wait_until(lambda: admin.backend("web", "dead")["state"] == "unhealthy", 15), lb.output
    assert "connect" in admin.backend("web", "dead")["health_check"]["last_reason"]
    assert set(served_by(lb.url, 6)) == {"b1"}


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), [
    pytest.param("POST", "/api/v1/pools/nope/backends", {"url": "http://127.0.0.1:1"}, 404,
                 "no pool named 'nope' (pools: web)", id="unknown-pool"),
    pytest.param("PATCH", "/api/v1/pools/web/backends/nope", {"weight": 2}, 404,
                 "pool 'web' has no backend 'nope'", id="unknown-backend"),
    pytest.param("POST", "/api/v1/pools/web/backends/nope/drain", None, 404, "has no backend 'nope'",
                 id="drain-unknown"),
    pytest.param("POST", "/api/v1/pools/web/backends", {"url": "{b1}"}, 409, "already has backend",
                 id="duplicate-address"),
    pytest.param("POST", "/api/v1/pools/web/backends", {"url": "http://127.0.0.1:1", "id": "{b1_id}"}, 409,
                 "already has backend", id="duplicate-id"),
    pytest.param("POST", "/api/v1/pools/web/backends", {"url": "ftp://x"}, 422,
                 "must be http://host[:port] with a host name", id="bad-url"),
    pytest.param("PATCH", "/api/v1/pools/web/backends/{b1_id}", {"weight": 0}, 422, "greater than or equal to 1",
                 id="weight-zero"),
    pytest.param("PATCH", "/api/v1/pools/web/backends/{b1_id}", {"colour": "red"}, 422, "colour",
                 id="unknown-field"),
    pytest.param("DELETE", "/api/v1/pools/web/backends/{b1_id}", None, 409, "is the last one of pool 'web'",
                 id="last-backend"),
])
def test_refusals_name_their_cause(shared, admin_for, method, path, body, status, words):
    lb, b1 = shared
    admin = admin_for(lb)

    def fill(text: str) -> str:
        return text.replace("{b1_id}", backend_id(b1)).replace("{b1}", b1.url)

    json = {k: fill(v) if isinstance(v, str) else v for k, v in body.items()} if body else None
    response = admin.http.request(method, fill(path), json=json)
    assert response.status_code == status, response.text
    assert words in response.text, response.text
    assert set(served_by(lb.url, 3)) == {"b1"}  # nothing changed


def test_effective_config_shows_current_backends_and_hides_the_token(backends, fulcrum, admin_for):
    b1, b2 = backends(2)
    lb = start(fulcrum, b1)
    admin = admin_for(lb)
    admin.add("web", b2.url, weight=2)
    config = admin.get("/api/v1/config").json()
    assert config["admin"]["token"] == "<redacted>"
    assert TOKEN not in admin.get("/api/v1/config").text
    assert config["pools"]["web"]["backends"] == [
        {"url": b1.url, "weight": 1, "id": backend_id(b1)}, {"url": b2.url, "weight": 2, "id": backend_id(b2)}]
    assert config["pools"]["web"]["strategy"] == "round_robin"
