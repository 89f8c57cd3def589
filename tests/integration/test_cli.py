# The `fulcrum` command as a real process: version and help, `check` (validates without
# binding), one stderr line per config problem with exit 2, environment overrides, a taken
# listen port, SIGTERM and JSON logs.
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from fulcrum import __version__
from tests.support.cores import expected_core
from tests.support.processes import ROOT, pool_config, run_cli

EXIT_CONFIG = 2
GOOD_POOLS = {"web": {"backends": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9002"}]}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def write_config(tmp_path: Path, config: dict | str, name: str = "fulcrum.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return path


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def is_stopped_line(line: str) -> bool:
    return line.split()[-1:] == ["stopped"] or '"event": "stopped"' in line


def wait_for_stopped_line(proc) -> None:
    """The process has exited; its output is read by a thread, so wait for the last line."""
    deadline = time.monotonic() + 5
    while not any(is_stopped_line(line) for line in proc.lines):
        assert time.monotonic() < deadline, "no 'stopped' line:\n" + proc.output
        time.sleep(0.01)


def fulcrum_script() -> str:
    script = Path(sys.executable).parent / "fulcrum"
    assert script.exists(), f"the `fulcrum` console script is not installed next to {sys.executable}"
    return str(script)


# -- version and help ---------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    pytest.param(["script", "--version"], id="fulcrum---version"),
    pytest.param(["module", "--version"], id="python-m-fulcrum---version"),
    pytest.param(["script", "version"], id="fulcrum-version"),
    pytest.param(["module", "version"], id="python-m-fulcrum-version"),
])
def test_version(argv):
    how, *args = argv
    prefix = [fulcrum_script()] if how == "script" else [sys.executable, "-m", "fulcrum"]
    result = subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"fulcrum {__version__}", f"core: {expected_core()}"]


@pytest.mark.parametrize(("args", "mentions"), [
    pytest.param(["--help"], ["run", "check", "version", "FULCRUM_"], id="top-level"),
    pytest.param(["-h"], ["run", "check"], id="short"),
    pytest.param(["run", "--help"], ["--config"], id="run"),
    pytest.param(["check", "--help"], ["--config"], id="check"),
    pytest.param([], ["run", "check"], id="no-command"),
])
def test_help(args, mentions):
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lower().startswith("usage: fulcrum")
    for word in mentions:
        assert word in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run_cli("serve")
    assert result.returncode == 2
    assert "usage: fulcrum" in result.stderr


# -- check -------------------------------------------------------------------------------
def test_check_good_config_exits_0_and_binds_nothing(tmp_path):
    listen, admin = free_port(), free_port()
    path = write_config(tmp_path, {
        "listen": f"127.0.0.1:{listen}", "admin": {"listen": f"127.0.0.1:{admin}"},
        "pools": {**GOOD_POOLS, "api": {"strategy": "consistent_hash", "options": {"key": "header:X-User"},
                                        "backends": [{"url": "http://127.0.0.1:9003"}]}},
        "routes": [{"host": "api.example.com", "pool": "api"}, {"path_prefix": "/", "pool": "web"}],
    })
    result = run_cli("check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert str(path) in result.stdout and "valid" in result.stdout
    assert "web (2 backends, round_robin)" in result.stdout
    assert "api (1 backends, consistent_hash)" in result.stdout
    assert "routes: 2" in result.stdout
    assert port_is_free(listen), "fulcrum check left the listen port bound"
    assert port_is_free(admin), "fulcrum check left the admin port bound"


def test_check_accepts_the_shipped_reference_config():
    result = run_cli("check", "--config", str(ROOT / "config.yaml"))
    assert result.returncode == 0, result.stderr


def test_check_short_config_flag(tmp_path):
    path = write_config(tmp_path, {"pools": GOOD_POOLS})
    result = run_cli("check", "-c", str(path))
    assert result.returncode == 0, result.stderr


# -- configuration errors: exit 2, one line per problem, naming file and field ------------
BAD_CONFIGS = [
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"},
                                        {"url": "http://127.0.0.1:9002", "weight": 0}]}}},
        "pools.web.backends[1].weight: must be >= 1 (got 0)", id="weight-below-1"),
    pytest.param(
        {"pools": GOOD_POOLS, "timeotus": {"connect": "1s"}},
        "timeotus: unknown key (did you mean 'timeouts'?)", id="unknown-top-level-key"),
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001", "wieght": 2}]}}},
        "pools.web.backends[0].wieght: unknown key (did you mean 'weight'?)", id="unknown-nested-key"),
    pytest.param(
        {"pools": GOOD_POOLS, "limits": {"max_header_count": "many"}},
        "limits.max_header_count: must be an integer (got 'many')", id="wrong-type-int"),
    pytest.param(
        {"pools": GOOD_POOLS, "timeouts": {"connect": "soon"}},
        "timeouts.connect: not a duration (got 'soon')", id="wrong-type-duration"),
    pytest.param(
        {"pools": GOOD_POOLS, "log": {"format": "xml"}},
        "log.format: must be one of: text, json (got 'xml')", id="wrong-literal"),
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "ftp://127.0.0.1:9001"}]}}},
        "pools.web.backends[0].url: must be http://host:port", id="bad-url-scheme"),
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001/app"}]}}},
        "pools.web.backends[0].url: must be http://host:port with no path or query", id="bad-url-path"),
    pytest.param(
        {"pools": GOOD_POOLS, "routes": [{"path_prefix": "/api", "pool": "missing"}]},
        "routes[0].pool: no pool named 'missing' (pools: web)", id="route-to-missing-pool"),
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001"}, {"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.backends[1].url: duplicate backend (same as backends[0])", id="duplicate-backend"),
    pytest.param(
        {"pools": {"web": {"backends": [{"url": "http://127.0.0.1:9001", "id": "a"},
                                        {"url": "http://127.0.0.1:9002", "id": "a"}]}}},
        "pools.web.backends[1].id: duplicate backend id 'a' (same as backends[0])", id="duplicate-backend-id"),
    pytest.param(
        {"pools": {"web": {"strategy": "fastest", "backends": [{"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.strategy: unknown strategy 'fastest'", id="unknown-strategy"),
    pytest.param(
        {"pools": {"web": {"strategy": "tests.support.no_such_module:Thing",
                           "backends": [{"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.strategy: strategy 'tests.support.no_such_module:Thing': cannot import module",
        id="strategy-dotted-path-missing"),
    pytest.param(
        {"pools": {"web": {"strategy": "consistent_hash", "options": {"key": "body"},
                           "backends": [{"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.options.key: must be 'client_ip', 'header:<Name>' or 'cookie:<name>' (got 'body')",
        id="strategy-option-bad-value"),
    pytest.param(
        {"pools": {"web": {"strategy": "consistent_hash", "options": {"replica": 10},
                           "backends": [{"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.options.replica: unknown key (did you mean 'replicas'?)", id="strategy-option-unknown"),
    pytest.param(
        {"pools": {"web": {"strategy": "round_robin", "options": {"weights": [1, 2]},
                           "backends": [{"url": "http://127.0.0.1:9001"}]}}},
        "pools.web.options: strategy 'round_robin' takes no options", id="options-for-optionless-strategy"),
    pytest.param(
        {"pools": {}},
        "pools: at least one pool is required", id="no-pools"),
    pytest.param(
        {"pools": {"web": {"backends": []}}},
        "pools.web.backends: must not be empty", id="pool-without-backends"),
    pytest.param(
        {"pools": GOOD_POOLS, "listen": "localhost"},
        "listen: must be host:port", id="listen-without-port"),
]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(("config", "expected"), BAD_CONFIGS)
def test_config_error_is_one_line_naming_file_and_field(tmp_path, command, config, expected):
    path = write_config(tmp_path, config)
    result = run_cli(command, "--config", str(path))
    assert result.returncode == EXIT_CONFIG, (result.stdout, result.stderr)
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {expected}"), lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["check", "run"])
def test_every_problem_gets_its_own_line_in_file_order(tmp_path, command):
    path = write_config(tmp_path, {
        "listen": "127.0.0.1:8080",
        "timeotus": {"connect": "1s"},
        "log": {"level": "loud"},
        "pools": {"web": {"backends": [
            {"url": "http://127.0.0.1:9001"},
            {"url": "http://127.0.0.1:9002", "weight": 0},
            {"url": "gopher://127.0.0.1:9003"},
        ]}},
    })
    result = run_cli(command, "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    fields = [line.removeprefix(f"{path}: ").split(":", 1)[0] for line in stderr_lines(result)]
    assert fields == ["timeotus", "log.level", "pools.web.backends[1].weight", "pools.web.backends[2].url"]
    assert all(line.startswith(f"{path}: ") for line in stderr_lines(result))


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("pools: [a, b]\n", ": pools: must be a mapping (got a list)", id="pools-is-a-list"),
    pytest.param("- just\n- a list\n", ": top level must be a mapping", id="top-level-list"),
    pytest.param("pools: {web: [\n", ":2:1: invalid YAML", id="yaml-syntax-error-with-line"),
    pytest.param("", ": pools: at least one pool is required", id="empty-file"),
])
def test_malformed_file_is_exit_2_naming_the_file(tmp_path, text, expected):
    path = write_config(tmp_path, text)
    result = run_cli("check", "--config", str(path))
    assert result.returncode == EXIT_CONFIG, result.stdout
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}{expected}"), lines[0]


@pytest.mark.parametrize("command", ["check", "run"])
def test_missing_file_is_exit_2_naming_the_file(tmp_path, command):
    path = tmp_path / "nope.yaml"
    result = run_cli(command, "--config", str(path))
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: cannot read"), lines


# -- environment ---------------------------------------------------------------------------
def test_fulcrum_config_env_picks_the_file(tmp_path):
    path = write_config(tmp_path, {"pools": GOOD_POOLS}, "from-env.yaml")
    result = run_cli("check", env={"FULCRUM_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: configuration is valid")


def test_fulcrum_config_env_names_the_file_in_errors(tmp_path):
    path = write_config(tmp_path, {"pools": GOOD_POOLS, "listen": "nowhere"}, "bad-env.yaml")
    result = run_cli("run", env={"FULCRUM_CONFIG": str(path)})
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(f"{path}: listen: "), lines


def test_config_flag_wins_over_fulcrum_config_env(tmp_path):
    good = write_config(tmp_path, {"pools": GOOD_POOLS}, "good.yaml")
    bad = write_config(tmp_path, {"pools": {}}, "bad.yaml")
    result = run_cli("check", "--config", str(good), env={"FULCRUM_CONFIG": str(bad)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{good}: ")


def test_env_override_bad_duration_is_exit_2_naming_field_and_variable(tmp_path):
    path = write_config(tmp_path, {"pools": GOOD_POOLS})
    for command in ("check", "run"):
        result = run_cli(command, "--config", str(path), env={"FULCRUM_TIMEOUTS__CONNECT": "bad"})
        assert result.returncode == EXIT_CONFIG, result.stdout
        lines = stderr_lines(result)
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"{path}: timeouts.connect: not a duration (got 'bad')")
        assert lines[0].endswith("(set by FULCRUM_TIMEOUTS__CONNECT)")


# A problem caused by a variable names the field and the variable (the file does not show the value).
@pytest.mark.parametrize(("env", "expected"), [
    pytest.param({"FULCRUM_LISTEN": "nowhere"}, "listen: must be host:port", id="listen"),
    pytest.param({"FULCRUM_TIMEOUTS__CONNCET": "1s"}, "timeouts.conncet: unknown key (did you mean 'connect'?)",
                 id="unknown-key"),
    pytest.param({"FULCRUM_POOLS__WEB__BACKENDS__1__WEIGHT": "0"},
                 "pools.web.backends[1].weight: must be >= 1 (got 0)", id="list-index"),
    pytest.param({"FULCRUM_LIMITS__MAX_HEADER_COUNT": "abc"},
                 "limits.max_header_count: must be an integer (got 'abc')", id="wrong-type"),
    pytest.param({"FULCRUM_POOLS__WEB__STRATEGY": "fastest"},
                 "pools.web.strategy: unknown strategy 'fastest'", id="strategy"),
    pytest.param({"FULCRUM_POOLS__WEB__OPTIONS": "{key: x}"},
                 "pools.web.options: strategy 'round_robin' takes no options", id="strategy-options"),
])
def test_env_override_problem_names_field_and_variable(tmp_path, env, expected):
    path = write_config(tmp_path, {"pools": GOOD_POOLS})
    result = run_cli("check", "--config", str(path), env=env)
    assert result.returncode == EXIT_CONFIG, result.stdout
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: {expected}"), lines[0]
    (variable,) = env
    assert f"(set by {variable})" in lines[0], lines[0]


def test_env_override_of_missing_list_item_is_exit_2(tmp_path):
    path = write_config(tmp_path, {"pools": GOOD_POOLS})
    result = run_cli("check", "--config", str(path), env={"FULCRUM_POOLS__WEB__BACKENDS__5__WEIGHT": "2"})
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}: pools.web.backends: cannot set from FULCRUM_POOLS__WEB__BACKENDS__5__WEIGHT")


@pytest.mark.parametrize(("env", "summary"), [
    pytest.param({"FULCRUM_POOLS__WEB__STRATEGY": "random"}, "web (2 backends, random)", id="strategy"),
    pytest.param({"FULCRUM_LISTEN": "[::1]:8080"}, "web (2 backends, round_robin)", id="ipv6-listen-kept-verbatim"),
    pytest.param({"FULCRUM_LOG__LEVEL": "DEBUG"}, "web (2 backends, round_robin)", id="level-case-insensitive"),
    pytest.param({"FULCRUM_POOLS__WEB__BACKENDS__1__WEIGHT": "3"}, "web (2 backends, round_robin)", id="list-index"),
])
def test_env_override_good_value_is_valid(tmp_path, env, summary):
    path = write_config(tmp_path, {"pools": GOOD_POOLS})
    result = run_cli("check", "--config", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert summary in result.stdout


def test_fulcrum_listen_env_overrides_the_listen_address(backends, fulcrum):
    (b1,) = backends(1)
    port = free_port()
    proc = fulcrum({"listen": "127.0.0.1:1", "pools": {"web": pool_config(b1)}},
                   env={"FULCRUM_LISTEN": f"127.0.0.1:{port}"})
    assert proc.port == port
    response = httpx.get(f"http://127.0.0.1:{port}/hello", trust_env=False)
    assert response.status_code == 200
    assert response.headers["x-backend"] == "b1"
    assert response.json()["backend"] == "b1"


# -- running -------------------------------------------------------------------------------
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_run_with_listen_port_taken_fails_and_says_why(tmp_path, log_format):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write_config(tmp_path, {"listen": f"127.0.0.1:{port}", "pools": GOOD_POOLS,
                                       "log": {"format": log_format}})
        result = run_cli("run", "--config", str(path))
    assert result.returncode == 1, result
    output = result.stdout + result.stderr
    line = next((ln for ln in output.splitlines() if "cannot start" in ln), None)
    assert line is not None, output
    assert "address already in use" in line.lower(), line
    assert str(port) in line, line
    if log_format == "json":
        for ln in result.stdout.splitlines():
            assert isinstance(json.loads(ln).get("event"), str), ln
        assert json.loads(line)["event"] == "cannot start"


def test_sigterm_exits_0_with_stopped_line(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}})
    assert httpx.get(f"{proc.url}/", trust_env=False).status_code == 200
    assert proc.stop(signal.SIGTERM) == 0, proc.output
    wait_for_stopped_line(proc)
    stopped = [line for line in proc.lines if is_stopped_line(line)]
    assert len(stopped) == 1, proc.output
    assert proc.lines[-1] == stopped[0], "the stopped line should be the last one:\n" + proc.output


def test_sigterm_lets_the_request_in_flight_finish(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}})
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.get, f"{proc.url}/slow", params={"latency": "0.5"}, trust_env=False, timeout=10)
        stop = time.monotonic() + 10
        while httpx.get(f"{b1.url}/_stats", trust_env=False).json()["requests"] < 1:  # wait until it is in flight
            assert time.monotonic() < stop and not pending.done(), "the request never reached the backend"
            time.sleep(0.01)
        proc.proc.send_signal(signal.SIGTERM)
        response = pending.result()
    assert response.status_code == 200
    assert response.headers["x-backend"] == "b1"
    assert response.headers.get("connection", "").lower() == "close"  # no keep-alive while stopping
    assert proc.proc.wait(timeout=10) == 0, proc.output  # exits by itself once the exchange is done
    wait_for_stopped_line(proc)


def test_sigint_also_exits_0(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}})
    assert proc.stop(signal.SIGINT) == 0, proc.output
    wait_for_stopped_line(proc)


def test_json_log_format_every_line_is_an_event_object(backends, fulcrum):
    (b1,) = backends(1)
    proc = fulcrum({"pools": {"web": pool_config(b1)}, "log": {"format": "json", "level": "debug"}})
    for _ in range(3):
        assert httpx.get(f"{proc.url}/", trust_env=False).status_code == 200
    assert proc.stop(signal.SIGTERM) == 0, proc.output
    wait_for_stopped_line(proc)
    events = []
    for line in proc.lines:
        record = json.loads(line)  # every line must be JSON
        assert isinstance(record, dict), line
        assert isinstance(record.get("event"), str) and record["event"], line
        assert {"time", "level", "logger"} <= record.keys(), line
        events.append(record["event"])
    listening = next(json.loads(ln) for ln in proc.lines if json.loads(ln)["event"] == "listening")
    assert listening["address"] == f"127.0.0.1:{proc.port}"
    assert listening["version"] == __version__
    assert listening["core"] == expected_core()
    assert listening["pools"] == {"web": 1}
    for event in ("listening", "shutting down", "stopped"):
        assert event in events, events
    assert events.index("listening") < events.index("shutting down") < events.index("stopped")
