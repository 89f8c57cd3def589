"""/metrics through real processes, parsed with prometheus_client's own parser: the
request counters and histograms move with traffic, gauges read live state (in flight,
open connections, health, breaker), retries and gateway failures are counted, and the
process collector is there. Values are compared before and after traffic; a request is held
in flight by a scripted backend, not by timing.
"""
from __future__ import annotations

import httpx

from tests.support.admin_client import TOKEN
from tests.support.fake_backend import wait_until
from tests.support.holding import Holding, held_request
from tests.support.processes import pool_config

FAST_CHECKS = {"interval": "0.2s", "timeout": "0.5s", "unhealthy_threshold": 2, "healthy_threshold": 2}


def closed_port() -> int:
    from tests.integration.test_resilience import closed_port as pick
    return pick()


def test_request_metrics_move_with_traffic(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(b1)}})
    admin = admin_for(lb, token=None)
    who = {"pool": "web", "backend": f"127.0.0.1:{b1.port}"}
    before = admin.metrics()
    with httpx.Client(trust_env=False) as client:
        for _ in range(20):
            assert client.get(f"{lb.url}/", params={"size": 100}).status_code == 200
        for _ in range(5):
            assert client.post(f"{lb.url}/echo", content=b"x" * 1000).status_code == 200
        assert client.get(f"{lb.url}/", params={"status": 503}).status_code == 503
    after = admin.metrics()

    def moved(name: str, **labels) -> float:
        return after.total(name, **labels) - before.total(name, **labels)

    assert moved("fulcrum_requests_total", method="GET", status_class="2xx", **who) == 20
    assert moved("fulcrum_requests_total", method="POST", status_class="2xx", **who) == 5
    assert moved("fulcrum_requests_total", status_class="5xx", **who) == 1
    assert moved("fulcrum_request_duration_seconds_count", pool="web", method="GET", status_class="2xx") == 20
    assert moved("fulcrum_request_duration_seconds_bucket", pool="web", method="GET", status_class="2xx",
                 le="+Inf") == 20
    assert moved("fulcrum_request_duration_seconds_sum", pool="web") > 0
    assert moved("fulcrum_upstream_duration_seconds_count", **who) == 26
    assert moved("fulcrum_response_body_bytes_total", **who) >= 20 * 100
    assert moved("fulcrum_request_body_bytes_total", **who) == 5 * 1000
    assert moved("fulcrum_upstream_requests_total", **who) == 26
    assert moved("fulcrum_upstream_failures_total", **who) == 1  # the 503: a gateway failure
    assert after.value("fulcrum_backend_in_flight_requests", **who) == 0


def test_gauges_read_live_state(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    dead = f"http://127.0.0.1:{closed_port()}"
    lb = fulcrum({"pools": {"web": {**pool_config(b1, resilience=True, health_check=FAST_CHECKS),
                                    "backends": [{"url": b1.url}, {"url": dead, "id": "dead"}]}}})
    admin = admin_for(lb, token=None)
    who = {"pool": "web", "backend": f"127.0.0.1:{b1.port}"}
    assert wait_until(lambda: admin.metrics().value("fulcrum_backend_healthy", pool="web", backend="dead") == 0, 15)
    samples = admin.metrics()
    assert samples.value("fulcrum_backend_healthy", **who) == 1
    assert samples.value("fulcrum_backend_available", pool="web", backend="dead") == 0
    assert samples.value("fulcrum_circuit_breaker_state", state="closed", **who) == 1
    assert samples.value("fulcrum_circuit_breaker_state", state="open", **who) == 0
    assert ("fulcrum_outlier_ejections_total", frozenset(who.items())) in samples
    assert samples.value("fulcrum_backend_weight", **who) == 1
    assert samples.value("fulcrum_pool_panic", pool="web") == 0


def test_in_flight_and_open_connections_follow_a_held_request(fulcrum, admin_for):
    with Holding() as held:
        lb = fulcrum({"pools": {"web": pool_config(held)}})
        admin = admin_for(lb, token=None)
        who = {"pool": "web", "backend": f"127.0.0.1:{held.port}"}
        assert admin.metrics().value("fulcrum_backend_in_flight_requests", **who) == 0
        thread, result = held_request(lb.url)
        assert held.wait_for_requests(1)
        samples = admin.metrics()
        assert samples.value("fulcrum_backend_in_flight_requests", **who) == 1
        assert samples.value("fulcrum_open_client_connections") == 1
        held.release()
        thread.join(30)
        assert result[0][0] == 200
        assert admin.metrics().value("fulcrum_backend_in_flight_requests", **who) == 0
        assert wait_until(lambda: admin.metrics().value("fulcrum_open_client_connections") == 0, 10)


def test_retries_and_failures_are_counted(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    dead = f"http://127.0.0.1:{closed_port()}"
    lb = fulcrum({"pools": {"web": {**pool_config(b1), "retry": {"attempts": 3},
                                    "backends": [{"url": dead, "id": "dead"}, {"url": b1.url}]}}})
    admin = admin_for(lb, token=None)
    with httpx.Client(trust_env=False) as client:
        statuses = [client.get(f"{lb.url}/").status_code for _ in range(10)]
    assert statuses == [200] * 10
    samples = admin.metrics()
    assert samples.total("fulcrum_retries_total", pool="web") >= 5  # round robin lands on "dead" every other time
    assert samples.value("fulcrum_upstream_failures_total", pool="web", backend="dead") >= 5
    assert samples.total("fulcrum_requests_total", pool="web", backend="dead") == 0  # nothing answered there


def test_process_and_reload_metrics_are_exposed(shared, admin_for):
    lb, _ = shared
    admin = admin_for(lb, token=None)
    assert admin.get("/metrics").headers["content-type"].startswith("text/plain; version=")
    samples = admin.metrics()
    names = samples.names()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "python_info", "fulcrum_build_info", "fulcrum_open_client_connections"):
        assert name in names, sorted(names)
    assert samples.value("fulcrum_config_reloads_total", result="success") == 0
    assert samples.value("fulcrum_config_reloads_total", result="failure") == 0
    assert all(n.startswith(("fulcrum_", "process_", "python_")) for n in names), sorted(names)


def test_rate_limited_requests_are_counted(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": pool_config(b1)},
                  "rate_limit": {"requests_per_second": 0.01, "burst": 2, "headers": False}})
    admin = admin_for(lb, token=None)
    with httpx.Client(trust_env=False) as client:
        statuses = [client.get(f"{lb.url}/").status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    samples = admin.metrics()
    assert samples.total("fulcrum_rate_limited_requests_total") == 3
    assert samples.total("fulcrum_requests_total", status_class="4xx") == 3


def test_reloads_through_the_api_are_counted_by_result(backends, fulcrum, admin_for):
    (b1,) = backends(1)
    lb = fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(b1)}})
    admin = admin_for(lb)
    good = admin.http.post("/api/v1/reload")
    assert good.status_code == 200 and good.json()["reloaded"] is True, good.text
    text = lb.config_path.read_text()
    lb.config_path.write_text(text.replace("round_robin", "no_such_strategy"))
    bad = admin.http.post("/api/v1/reload")
    assert bad.status_code == 422 and "no_such_strategy" in bad.json()["detail"], bad.text
    samples = admin.metrics()
    assert samples.value("fulcrum_config_reloads_total", result="success") == 1
    assert samples.value("fulcrum_config_reloads_total", result="failure") == 1
    with httpx.Client(trust_env=False) as client:
        assert client.get(f"{lb.url}/").status_code == 200  # still serving the good version
