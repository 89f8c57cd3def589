"""Structured component logs on stdlib logging: one line per event, JSON or text.

Call sites log an event name and pass fields as ``extra={"fields": {...}}``;
the formatter renders them as JSON keys or ``key=value`` pairs.
"""
from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def _fields(record: logging.LogRecord) -> dict:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"time": …, "level": …, "logger": …, "event": …, <fields>}``"""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z info  fulcrum  listening address=127.0.0.1:8080``"""

    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={_text(v)}" for k, v in _fields(record).items())
        line = f"{_timestamp(record)} {record.levelname.lower():<7} {record.name:<16} {record.getMessage()}"
        if pairs:
            line += " " + pairs
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


class _Fields(logging.Filter):
    """Adds fixed fields to every record (a worker process's index)."""

    def __init__(self, fields: dict) -> None:
        super().__init__()
        self.fields = fields

    def filter(self, record: logging.LogRecord) -> bool:
        record.fields = {**self.fields, **_fields(record)}
        return True


def setup_logging(fmt: str = "text", level: str = "info", stream=None,
                  levels: dict[str, str] | None = None, fields: dict | None = None) -> None:
    """Route every ``fulcrum.*`` logger to one handler with the chosen format;
    ``levels`` sets the level of single components (``{"fulcrum.proxy": "debug"}``);
    ``fields`` are added to every line."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if fields:
        handler.addFilter(_Fields(fields))
    root = logging.getLogger("fulcrum")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    for name, component_level in (levels or {}).items():
        logging.getLogger(name).setLevel(component_level.upper())
