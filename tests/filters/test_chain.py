# The filter chain and how it is composed at provisioning: only the phases a filter overrides
# are called, request hooks in order and response hooks innermost first; the built-in sections
# come in a fixed order before the user's filters; a route's section is merged over the global
# one (its keys win, enabled: false turns it off) and a route without one shares the global
# instance, buckets and all; problems in user filters name their config path.
from __future__ import annotations

import pytest

from fulcrum.config.model import Config
from fulcrum.filters.access_log import AccessLog
from fulcrum.filters.base import Filter, Reply, ResponseHead
from fulcrum.filters.builder import FilterBuilder
from fulcrum.filters.chain import EMPTY, Chain
from fulcrum.filters.cors import Cors
from fulcrum.filters.rate_limit import RateLimit
from fulcrum.filters.resources import Resources
from fulcrum.filters.security_headers import SecurityHeaders

POOLS = {"web": {"backends": [{"url": "http://127.0.0.1:9001"}]}}
EDGE = "tests.support.edge_filters"


# -- Chain ----------------------------------------------------------------------------------

class Recorder(Filter):
    """Overrides every phase and records each call in a shared journal."""

    def __init__(self, label: str, journal: list) -> None:
        super().__init__(None, Resources())
        self.label = label
        self.journal = journal

    def on_request(self, exchange):
        self.journal.append(("request", self.label))

    def on_response(self, exchange, head):
        self.journal.append(("response", self.label))
        head.add(b"X-Seen", self.label.encode())

    def on_log(self, exchange):
        self.journal.append(("log", self.label))


class RequestOnly(Filter):
    name = "request-only"

    def on_request(self, exchange):
        return None


class ResponseOnly(Filter):
    name = "response-only"

    def on_response(self, exchange, head):
        return None


class LogOnly(Filter):
    name = "log-only"

    def on_log(self, exchange):
        return None


class Nothing(Filter):
    name = "nothing"


class InheritsResponse(ResponseOnly):
    """Overrides nothing itself; its parent's on_response is still an override of Filter's."""

    name = "inherits-response"


def make(cls: type[Filter]) -> Filter:
    return cls(None, Resources())


def owners(hooks: tuple) -> list[str]:
    return [hook.__self__.name for hook in hooks]


def test_chain_lists_only_the_hooks_each_filter_overrides():
    chain = Chain([make(RequestOnly), make(ResponseOnly), make(LogOnly), make(Nothing)])
    assert owners(chain.request) == ["request-only"]
    assert owners(chain.response) == ["response-only"]
    assert owners(chain.log) == ["log-only"]
    assert chain.names == ["request-only", "response-only", "log-only", "nothing"]


def test_an_inherited_override_counts_as_a_hook():
    chain = Chain([make(InheritsResponse)])
    assert owners(chain.response) == ["inherits-response"]
    assert chain.request == () and chain.log == ()


def test_a_chain_of_filters_that_hook_nothing_has_empty_phases():
    chain = Chain([make(Nothing), make(Nothing)])
    assert chain.request == chain.response == chain.log == ()
    assert EMPTY.request == EMPTY.response == EMPTY.log == ()
    assert not EMPTY.filters


def test_request_and_log_hooks_run_in_order_response_hooks_innermost_first():
    journal: list = []
    chain = Chain([Recorder("outer", journal), Recorder("middle", journal), Recorder("inner", journal)])
    head = ResponseHead(200, [b"HTTP/1.1 200 OK\r\n"])
    for hook in chain.request:
        assert hook(object()) is None
    for hook in chain.response:
        hook(object(), head)
    for hook in chain.log:
        hook(object())
    assert journal == [
        ("request", "outer"), ("request", "middle"), ("request", "inner"),
        ("response", "inner"), ("response", "middle"), ("response", "outer"),
        ("log", "outer"), ("log", "middle"), ("log", "inner"),
    ]
    assert head.lines[1:] == [b"X-Seen: inner\r\n", b"X-Seen: middle\r\n", b"X-Seen: outer\r\n"]


def test_a_filter_without_a_name_is_named_by_its_class():
    class Anonymous(Filter):
        pass

    assert Chain([make(Anonymous)]).names == [Anonymous.__qualname__]


# -- FilterBuilder: composing chains from config ---------------------------------------------

def build(doc: dict) -> tuple[Chain, list[Chain], list[str], Resources]:
    """The global chain, one chain per route, the problems found and the shared resources."""
    config = Config.model_validate({"pools": POOLS, **doc})
    problems: list[str] = []
    resources = Resources()
    builder = FilterBuilder(config, resources, "edge.yaml", problems)
    chain = builder.chain(None, "")
    routes = [builder.chain(route, f"routes[{i}].") for i, route in enumerate(config.routes)]
    return chain, routes, problems, resources


def of_type(chain: Chain, cls: type[Filter]) -> Filter | None:
    found = [f for f in chain.filters if type(f) is cls]
    assert len(found) <= 1, chain
    return found[0] if found else None


ALL_SECTIONS = {
    "rate_limit": {"requests_per_second": 5, "burst": 50},
    "cors": {"allow_origins": ["https://app.example.com"]},
    "security_headers": {},
    "filters": [{"use": f"{EDGE}:Tag", "options": {"value": "global"}}],
}


def test_builtin_sections_come_in_fixed_order_then_user_filters():
    # The config lists them in another order; the chain's order is fixed.
    doc = {"filters": ALL_SECTIONS["filters"], "security_headers": {}, "cors": ALL_SECTIONS["cors"],
           "rate_limit": ALL_SECTIONS["rate_limit"]}
    chain, _, problems, _ = build(doc)
    assert problems == []
    assert chain.names == ["access_log", "rate_limit", "cors", "security_headers", "tag"]


def test_sections_left_null_are_not_in_the_chain():
    chain, _, problems, _ = build({})
    assert problems == []
    assert chain.names == ["access_log"]  # the access log is on by default, the rest off
    chain, _, _, _ = build({"access_log": {"enabled": False}})
    assert chain.names == []
    assert chain.request == chain.response == chain.log == ()


def test_route_without_a_section_shares_the_global_instance():
    chain, (route,), problems, _ = build({**ALL_SECTIONS, "routes": [{"pool": "web"}]})
    assert problems == []
    for cls in (AccessLog, RateLimit, Cors, SecurityHeaders):
        assert of_type(route, cls) is of_type(chain, cls), cls
    # The same instance means the same buckets: one client, one allowance across routes.
    assert of_type(route, RateLimit).table is of_type(chain, RateLimit).table
    # Global user filters are shared too.
    assert route.filters[-1] is chain.filters[-1]


def test_route_section_is_merged_over_the_global_one():
    doc = {
        "rate_limit": {"requests_per_second": 5, "burst": 50, "headers": False, "key": "header:X-Api-Key",
                       "exempt": ["10.0.0.0/8"]},
        "routes": [{"pool": "web", "rate_limit": {"burst": 3}}],
    }
    chain, (route,), problems, _ = build(doc)
    assert problems == []
    mine, shared = of_type(route, RateLimit), of_type(chain, RateLimit)
    assert mine is not shared and mine.table is not shared.table  # its own buckets
    assert mine.table.burst == 3           # the route's key wins
    assert mine.table.rate == 5            # the others are inherited
    assert mine.always_headers is False
    assert mine.key_header == b"x-api-key"
    assert mine.exempt.trusts("10.1.2.3")
    assert shared.table.burst == 50        # and the global one is untouched


def test_route_can_turn_a_global_filter_off():
    doc = {**ALL_SECTIONS, "routes": [
        {"pool": "web", "path_prefix": "/open", "rate_limit": {"enabled": False},
         "security_headers": {"enabled": False}},
        {"pool": "web"},
    ]}
    chain, (open_route, other), problems, _ = build(doc)
    assert problems == []
    assert open_route.names == ["access_log", "cors", "tag"]
    assert other.names == chain.names == ["access_log", "rate_limit", "cors", "security_headers", "tag"]


def test_route_can_turn_on_a_filter_that_is_off_globally():
    doc = {"routes": [{"pool": "web", "path_prefix": "/api",
                       "cors": {"allow_origins": ["*"], "max_age": 7}}, {"pool": "web"}]}
    chain, (api, other), problems, _ = build(doc)
    assert problems == []
    assert of_type(chain, Cors) is None and of_type(other, Cors) is None
    cors = of_type(api, Cors)
    assert cors is not None and cors.any_origin and cors.max_age == b"7"


def test_two_routes_with_their_own_sections_get_separate_instances():
    doc = {"rate_limit": {"burst": 10}, "routes": [
        {"pool": "web", "path_prefix": "/a", "rate_limit": {"burst": 2}},
        {"pool": "web", "path_prefix": "/b", "rate_limit": {"burst": 2}},
    ]}
    _, (a, b), problems, _ = build(doc)
    assert problems == []
    assert of_type(a, RateLimit).table is not of_type(b, RateLimit).table


def test_route_user_filters_run_after_the_global_ones():
    doc = {"filters": [{"use": f"{EDGE}:Tag", "options": {"value": "global"}}],
           "routes": [{"pool": "web", "filters": [
               {"use": f"{EDGE}:Deny", "options": {"path": "/x"}},
               {"use": f"{EDGE}:Tag", "options": {"value": "route"}}]}]}
    chain, (route,), problems, _ = build(doc)
    assert problems == []
    assert chain.names == ["access_log", "tag"]
    assert route.names == ["access_log", "tag", "deny", "tag"]
    assert [f.options.value for f in route.filters if f.name == "tag"] == ["global", "route"]
    # ... so on the way back out the route's Tag runs before the global one.
    assert [hook.__self__.options.value for hook in route.response] == ["route", "global"]
    assert owners(route.request) == ["deny"]


def test_user_filter_options_are_validated_models():
    _, (route,), problems, _ = build({"routes": [{"pool": "web", "filters": [
        {"use": f"{EDGE}:Strict", "options": {"x": "42"}}]}]})
    assert problems == []
    strict = route.filters[-1]
    assert strict.options.x == 42 and strict.options.label == "strict"


def test_access_log_sections_writing_to_one_output_share_one_writer(tmp_path):
    out = str(tmp_path / "access.log")
    doc = {"access_log": {"output": out, "format": "json"},
           "routes": [{"pool": "web", "access_log": {"format": "text"}}]}
    chain, (route,), problems, resources = build(doc)
    assert problems == []
    mine, shared = of_type(route, AccessLog), of_type(chain, AccessLog)
    assert mine is not shared
    assert mine.json is False and shared.json is True
    assert mine.writer is shared.writer
    assert list(resources.writers) == [out]


@pytest.mark.parametrize(("filters", "where", "words"), [
    pytest.param([{"use": f"{EDGE}:Strict", "options": {"x": "many"}}],
                 "routes[0].filters[0].options.x", ["integer"], id="bad-option-value"),
    pytest.param([{"use": f"{EDGE}:Strict", "options": {}}],
                 "routes[0].filters[0].options.x", ["required"], id="missing-option"),
    pytest.param([{"use": f"{EDGE}:Tag", "options": {"value": "v"}},
                  {"use": f"{EDGE}:Strict", "options": {"x": 1, "colour": "red"}}],
                 "routes[0].filters[1].options.colour", ["unknown"], id="unknown-option"),
    pytest.param([{"use": f"{EDGE}:Plain", "options": {"a": 1}}],
                 "routes[0].filters[0].options", ["takes no options"], id="options-for-optionless"),
    pytest.param([{"use": "tests.support.no_such_edge_module:Thing"}],
                 "routes[0].filters[0].use", ["tests.support.no_such_edge_module"], id="unknown-module"),
    pytest.param([{"use": f"{EDGE}:NoSuchClass"}],
                 "routes[0].filters[0].use", ["NoSuchClass"], id="unknown-class"),
    pytest.param([{"use": f"{EDGE}:NotAFilter"}],
                 "routes[0].filters[0].use", ["not a Filter subclass"], id="not-a-filter"),
    pytest.param([{"use": "no_such_builtin"}],
                 "routes[0].filters[0].use", ["no_such_builtin", "rate_limit"], id="unknown-builtin"),
])
def test_user_filter_problems_name_their_config_path(filters, where, words):
    _, _, problems, _ = build({"routes": [{"pool": "web", "filters": filters}]})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"edge.yaml: {where}: "), problems
    for word in words:
        assert word in problems[0], problems


def test_every_problem_is_reported_not_just_the_first():
    _, _, problems, _ = build({
        "filters": [{"use": f"{EDGE}:Strict", "options": {}}],
        "routes": [{"pool": "web", "filters": [{"use": "tests.support.no_such_edge_module:Thing"}]}],
    })
    wheres = sorted(p.split(": ")[1] for p in problems)
    assert wheres == ["filters[0].options.x", "routes[0].filters[0].use"], problems


def test_a_local_reply_carries_its_headers():
    reply = Reply(429, "slow down", [("Retry-After", "3"), ("X-A", "b")])
    assert reply.header_bytes == b"Retry-After: 3\r\nX-A: b\r\n"
    assert Reply(204).header_bytes == b""
