"""Settings of the rewriting features: ``rewrite``, ``request_headers`` / ``response_headers``
and ``redirect`` on a route (the header rules globally too), and the template syntax their
values share. Documented key by key in the annotated config.yaml.

Templates: ``{name}`` is a placeholder, ``{{`` and ``}}`` write literal braces, and any other
brace is an error naming what was found. ``split_template`` is the one parser: models call it
to validate, filters call it once at provisioning to pre-split what they render per request.
Checks that need a key in their path (a refused header name) or two fields (the replacement's
group references against the pattern) are made by ``rule_problems`` and
``rewrite_problems``, which ``config.model.cross_check`` calls.
"""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from fulcrum.config.sections import Section
from fulcrum.http.headers import NEVER_NOMINATED, RESPONSE_HEADERS
from fulcrum.http.upstream_request import ownership

HEADER_FIELDS = ("client_ip", "request_id", "host", "scheme")
REDIRECT_FIELDS = ("path", "host")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# What request_headers / response_headers may not name (lower case): on requests, what
# Fulcrum writes or judges itself; on responses, the hop-by-hop and framing headers and X-Request-ID.
REFUSED_REQUEST = NEVER_NOMINATED
REFUSED_RESPONSE = frozenset(RESPONSE_HEADERS)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_INJECTION = re.compile(r"[\r\n\x00]")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def split_template(text: str, fields: tuple[str, ...]) -> list[str]:
    """``"a {host} b"`` → ``["a ", "host", " b"]``: literal text and placeholder names
    alternating, literals at the even places (the first and last may be empty).
    ValueError naming the first brace that is neither a known ``{field}``, ``{{`` nor ``}}``."""
    parts: list[str] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "{" and text.startswith("{{", i):
            literal.append("{")
            i += 2
        elif char == "}" and text.startswith("}}", i):
            literal.append("}")
            i += 2
        elif char == "{":
            end = text.find("}", i + 1)
            if end == -1:
                raise ValueError(f"unclosed '{{' at position {i} (write {{{{ for a literal brace; got {text!r})")
            name = text[i + 1:end]
            if name not in fields:
                known = ", ".join("{" + f + "}" for f in fields)
                raise ValueError(f"unknown placeholder {{{name}}} (known: {known}; "
                                 f"write {{{{ and }}}} for literal braces; got {text!r})")
            parts += ["".join(literal), name]
            literal = []
            i = end + 1
        elif char == "}":
            raise ValueError(f"single '}}' at position {i} (write }}}} for a literal brace; got {text!r})")
        else:
            literal.append(char)
            i += 1
    parts.append("".join(literal))
    return parts


def _header_template(value: str) -> str:
    if _INJECTION.search(value):
        raise ValueError(f"a header value may not hold CR, LF or NUL (got {value!r})")
    split_template(value, HEADER_FIELDS)
    return value


def _redirect_template(value: str) -> str:
    if not _VISIBLE_ASCII.fullmatch(value):
        raise ValueError(f"must be a URL or a path of visible ASCII, no spaces (percent-encode the rest; got {value!r})")
    split_template(value, REDIRECT_FIELDS)
    return value


def _text(value: object) -> object:
    """A number written unquoted (``version: 2``) is the text it was written as."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


HeaderTemplate = Annotated[str, BeforeValidator(_text), AfterValidator(_header_template)]


class HeaderRules(Section):
    """Edits of header fields, applied in this order: ``remove`` every field of each name,
    ``set`` each name to one value (replacing any), ``add`` one more field of each name.
    Names are case-insensitive; values are templates over ``HEADER_FIELDS``."""

    set: dict[str, HeaderTemplate] = {}
    add: dict[str, HeaderTemplate] = {}
    remove: list[str] = []


class RewriteConfig(Section):
    """A regular expression over the whole target (path and query); its first match is
    replaced by ``replacement`` (``\\1`` or ``\\g<name>`` for groups). Compiled once."""

    pattern: str = Field(min_length=1)
    replacement: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern.encode())
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc} (got {pattern!r})") from None
        return pattern

    @field_validator("replacement")
    @classmethod
    def _origin_form(cls, replacement: str) -> str:
        if not replacement.startswith("/"):
            raise ValueError(f"must start with '/': the result is the path sent to the backend (got {replacement!r})")
        if not _VISIBLE_ASCII.fullmatch(replacement):
            raise ValueError(f"must be visible ASCII, no spaces (percent-encode the rest; got {replacement!r})")
        return replacement


class RedirectConfig(Section):
    """Answers with ``status`` and ``Location: <to>``, no backend involved. ``to`` may use
    ``{path}`` (the request's target as received, with its query) and ``{host}`` (its Host)."""

    to: Annotated[str, AfterValidator(_redirect_template)]
    status: int = 302

    @field_validator("status")
    @classmethod
    def _redirect_status(cls, status: int) -> int:
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"must be one of {', '.join(map(str, REDIRECT_STATUSES))} (got {status})")
        return status


QueryValue = Annotated[str, BeforeValidator(_text)]


def rule_problems(path: str, rules: HeaderRules, refused: frozenset[bytes]) -> list[tuple[str, str]]:
    """Header names in ``rules`` that are not tokens, are in ``refused``, or are given twice
    in one section; one ``(path, message)`` each, the key in the path."""
    problems = []
    for section in ("set", "add"):
        seen: set[str] = set()
        for name in getattr(rules, section):
            where = f"{path}.{section}.{name}"
            problem = _name_problem(name, refused)
            if problem is not None:
                problems.append((where, problem))
            elif name.lower() in seen:
                problems.append((where, "given twice (header names are case-insensitive)"))
            seen.add(name.lower())
    for i, name in enumerate(rules.remove):
        problem = _name_problem(name, refused)
        if problem is not None:
            problems.append((f"{path}.remove[{i}]", f"{problem} (got {name!r})"))
    return problems


def _name_problem(name: str, refused: frozenset[bytes]) -> str | None:
    if not _TOKEN.fullmatch(name):
        return f"not a valid header name (got {name!r})"
    lower = name.lower().encode()
    return ownership(lower) if lower in refused else None


def rewrite_problems(path: str, rewrite: RewriteConfig) -> list[tuple[str, str]]:
    """The replacement's group references against the pattern (``\\2`` with one group)."""
    try:
        # Python parses the whole replacement template before looking for a match.
        re.compile(rewrite.pattern.encode()).sub(rewrite.replacement.encode(), b"")
    except re.error as exc:
        return [(f"{path}.replacement", f"{exc} (pattern {rewrite.pattern!r}; got {rewrite.replacement!r})")]
    return []
