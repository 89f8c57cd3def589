# Loading: the annotated example config.yaml, file selection and environment overrides.
from pathlib import Path

import pytest

from fulcrum.config import Config, ConfigError, load_config, load_config_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "config.yaml"

MINIMAL = """\
pools:
  Web:
    backends:
      - url: http://127.0.0.1:9001
      - url: http://127.0.0.1:9002
      - url: http://127.0.0.1:9003
"""


@pytest.fixture
def minimal(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text(MINIMAL)
    return tmp_path / "config.yaml"


def test_example_config_loads_with_the_defaults():
    config = load_config(EXAMPLE, env={})
    pool = config.pools.pop("web")
    assert config.pools == {}
    assert config.model_dump(exclude={"pools"}) == Config.model_construct().model_dump(exclude={"pools"})
    assert pool.strategy == "round_robin"
    assert pool.options == {}
    assert [(b.url, b.weight, b.id) for b in pool.backends] == [
        ("http://127.0.0.1:9001", 1, None),
        ("http://127.0.0.1:9002", 1, None),
        ("http://127.0.0.1:9003", 2, None),
    ]


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()
    for section, model in Config.model_fields.items():
        assert f"\n{section}:" in text, section
        annotation = model.annotation
        for key in getattr(annotation, "model_fields", {}):
            assert f"  {key}:" in text, f"{section}.{key}"


def test_example_config_commented_examples_are_valid():
    """The commented-out routes and consistent_hash options, uncommented, still load."""
    raw = load_config(EXAMPLE, env={}).model_dump()
    raw["routes"] = [{"host": "api.example.com", "path_prefix": "/v1/", "pool": "web"},
                     {"host": "*.example.com", "headers": {"X-Canary": "1"}, "pool": "web"}]
    raw["pools"]["web"]["strategy"] = "consistent_hash"
    raw["pools"]["web"]["options"] = {"key": "header:X-User", "algorithm": "ring", "load_factor": 1.25}
    config = load_config_from_dict(raw)
    assert config.routes[1].headers == {"x-canary": "1"}


@pytest.mark.parametrize("variable, value, read, expected", [
    pytest.param("FULCRUM_LISTEN", "127.0.0.1:9000", lambda c: c.listen, "127.0.0.1:9000", id="listen-stays-text"),
    pytest.param("FULCRUM_LISTEN", "[::1]:9000", lambda c: c.listen_addr, ("::1", 9000), id="ipv6-listen"),
    pytest.param("FULCRUM_TIMEOUTS__CONNECT", "500ms", lambda c: c.timeouts.connect, 0.5, id="duration"),
    pytest.param("FULCRUM_LIMITS__MAX_BODY_SIZE", "10MB", lambda c: c.limits.max_body_size, 10 << 20, id="size"),
    pytest.param("FULCRUM_LIMITS__MAX_BODY_SIZE", "0", lambda c: c.limits.max_body_size, 0, id="size-number"),
    pytest.param("FULCRUM_UPSTREAM__MAX_IDLE_PER_BACKEND", "2", lambda c: c.upstream.max_idle_per_backend, 2,
                 id="int"),
    pytest.param("FULCRUM_LOG__LEVEL", "DEBUG", lambda c: c.log.level, "debug", id="literal"),
    pytest.param("FULCRUM_ADMIN__TOKEN", "123", lambda c: c.admin.token, "123", id="numeric-token-stays-text"),
    pytest.param("FULCRUM_ADMIN__TOKEN", "yes", lambda c: c.admin.token, "yes", id="yes-token-stays-text"),
    pytest.param("FULCRUM_ADMIN__TOKEN", "", lambda c: c.admin.token, None, id="empty-is-null"),
    pytest.param("FULCRUM_POOLS__WEB__STRATEGY", "random", lambda c: c.pools["Web"].strategy, "random",
                 id="existing-key-case-insensitive"),
    pytest.param("FULCRUM_POOLS__WEB__OPTIONS__LOAD_FACTOR", "1.25", lambda c: c.pools["Web"].options,
                 {"load_factor": 1.25}, id="options-typed"),
    pytest.param("FULCRUM_POOLS__WEB__OPTIONS", "{key: 'header:X-User', algorithm: ring}",
                 lambda c: c.pools["Web"].options, {"key": "header:X-User", "algorithm": "ring"},
                 id="options-mapping"),
    pytest.param("FULCRUM_POOLS__WEB__BACKENDS__2__WEIGHT", "5", lambda c: c.pools["Web"].backends[2].weight, 5,
                 id="list-index"),
    pytest.param("FULCRUM_ROUTES", "[{pool: Web, path_prefix: /api}]",
                 lambda c: [(r.pool, r.path_prefix) for r in c.routes], [("Web", "/api")], id="list-value"),
    pytest.param("FULCRUM_POOLS__API__BACKENDS", "[{url: 'http://10.0.0.1:80'}]",
                 lambda c: sorted(c.pools), ["Web", "api"], id="new-pool"),
    pytest.param("OTHER_LISTEN", "x", lambda c: c.listen, "127.0.0.1:8080", id="other-prefix-ignored"),
])
def test_env_overrides(minimal, variable, value, read, expected):
    assert read(load_config(env={variable: value})) == expected


def test_env_durations_are_taken_verbatim(minimal):
    """YAML 1.1 would read "1:30" as 90; a duration field gets the text and rejects it."""
    with pytest.raises(ConfigError, match="not a duration"):
        load_config(env={"FULCRUM_TIMEOUTS__RESPONSE": "1:30"})


def test_env_overrides_apply_parents_first(minimal):
    env = {"FULCRUM_TIMEOUTS__CONNECT": "5s", "FULCRUM_TIMEOUTS": "{connect: 1s, response: 9s}"}
    config = load_config(env=env)
    assert (config.timeouts.connect, config.timeouts.response) == (5.0, 9.0)


def test_env_does_not_change_load_config_from_dict(monkeypatch):
    monkeypatch.setenv("FULCRUM_LISTEN", "0.0.0.0:1")
    raw = {"pools": {"web": {"backends": [{"url": "http://a:1"}]}}}
    assert load_config_from_dict(raw).listen == "127.0.0.1:8080"


def test_fulcrum_config_names_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "other.yaml").write_text(MINIMAL + "listen: 127.0.0.1:7000\n")
    assert load_config(env={"FULCRUM_CONFIG": "other.yaml"}).listen == "127.0.0.1:7000"


def test_path_argument_beats_fulcrum_config(minimal):
    with pytest.raises(ConfigError, match="^missing.yaml: cannot read"):
        load_config(env={"FULCRUM_CONFIG": "missing.yaml"})
    assert load_config(minimal, env={"FULCRUM_CONFIG": "missing.yaml"}).pools["Web"]


def test_default_path_and_process_environment(minimal, monkeypatch):
    monkeypatch.setenv("FULCRUM_LISTEN", "127.0.0.1:7001")
    assert load_config().listen == "127.0.0.1:7001"
