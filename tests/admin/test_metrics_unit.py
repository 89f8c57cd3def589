"""observability/metrics.py without sockets: RequestMetrics aggregates what a fake finished
exchange carries, and the collector exposes it (and live backend state) as valid Prometheus
text that prometheus_client's own parser reads back."""
from __future__ import annotations


import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fulcrum.balancing.backend import Backend
from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.observability.metrics import RECENT_SAMPLES, Metrics, RequestMetrics
from tests.support.admin_client import Samples
from tests.support.fake_exchange import FakeExchange


class FakeProxy:
    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.connections = {object(), object()}
        self.refused_total = 4
        self.tunnels_opened, self.tunnels_closed = 3, 1


@pytest.fixture
def proxy():
    config = load_config_from_dict({"pools": {"web": {"backends": [
        {"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002", "weight": 3}]}}})
    return FakeProxy(provision(config, "<test>"))


def scrape(metrics: Metrics) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def test_requests_bytes_retries_and_histograms_add_up(proxy):
    metrics = Metrics(proxy)
    pool = proxy.runtime.pools["web"]
    b1 = pool.backends[0]
    observe = metrics.requests.observe
    for _ in range(3):
        observe(FakeExchange(pool, b1, bytes_out=100, body_bytes=10, duration=0.0012, upstream_time=0.0004))
    observe(FakeExchange(pool, b1, method=b"POST", status=503, tries=3, duration=2.0, upstream_time=1.5))
    observe(FakeExchange(pool, None, status=429, rate_limited=True, tries=0, upstream_time=0.0))
    observe(FakeExchange(None, None, method=b"-", status=400, route="", tries=0, upstream_time=0.0))
    s = scrape(metrics)
    web = {"pool": "web", "backend": "127.0.0.1:9001", "route": "web"}
    assert s.value("fulcrum_requests_total", method="GET", status_class="2xx", **web) == 3
    assert s.value("fulcrum_requests_total", method="POST", status_class="5xx", **web) == 1
    assert s.value("fulcrum_requests_total", pool="", backend="", method="other", status_class="4xx", route="") == 1
    assert s.value("fulcrum_response_body_bytes_total", **web) == 300
    assert s.value("fulcrum_request_body_bytes_total", **web) == 30
    assert s.value("fulcrum_retries_total", pool="web", route="web") == 2
    assert s.value("fulcrum_rate_limited_requests_total", pool="web", route="web") == 1
    get = {"pool": "web", "route": "web", "method": "GET", "status_class": "2xx"}
    assert s.value("fulcrum_request_duration_seconds_bucket", le="0.001", **get) == 0
    assert s.value("fulcrum_request_duration_seconds_bucket", le="0.0025", **get) == 3
    assert s.value("fulcrum_request_duration_seconds_bucket", le="+Inf", **get) == 3
    assert s.value("fulcrum_request_duration_seconds_count", **get) == 3
    assert s.value("fulcrum_request_duration_seconds_sum", **get) == pytest.approx(0.0036)
    up = {"pool": "web", "backend": "127.0.0.1:9001"}
    assert s.value("fulcrum_upstream_duration_seconds_bucket", le="0.0005", **up) == 3
    assert s.value("fulcrum_upstream_duration_seconds_bucket", le="1.0", **up) == 3
    assert s.value("fulcrum_upstream_duration_seconds_bucket", le="2.5", **up) == 4
    assert s.value("fulcrum_upstream_duration_seconds_count", **up) == 4
    assert metrics.requests.total_requests() == 6
    assert metrics.requests.responses()[("web", "127.0.0.1:9001")] == {"2xx": 3, "5xx": 1}


def test_a_backend_added_again_is_one_series(proxy):
    metrics = Metrics(proxy)
    pool = proxy.runtime.pools["web"]
    first, again = Backend("http://127.0.0.1:9009"), Backend("http://127.0.0.1:9009")
    metrics.requests.observe(FakeExchange(pool, first))
    metrics.requests.observe(FakeExchange(pool, again))
    s = scrape(metrics)  # also asserts no duplicate samples
    assert s.value("fulcrum_requests_total", pool="web", backend="127.0.0.1:9009", method="GET",
                   status_class="2xx", route="web") == 2
    assert s.value("fulcrum_upstream_duration_seconds_count", pool="web", backend="127.0.0.1:9009") == 2


def test_series_of_removed_backends_are_retired_not_lost(proxy):
    metrics = Metrics(proxy)
    pool = proxy.runtime.pools["web"]
    gone = Backend("http://127.0.0.1:9009")
    for backend in (gone, gone, pool.backends[0]):
        metrics.requests.observe(FakeExchange(pool, backend, bytes_out=5))
    s = scrape(metrics)  # gone was never a member: retired at this scrape
    assert s.value("fulcrum_requests_total", pool="web", backend="127.0.0.1:9009", method="GET",
                   status_class="2xx", route="web") == 2
    assert all(key[1] is not gone for key in metrics.requests.series) and gone not in metrics.requests.recent
    metrics.requests.observe(FakeExchange(pool, pool.backends[0], bytes_out=5))
    s = scrape(metrics)
    assert s.value("fulcrum_response_body_bytes_total", pool="web", backend="127.0.0.1:9001", route="web") == 10
    assert s.value("fulcrum_response_body_bytes_total", pool="web", backend="127.0.0.1:9009", route="web") == 10
    assert metrics.requests.total_requests() == 4


def test_live_state_is_read_at_scrape_time(proxy):
    metrics = Metrics(proxy)
    pool = proxy.runtime.pools["web"]
    b1, b2 = pool.backends
    b1.in_flight, b1.requests, b1.failures = 4, 10, 2
    b2.healthy = False
    pool.refresh(pool.clock())
    b2.breaker.record_failure(pool.clock())
    s = scrape(metrics)
    one, two = {"pool": "web", "backend": b1.id}, {"pool": "web", "backend": b2.id}
    assert s.value("fulcrum_backend_in_flight_requests", **one) == 4
    assert s.value("fulcrum_upstream_requests_total", **one) == 10
    assert s.value("fulcrum_upstream_failures_total", **one) == 2
    assert (s.value("fulcrum_backend_healthy", **two), s.value("fulcrum_backend_available", **two)) == (0, 0)
    assert s.value("fulcrum_backend_weight", **two) == 3
    assert s.value("fulcrum_circuit_breaker_state", state="closed", **two) == 1
    assert s.value("fulcrum_outlier_ejections_total", **one) == 0
    assert s.value("fulcrum_open_client_connections") == 2
    assert s.value("fulcrum_refused_connections_total") == 4
    assert (s.value("fulcrum_open_tunnels"), s.value("fulcrum_tunnels_total")) == (2, 3)
    b1.in_flight = 0
    assert scrape(metrics).value("fulcrum_backend_in_flight_requests", **one) == 0


def test_reloads_are_counted_by_result(proxy):
    metrics = Metrics(proxy)
    metrics.record_reload(True)
    metrics.record_reload(False)
    metrics.record_reload(True)
    s = scrape(metrics)
    assert s.value("fulcrum_config_reloads_total", result="success") == 2
    assert s.value("fulcrum_config_reloads_total", result="failure") == 1


def test_process_collector_is_registered(proxy):
    names = scrape(Metrics(proxy)).names()
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def test_percentiles_cover_the_recent_responses_only():
    requests = RequestMetrics()
    pool, backend = object(), Backend("http://127.0.0.1:9001")
    assert requests.percentiles(backend) is None
    for ms in range(1, 101):
        requests.observe(FakeExchange(pool, backend, upstream_time=ms / 1000))
    assert requests.percentiles(backend) == {"p50": 0.051, "p90": 0.091, "p99": 0.1}
    for _ in range(RECENT_SAMPLES):
        requests.observe(FakeExchange(pool, backend, upstream_time=0.5))
    assert requests.percentiles(backend) == {"p50": 0.5, "p90": 0.5, "p99": 0.5}
