"""Resilience through real processes and sockets: a killed backend costs no client request and
a restarted one rejoins after its healthy threshold; a silent backend costs a 504 or a retry and
nothing else; a circuit breaker opens, half-opens and closes; the retry budget caps the load a
failing pool sees; a request that may have reached a backend is replayed only when that is safe;
the pool degrades to its last backend, then to 503 with Retry-After, and a 502 after a failed
connect leaves the client's keep-alive connection usable; max_in_flight is a hard cap whose slots
are freed however an exchange ends.

Intervals and timeouts are short (health checks every 0.2 s, responses 0.5 s). Tests wait for a
state with generous deadlines and never assert how fast it was reached. Who answered is read from
X-Backend (example backends) and how many tries it took from X-Fulcrum-Tries.
"""
from __future__ import annotations

import re
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.support.fake_backend import CLOSE, SILENT, FakeBackend, Reply, wait_until
from tests.support.processes import BACKEND, PYTHON, Process, pool_config, stats

OFF = {"enabled": False}
FAST_CHECKS = {"interval": "0.2s", "timeout": "0.5s", "unhealthy_threshold": 2, "healthy_threshold": 2}
LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")
# `backend state changed pool=web backend=127.0.0.1:PORT old=healthy new=unhealthy reason=...`
# `circuit breaker pool=web backend=127.0.0.1:PORT old=closed new=open reason=...`
TRANSITION = re.compile(
    r"(backend state changed|circuit breaker) pool=\S+ backend=127\.0\.0\.1:(\d+) old=(\w+) new=(\w+)")
HEALTH, BREAKER = "backend state changed", "circuit breaker"


# -- helpers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One client request as the client saw it (status 0: a transport error, in ``error``)."""

    status: int
    backend: str | None = None
    tries: int | None = None
    retry_after: str | None = None
    error: str = ""


def outcome(response: httpx.Response) -> Outcome:
    tries = response.headers.get("x-fulcrum-tries")
    return Outcome(response.status_code, response.headers.get("x-backend"),
                   int(tries) if tries is not None else None, response.headers.get("retry-after"))


def get(url: str, path: str = "/", **kwargs) -> Outcome:
    with httpx.Client(trust_env=False, timeout=15) as client:
        return outcome(client.request(kwargs.pop("method", "GET"), url + path, **kwargs))


def transitions(lb, kind: str, port: int) -> list[tuple[str, str]]:
    """(old, new) states logged for the backend on ``port``, oldest first."""
    return [(m.group(3), m.group(4)) for line in list(lb.lines)
            if (m := TRANSITION.search(line)) and m.group(1) == kind and int(m.group(2)) == port]


def closed_port() -> int:
    """A port nothing listens on (bound once to pick it, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Traffic:
    """Sequential GETs from ``clients`` threads (one keep-alive client each) until stopped."""

    def __init__(self, url: str, clients: int = 2, path: str = "/", pause: float = 0.01,
                 timeout: float = 5.0) -> None:
        self.url, self.path, self.pause, self.timeout = url, path, pause, timeout
        self.results: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        # A generous deadline for answers that take milliseconds: a wedged connection shows
        # up as an error instead of stalling the test.
        with httpx.Client(trust_env=False, timeout=self.timeout) as client:
            while not self._stop.is_set():
                try:
                    result = outcome(client.get(self.url + self.path))
                except httpx.HTTPError as exc:
                    result = Outcome(0, error=repr(exc))
                with self._lock:
                    self.results.append(result)
                self._stop.wait(self.pause)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(20)
        return self.snapshot()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.results)

    def wait_for_more(self, n: int, timeout: float = 20.0) -> bool:
        """Wait until ``n`` more requests have completed."""
        target = len(self.snapshot()) + n
        return wait_until(lambda: len(self.snapshot()) >= target, timeout)

    def served_by(self, name: str) -> int:
        return sum(1 for r in self.snapshot() if r.backend == name)


def failures(results: list[Outcome]) -> list[Outcome]:
    return [r for r in results if r.status != 200]


@pytest.fixture
def respawn():
    """``respawn(name, port)``: an example backend on a given port (a restart), stopped at teardown."""
    started: list[Process] = []

    def start(name: str, port: int, timeout: float = 15.0) -> Process:
        def attempt() -> bool:
            proc = Process([PYTHON, str(BACKEND), "--port", str(port), "--name", name], LISTENING)
            if proc.match is None:  # exited: the port was not free yet
                proc.stop()
                return False
            started.append(proc)
            return True

        assert wait_until(attempt, timeout, interval=0.2), f"could not restart {name} on port {port}"
        return started[-1]

    yield start
    for proc in started:
        proc.stop()


# -- 1. a killed backend costs nothing; restarted, it rejoins ------------------------------------

def test_killed_backend_costs_no_request_and_restarted_it_rejoins(backends, fulcrum, respawn):
    b1, b2, b3 = backends(3)
    lb = fulcrum({"pools": {"web": pool_config(
        b1, b2, b3, resilience=True, health_check=FAST_CHECKS,
        retry={"attempts": 3, "tries_header": True},
        circuit_breaker={"reset_timeout": "1s"},
        outlier_detection={"base_ejection_time": "1s"},
    )}})
    port = b1.port
    with Traffic(lb.url, clients=3) as traffic:
        assert wait_until(lambda: all(traffic.served_by(b.name) for b in (b1, b2, b3)), 20)
        b1.stop()
        assert wait_until(lambda: ("healthy", "unhealthy") in transitions(lb, HEALTH, port), 20), lb.output
        assert traffic.wait_for_more(30)
        assert failures(traffic.snapshot()) == [], lb.output

        again = respawn("b1-again", port)
        assert wait_until(lambda: traffic.served_by("b1-again") >= 5, 20), lb.output
        results = traffic.stop()

    assert failures(results) == [], lb.output
    assert any(r.tries and r.tries > 1 for r in results), "no request was retried off the killed backend"
    health = transitions(lb, HEALTH, port)
    assert health.index(("healthy", "unhealthy")) < health.index(("unhealthy", "healthy")), health
    # Back only after healthy_threshold checks passed on the new process.
    assert httpx.get(f"http://127.0.0.1:{port}/_stats", trust_env=False).json()["health_requests"] >= 2
    assert again.proc.poll() is None


# -- 2. a silent backend: 504 or a retry elsewhere; the others are untouched -----------------------

@pytest.mark.parametrize("attempts", [
    pytest.param(1, id="retries-off-504"),
    pytest.param(3, id="retries-on-served-elsewhere"),
])
def test_silent_backend_costs_a_504_or_a_retry_and_nothing_else(backends, fulcrum, attempts):
    b1, b2 = backends(2)
    with FakeBackend(lambda head, index: SILENT) as silent:
        lb = fulcrum({
            "timeouts": {"response": "0.5s"},
            "pools": {"web": {
                **pool_config(b1, silent, b2, resilience=True),
                "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
                "retry": {"attempts": attempts, "tries_header": True},
            }},
        })
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(lambda _: get(lb.url), range(12)))

        hung = len(silent.requests)
        assert hung >= 1, results  # round robin sent some of them to the silent one
        good = [r for r in results if r.status == 200]
        assert {r.backend for r in good} <= {"b1", "b2"}
        if attempts == 1:
            assert sorted(r.status for r in results) == [200] * (12 - hung) + [504] * hung, results
            assert all(r.tries == 1 for r in results), results
        else:
            assert len(good) == 12, results
            assert sum(1 for r in results if r.tries == 2) == hung, results
            assert sum(1 for r in results if r.tries == 1) == 12 - hung, results


# -- 3. the breaker: closed → open → half-open → open → half-open → closed -----------------------------

def test_breaker_opens_on_gateway_failures_then_probes_and_closes(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum({"pools": {"web": {
        **pool_config(b1, resilience=True),
        "health_check": OFF, "outlier_detection": OFF, "retry": {"attempts": 1},
        "circuit_breaker": {"failure_threshold": 3, "failure_ratio": 0, "reset_timeout": "2s"},
    }}})

    for _ in range(3):
        assert get(lb.url, "/?status=503") == Outcome(503, "b1"), "the backend's own 503"
    # Open: Fulcrum answers 503 itself, with Retry-After, and the backend sees nothing.
    local = get(lb.url)
    assert local.status == 503 and local.backend is None, local
    assert local.retry_after is not None and 1 <= int(local.retry_after) <= 2, "until reset_timeout"
    assert stats(b1)["requests"] == 3
    assert transitions(lb, BREAKER, b1.port) == [("closed", "open")]

    # After reset_timeout one probe goes through; it fails, so the breaker opens again.
    probe: list[Outcome] = []
    assert wait_until(lambda: probe.append(get(lb.url, "/?status=503")) or probe[-1].backend == "b1", 20)
    assert probe[-1].status == 503
    assert stats(b1)["requests"] == 4, "exactly one probe reached the backend"
    assert get(lb.url).backend is None, "open again after the failed probe"

    # The next probe succeeds: closed, and traffic flows again.
    assert wait_until(lambda: get(lb.url).status == 200, 20)
    assert stats(b1)["requests"] == 5
    assert [get(lb.url) for _ in range(5)] == [Outcome(200, "b1")] * 5
    assert transitions(lb, BREAKER, b1.port) == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "open"),
        ("open", "half_open"), ("half_open", "closed"),
    ], lb.output


# -- 4. the retry budget caps the extra load on a failing pool -------------------------------------

def test_retry_budget_caps_the_load_when_every_backend_fails(backends, fulcrum):
    pool = backends(3)
    lb = fulcrum({"pools": {"web": {
        **pool_config(*pool, resilience=True),
        "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
        "retry": {"attempts": 3, "budget": 0.2, "min_retries_per_second": 0.5, "budget_window": "10s",
                  "tries_header": True},
    }}})
    n = 100
    with httpx.Client(trust_env=False, timeout=15) as client:
        results = [outcome(client.get(lb.url + "/?status=503")) for _ in range(n)]

    assert all(r.status == 503 and r.backend for r in results), "each answer is a backend's 503"
    reached = sum(stats(b)["requests"] for b in pool)
    assert reached == sum(r.tries for r in results)
    floor = 0.5 * 10
    assert n < reached <= n * (1 + 0.2) + floor + 3, reached  # some retries, within the budget
    assert reached < n * 3 / 2  # far below the n × attempts a budgetless proxy would send


# -- 5. what may be replayed once it reached a backend ------------------------------------------------

@pytest.mark.parametrize("method, headers, reached", [
    pytest.param("POST", {}, 1, id="post-sent-once"),
    pytest.param("PATCH", {}, 1, id="patch-sent-once"),
    pytest.param("GET", {}, 3, id="get-retried"),
    pytest.param("PUT", {}, 3, id="put-retried"),
    pytest.param("POST", {"Idempotency-Key": "k-1"}, 3, id="post-with-idempotency-key-retried"),
])
def test_request_that_reached_a_backend_is_replayed_only_when_safe(backends, fulcrum, method, headers, reached):
    pool = backends(3)
    lb = fulcrum({"pools": {"web": {
        **pool_config(*pool, resilience=True),
        "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
        "retry": {"attempts": 3, "tries_header": True},
    }}})
    body = b"payload-" * 100
    content = body if method != "GET" else None
    with httpx.Client(trust_env=False, timeout=15) as client:
        response = client.request(method, lb.url + "/?status=503&echo=1", content=content, headers=headers)
    result = outcome(response)
    assert result.status == 503 and result.backend, "the backend's 503 reaches the client"
    assert result.tries == reached
    assert sum(stats(b)["requests"] for b in pool) == reached
    if content is not None:
        assert response.json()["body"] == body.decode(), "the body reached the last try whole"


def test_post_that_cannot_connect_is_retried_on_another_backend(backends, fulcrum):
    (live,) = backends(1)
    dead = closed_port()
    lb = fulcrum({"pools": {"web": {
        "strategy": "round_robin",
        "backends": [{"url": f"http://127.0.0.1:{dead}"}, {"url": live.url}],
        "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
        "retry": {"attempts": 3, "tries_header": True},
    }}})
    with httpx.Client(trust_env=False, timeout=15) as client:
        responses = [client.post(lb.url + "/?echo=1", content=b"order #%d" % i) for i in range(4)]
    assert [outcome(r) for r in responses][0] == Outcome(200, "b1", 2), "round robin tried the dead one first"
    assert all(r.status_code == 200 and r.headers["x-backend"] == "b1" for r in responses)
    assert [r.json()["body"] for r in responses] == [f"order #{i}" for i in range(4)]
    assert stats(live)["requests"] == 4, "each POST reached a backend exactly once"


@pytest.mark.parametrize("method, expected", [
    pytest.param("POST", Outcome(502, None, 1), id="post-not-replayed-502"),
    pytest.param("GET", Outcome(200, "b1", 2), id="get-replayed-elsewhere"),
])
def test_connection_cut_before_the_response(backends, fulcrum, method, expected):
    # The backend read the request and closed without a byte: it may have acted on it.
    (live,) = backends(1)
    with FakeBackend(lambda head, index: Reply(b"", CLOSE)) as cutter:
        lb = fulcrum({"pools": {"web": {
            "strategy": "round_robin",
            "backends": [{"url": cutter.url}, {"url": live.url}],
            "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
            "retry": {"attempts": 3, "tries_header": True},
        }}})
        result = get(lb.url, "/", method=method, content=b"x" if method == "POST" else None)
        assert result == expected
        assert len(cutter.requests) == 1
        assert stats(live)["requests"] == (1 if method == "GET" else 0)


# -- 6. graceful degradation: down to one backend, then none ----------------------------------------

def test_pool_degrades_to_its_last_backend_then_to_503_with_retry_after(backends, fulcrum):
    b1, b2, b3 = backends(3)
    lb = fulcrum({"pools": {"web": pool_config(
        b1, b2, b3, resilience=True, health_check=FAST_CHECKS, retry={"attempts": 3, "tries_header": True},
    )}})
    with Traffic(lb.url, clients=3) as traffic:
        assert wait_until(lambda: all(traffic.served_by(b.name) for b in (b1, b2, b3)), 20)
        b1.stop()
        b2.stop()
        assert wait_until(lambda: all(("healthy", "unhealthy") in transitions(lb, HEALTH, b.port)
                                      for b in (b1, b2)), 20), lb.output
        assert traffic.wait_for_more(30)
        results = traffic.stop()
    assert failures(results) == [], lb.output
    assert all(get(lb.url) == Outcome(200, "b3", 1) for _ in range(6)), "only b3, at the first try"

    # The last one goes: until it is detected, tries fail (502); then Fulcrum answers 503 itself.
    # Every request gets an answer, on keep-alive connections that stay usable.
    with Traffic(lb.url, clients=2) as traffic:
        b3.stop()
        assert wait_until(lambda: ("healthy", "unhealthy") in transitions(lb, HEALTH, b3.port), 20), lb.output
        assert traffic.wait_for_more(10)
        results = traffic.stop()
    unanswered = [r for r in results if r.status not in (200, 502, 503)]
    assert unanswered == [], f"{unanswered}\n{lb.output}"
    with httpx.Client(trust_env=False, timeout=5) as client:
        for _ in range(3):
            result = outcome(client.get(lb.url))
            assert result.status == 503 and result.backend is None, result
            assert result.retry_after is not None and int(result.retry_after) >= 1, result


@pytest.mark.parametrize("attempts", [
    pytest.param(1, id="retries-off"),
    pytest.param(3, id="retries-exhausted"),
])
def test_keep_alive_connection_stays_usable_after_a_connect_failure_502(fulcrum, attempts):
    lb = fulcrum({"pools": {"web": {
        "backends": [{"url": f"http://127.0.0.1:{closed_port()}"}],
        "health_check": OFF, "outlier_detection": OFF, "circuit_breaker": OFF,
        "retry": {"attempts": attempts, "tries_header": True},
    }}})
    results = []
    with httpx.Client(trust_env=False, timeout=3) as client:  # answers take milliseconds
        for _ in range(3):
            try:
                results.append(outcome(client.get(lb.url)))
            except httpx.TimeoutException as exc:
                results.append(Outcome(0, error=repr(exc)))
    assert results == [Outcome(502, None, attempts)] * 3, results


# -- 7. max_in_flight: a hard cap per backend -----------------------------------------------------------

def test_max_in_flight_caps_each_backend(backends, fulcrum):
    b1, b2 = backends(2)
    lb = fulcrum({"pools": {"web": {
        **pool_config(b1, b2, resilience=True),
        "health_check": OFF, "outlier_detection": OFF,
        "circuit_breaker": {"max_in_flight": 1}, "retry": {"attempts": 3, "tries_header": True},
    }}})
    with ThreadPoolExecutor(2) as pool:
        held = [pool.submit(get, lb.url, "/?latency=2") for _ in range(2)]
        # Both are in flight once each backend has received one request.
        assert wait_until(lambda: stats(b1)["requests"] == 1 and stats(b2)["requests"] == 1, 10)
        third = get(lb.url)
        assert third.status == 503 and third.backend is None, "no backend is under its cap"
        assert third.retry_after is not None
        assert stats(b1)["requests"] == 1 and stats(b2)["requests"] == 1
        answered = [f.result() for f in held]
    assert sorted(r.backend for r in answered) == ["b1", "b2"], answered
    assert all(r.status == 200 for r in answered)
    # The slots are free again.
    with ThreadPoolExecutor(2) as pool:
        again = list(pool.map(lambda _: get(lb.url, "/?latency=0.3"), range(2)))
    assert sorted(r.backend for r in again) == ["b1", "b2"], again


def leave_with_reset(port: int, path: str, backend) -> None:
    """Send a request, wait until the backend has it, then drop the connection with RST
    (a FIN alone is a half-close, which Fulcrum answers anyway)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: test\r\n\r\n" % path.encode())
        assert wait_until(lambda: stats(backend)["requests"] == 1, 10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.mark.parametrize("path, ending", [
    pytest.param("/?status=503", Outcome(503, "b1", 3), id="retried-503s"),
    pytest.param("/?hang=1", Outcome(504, None, 3), id="504-after-retried-timeouts"),
    pytest.param("/?latency=5", None, id="client-gone"),
])
def test_in_flight_slot_is_freed_however_the_exchange_ends(backends, fulcrum, path, ending):
    # One backend capped at one request: a leaked slot would turn every later request into a 503.
    (b1,) = backends(1)
    lb = fulcrum({
        "timeouts": {"response": "0.5s" if ending else "30s"},
        "pools": {"web": {
            **pool_config(b1, resilience=True),
            "health_check": OFF, "outlier_detection": OFF,
            "circuit_breaker": {"max_in_flight": 1, "failure_threshold": 100, "failure_ratio": 0},
            "retry": {"attempts": 3, "tries_header": True},
        }},
    })
    if ending is None:
        leave_with_reset(lb.port, path, b1)
        # Fulcrum learns of the reset asynchronously; until then the slot is rightly taken.
        assert wait_until(lambda: get(lb.url).status == 200, 10), lb.output
    else:
        assert get(lb.url, path) == ending  # the exchange is over: its slot must be free
    assert [get(lb.url) for _ in range(3)] == [Outcome(200, "b1", 1)] * 3
