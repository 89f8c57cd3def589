"""Responses Fulcrum writes itself: errors (400/404/413/431/502/503/504 …).

Bodies are short plain text saying what happened, with the request id, so an
operator can find the matching log line.
"""
from __future__ import annotations

from fulcrum.http.status import reason

MESSAGES = {
    400: "bad request",
    403: "forbidden",
    404: "no route matches this request",
    408: "request header timeout",
    413: "request body too large",
    414: "request URL too long",
    429: "too many requests",
    431: "request header fields too large",
    500: "internal error in the proxy",
    502: "bad gateway: the backend could not be reached or sent an invalid response",
    503: "service unavailable",  # the detail says why: no backend, or a connection limit
    504: "gateway timeout: the backend did not answer in time",
}


def error_response(status: int, request_id: bytes | None, detail: str | None = None,
                   close: bool = True, extra: bytes = b"", body: bool = True) -> bytes:
    """A complete HTTP/1.1 response with a text body naming the error.

    ``body=False`` (a HEAD request) sends the head only; 204 and 304 never have a body.
    """
    text = f"{status} {MESSAGES.get(status, reason(status).decode())}"
    if detail:
        text += f" ({detail})"
    if request_id:
        text += f"\nrequest id: {request_id.decode('latin-1')}"
    content = (text + "\n").encode("utf-8", "replace")
    head = [b"HTTP/1.1 %d %s\r\n" % (status, reason(status))]
    if status in (204, 304):
        content = b""
    else:
        head.append(b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n" % len(content))
        head.append(b"Cache-Control: no-store\r\n")
    if request_id:
        head.append(b"X-Request-ID: %s\r\n" % request_id)
    head.append(extra)
    head.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
    return b"".join(head) + (content if body else b"")
