"""Header hygiene as pure functions (http/headers.py): flat fields, Connection-named headers,
hosts. Tables of values, no sockets."""
from __future__ import annotations

import pytest

from fulcrum.http.headers import field_lines, host_without_port, named_by_connection, without_named

FIELDS = [b"X-A", b": ", b"1", b"\r\n", b"x-hop", b": ", b"2", b"\r\n", b"X-B", b": ", b"a: b", b"\r\n"]


def test_fields_become_lines_for_the_filters():
    assert field_lines(FIELDS) == [b"X-A: 1\r\n", b"x-hop: 2\r\n", b"X-B: a: b\r\n"]
    assert field_lines([]) == []


def test_named_fields_go_by_name_whatever_their_case():
    assert without_named(FIELDS, {b"x-hop"}) == [b"X-A", b": ", b"1", b"\r\n", b"X-B", b": ", b"a: b", b"\r\n"]
    assert without_named(FIELDS, {b"x-a", b"x-b", b"x-hop"}) == []
    assert without_named(FIELDS, {b"1", b"a"}) == FIELDS  # values and parts of names are no names


@pytest.mark.parametrize("value, named", [
    (b"close", None), (b"Keep-Alive", None), (b"close, x-hop", {b"x-hop"}),
    (b"X-Hop, content-length, host", {b"x-hop"}), (b" , ", None),
])
def test_connection_names_only_what_fulcrum_does_not_own(value, named):
    assert named_by_connection(value) == named


@pytest.mark.parametrize("host, expected", [
    (b"Example.COM:8080", "example.com"), (b"[::1]:80", "[::1]"), (b"a", "a"), (b"", ""),
])
def test_host_without_port(host, expected):
    assert host_without_port(host) == expected
