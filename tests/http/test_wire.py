"""http/wire: the byte-level steps every request takes. ``wire.py`` is the reference and the
pure-Python core's code; the compiled core runs ``wire.pyx`` instead. Both are checked here
against the reference's meaning, and (in a compiled run) against each other on random input."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import fulcrum.http.wire as in_use
from fulcrum.http.headers import REQUEST_HEADERS, RESPONSE_HEADERS
from tests.support.cores import expected_core

_SOURCE = Path(in_use.__file__).with_name("wire.py")
_spec = importlib.util.spec_from_file_location("fulcrum_wire_reference", _SOURCE)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

LISTED = sorted(set(REQUEST_HEADERS) | set(RESPONSE_HEADERS))


def test_the_run_uses_the_core_it_asked_for():
    compiled = not in_use.__file__.endswith(".py")
    assert compiled == (expected_core() == "compiled")


def _any_case(draw_bools, name: bytes) -> bytes:
    return bytes(c - 32 if flip and 97 <= c <= 122 else c for c, flip in zip(name, draw_bools))


names = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(LISTED).flatmap(
        lambda n: st.lists(st.booleans(), min_size=len(n), max_size=len(n)).map(lambda f: _any_case(f, n))),
    # a listed name one byte off: same length, or one byte longer or shorter
    st.tuples(st.sampled_from(LISTED), st.integers(0, 16), st.integers(0, 255)).map(
        lambda t: t[0][:t[1]] + bytes([t[2]]) + t[0][t[1] + 1:]),
    st.sampled_from(LISTED).map(lambda n: n + b"s"),
    st.sampled_from(LISTED).map(lambda n: n[:-1]),
)


@given(names)
def test_kinds_agree_with_the_tables(name):
    for module in (in_use, reference):
        assert module.request_kind(name) == REQUEST_HEADERS.get(name.lower(), module.PASSED)
        assert module.response_kind(name) == RESPONSE_HEADERS.get(name.lower(), module.PASSED)


def test_every_listed_name_in_every_spelling_has_its_kind():
    for name in LISTED:
        for spelling in (name, name.upper(), name.title(), name.capitalize()):
            assert in_use.request_kind(spelling) == REQUEST_HEADERS.get(name, -1)
            assert in_use.response_kind(spelling) == RESPONSE_HEADERS.get(name, -1)
    assert in_use.request_kind(b"") == in_use.PASSED == reference.PASSED == -1
    assert in_use.request_kind(b"x" * 1000) == -1


@given(st.lists(st.binary(max_size=50), max_size=40))
def test_join_is_bytes_join(parts):
    assert in_use.join(parts) == reference.join(parts) == b"".join(parts)
    assert type(in_use.join(parts)) is bytes


def test_join_takes_what_bytes_join_takes_and_refuses_the_rest():
    assert in_use.join([b"a", bytearray(b"b"), memoryview(b"c")]) == b"abc"
    with pytest.raises(TypeError):
        in_use.join([b"a", "b"])
    with pytest.raises(TypeError):
        in_use.join([b"a", None])


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_header_line_is_prefix_value_crlf(prefix, value):
    line = in_use.header_line(prefix, value)
    assert line == reference.header_line(prefix, value) == prefix + value + b"\r\n"
    assert type(line) is bytes


@given(st.binary(max_size=12), st.integers(0, 2**64 - 1))
def test_request_ids_are_spelled_as_the_reference_spells_them(prefix, count):
    assert in_use.request_id(prefix, count) == reference.request_id(prefix, count)


def test_request_id_digits():
    assert in_use.request_id(b"9f86d081", 42) == b"9f86d081-0000002a"
    assert in_use.request_id(b"p", 0) == b"p-00000000"
    assert in_use.request_id(b"p", 2**32) == b"p-100000000"
    assert in_use.request_id(b"p", 2**64 - 1) == b"p-ffffffffffffffff"


@given(st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"close", b"keep-alive"]).flatmap(
        lambda v: st.lists(st.booleans(), min_size=len(v), max_size=len(v)).map(lambda f: _any_case(f, v))),
    st.sampled_from([b"close", b"keep-alive"]).map(lambda v: v + b" "),
    st.sampled_from([b"close", b"keep-alive"]).map(lambda v: v[:-1]),
))
def test_plain_connection_is_close_or_keep_alive_in_any_case(value):
    plain = value.lower() in (b"close", b"keep-alive")
    assert in_use.plain_connection(value) is plain
    assert reference.plain_connection(value) is plain


def test_plain_connection_names_nothing_else():
    for value in (b"", b"close, x-a", b"CLOSE", b"Keep-Alive", b"closed", b"keep-alive\x00", b"upgrade"):
        assert in_use.plain_connection(value) == (value.lower() in (b"close", b"keep-alive"))
