# ConfigError, the one exception config loading raises, and the translation of pydantic's
# ValidationError into its lines: "<file>: <field.path>: <message> (got <value>)".
"""Configuration errors, worded for the person editing the file.

Each problem is one line saying where (file and field path, list indices as
``[i]``), what is wrong and what was found::

    config.yaml: pools.web.backends[1].weight: must be >= 1 (got 0)
    config.yaml: timeotus: unknown key (did you mean 'timeouts'?)

``problems_from_validation`` is the one place pydantic's error types become
these messages.
"""
from __future__ import annotations

import difflib
import re
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel, ValidationError

from fulcrum.config.model import CROSS_CHECK_ERROR, annotation_at

__all__ = ["ConfigError", "format_problem", "format_path", "problems_from_validation"]

_MISSING = object()
_QUOTED = re.compile(r"'([^']*)'")


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def format_problem(file: str, path: str, message: str) -> str:
    """``"config.yaml: pools.web: message"``; an empty path leaves out the middle part."""
    return f"{file}: {path}: {message}" if path else f"{file}: {message}"


def format_path(loc: Sequence[str | int], raw: Any = _MISSING) -> str:
    """``("pools", "web", "backends", 1)`` → ``"pools.web.backends[1]"``.

    An int is a list index unless ``raw`` (the data validated) shows a mapping there.
    """
    text = ""
    for part in loc:
        index = isinstance(part, int) and not isinstance(part, bool) and not isinstance(raw, Mapping)
        text += f"[{part}]" if index else f".{part}"
        raw = _step(raw, part)
    return text.lstrip(".")


def problems_from_validation(
    error: ValidationError,
    file: str,
    raw: Any,
    origins: Mapping[str, str] | None = None,
    *,
    prefix: str = "",
    root: type[BaseModel] | None = None,
) -> list[str]:
    """One line per pydantic error, in file order.

    ``raw`` is the data that was validated (to show values as written);
    ``origins`` maps paths set from the environment to the variable. To translate
    errors of a model nested elsewhere (e.g. a strategy's options), pass the path
    it sits at as ``prefix`` and the model as ``root`` (default ``Config``), which
    is where unknown keys get their did-you-mean from.
    """
    lines = []
    items = sorted(error.errors(include_url=False), key=lambda item: _position(raw, item["loc"]))
    for item in items:
        for path, message in _explain(item, raw, root):
            path = f"{prefix}.{path}".strip(".") if prefix else path
            lines.append(format_problem(file, path, message + origin_note(path, origins or {})))
    return lines


def _explain(item: Mapping[str, Any], raw: Any, root: type[BaseModel] | None) -> list[tuple[str, str]]:
    loc = list(item["loc"])
    if item["type"] == CROSS_CHECK_ERROR:
        prefix = format_path(loc, raw)
        return [(f"{prefix}.{path}" if prefix else path, message)
                for path, message in item["ctx"]["problems"]]
    if loc and loc[-1] == "[key]":
        loc.pop()
        return [(format_path(loc, raw), f"key must be a string (got {_show(loc[-1])})")]
    found = _lookup(raw, loc)
    value = item.get("input") if found is _MISSING else found
    return [(format_path(loc, raw), _message(item, loc, value, root))]


def _message(item: Mapping[str, Any], loc: list[str | int], value: Any, root: type[BaseModel] | None) -> str:
    kind, ctx = item["type"], item.get("ctx") or {}
    got = f" (got {_show(value)})"
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown key" + _suggest(loc, root)
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        bound = ctx[key]
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"must be {op} {bound}{got}"
    if kind in _TYPE_WORDS:
        return f"must be {_TYPE_WORDS[kind]}{got}"
    if kind == "literal_error":
        return f"must be one of: {', '.join(_QUOTED.findall(ctx['expected']))}{got}"
    if kind == "too_short":
        least = ctx.get("min_length")
        return "must not be empty" if least == 1 else f"must have at least {least} items"
    if kind == "value_error":
        return str(ctx.get("error", item["msg"]))
    return f"{item['msg']}{got}"


_BOUNDS = {
    "greater_than_equal": (">=", "ge"),
    "greater_than": (">", "gt"),
    "less_than_equal": ("<=", "le"),
    "less_than": ("<", "lt"),
}

_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _suggest(loc: list[str | int], root: type[BaseModel] | None) -> str:
    found = annotation_at(loc[:-1], root)
    model = found[0] if found else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (expected one of: {', '.join(allowed)})"


def _lookup(raw: Any, loc: Sequence[str | int]) -> Any:
    for part in loc:
        raw = _step(raw, part)
    return raw


def _step(raw: Any, part: str | int) -> Any:
    if isinstance(raw, Mapping) and part in raw:
        return raw[part]
    if isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw):
        return raw[part]
    return _MISSING


def _position(raw: Any, loc: Sequence[str | int]) -> tuple[int, ...]:
    """Where ``loc`` sits in the file (key order), so problems are listed top to bottom."""
    position = []
    for part in loc:
        keys = list(raw) if isinstance(raw, Mapping) else range(len(raw)) if isinstance(raw, list) else []
        position.append(keys.index(part) if part in keys else len(keys))
        raw = _step(raw, part)
    return tuple(position)


def origin_note(path: str, origins: Mapping[str, str]) -> str:
    """Name the variables that set ``path``, a key inside it, or a key it sits in."""
    names = [*dict.fromkeys(variable for set_path, variable in origins.items()
             if path and (_within(path, set_path) or _within(set_path, path)))]
    return f" (set by {', '.join(names)})" if names else ""


def _within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith((ancestor + ".", ancestor + "["))


def _show(value: Any) -> str:
    """A value as the user wrote it: strings quoted, YAML spellings for bool and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return repr(value) if isinstance(value, str) else str(value)
