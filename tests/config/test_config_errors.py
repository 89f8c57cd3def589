# Each kind of config problem produces exactly one expected line: "<file>: <path>: <message>".
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fulcrum.config import ConfigError, format_problem, load_config, load_config_from_dict
from fulcrum.config.errors import problems_from_validation

POOL = """\
pools:
  web:
    backends:
      - url: http://127.0.0.1:9001
      - url: http://127.0.0.1:9002
"""


def problems(tmp_path, monkeypatch, text, env=None):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(env=env or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


@pytest.mark.parametrize("text, line", [
    pytest.param(POOL.replace("9002\n", "9002\n        weight: 0\n"),
                 "config.yaml: pools.web.backends[1].weight: must be >= 1 (got 0)", id="below-minimum"),
    pytest.param(POOL + "timeouts: {connect: 0s}\n",
                 "config.yaml: timeouts.connect: must be > 0 (got '0s')", id="zero-timeout"),
    pytest.param(POOL + "timeouts: {response: 5 parsecs}\n",
                 "config.yaml: timeouts.response: not a duration (got '5 parsecs'); use e.g. 250ms, 2s, 1m",
                 id="bad-duration"),
    pytest.param(POOL + "limits: {max_body_size: lots}\n",
                 "config.yaml: limits.max_body_size: not a size (got 'lots'); use e.g. 512B, 64KB, 10MB, 1GB",
                 id="bad-size"),
    pytest.param(POOL + "timeotus: {}\n",
                 "config.yaml: timeotus: unknown key (did you mean 'timeouts'?)", id="unknown-key-suggested"),
    pytest.param(POOL.replace("9002\n", "9002\n        colour: red\n"),
                 "config.yaml: pools.web.backends[1].colour: unknown key (expected one of: url, weight, id)",
                 id="unknown-key-listed"),
    pytest.param(POOL + "limits: {max_header_count: abc}\n",
                 "config.yaml: limits.max_header_count: must be an integer (got 'abc')", id="not-an-integer"),
    pytest.param(POOL + "upstream: {max_idle_per_backend: 1.5}\n",
                 "config.yaml: upstream.max_idle_per_backend: must be an integer (got 1.5)", id="fractional-int"),
    pytest.param(POOL + "admin: {token: 1234}\n",
                 "config.yaml: admin.token: must be a string (got 1234)", id="not-a-string"),
    pytest.param(POOL + "timeouts: 5\n",
                 "config.yaml: timeouts: must be a mapping (got 5)", id="section-not-mapping"),
    pytest.param(POOL + "routes: {pool: web}\n",
                 "config.yaml: routes: must be a list (got a mapping)", id="not-a-list"),
    pytest.param(POOL + "log: {format: xml}\n",
                 "config.yaml: log.format: must be one of: text, json (got 'xml')", id="literal"),
    pytest.param(POOL + "listen: 127.0.0.1:99999\n",
                 "config.yaml: listen: must be host:port with port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080 "
                 "(got '127.0.0.1:99999')", id="bad-listen"),
    pytest.param(POOL.replace("http://127.0.0.1:9002", "https://127.0.0.1:9002"),
                 "config.yaml: pools.web.backends[1].url: https backends are not supported yet", id="https"),
    pytest.param(POOL.replace("http://127.0.0.1:9002", "http://127.0.0.1:9002/api?x=1"),
                 "config.yaml: pools.web.backends[1].url: must be http://host:port with no path or query "
                 "(got 'http://127.0.0.1:9002/api?x=1')", id="url-with-path"),
    pytest.param(POOL.replace("http://127.0.0.1:9002", "127.0.0.1:9002"),
                 "config.yaml: pools.web.backends[1].url: must be http://host:port with no path or query "
                 "(got '127.0.0.1:9002')", id="url-without-scheme"),
    pytest.param(POOL + "routes:\n  - pool: api\n",
                 "config.yaml: routes[0].pool: no pool named 'api' (pools: web)", id="route-to-missing-pool"),
    pytest.param(POOL + "routes:\n  - {path_prefix: /}\n",
                 "config.yaml: routes[0].pool: required (only a route with a redirect has no pool)", id="route-without-pool"),
    pytest.param(POOL + "routes:\n  - {pool: web, path_prefix: api}\n",
                 "config.yaml: routes[0].path_prefix: must start with '/' (got 'api')", id="relative-prefix"),
    pytest.param(POOL.replace("9002", "9001"),
                 "config.yaml: pools.web.backends[1].url: duplicate backend (same as backends[0])",
                 id="duplicate-backend"),
    pytest.param(POOL.replace("9002\n", "9002\n        id: 127.0.0.1:9001\n"),
                 "config.yaml: pools.web.backends[1].id: duplicate backend id '127.0.0.1:9001' "
                 "(same as backends[0])", id="duplicate-id"),
    pytest.param("listen: 127.0.0.1:8080\n",
                 "config.yaml: pools: at least one pool is required", id="no-pools"),
    pytest.param("pools: {web: {strategy: random}}\n",
                 "config.yaml: pools.web.backends: required", id="pool-without-backends"),
    pytest.param("pools: {web: {backends: []}}\n",
                 "config.yaml: pools.web.backends: must not be empty", id="pool-with-empty-backends"),
    pytest.param("pools: {web app: {backends: [{url: 'http://a:1'}]}}\n",
                 "config.yaml: pools.web app: pool names may use only letters, digits, '_' and '-'",
                 id="bad-pool-name"),
    pytest.param("pools: {7: {backends: [{url: 'http://a:1'}]}}\n",
                 "config.yaml: pools.7: key must be a string (got 7)", id="non-string-key"),
    pytest.param(POOL + "buffers: {low_water: 1MB}\n",
                 "config.yaml: buffers.low_water: must be < high_water (262144) (got 1048576)",
                 id="low-water-above-high"),
    pytest.param(POOL + "routes:\n  - {pool: web, host: 'api.example.com:8080'}\n",
                 "config.yaml: routes[0].host: must not include a port; the Host header's port is ignored "
                 "(got 'api.example.com:8080')", id="route-host-port"),
    pytest.param("- listen\n",
                 "config.yaml: top level must be a mapping of keys (got a list)", id="top-level-list"),
    pytest.param("pools: [oops\n",
                 "config.yaml:2:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
                 "(while parsing a flow sequence)", id="bad-yaml"),
    pytest.param(POOL + "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n",
                 "config.yaml:7:1: invalid YAML: duplicate key 'listen' (first on line 6)", id="duplicate-key"),
])
def test_one_problem_one_line(tmp_path, monkeypatch, text, line):
    assert problems(tmp_path, monkeypatch, text) == [line]


@pytest.mark.parametrize("env, line", [
    pytest.param({"FULCRUM_TIMEOUTS__CONNECT": "soon"},
                 "config.yaml: timeouts.connect: not a duration (got 'soon'); use e.g. 250ms, 2s, 1m "
                 "(set by FULCRUM_TIMEOUTS__CONNECT)", id="bad-value"),
    pytest.param({"FULCRUM_POOLS__API__STRATEGY": "random"},
                 "config.yaml: pools.api.backends: required (set by FULCRUM_POOLS__API__STRATEGY)",
                 id="created-pool-incomplete"),
    pytest.param({"FULCRUM_LISTEN__PORT": "1"},
                 "config.yaml: listen: cannot set from FULCRUM_LISTEN__PORT: not a mapping (got '127.0.0.1:8080')",
                 id="into-scalar"),
    pytest.param({"FULCRUM_POOLS__WEB__BACKENDS__5__WEIGHT": "2"},
                 "config.yaml: pools.web.backends: cannot set from FULCRUM_POOLS__WEB__BACKENDS__5__WEIGHT: "
                 "no item [5] (the list has 2)", id="list-index-out-of-range"),
    pytest.param({"FULCRUM_POOLS____X": "2"},
                 "config.yaml: FULCRUM_POOLS____X: empty key in variable name", id="empty-part"),
])
def test_env_problems_name_the_variable(tmp_path, monkeypatch, env, line):
    assert problems(tmp_path, monkeypatch, POOL + "listen: 127.0.0.1:8080\n", env) == [line]


def test_several_problems_one_line_each_in_file_order(tmp_path, monkeypatch):
    text = """\
listen: nowhere
log: {level: loud}
pools:
  web:
    backends:
      - {url: http://127.0.0.1:9001, weight: 0}
      - {url: https://127.0.0.1:9002}
timeouts: {connect: -1}
"""
    assert problems(tmp_path, monkeypatch, text) == [
        "config.yaml: listen: must be host:port with port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080 "
        "(got 'nowhere')",
        "config.yaml: log.level: must be one of: debug, info, warning, error (got 'loud')",
        "config.yaml: pools.web.backends[0].weight: must be >= 1 (got 0)",
        "config.yaml: pools.web.backends[1].url: https backends are not supported yet",
        "config.yaml: timeouts.connect: must be >= 0 (got -1)",
    ]


def test_several_cross_field_problems(tmp_path, monkeypatch):
    text = POOL.replace("9002", "9001") + "routes:\n  - pool: api\n  - pool: web\n  - pool: db\n"
    assert problems(tmp_path, monkeypatch, text) == [
        "config.yaml: pools.web.backends[1].url: duplicate backend (same as backends[0])",
        "config.yaml: routes[0].pool: no pool named 'api' (pools: web)",
        "config.yaml: routes[2].pool: no pool named 'db' (pools: web)",
    ]


def test_missing_file_is_shown_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("conf/nope.yaml", env={})
    assert info.value.problems == ["conf/nope.yaml: cannot read: No such file or directory"]


def test_directory_is_not_readable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    with pytest.raises(ConfigError) as info:
        load_config("conf", env={})
    assert info.value.problems == ["conf: cannot read: Is a directory"]


def test_load_config_from_dict_names_its_source():
    with pytest.raises(ConfigError) as info:
        load_config_from_dict({"pools": {}}, source="admin API")
    assert info.value.problems == ["admin API: pools: at least one pool is required"]


@pytest.mark.parametrize("path, expected", [
    pytest.param("pools.web", "f.yaml: pools.web: bad", id="with-path"),
    pytest.param("", "f.yaml: bad", id="without-path"),
])
def test_format_problem(path, expected):
    assert format_problem("f.yaml", path, "bad") == expected


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    load_factor: float = Field(1.25, gt=1)


@pytest.mark.parametrize("options, line", [
    pytest.param({"load_factr": 2}, "f.yaml: pools.web.options.load_factr: unknown key (did you mean 'load_factor'?)",
                 id="unknown-option"),
    pytest.param({"load_factor": 1}, "f.yaml: pools.web.options.load_factor: must be > 1 (got 1)", id="bound"),
])
def test_nested_model_errors_with_prefix(options, line):
    with pytest.raises(ValidationError) as info:
        _Options.model_validate(options)
    assert problems_from_validation(info.value, "f.yaml", options, prefix="pools.web.options", root=_Options) == [line]
