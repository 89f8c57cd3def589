"""The fuzzer's own parts, without sockets: h11's reference reading and the oracle's verdicts on
hand-made runs (a fuzzer whose oracle accepted everything would pass forever)."""
from __future__ import annotations

import pytest

from tests.fuzz.client import ClientResult, parse
from tests.fuzz.oracle import Run, judge
from tests.fuzz.recording_backend import CUT, REQUEST, BackendEvent, BackendRequest
from tests.fuzz.reference import read

NONCE = b"000001"
CANARY = b"/canary000001"
R0, R1, S0 = b"/fz000001r0", b"/fz000001r1", b"/fz000001s0"
HOST = b"Host: example.test\r\n"


@pytest.mark.parametrize("raw, targets, error, closed_by", [
    pytest.param(b"GET /a HTTP/1.1\r\n" + HOST + b"\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n",
                 [b"/a", b"/b"], None, "", id="pipelined"),
    pytest.param(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n",
                 [b"/a", b"/b"], None, "", id="http10-keep-alive-goes-on"),
    pytest.param(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n",
                 [b"/a"], None, "HTTP/1.0", id="http10-closes"),
    pytest.param(b"GET /a HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n",
                 [b"/a"], None, "Connection: close", id="close"),
    pytest.param(b"GET /a HTTP/1.1\r\n" + HOST + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                 b"GET /b HTTP/1.1\r\n" + HOST + b"\r\n", [b"/a", b"/b"], None, "", id="upgrade-denied-goes-on"),
    pytest.param(b"CONNECT example.test:443 HTTP/1.1\r\n" + HOST + b"\r\nGET /b HTTP/1.1\r\n" + HOST + b"\r\n",
                 [b"example.test:443", b"/b"], None, "", id="connect-denied-goes-on"),
    pytest.param(b"POST /a HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nab",
                 [], "peer closed connection without sending complete message body", "", id="body-cut"),
    pytest.param(b"GET /a HTTP/1.1\r\n\r\n", [], "Missing mandatory Host: header", "", id="no-host"),
])
def test_reference_reading(raw, targets, error, closed_by):
    ref = read(raw)
    assert [r.target for r in ref.requests] == targets
    assert (ref.error or "").startswith(error or "") and bool(ref.error) == bool(error)
    assert ref.closed_by == closed_by


def forwarded(seq: int, method: bytes, target: bytes, body: bytes = b"", host: bytes = b"example.test") -> BackendRequest:
    headers = [(b"host", host), (b"x-forwarded-for", b"127.0.0.1"), (b"x-forwarded-proto", b"http"),
               (b"x-request-id", b"id-%d" % seq)]
    return BackendRequest(0, method, target, b"1.1", headers, body, seq)


def answer(request: BackendRequest) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Fuzz-Seq: %d\r\nX-Fuzz-Target: %s\r\nContent-Length: 0\r\n\r\n" % (
        request.seq, request.target)


def make_run(raw: bytes, backend: list[BackendRequest], client: bytes, canary_ok: bool = True,
             cut: BackendRequest | None = None) -> Run:
    canary = forwarded(99, b"GET", CANARY, host=b"canary.test")
    events = [BackendEvent(REQUEST, 0, r) for r in backend]
    if cut is not None:
        events.append(BackendEvent(CUT, 0, cut, "peer closed connection without sending complete message body"))
    if canary_ok:
        events.append(BackendEvent(REQUEST, 0, canary))
    responses, rest = parse(client, eof=True)
    canary_responses, _ = parse(answer(canary) if canary_ok else b"", eof=True)
    return Run(raw, NONCE, read(raw), events, ClientResult(client, responses, rest), CANARY,
               ClientResult(b"", canary_responses))


REJECTED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HIDDEN = b"GET " + S0 + b" HTTP/1.1\r\nHost: a\r\n\r\n"
POST_SMUGGLE = (b"POST " + R0 + b" HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\nConnection: content-length\r\n\r\n"
                % len(HIDDEN) + HIDDEN)


def kinds(run: Run) -> list[str]:
    return sorted({f.kind for f in judge(run)})


def test_a_faithful_run_passes():
    sent = forwarded(1, b"GET", R0)
    assert kinds(make_run(b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n", [sent], answer(sent))) == []


def test_a_refusal_that_forwards_nothing_passes():
    assert kinds(make_run(b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n", [], REJECTED)) == []


def test_a_request_streamed_then_cut_on_refusal_passes():
    raw = b"POST " + R0 + b" HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
    cut = forwarded(1, b"POST", R0, b"hello")
    assert kinds(make_run(raw, [], REJECTED, cut=cut)) == []


def test_a_request_hidden_in_a_body_that_reaches_the_backend_is_smuggling():
    head = forwarded(1, b"POST", R0)
    hidden = forwarded(2, b"GET", S0, host=b"a")
    assert "smuggled" in kinds(make_run(POST_SMUGGLE, [head, hidden], answer(head)))


def test_a_body_lost_on_the_way_is_a_difference():
    lost = forwarded(1, b"POST", R0)
    assert kinds(make_run(POST_SMUGGLE, [lost], answer(lost))) == ["forwarded-differs"]


def test_a_refused_request_that_still_reached_the_backend_is_a_mismatch():
    sent = forwarded(1, b"GET", R0)
    assert kinds(make_run(b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n", [sent], REJECTED)) == ["response-mismatch"]


def test_a_response_for_another_request_is_a_mismatch():
    first, second = forwarded(1, b"GET", R0), forwarded(2, b"GET", R1)
    raw = b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\nGET " + R1 + b" HTTP/1.1\r\n" + HOST + b"\r\n"
    assert kinds(make_run(raw, [first, second], answer(second) + answer(first))) == ["response-mismatch"]


def test_a_poisoned_pool_shows_in_the_canary():
    sent = forwarded(1, b"GET", R0)
    assert kinds(make_run(b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n", [sent], answer(sent),
                          canary_ok=False)) == ["canary"]


def test_policies_beyond_the_reference():
    raw = b"CONNECT example.test:443 HTTP/1.1\r\n" + HOST + b"Connection: x-fuzz-hop\r\nX-Fuzz-Hop: 1\r\n\r\n"
    sent = forwarded(1, b"CONNECT", b"example.test:443")
    sent.headers.append((b"x-fuzz-hop", b"1"))
    assert kinds(make_run(raw, [sent], answer(sent))) == ["connect-forwarded", "hop-by-hop-leak"]


def test_past_h11s_refusal_only_generated_requests_may_be_forwarded():
    # h11 refuses the empty line between the requests; llhttp skips it.
    raw = b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n\nGET " + R1 + b" HTTP/1.1\r\n" + HOST + b"\r\n"
    first, second = forwarded(1, b"GET", R0), forwarded(2, b"GET", R1)
    assert kinds(make_run(raw, [first, second], answer(first) + answer(second))) == []
    hidden = forwarded(2, b"GET", S0)
    assert kinds(make_run(raw, [first, hidden], answer(first) + answer(hidden))) == ["smuggled"]


def test_past_h11s_refusal_a_generated_absolute_form_request_is_known_by_its_host():
    # The second request's marker is in its authority; Fulcrum sends that as Host, with "/".
    raw = (b"GET " + R0 + b" HTTP/1.1\r\n" + HOST + b"\r\n\nGET http://fz000001r1.test/ HTTP/1.1\r\n" + HOST
           + b"\r\n")
    first = forwarded(1, b"GET", R0)
    second = forwarded(2, b"GET", b"/", host=b"fz000001r1.test")
    assert kinds(make_run(raw, [first, second], answer(first) + answer(second))) == []
    unmarked = forwarded(2, b"GET", b"/", host=b"example.test")
    assert kinds(make_run(raw, [first, unmarked], answer(first) + answer(unmarked))) == ["smuggled"]
