# Filter names -> classes. Built-ins are "module:Class" strings imported on first use; a
# user's filter is named by dotted path. Adding one: a file + a line here.
from __future__ import annotations

from fulcrum.filters.base import Filter
from fulcrum.plugins import load_class

BUILTIN: dict[str, str] = {
    "access_log": "fulcrum.filters.access_log:AccessLog",
    "rate_limit": "fulcrum.filters.rate_limit:RateLimit",
    "cors": "fulcrum.filters.cors:Cors",
    "security_headers": "fulcrum.filters.security_headers:SecurityHeaders",
}


def resolve(name: str) -> type[Filter]:
    """The Filter class for a built-in name or a ``pkg.module:Class`` path
    (``pkg.module.Class`` too); ValueError with a one-line message otherwise."""
    return load_class(name, BUILTIN, Filter, "filter")
