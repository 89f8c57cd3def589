"""Hot reload through real processes: SIGHUP and file changes swap the config in-process;
a bad config leaves the running one in place; backends that stay keep their pooled
connections and state; in-flight requests, tunnels and kept-alive connections carry on;
a changed listen address re-binds. Under load, 10 reloads cost zero failed requests."""
from __future__ import annotations

import signal
import socket
import threading
import time

import httpx
import pytest
import yaml
from websockets.sync.client import connect as ws_connect

from tests.support.processes import pool_config, stats


def write_config(proc, config: dict) -> None:
    full = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"}, "log": {"level": "info"}, **config}
    tmp = proc.config_path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(full))
    tmp.replace(proc.config_path)  # atomically, as editors and config management do


def reloads(proc, word: str = "config reloaded") -> int:
    return sum(word in line for line in list(proc.lines))


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def sighup_reload(proc, config: dict, word: str = "config reloaded") -> None:
    before = reloads(proc, word)
    write_config(proc, config)
    proc.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: reloads(proc, word) > before), proc.output


def names(lb, n: int = 6) -> set[str]:
    with httpx.Client(base_url=lb.url) as client:
        return {client.get("/").headers["x-backend"] for _ in range(n)}


def manual(config: dict) -> dict:
    return {"watch_config": False, **config}


def test_sighup_applies_a_new_pool_membership(backends, fulcrum):
    b1, b2 = backends(2)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    assert names(lb) == {"b1"}
    sighup_reload(lb, manual({"pools": {"web": pool_config(b1, b2)}}))
    assert names(lb) == {"b1", "b2"}


def test_a_kept_backend_keeps_its_pooled_connection(backends, fulcrum):
    b1, b2 = backends(2)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    with httpx.Client(base_url=lb.url) as client:
        for _ in range(5):
            client.get("/")
    opened = stats(b1)["connections"]
    sighup_reload(lb, manual({"pools": {"web": pool_config(b1, b2, strategy="random")}}))
    with httpx.Client(base_url=lb.url) as client:
        seen = {client.get("/").headers["x-backend"] for _ in range(20)}
    assert seen == {"b1", "b2"}
    # b1 served on the connection pooled before the reload (+1: the stats query's own).
    assert stats(b1)["connections"] == opened + 1


def test_file_change_reloads_by_itself(backends, fulcrum):
    b1, b2 = backends(2)
    lb = fulcrum({"pools": {"web": pool_config(b1)}})
    assert names(lb) == {"b1"}
    write_config(lb, {"pools": {"web": pool_config(b2)}})
    assert wait_for(lambda: names(lb, 2) == {"b2"}), lb.output
    assert any("config reloaded" in line and "file changed" in line for line in lb.lines)


def test_a_file_still_being_written_is_applied_only_once_complete(backends, fulcrum):
    # Written in place in two parts: the first part alone is a valid config without the rate
    # limit (applied, it would silently turn limiting off). The second part comes while the
    # watcher waits for the file to settle, so only the whole file is applied.
    from tests.support.processes import admin_url

    (b1,) = backends(1)
    base = {"listen": "127.0.0.1:0", "admin": {"listen": "127.0.0.1:0"},
            "log": {"level": "info", "levels": {"fulcrum.reload": "debug"}}, "pools": {"web": pool_config(b1)}}
    lb = fulcrum(base)
    settling = "config file changed; waiting until it settles"

    def first_part_seen() -> bool:  # rewritten until the watcher (started after "listening") sees it
        lb.config_path.write_text(yaml.safe_dump(base))
        return wait_for(lambda: reloads(lb, settling) > 0, timeout=0.5, interval=0.01)

    assert wait_for(first_part_seen, interval=0), lb.output
    with open(lb.config_path, "a") as f:
        f.write(yaml.safe_dump({"rate_limit": {"requests_per_second": 0.01, "burst": 1}}))

    def applied() -> dict | None:
        return httpx.get(admin_url(lb) + "/api/v1/config", trust_env=False).json()["rate_limit"]

    assert wait_for(lambda: applied() is not None), lb.output
    assert applied()["burst"] == 1
    assert reloads(lb) == 1 and reloads(lb, "config reload failed") == 0, lb.output  # the first part never was
    with httpx.Client(base_url=lb.url, trust_env=False) as client:
        assert [client.get("/").status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize("bad, named", [
    ({"pools": {"web": {"backends": [{"url": "http://127.0.0.1:1", "weight": 0}]}}}, "pools.web.backends[0].weight"),
    ({"pools": {"web": {"strategy": "nope", "backends": [{"url": "http://127.0.0.1:1"}]}}}, "pools.web.strategy"),
])
def test_an_invalid_config_leaves_the_running_one(backends, fulcrum, bad, named):
    (b1,) = backends(1)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    sighup_reload(lb, manual(bad), word="config reload failed")
    failure = next(line for line in lb.lines if "config reload failed" in line)
    assert named in failure
    assert names(lb) == {"b1"}  # still the old config


def test_broken_yaml_leaves_the_running_one(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    before = reloads(lb, "config reload failed")
    lb.config_path.write_text("pools: {web: [unclosed\n")
    lb.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: reloads(lb, "config reload failed") > before), lb.output
    assert names(lb) == {"b1"}


def test_in_flight_request_on_a_removed_backend_completes(backends, fulcrum):
    b1, b2 = backends(2)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    result = {}
    slow = threading.Thread(target=lambda: result.setdefault("r", httpx.get(lb.url + "/?latency=1.5", timeout=10)))
    slow.start()
    assert wait_for(lambda: stats(b1)["requests"] >= 1)
    sighup_reload(lb, manual({"pools": {"web": pool_config(b2)}}))
    slow.join()
    assert result["r"].status_code == 200 and result["r"].headers["x-backend"] == "b1"
    assert names(lb) == {"b2"}


def test_changed_listen_address_rebinds_and_kept_connections_carry_on(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    kept = httpx.Client(base_url=lb.url)
    assert kept.get("/").status_code == 200
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        new_port = probe.getsockname()[1]
    sighup_reload(lb, {**manual({"pools": {"web": pool_config(b1)}}), "listen": f"127.0.0.1:{new_port}"})
    assert httpx.get(f"http://127.0.0.1:{new_port}/").status_code == 200
    assert kept.get("/").status_code == 200  # accepted before: still served
    kept.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(lb.url + "/")  # the old listener accepts no more


def test_rate_limit_buckets_survive_a_reload_that_keeps_them(backends, fulcrum):
    b1, b2 = backends(2)
    limited = {"rate_limit": {"requests_per_second": 0.1, "burst": 3}}
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}, **limited}))
    with httpx.Client(base_url=lb.url) as client:
        assert [client.get("/").status_code for _ in range(4)] == [200, 200, 200, 429]
    sighup_reload(lb, manual({"pools": {"web": pool_config(b1, b2)}, **limited}))
    with httpx.Client(base_url=lb.url) as client:
        assert client.get("/").status_code == 429  # the same bucket, still empty


def test_websocket_tunnel_survives_a_reload(fulcrum, tmp_path):
    from tests.integration.test_websocket import WsEcho
    echo = WsEcho()
    try:
        lb = fulcrum(manual({"pools": {"web": pool_config(echo)}}))
        with ws_connect(f"ws://127.0.0.1:{lb.port}/chat") as ws:
            ws.send("before")
            assert ws.recv(timeout=5) == "before"
            sighup_reload(lb, manual({"pools": {"web": pool_config(echo, strategy="random")}}))
            ws.send("after")
            assert ws.recv(timeout=5) == "after"
    finally:
        echo.stop()


def test_ten_reloads_under_load_fail_no_request(backends, fulcrum):
    b1, b2, b3 = backends(3)
    configs = [manual({"pools": {"web": pool_config(b1, b2)}}),
               manual({"pools": {"web": pool_config(b2, b3, strategy="least_connections")}})]
    lb = fulcrum(configs[0])
    stop = threading.Event()
    outcomes: list[object] = []

    def load() -> None:
        with httpx.Client(base_url=lb.url, timeout=10) as client:  # keep-alive, as real clients
            while not stop.is_set():
                try:
                    outcomes.append(client.get("/").status_code)
                except httpx.HTTPError as exc:
                    outcomes.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for i in range(10):
            sighup_reload(lb, configs[(i + 1) % 2])
            time.sleep(0.1)
    finally:
        stop.set()
        for w in workers:
            w.join()
    failed = [o for o in outcomes if o != 200]
    assert len(outcomes) > 100 and failed == [], (len(outcomes), failed[:5])
    assert reloads(lb) == 10


def test_log_settings_apply_at_once_and_admin_changes_wait_for_a_restart(backends, fulcrum):
    (b1,) = backends(1)
    lb = fulcrum(manual({"pools": {"web": pool_config(b1)}}))
    sighup_reload(lb, manual({"pools": {"web": pool_config(b1)}, "log": {"format": "json", "level": "info"},
                              "admin": {"listen": "127.0.0.1:0", "token": "new"}}))
    assert wait_for(lambda: any(line.startswith("{") and "next restart" in line for line in list(lb.lines)))
    warning = next(line for line in lb.lines if "next restart" in line)
    assert '"admin"' in warning  # JSON now: the log format applied at once
