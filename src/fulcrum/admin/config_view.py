"""The effective configuration as the admin API shows it: every key with its value
(defaults included), backends as they are now, and secrets replaced.

A key is secret when its name says so (token, password, secret, …); its value,
when set, becomes ``"<redacted>"`` wherever it sits in the tree.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fulcrum.runtime.state import Runtime

REDACTED = "<redacted>"
_SECRET_WORDS = ("token", "password", "passwd", "secret", "api_key", "apikey", "authorization",
                 "credential", "private_key", "cookie_secret")


def is_secret(key: str) -> bool:
    key = key.lower()
    return any(word in key for word in _SECRET_WORDS)


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret key's non-empty value replaced."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret(str(k)) and v not in (None, "") else redact(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def effective_config(runtime: Runtime) -> dict:
    """The running configuration; pool backends reflect changes made through the API."""
    if runtime.config is None:
        return {}
    data = runtime.config.model_dump(mode="json")
    for name, pool in runtime.pools.items():
        if name in data.get("pools", {}):
            data["pools"][name]["backends"] = [
                {"url": b.url, "weight": b.weight, "id": b.id} for b in list(pool.backends)]
    return redact(data)
