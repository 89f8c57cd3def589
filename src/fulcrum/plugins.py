# Extension points by name: a built-in name or a user's ``pkg.module:Class`` path, resolved to a
# class of the expected base once, when config is provisioned. Shared by strategies and filters.
from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def load_class(name: str, builtin: dict[str, str], base: type[T], kind: str) -> type[T]:
    """The ``base`` subclass for a built-in ``name`` or a ``pkg.module:Class`` path.

    ``pkg.module.Class`` is accepted too. Raises ValueError with a one-line message
    naming the ``kind`` of plugin, what was asked for and what went wrong.
    """
    target = builtin.get(name)
    if target is None:
        if ":" not in name and "." not in name.strip("."):
            known = ", ".join(builtin)
            raise ValueError(f"unknown {kind} {name!r} (built in: {known}; or a dotted path module:Class)")
        target = name
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{kind} {name!r}: expected a dotted path module:Class")
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or any error raised while importing
        raise ValueError(
            f"{kind} {name!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{kind} {name!r}: module {module_name!r} has no attribute {attr!r}") from None
    if not (isinstance(obj, type) and issubclass(obj, base)) or obj is base:
        raise ValueError(
            f"{kind} {name!r}: {module_name}:{attr} is not a {base.__name__} subclass (got {obj!r})"
        )
    return obj
