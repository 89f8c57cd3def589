# Reading the configuration: YAML file → environment overrides → validated Config.
# Every failure on the way is raised as one ConfigError listing all problems found.
"""Loading the configuration file.

The file is ``load_config``'s argument, else ``$FULCRUM_CONFIG``, else
``config.yaml``. Then every environment variable ``FULCRUM_<A>__<B>__<C>``
(except ``FULCRUM_CONFIG`` and ``FULCRUM_NO_EXTENSIONS``) sets key ``a.b.c``, creating mappings as needed:
parts are lower-cased (and match existing keys case-insensitively), a numeric
part indexes an existing list, and the value is read as YAML (``2`` is an
integer, ``[a, b]`` a list, empty is null), except where the schema expects text
(strings, durations, sizes), where it is kept verbatim. Variables are applied
in name order, so ``FULCRUM_POOLS`` comes before ``FULCRUM_POOLS__WEB__...``.
"""
from __future__ import annotations

import os
from typing import Any, Literal, Mapping, get_args, get_origin

import yaml
from pydantic import BeforeValidator, ValidationError

from fulcrum.config.errors import ConfigError, format_path, format_problem, problems_from_validation
from fulcrum.config.model import Config, annotation_at
from fulcrum.config.units import parse_duration, parse_size
from fulcrum.core import NO_EXTENSIONS_ENV

__all__ = ["CONFIG_ENV", "DEFAULT_PATH", "ENV_PREFIX", "apply_env_overrides", "format_problem",
           "load_config", "load_config_from_dict", "read_text", "read_yaml"]

ENV_PREFIX = "FULCRUM_"
CONFIG_ENV = "FULCRUM_CONFIG"
DEFAULT_PATH = "config.yaml"


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None,
                text: str | None = None) -> Config:
    """Read, override from ``env`` (default ``os.environ``) and validate; raises ConfigError.
    ``text``: the file's content as already read (problems still name ``path``)."""
    env = os.environ if env is None else env
    file = os.fspath(path) if path is not None else env.get(CONFIG_ENV) or DEFAULT_PATH
    raw = read_yaml(file, text)
    origins = apply_env_overrides(raw, env, file)
    return _validate(raw, file, origins)


def load_config_from_dict(raw: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate an already-parsed config (tests, the admin API); no environment overrides."""
    _require_mapping(raw, source)
    return _validate(raw, source, {})


def read_text(file: str) -> str:
    """The config file's text; ConfigError if it cannot be read."""
    try:
        with open(file, encoding="utf-8") as stream:
            return stream.read()
    except OSError as exc:
        raise ConfigError([format_problem(file, "", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([format_problem(file, "", "cannot read: not UTF-8 text")]) from None


def read_yaml(file: str, text: str | None = None) -> dict[str, Any]:
    """The file's top-level mapping (an empty file is ``{}``); ``text`` if given is its content."""
    if text is None:
        text = read_text(file)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(file, exc)]) from None
    data = {} if data is None else data
    _require_mapping(data, file)
    return data


def apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str], file: str) -> dict[str, str]:
    """Apply ``FULCRUM_*`` variables to ``raw`` in place.

    Returns {path: variable} for every path a variable set or created, so that
    problems found there can name the variable.
    """
    origins: dict[str, str] = {}
    problems: list[str] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in (CONFIG_ENV, NO_EXTENSIONS_ENV):
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        if not all(parts):
            problems.append(format_problem(file, "", f"{name}: empty key in variable name"))
            continue
        try:
            origins.update(dict.fromkeys(_set_path(raw, parts, env[name]), name))
        except _EnvPathError as exc:
            problems.append(format_problem(file, exc.path, f"cannot set from {name}: {exc.reason}"))
    if problems:
        raise ConfigError(problems)
    return origins


class _EnvPathError(Exception):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def _set_path(raw: dict[str, Any], parts: list[str], text: str) -> list[str]:
    """Set ``parts`` to the parsed ``text``; returns the paths set or created."""
    node: Any = raw
    walked: list[str | int] = []
    touched: list[str] = []
    for part in parts[:-1]:
        key = _child_key(node, part, walked)
        walked.append(key)
        if _get(node, key) is None:
            node[key] = {}
            touched.append(format_path(walked))
        elif not isinstance(node[key], (dict, list)):
            raise _EnvPathError(format_path(walked), f"not a mapping (got {node[key]!r})")
        node = node[key]
    key = _child_key(node, parts[-1], walked)
    walked.append(key)
    node[key] = _env_value(text, walked)
    return touched + [format_path(walked)]


def _child_key(node: Any, part: str, walked: list[str | int]) -> str | int:
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise _EnvPathError(format_path(walked), f"no item [{part}] (the list has {len(node)})")
        return int(part)
    same = [key for key in node if isinstance(key, str) and key.lower() == part]
    return same[0] if same else part


def _get(node: Any, key: str | int) -> Any:
    return node[key] if isinstance(node, list) else node.get(key)


def _env_value(text: str, path: list[str | int]) -> Any:
    found = annotation_at(path)
    if text and found is not None and _takes_text(*found):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _takes_text(annotation: Any, metadata: list[Any]) -> bool:
    if annotation is str:
        return True
    if get_origin(annotation) is Literal:
        return all(isinstance(arg, str) for arg in get_args(annotation))
    parsers = (parse_duration, parse_size)
    return any(isinstance(m, BeforeValidator) and m.func in parsers for m in metadata)


def _validate(raw: Mapping[str, Any], source: str, origins: Mapping[str, str]) -> Config:
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, source, raw, origins)) from None
    config._env_origins = dict(origins)
    return config


def _require_mapping(data: Any, source: str) -> None:
    if not isinstance(data, Mapping):
        kind = "a list" if isinstance(data, list) else repr(data)
        raise ConfigError([format_problem(source, "", f"top level must be a mapping of keys (got {kind})")])


def _yaml_problem(file: str, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"{where}: invalid YAML: {problem}" + (f" ({context})" if context else "")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep)
