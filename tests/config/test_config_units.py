# Durations and sizes: every accepted spelling and the errors for bad ones.
import pytest
from pydantic import BaseModel, ValidationError

from fulcrum.config.units import Duration, Size, parse_duration, parse_size


@pytest.mark.parametrize("given, seconds", [
    pytest.param("250ms", 0.25, id="milliseconds"),
    pytest.param("2s", 2.0, id="seconds"),
    pytest.param("1.5s", 1.5, id="fractional-seconds"),
    pytest.param("1m", 60.0, id="minutes"),
    pytest.param("1h", 3600.0, id="hours"),
    pytest.param("2S", 2.0, id="unit-case-insensitive"),
    pytest.param(" 10 s ", 10.0, id="spaces"),
    pytest.param("3", 3.0, id="numeric-string-is-seconds"),
    pytest.param(".5s", 0.5, id="leading-dot"),
    pytest.param(5, 5.0, id="int-is-seconds"),
    pytest.param(0.1, 0.1, id="float-is-seconds"),
    pytest.param(0, 0.0, id="zero"),
])
def test_parse_duration(given, seconds):
    assert parse_duration(given) == pytest.approx(seconds)


@pytest.mark.parametrize("given, shown", [
    pytest.param("5 parsecs", "'5 parsecs'", id="unknown-unit"),
    pytest.param("", "''", id="empty"),
    pytest.param("-1s", "'-1s'", id="negative-string"),
    pytest.param("1d", "'1d'", id="days-unsupported"),
    pytest.param("s", "'s'", id="unit-only"),
    pytest.param(True, "True", id="bool"),
    pytest.param(None, "None", id="null"),
    pytest.param([1], "[1]", id="list"),
    pytest.param(float("inf"), "inf", id="infinite"),
])
def test_parse_duration_rejects(given, shown):
    with pytest.raises(ValueError) as info:
        parse_duration(given)
    assert str(info.value) == f"not a duration (got {shown}); use e.g. 250ms, 2s, 1m"


@pytest.mark.parametrize("given, size", [
    pytest.param("512B", 512, id="bytes"),
    pytest.param("512", 512, id="numeric-string-is-bytes"),
    pytest.param("64KB", 64 * 1024, id="KB-is-binary"),
    pytest.param("64kb", 64 * 1024, id="kb-lower"),
    pytest.param("64k", 64 * 1024, id="k"),
    pytest.param("64KiB", 64 * 1024, id="KiB"),
    pytest.param("10MB", 10 * 1024 ** 2, id="MB"),
    pytest.param("10m", 10 * 1024 ** 2, id="m"),
    pytest.param("1GB", 1024 ** 3, id="GB"),
    pytest.param("1g", 1024 ** 3, id="g"),
    pytest.param("1GiB", 1024 ** 3, id="GiB"),
    pytest.param("1.5MB", 1572864, id="fractional"),
    pytest.param("8 KB", 8192, id="space-before-unit"),
    pytest.param(4096, 4096, id="int-is-bytes"),
    pytest.param(2048.0, 2048, id="whole-float"),
    pytest.param(0, 0, id="zero"),
])
def test_parse_size(given, size):
    assert parse_size(given) == size


@pytest.mark.parametrize("given, shown", [
    pytest.param("lots", "'lots'", id="word"),
    pytest.param("10XB", "'10XB'", id="unknown-unit"),
    pytest.param("-1KB", "'-1KB'", id="negative-string"),
    pytest.param("KB", "'KB'", id="unit-only"),
    pytest.param("1iB", "'1iB'", id="bare-iB"),
    pytest.param(1.5, "1.5", id="fractional-float"),
    pytest.param(False, "False", id="bool"),
])
def test_parse_size_rejects(given, shown):
    with pytest.raises(ValueError) as info:
        parse_size(given)
    assert str(info.value) == f"not a size (got {shown}); use e.g. 512B, 64KB, 10MB, 1GB"


class _Sample(BaseModel):
    wait: Duration = 1.0
    room: Size = 1


@pytest.mark.parametrize("data, field, value", [
    pytest.param({"wait": "250ms"}, "wait", 0.25, id="duration-parsed"),
    pytest.param({"room": "1KB"}, "room", 1024, id="size-parsed"),
])
def test_annotated_types_parse(data, field, value):
    assert getattr(_Sample(**data), field) == value


@pytest.mark.parametrize("data, kind", [
    pytest.param({"wait": -1}, "greater_than_equal", id="negative-duration"),
    pytest.param({"room": -1}, "greater_than_equal", id="negative-size"),
    pytest.param({"wait": "soon"}, "value_error", id="bad-duration"),
])
def test_annotated_types_reject(data, kind):
    with pytest.raises(ValidationError) as info:
        _Sample(**data)
    assert info.value.errors()[0]["type"] == kind
