"""cluster/merge.py: the supervisor's one view over its workers. Metrics are merged from
real expositions (real Metrics registries over provisioned runtimes, one per "process")
and read back with prometheus_client's parser; status is merged from real ``status()``
output and from table-driven hand-made rows, one case per rule."""
from __future__ import annotations

import copy
import logging

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fulcrum import __version__
from fulcrum.admin import schemas
from fulcrum.admin.status import status
from fulcrum.cluster.merge import (
    MAX, MIN, SUM, SUPERVISOR, WORKERS, MetricsAggregate, merge_pool, merge_rows, merge_status,
    rule_for,
)
from fulcrum.config.load import load_config_from_dict
from fulcrum.runtime.provision import provision
from fulcrum.observability.metrics import DURATION_BUCKETS, Metrics
from tests.support.fake_exchange import FakeExchange

CONFIG = {"pools": {"web": {"backends": [
    {"url": "http://127.0.0.1:9001", "id": "b1"},
    {"url": "http://127.0.0.1:9002", "id": "b2", "weight": 3}]}}}
WEB_B1 = {"pool": "web", "backend": "b1"}
GET_2XX = {"pool": "web", "route": "web", "method": "GET", "status_class": "2xx"}


# -- real processes' state -----------------------------------------------------------------
class FakeProxy:
    """What FulcrumCollector reads off the proxy server."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.connections: set = set()
        self.refused_total = 0
        self.tunnels_opened = self.tunnels_closed = 0


class Process:
    """One Fulcrum process's state: its own provisioned runtime, metrics and proxy stand-in."""

    def __init__(self) -> None:
        self.runtime = provision(load_config_from_dict(copy.deepcopy(CONFIG)), "<test>")
        self.proxy = FakeProxy(self.runtime)
        self.metrics = Metrics(self.proxy)
        self.pool = self.runtime.pools["web"]
        self.b1, self.b2 = self.pool.backends

    def serve(self, n: int, backend: str = "b1", **fields) -> None:
        b = self.b1 if backend == "b1" else self.b2
        for _ in range(n):
            b.requests += 1  # the proxy counts tries; observe counts finished requests
            self.metrics.requests.observe(FakeExchange(self.pool, b, **fields))

    def fail(self, n: int, backend: str = "b1") -> None:
        b = self.b1 if backend == "b1" else self.b2
        for _ in range(n):
            b.requests += 1
            b.failures += 1
            b.last_error = "connect refused"
            self.pool.record(b, False, self.pool.clock())

    def connect(self, n: int) -> None:
        self.proxy.connections |= {object() for _ in range(n)}

    def text(self) -> str:
        return generate_latest(self.metrics.registry).decode()

    def status(self) -> dict:
        return status(self.runtime, self.metrics.requests, len(self.proxy.connections), 0.0)


def scrape(text: str | bytes) -> dict:
    """``{(sample name, frozenset(labels)): value}``; fails on a duplicate sample."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def buckets(samples: dict, name: str, **labels) -> list[float]:
    """Cumulative bucket values in bound order, +Inf last."""
    bounds = [repr(b) for b in DURATION_BUCKETS] + ["+Inf"]
    return [value(samples, f"{name}_bucket", le=le, **labels) for le in bounds]


def families(text: bytes) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text.decode())}


@pytest.fixture
def procs():
    """A supervisor (no traffic, one reload) and two workers with traffic."""
    sup, w1, w2 = Process(), Process(), Process()
    sup.metrics.record_reload(True)
    w1.serve(3, bytes_out=100, duration=0.0012)
    w1.serve(1, method=b"POST", status=503, duration=2.0, upstream_time=1.5)
    w2.serve(2, bytes_out=50, duration=0.02)
    w2.serve(4, backend="b2", duration=0.3)
    w1.connect(2)
    w2.connect(5)
    return sup, w1, w2


def aggregate(*workers: Process) -> MetricsAggregate:
    agg = MetricsAggregate()
    for slot, w in enumerate(workers, 1):
        agg.update(slot, started(w.text(), 1000.0 + slot))
    return agg


def started(text: str, at: float) -> str:
    """``text`` as if from a process started at ``at`` (the test's "processes" are one)."""
    lines = [f"process_start_time_seconds {at}" if line.startswith("process_start_time_seconds ") else line
             for line in text.splitlines()]
    assert lines != text.splitlines(), "no process_start_time_seconds to rewrite"
    return "\n".join(lines) + "\n"


# -- metrics ---------------------------------------------------------------------------------
def test_counters_and_histograms_are_summed_bucket_by_bucket(procs):
    sup, w1, w2 = procs
    merged = scrape(aggregate(w1, w2).render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 5
    assert value(merged, "fulcrum_requests_total", pool="web", backend="b2", route="web", method="GET",
                 status_class="2xx") == 4
    assert value(merged, "fulcrum_response_body_bytes_total", **WEB_B1, route="web") == 400
    assert value(merged, "fulcrum_upstream_requests_total", **WEB_B1) == 6
    assert value(merged, "fulcrum_open_client_connections") == 7
    one, two = scrape(w1.text()), scrape(w2.text())
    name = "fulcrum_request_duration_seconds"
    got = buckets(merged, name, **GET_2XX)
    assert got == [a + b for a, b in zip(buckets(one, name, **GET_2XX), buckets(two, name, **GET_2XX))]
    assert got == [0, 0, 3, 3, 3, 5, 5, 5, 5, 9, 9, 9, 9, 9, 9, 9]  # b2's four at 0.3 s count too
    assert got == sorted(got)  # still cumulative
    assert value(merged, f"{name}_count", **GET_2XX) == got[-1] == 9
    assert value(merged, f"{name}_sum", **GET_2XX) == pytest.approx(3 * 0.0012 + 2 * 0.02 + 4 * 0.3)
    up = buckets(merged, "fulcrum_upstream_duration_seconds", **WEB_B1)
    assert up[-1] == value(merged, "fulcrum_upstream_duration_seconds_count", **WEB_B1) == 6
    assert up == sorted(up) and up[0] == 5  # five at 0.5 ms, one at 1.5 s


def test_rendered_names_types_and_help_match_the_sources(procs):
    sup, w1, w2 = procs
    text = aggregate(w1, w2).render(sup.text())
    lines = text.decode().splitlines()
    for line in ("# TYPE fulcrum_requests_total counter", "# TYPE fulcrum_build_info gauge",
                 "# TYPE fulcrum_request_duration_seconds histogram", "# TYPE process_cpu_seconds_total counter",
                 "# HELP fulcrum_requests_total Finished client requests.",
                 "# TYPE fulcrum_circuit_breaker_state gauge"):
        assert line in lines
    assert families(text) == families(w1.text().encode())  # every family, same types


def test_supervisor_owned_families_come_from_the_supervisor_only(procs):
    sup, w1, w2 = procs
    w1.metrics.record_reload(True)  # a worker's own copy: ignored
    w1.metrics.record_reload(False)
    sup.b2.weight, w1.b2.weight = 5, 7
    sup.pool.set_healthy(sup.b2, False)  # the supervisor's checks say so; workers still think it fine
    sup.b1.enabled = False
    extra = ("# HELP fulcrum_workers Worker processes running.\n# TYPE fulcrum_workers gauge\n"
             "fulcrum_workers 2.0\n")
    merged = scrape(aggregate(w1, w2).render(sup.text() + extra))
    assert value(merged, "fulcrum_config_reloads_total", result="success") == 1
    assert value(merged, "fulcrum_config_reloads_total", result="failure") == 0
    assert value(merged, "fulcrum_backend_weight", pool="web", backend="b2") == 5
    assert value(merged, "fulcrum_backend_healthy", pool="web", backend="b2") == 0
    assert value(merged, "fulcrum_backend_enabled", **WEB_B1) == 0
    assert value(merged, "fulcrum_build_info", version=__version__) == 1
    assert value(merged, "fulcrum_workers") == 2


def test_a_worker_copy_of_a_supervisor_family_is_dropped_when_the_supervisor_has_none():
    worker = ("# TYPE fulcrum_workers gauge\nfulcrum_workers 9\n"
              "# TYPE fulcrum_tunnels_total counter\nfulcrum_tunnels_total 2\n")
    agg = MetricsAggregate()
    agg.update(1, worker)
    text = agg.render("")
    assert families(text) == {"fulcrum_tunnels": "counter"}  # a family from one source still appears
    assert value(scrape(text), "fulcrum_tunnels_total") == 2


def test_breaker_state_counts_workers_and_ignores_the_supervisor(procs):
    sup, w1, w2 = procs
    w1.fail(5)  # five consecutive failures open w1's breaker (and eject b1 there)
    merged = scrape(aggregate(w1, w2).render(sup.text()))
    assert value(merged, "fulcrum_circuit_breaker_state", **WEB_B1, state="open") == 1
    assert value(merged, "fulcrum_circuit_breaker_state", **WEB_B1, state="closed") == 1  # w2 only
    assert value(merged, "fulcrum_circuit_breaker_state", pool="web", backend="b2", state="closed") == 2
    assert value(merged, "fulcrum_backend_ejected", **WEB_B1) == 1  # max
    assert value(merged, "fulcrum_backend_available", **WEB_B1) == 1  # w2 may still pick it
    assert value(merged, "fulcrum_circuit_breaker_opens_total", **WEB_B1) == 1
    assert value(merged, "fulcrum_upstream_failures_total", **WEB_B1) == 5


def test_process_figures_are_summed_or_taken_once(procs):
    # All three "processes" are this test process: the same process figures three times.
    sup, w1, w2 = procs
    own = scrape(sup.text())
    merged = scrape(aggregate(w1, w2).render(sup.text()))
    assert value(merged, "process_max_fds") == value(own, "process_max_fds")
    assert value(merged, "process_start_time_seconds") == 1001.0  # the earliest (workers rewritten)
    assert value(merged, "process_open_fds") == 3 * value(own, "process_open_fds")
    info = next(k for k in own if k[0] == "python_info")
    assert merged[info] == 1


@pytest.mark.parametrize("family, sup, w1, w2, expected", [
    pytest.param("process_start_time_seconds", 100, 50, 200, 50, id="start-time-min"),
    pytest.param("process_max_fds", 1024, 4096, 2048, 4096, id="max-fds-max"),
    pytest.param("fulcrum_backend_latency_ewma_seconds", 0, 0.2, 0.1, 0.2, id="ewma-max"),
    pytest.param("fulcrum_pool_panic", 0, 1, 1, 1, id="panic-max"),
    pytest.param("fulcrum_pool_panic", 1, 0, 0, 0, id="panic-workers-only"),
    pytest.param("fulcrum_backend_ejected", 0, 1, 1, 1, id="ejected-max"),
    pytest.param("python_info", 1, 1, 1, 1, id="python-info-max"),
    pytest.param("fulcrum_backend_available", 1, 0, 0, 0, id="available-workers-only"),
    pytest.param("fulcrum_backend_available", 0, 1, 0, 1, id="available-any-worker"),
    pytest.param("process_open_fds", 10, 20, 30, 60, id="open-fds-sum"),
    pytest.param("fulcrum_backend_in_flight_requests", 0, 4, 3, 7, id="in-flight-sum"),
    pytest.param("fulcrum_backend_weight", 3, 9, 9, 3, id="weight-supervisor"),
    pytest.param("fulcrum_circuit_breaker_state", 1, 1, 0, 1, id="breaker-state-workers"),
])
def test_gauge_rules(family, sup, w1, w2, expected):
    def text(v):
        return f"# HELP {family} h\n# TYPE {family} gauge\n{family} {v}\n"
    agg = MetricsAggregate()
    agg.update(1, text(w1))
    agg.update(2, text(w2))
    assert value(scrape(agg.render(text(sup))), family) == expected


@pytest.mark.parametrize("family, rule", [
    pytest.param("fulcrum_requests", SUM, id="default-sum"),
    pytest.param("fulcrum_build_info", SUPERVISOR, id="info-keeps-suffix"),
    pytest.param("fulcrum_config_reloads", SUPERVISOR, id="counter-without-total"),
    pytest.param("fulcrum_circuit_breaker_state", WORKERS, id="workers"),
    pytest.param("python_info", MAX, id="max"),
    pytest.param("process_start_time_seconds", MIN, id="min"),
    pytest.param("fulcrum_worker_restarts_created", SUPERVISOR, id="created-of-supervisor-family"),
    pytest.param("fulcrum_tunnels_created", MIN, id="created-earliest"),
])
def test_rule_for(family, rule):
    assert rule_for(family) == rule


def test_retire_keeps_counters_from_going_back(procs):
    sup, w1, w2 = procs
    w1.b1.in_flight = 4
    agg = aggregate(w1, w2)
    before = scrape(agg.render(sup.text()))
    labels = dict(**WEB_B1, route="web", method="GET", status_class="2xx")
    assert value(before, "fulcrum_requests_total", **labels) == 5
    assert value(before, "fulcrum_backend_in_flight_requests", **WEB_B1) == 4
    agg.retire(1)  # w1 died; until its replacement reports, its counts are carried
    gone = scrape(agg.render(sup.text()))
    assert value(gone, "fulcrum_requests_total", **labels) == 5
    assert value(gone, "fulcrum_backend_in_flight_requests", **WEB_B1) == 0  # gauges forgotten
    assert value(gone, "fulcrum_open_client_connections") == 5
    fresh = Process()  # the replacement, from zero
    fresh.serve(1, duration=0.0012)
    agg.update(1, started(fresh.text(), 2000.0))
    after = scrape(agg.render(sup.text()))
    assert value(after, "fulcrum_requests_total", **labels) == 6
    assert value(after, "fulcrum_requests_total", **WEB_B1, route="web", method="POST", status_class="5xx") == 1
    assert value(after, "fulcrum_upstream_requests_total", **WEB_B1) == 7
    name = "fulcrum_request_duration_seconds"
    assert buckets(after, name, **GET_2XX) == [0, 0, 4, 4, 4, 6, 6, 6, 6, 10, 10, 10, 10, 10, 10, 10]
    assert value(after, f"{name}_count", **GET_2XX) == 10
    assert value(after, "fulcrum_config_reloads_total", result="success") == 1  # not carried
    for key, v in before.items():  # no counter or histogram sample went back
        if key[0].endswith(("_total", "_bucket", "_count", "_sum")) and not key[0].startswith("process_"):
            assert after.get(key, 0) >= v, key


def test_a_late_scrape_of_a_retired_process_is_not_counted_twice(procs):
    sup, w1, w2 = procs
    agg = aggregate(w1, w2)
    agg.retire(1)
    w1.serve(10)  # it answered one more snapshot just before it died
    agg.update(1, started(w1.text(), 1001.0))
    merged = scrape(agg.render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 5
    assert agg.slots == [2]
    fresh = Process()
    fresh.serve(1)
    agg.update(1, started(fresh.text(), 2000.0))
    merged = scrape(agg.render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 6


def test_a_new_process_in_a_slot_never_retired_retires_the_old_one(procs):
    sup, w1, w2 = procs
    agg = aggregate(w1, w2)  # w1 in slot 1 started at 1001
    fresh = Process()
    fresh.serve(1)
    agg.update(1, started(fresh.text(), 2000.0))
    merged = scrape(agg.render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 6
    assert value(merged, "process_start_time_seconds") == 1002.0  # w2's: the old process's gauge is gone


def test_retire_twice_or_an_unknown_slot_adds_nothing(procs):
    sup, w1, w2 = procs
    agg = aggregate(w1, w2)
    agg.retire(1)
    agg.retire(1)
    agg.retire(9)
    merged = scrape(agg.render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 5
    assert agg.slots == [2]


@pytest.mark.parametrize("garbage", [
    pytest.param("not a metric {{{", id="bad-labels"),
    pytest.param("fulcrum_requests_total twelve\n", id="bad-value"),
    pytest.param("\x00\x01binary", id="binary"),
])
def test_unreadable_worker_text_keeps_the_previous_scrape(procs, garbage, caplog):
    sup, w1, w2 = procs
    agg = aggregate(w1, w2)
    with caplog.at_level(logging.WARNING, logger="fulcrum.cluster"):
        agg.update(1, garbage)
        agg.update(3, garbage)
    assert len(caplog.records) == 2
    merged = scrape(agg.render(sup.text()))
    assert value(merged, "fulcrum_requests_total", **WEB_B1, route="web", method="GET", status_class="2xx") == 5
    assert agg.slots == [1, 2]


def test_bucket_bounds_spelled_differently_land_in_one_bucket():
    def text(le, n):
        return (f"# TYPE h histogram\nh_bucket{{le=\"{le}\"}} {n}\nh_bucket{{le=\"+Inf\"}} {n}\n"
                f"h_count {n}\nh_sum 1\n")
    agg = MetricsAggregate()
    agg.update(1, text("1", 2))
    merged = scrape(agg.render(text("1.0", 3)))
    assert value(merged, "h_bucket", le="1.0") == 5
    assert value(merged, "h_count") == value(merged, "h_bucket", le="+Inf") == 5


# -- status: real status() dicts -------------------------------------------------------------
def test_real_status_dicts_merge_into_a_valid_status(procs):
    sup, w1, w2 = procs
    w1.fail(5)
    w2.b2.in_flight = 2
    merged = merge_status(sup.status(), [w1.status(), w2.status()])
    schemas.Status.model_validate(merged)
    assert (merged["open_connections"], merged["requests_total"]) == (7, 10)
    pool = merged["pools"][0]
    assert (pool["requests"], pool["in_flight"], pool["available"]) == (15, 2, 2)
    b1, b2 = pool["backends"]
    assert (b1["requests"], b1["failures"], b1["last_error"]) == (11, 5, "connect refused")
    assert b1["responses"] == {"2xx": 5, "5xx": 1}
    assert (b1["ejected"], b1["state"], b1["breaker"]["state"]) == (True, "ejected", "open")
    assert b1["available"] is True  # w2 may still pick it
    assert b1["latency"]["samples"] == 6 and b1["latency"]["p99"] == 1.5
    assert b1["share_of_traffic"] == pytest.approx(11 / 15)
    assert (b2["state"], b2["share_of_weight"], b2["in_flight"]) == ("up", 0.75, 2)


# -- status: one rule per case ---------------------------------------------------------------
def row(id: str = "b1", **fields) -> dict:
    out = {"id": id, "url": "http://127.0.0.1:9001", "state": "up", "enabled": True, "healthy": True,
           "ejected": False, "available": True, "weight": 1, "effective_weight": 1.0, "in_flight": 0,
           "requests": 0, "failures": 0, "last_error": None, "responses": {},
           "latency": {"ewma": None, "samples": 0}, "breaker": None, "health_check": None,
           "outlier": None, "share_of_traffic": 0.0, "share_of_weight": 1.0}
    out.update(fields)
    return out


def breaker(state: str = "closed", failures: int = 0, opened: int = 0, reason: str = "",
            retry_in: float | None = None) -> dict:
    return {"state": state, "consecutive_failures": failures, "opened_total": opened,
            "last_reason": reason, "retry_in": retry_in}


def outlier(ejected: bool = False, left: float | None = None, times: int = 0) -> dict:
    return {"ejected": ejected, "ejected_for": left, "times_ejected": times}


HEALTH = {"state": "healthy", "consecutive_ok": 3, "consecutive_fail": 0, "last_reason": None,
          "checked_ago": 0.5}

ROW_CASES = [
    pytest.param({}, [{"in_flight": 2, "requests": 10, "failures": 1}, {"in_flight": 3, "requests": 5}],
                 {"in_flight": 5, "requests": 15, "failures": 1}, id="sums"),
    pytest.param({}, [{"responses": {"2xx": 3, "5xx": 1}}, {"responses": {"2xx": 2, "4xx": 7}}],
                 {"responses": {"2xx": 5, "5xx": 1, "4xx": 7}}, id="responses-key-by-key"),
    pytest.param({"last_error": "base"}, [{"last_error": "w1"}], {"last_error": "base"}, id="last-error-base"),
    pytest.param({}, [{}, {"last_error": "w2"}, {"last_error": "w3"}], {"last_error": "w2"},
                 id="last-error-first-worker"),
    pytest.param({}, [{}, {}], {"last_error": None}, id="last-error-none"),
    pytest.param({}, [{}, {"ejected": True}], {"ejected": True, "state": "ejected"}, id="ejected-any"),
    pytest.param({"available": False, "effective_weight": 0.0}, [{"available": True}],
                 {"available": False, "effective_weight": 0.0}, id="available-base-false"),
    pytest.param({}, [], {"available": True, "effective_weight": 1.0}, id="available-no-worker-knows"),
    pytest.param({}, [{"available": False}, {"available": False}], {"available": False, "effective_weight": 0.0},
                 id="available-no-worker-may-pick"),
    pytest.param({"effective_weight": 0.4}, [{"available": False}, {"available": True}],
                 {"available": True, "effective_weight": 0.4}, id="available-any-worker"),
    pytest.param({}, [{"latency": {"ewma": 0.1, "samples": 4, "p50": 0.1, "p90": 0.2, "p99": 0.5}},
                      {"latency": {"ewma": None, "samples": 0}},
                      {"latency": {"ewma": 0.3, "samples": 6, "p50": 0.2, "p90": 0.25, "p99": 0.3}}],
                 {"latency": {"ewma": pytest.approx(0.2), "samples": 10, "p50": 0.2, "p90": 0.25, "p99": 0.5}},
                 id="latency-mean-sum-max"),
    pytest.param({}, [{}, {}], {"latency": {"ewma": None, "samples": 0}}, id="latency-none"),
    pytest.param({}, [{}, {}], {"breaker": None}, id="breaker-none"),
    pytest.param({"breaker": breaker()},
                 [{"breaker": breaker("half_open", 2, 1, "reset timeout elapsed")},
                  {"breaker": breaker("open", 5, 2, "5 consecutive failures", 7.5)},
                  {"breaker": breaker("closed", 1, 4)}],
                 {"breaker": breaker("open", 5, 7, "5 consecutive failures", 7.5), "state": "breaker_open",
                  "available": True}, id="breaker-open-wins"),
    pytest.param({"breaker": breaker()},
                 [{"breaker": breaker("closed", 3, 0, "x")}, {"breaker": breaker("half_open", 0, 1, "probe")}],
                 {"breaker": breaker("half_open", 3, 1, "probe"), "state": "probing"}, id="breaker-half-open"),
    pytest.param({"breaker": breaker(reason="base")},
                 [{"breaker": breaker(reason="w1")}, {"breaker": breaker(reason="w2")}],
                 {"breaker": breaker(reason="w1")}, id="breaker-tie-first-worker"),
    pytest.param({"breaker": breaker(reason="base")}, [], {"breaker": breaker(reason="base")},
                 id="breaker-from-base-when-unknown"),
    pytest.param({}, [{"outlier": outlier()}, {"outlier": outlier(True, 20.0, 2)},
                      {"outlier": outlier(True, None, 1)}, {}],
                 {"outlier": outlier(True, 20.0, 3)}, id="outlier-any-max-sum"),
    pytest.param({"outlier": outlier(times=0)}, [{"outlier": outlier(times=2)}],
                 {"outlier": outlier(False, None, 2)}, id="outlier-not-ejected"),
    pytest.param({}, [{}], {"outlier": None}, id="outlier-none"),
    pytest.param({"health_check": HEALTH}, [{"health_check": {**HEALTH, "consecutive_ok": 99}}],
                 {"health_check": HEALTH}, id="health-from-base"),
    pytest.param({"weight": 4, "url": "http://base:1", "share_of_weight": 0.5},
                 [{"weight": 9, "url": "http://w:2", "share_of_weight": 0.9}],
                 {"weight": 4, "url": "http://base:1", "share_of_weight": 0.5}, id="config-from-base"),
]

STATE_CASES = [
    pytest.param({"enabled": False, "state": "disabled", "available": False}, [{"in_flight": 1}], "draining",
                 id="draining"),
    pytest.param({"enabled": False, "state": "disabled", "available": False},
                 [{"ejected": True, "breaker": breaker("open")}], "disabled", id="disabled-first"),
    pytest.param({"healthy": False, "state": "unhealthy"}, [{"ejected": True}], "unhealthy",
                 id="unhealthy-over-ejected"),
    pytest.param({}, [{"ejected": True, "breaker": breaker("open")}], "ejected", id="ejected-over-breaker"),
    pytest.param({}, [{"breaker": breaker("open")}, {"breaker": breaker("half_open")}], "breaker_open",
                 id="breaker-open"),
    pytest.param({}, [{"breaker": breaker("half_open")}], "probing", id="probing"),
    pytest.param({"state": "slow_start"}, [{}], "slow_start", id="slow-start-stays"),
    pytest.param({"state": "slow_start"}, [{"breaker": breaker("open")}], "breaker_open",
                 id="breaker-over-slow-start"),
    pytest.param({"state": "up"}, [{"state": "slow_start"}], "up", id="worker-state-ignored"),
    pytest.param({}, [{"state": "ejected"}], "up", id="stale-base-fields-recomputed"),
]


@pytest.mark.parametrize("base, workers, expected", ROW_CASES)
def test_backend_row_rules(base, workers, expected):
    merged = merge_rows([row(**base)], [[row(**w)] for w in workers])[0]
    assert {key: merged[key] for key in expected} == expected
    schemas.BackendStatus.model_validate(merged)


@pytest.mark.parametrize("base, workers, expected", STATE_CASES)
def test_backend_state_precedence(base, workers, expected):
    assert merge_rows([row(**base)], [[row(**w)] for w in workers])[0]["state"] == expected


def test_backends_unknown_to_a_worker_and_only_known_to_a_worker():
    base = [row("b1"), row("b2")]
    w1 = [row("b1", requests=6)]  # b2 not yet known here
    w2 = [row("b2", requests=2), row("gone", requests=100)]  # "gone" was removed by the supervisor
    merged = merge_rows(base, [w1, w2])
    assert [(r["id"], r["requests"]) for r in merged] == [("b1", 6), ("b2", 2)]
    assert [r["share_of_traffic"] for r in merged] == [0.75, 0.25]


def pool(name: str = "web", rows: list[dict] | None = None, **fields) -> dict:
    rows = rows if rows is not None else []
    out = {"name": name, "strategy": "round_robin", "panicking": False,
           "available": sum(r["available"] for r in rows), "in_flight": sum(r["in_flight"] for r in rows),
           "requests": sum(r["requests"] for r in rows), "backends": rows}
    out.update(fields)
    return out


def test_pool_sums_panic_availability_and_shares():
    base = pool(rows=[row("b1"), row("b2", weight=3, share_of_weight=0.75)], strategy="p2c")
    w1 = pool(rows=[row("b1", requests=6, in_flight=1, available=False), row("b2", requests=2)])
    w2 = pool(rows=[row("b1", requests=4, available=False), row("b2", requests=8, in_flight=2)],
              panicking=True)
    merged = merge_pool(base, [w1, w2])
    assert (merged["requests"], merged["in_flight"], merged["panicking"]) == (20, 3, True)
    assert (merged["available"], merged["strategy"]) == (1, "p2c")  # b1 available in no worker
    b1, b2 = merged["backends"]
    assert (b1["share_of_traffic"], b2["share_of_traffic"]) == (0.5, 0.5)
    assert (b1["share_of_weight"], b2["share_of_weight"]) == (1.0, 0.75)
    assert (b1["state"], b1["effective_weight"]) == ("up", 0.0)  # not picked, but nothing says why
    schemas.PoolStatus.model_validate(merged)


def test_pool_traffic_share_is_over_the_pools_merged_requests():
    # A worker still counted requests to a backend the supervisor removed: shares say so.
    base = pool(rows=[row("b1")])
    w1 = pool(rows=[row("b1", requests=3), row("gone", requests=1)])
    merged = merge_pool(base, [w1])
    assert merged["requests"] == 4 and merged["backends"][0]["share_of_traffic"] == 0.75


def status_doc(pools: list[dict], **fields) -> dict:
    out = {"version": "0.1.0", "core": "compiled", "time": 1000.0, "uptime": 50.0, "open_connections": 0, "requests_total": 0,
           "pools": pools, "routes": [{"name": "web", "pool": "web", "host": None, "path_prefix": "/",
                                       "headers": {}}]}
    out.update(fields)
    return out


def test_status_top_level_and_pool_missing_from_a_worker():
    base = status_doc([pool("web", [row("b1")]), pool("api", [row("a1")])])
    w1 = status_doc([pool("web", [row("b1", requests=5)])], open_connections=3, requests_total=5,
                    version="old", uptime=1.0, routes=[])
    w2 = status_doc([pool("web", [row("b1", requests=1)]), pool("api", [row("a1", requests=2)])],
                    open_connections=4, requests_total=3)
    merged = merge_status(base, [w1, w2])
    schemas.Status.model_validate(merged)
    assert (merged["open_connections"], merged["requests_total"]) == (7, 8)
    assert (merged["version"], merged["uptime"], merged["time"]) == ("0.1.0", 50.0, 1000.0)
    assert merged["routes"] == base["routes"]
    assert [(p["name"], p["requests"]) for p in merged["pools"]] == [("web", 6), ("api", 2)]
    assert merged["pools"][1]["backends"][0]["share_of_traffic"] == 1.0


def test_status_with_no_workers_is_the_base():
    base = status_doc([pool("web", [row("b1", breaker=breaker(), outlier=outlier())])])
    assert merge_status(base, []) == base


def test_inputs_are_not_mutated_and_not_shared():
    base = status_doc([pool("web", [row("b1", health_check=HEALTH, breaker=breaker()),
                                    row("b2", state="slow_start")])])
    workers = [status_doc([pool("web", [row("b1", requests=3, ejected=True, responses={"2xx": 3},
                                             breaker=breaker("open", 5, 1, "x", 2.0),
                                             latency={"ewma": 0.1, "samples": 3, "p50": 0.1})])],
                          open_connections=1, requests_total=3)]
    before = copy.deepcopy((base, workers))
    merged = merge_status(base, workers)
    assert (base, workers) == before
    merged["pools"][0]["backends"][0]["health_check"]["consecutive_ok"] = -1
    merged["pools"][0]["backends"][0]["breaker"]["state"] = "half_open"
    merged["routes"][0]["headers"]["x"] = "y"
    assert (base, workers) == before
