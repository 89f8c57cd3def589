"""The response side of a proxy, as a pure function: how a backend's response body reaches
the client (RFC 9112 §6.3). No I/O; the caller applies the plan to its connections.

Invariants: HEAD, 204 and 304 carry no body; a Content-Length body keeps its length; any
other body is re-framed as chunked for an HTTP/1.1 client, or sent until close to an
HTTP/1.0 one; codings other than a final ``chunked`` stay declared (llhttp leaves them in
the body bytes); a body that ends only at the backend's EOF (close-delimited) says so, so
that connection is never reused.
"""
from __future__ import annotations

from fulcrum.http.wire import header_line

# How the response body reaches the client.
NO_BODY, LENGTH, CHUNKED, UNTIL_CLOSE = range(4)


def plan_response(method: bytes, status: int, http11: bool, content_length: bytes | None,
                  codings: list[bytes] | None) -> tuple[int, bytes, int, bool]:
    """``(framing, line, length, close_delimited)`` for a final response.

    ``content_length``: the backend's (llhttp has checked it is one decimal number);
    ``codings``: its Transfer-Encoding codings in order, or None. ``line`` is the
    framing header for the client (or b""); ``length`` the body's Content-Length when
    ``framing`` is LENGTH; ``close_delimited``: the backend's EOF ends the body. With
    UNTIL_CLOSE the client connection must close after the response.
    """
    if method == b"HEAD" or status == 304 or status == 204:
        if content_length is not None and status != 204:
            return NO_BODY, header_line(b"Content-Length: ", content_length), 0, False
        return NO_BODY, b"", 0, False
    if codings is None and content_length is not None:
        return LENGTH, header_line(b"Content-Length: ", content_length), int(content_length), False
    chunked = bool(codings) and codings[-1].lower() == b"chunked"
    kept = codings[:-1] if chunked else (codings or [])
    if http11:
        return CHUNKED, b"Transfer-Encoding: %s\r\n" % b", ".join(kept + [b"chunked"]), 0, not chunked
    line = b"Transfer-Encoding: %s\r\n" % b", ".join(kept) if kept else b""
    return UNTIL_CLOSE, line, 0, not chunked
