"""Wrong admin tokens throttled per client address, on a fake clock: the window, the 429 and
its Retry-After, what counts as a failure, and the bounded memory. Through the real admin
listener: tests/admin/test_auth.py."""
from __future__ import annotations

import pytest
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from fulcrum.admin.auth import WRONG, Auth, FailureThrottle

TOKEN = "right-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def creds(token: str) -> HTTPAuthorizationCredentials:
    return HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)


def status(auth: Auth, token: str | None, client: str = "10.0.0.1") -> tuple[int, dict | None]:
    try:
        auth.check(creds(token) if token is not None else None, client)
    except HTTPException as exc:
        return exc.status_code, exc.headers
    return 200, None


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def auth(clock):
    return Auth(TOKEN, "0.0.0.0", FailureThrottle(max_failures=3, window=60.0, clock=clock))


def test_after_max_failures_even_the_right_token_waits_for_the_window_to_end(auth, clock):
    assert [status(auth, "wrong")[0] for _ in range(3)] == [403, 403, 403]
    code, headers = status(auth, TOKEN)
    assert (code, headers) == (429, {"Retry-After": "60"})
    clock.now += 45.5
    assert status(auth, "wrong") == (429, {"Retry-After": "15"})  # not compared, not counted
    clock.now += 14.5
    assert status(auth, TOKEN)[0] == 200


def test_the_429_says_who_and_when(auth):
    for _ in range(3):
        status(auth, "wrong")
    with pytest.raises(HTTPException) as info:
        auth.check(creds(TOKEN), "10.0.0.1")
    assert info.value.detail == "too many wrong admin tokens from 10.0.0.1: 3 within 60 s; try again in 60 s"


@pytest.mark.parametrize("between, expected", [
    pytest.param(None, 429, id="three-wrong"),
    pytest.param(TOKEN, 403, id="a-right-token-clears-the-count"),
    pytest.param("no-header", 429, id="a-missing-token-is-not-counted"),
])
def test_what_counts(auth, between, expected):
    status(auth, "wrong")
    status(auth, "wrong")
    if between is not None:
        assert status(auth, None if between == "no-header" else between)[0] in (200, 401)
    assert status(auth, "wrong")[0] == 403  # the third failure, or the first after a right token
    assert status(auth, "wrong")[0] == expected


def test_addresses_are_counted_apart_and_windows_end(auth, clock):
    for _ in range(3):
        status(auth, "wrong", "10.0.0.1")
    assert status(auth, TOKEN, "10.0.0.2")[0] == 200
    assert status(auth, "wrong", "10.0.0.1")[0] == 429
    clock.now += 60
    assert [status(auth, "wrong", "10.0.0.1")[0] for _ in range(4)] == [403, 403, 403, 429]  # a new window


def test_memory_is_bounded_and_ended_windows_are_dropped(clock):
    throttle = FailureThrottle(max_failures=2, window=10.0, max_tracked=3, clock=clock)
    for i in range(5):
        throttle.failed(f"10.0.0.{i}")
    assert len(throttle) == 3  # the oldest forgotten
    for _ in range(2):
        throttle.failed("10.0.0.4")
    assert throttle.retry_after("10.0.0.4") == 10.0
    clock.now += 10
    throttle.failed("10.0.0.9")
    assert len(throttle) == 1  # every other window had ended
    assert throttle.retry_after("10.0.0.4") is None


def test_an_error_names_wrong_token_not_the_token(auth):
    with pytest.raises(HTTPException) as info:
        auth.check(creds("guess"), "10.0.0.1")
    assert info.value.detail == WRONG and "guess" not in info.value.detail
