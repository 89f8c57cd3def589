"""The OpenAPI document against the real admin API (schemathesis): the document is valid
OpenAPI, and generated requests get answers whose status, content type and body it
describes, with the token (reads and changes) and without it (every change is a
documented 401). Changes run against their own Fulcrum, with health checks off so added
backends are never contacted.
"""
from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.admin_client import TOKEN
from tests.support.processes import Backend, Fulcrum, admin_url, pool_config

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Bounded work: a handful of examples per operation, no deadline on a loaded CI box.
EXAMPLES = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A Fulcrum whose pool the generated changes may fill with backends (never contacted)."""
    backend = Backend("b1")
    proc = Fulcrum({"admin": {"token": TOKEN}, "pools": {"web": pool_config(backend)}},
                   tmp_path_factory.mktemp("scratch"))
    yield proc
    code = proc.stop()
    backend.stop()
    assert code == 0, proc.output


def load(proc) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(admin_url(proc) + "/api/v1/openapi.json")


@pytest.fixture(scope="module")
def read_schema(shared):
    return load(shared[0])


@pytest.fixture(scope="module")
def write_schema(scratch):
    return load(scratch)


READS = [("GET", p) for p in ("/health", "/ready", "/metrics", "/api/v1/status", "/api/v1/config",
                              "/api/v1/pools/{pool}/backends", "/api/v1/pools/{pool}/backends/{backend_id}", "/")]
CHANGES = [("POST", "/api/v1/pools/{pool}/backends"), ("PATCH", "/api/v1/pools/{pool}/backends/{backend_id}"),
           ("DELETE", "/api/v1/pools/{pool}/backends/{backend_id}"),
           ("POST", "/api/v1/pools/{pool}/backends/{backend_id}/drain"), ("POST", "/api/v1/reload")]


def ids(operations) -> list[str]:
    return [f"{method} {path}" for method, path in operations]


def exercise(schema, method: str, path: str, check) -> None:
    """Run ``check(case)`` on generated requests for one operation of the document."""
    @given(case=schema[path][method].as_strategy())
    @EXAMPLES
    def run(case) -> None:
        check(case)

    run()


def test_document_is_valid_openapi_and_lists_every_operation(read_schema):
    read_schema.validate()
    raw = read_schema.raw_schema
    assert raw["openapi"].startswith("3.")
    operations = {(method.upper(), path) for path, item in raw["paths"].items() for method in item}
    assert operations >= {
        ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/api/v1/status"),
        ("GET", "/api/v1/config"), ("GET", "/api/v1/pools/{pool}/backends"),
        ("POST", "/api/v1/pools/{pool}/backends"), ("PATCH", "/api/v1/pools/{pool}/backends/{backend_id}"),
        ("DELETE", "/api/v1/pools/{pool}/backends/{backend_id}"),
        ("POST", "/api/v1/pools/{pool}/backends/{backend_id}/drain"), ("POST", "/api/v1/reload"),
    }
    assert "adminToken" in raw["components"]["securitySchemes"]


def test_document_is_what_the_openapi_url_serves(shared):
    served = httpx.get(admin_url(shared[0]) + "/api/v1/openapi.json", trust_env=False).json()
    assert served["info"]["title"] == "Fulcrum admin API"
    assert "/api/v1/openapi.json" not in served["paths"]  # the document itself is not an operation


@pytest.mark.parametrize(("method", "path"), READS, ids=ids(READS))
def test_reads_match_the_document(read_schema, method, path):
    exercise(read_schema, method, path, lambda case: case.call_and_validate(headers=AUTH))


@pytest.mark.parametrize(("method", "path"), CHANGES, ids=ids(CHANGES))
def test_changes_with_the_token_match_the_document(write_schema, method, path):
    exercise(write_schema, method, path, lambda case: case.call_and_validate(headers=AUTH))


@pytest.mark.parametrize(("method", "path"), CHANGES, ids=ids(CHANGES))
def test_changes_without_the_token_are_refused_as_documented(write_schema, method, path):
    # Generated requests carry no Authorization header, or a made-up bearer token (after 20
    # of those the address is throttled: 429, documented too).
    def check(case) -> None:
        response = case.call_and_validate()
        assert response.status_code in (401, 403, 429), response.text

    exercise(write_schema, method, path, check)
