"""How a backend's response body reaches the client (http/response_plan.py), as a table."""
from __future__ import annotations

import pytest

from fulcrum.http.response_plan import CHUNKED, LENGTH, NO_BODY, UNTIL_CLOSE, plan_response


@pytest.mark.parametrize("method, status, http11, cl, codings, expected", [
    pytest.param(b"GET", 200, True, b"5", None, (LENGTH, b"Content-Length: 5\r\n", 5, False), id="length"),
    pytest.param(b"HEAD", 200, True, b"5", None, (NO_BODY, b"Content-Length: 5\r\n", 0, False), id="head-keeps-length"),
    pytest.param(b"GET", 304, True, b"5", None, (NO_BODY, b"Content-Length: 5\r\n", 0, False), id="304"),
    pytest.param(b"GET", 204, True, b"5", None, (NO_BODY, b"", 0, False), id="204-no-length"),
    pytest.param(b"GET", 200, True, None, [b"chunked"], (CHUNKED, b"Transfer-Encoding: chunked\r\n", 0, False),
                 id="chunked"),
    pytest.param(b"GET", 200, True, None, [b"gzip", b"chunked"],
                 (CHUNKED, b"Transfer-Encoding: gzip, chunked\r\n", 0, False), id="coding-kept"),
    pytest.param(b"GET", 200, True, None, None, (CHUNKED, b"Transfer-Encoding: chunked\r\n", 0, True),
                 id="close-delimited-rechunked"),
    pytest.param(b"GET", 200, True, None, [b"gzip"], (CHUNKED, b"Transfer-Encoding: gzip, chunked\r\n", 0, True),
                 id="gzip-close-delimited"),
    pytest.param(b"GET", 200, False, None, [b"chunked"], (UNTIL_CLOSE, b"", 0, False), id="http10-until-close"),
    pytest.param(b"GET", 200, False, None, [b"gzip", b"chunked"],
                 (UNTIL_CLOSE, b"Transfer-Encoding: gzip\r\n", 0, False), id="http10-coding-kept"),
    pytest.param(b"GET", 200, False, b"7", None, (LENGTH, b"Content-Length: 7\r\n", 7, False), id="http10-length"),
])
def test_plan_response(method, status, http11, cl, codings, expected):
    assert plan_response(method, status, http11, cl, codings) == expected
