"""Logging for the ``rds_backup`` logger tree: text or JSON lines, always redacted.

Library modules log to ``logging.getLogger("rds_backup.<module>")`` and pass structured data as
``extra={"fields": {...}}`` (and optionally ``extra={"event": "retry"}``); this module decides
how that looks. Text lines::

    2026-11-26T05:40:00Z INFO message key=value ...

leave out the fields named in ``extra={"in_message": (...)}``: those the message already says
in words ("done NAME 1.0 MiB" needs no ``file=NAME size=1048576``). JSON lines keep every field.

JSON lines carry ``ts``, ``level``, ``logger``, ``event``, ``msg``, then the fields (and ``exc``
with the traceback, if any).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

from downloader.progress import TqdmLoggingHandler
from downloader.text.fmt import printable
from downloader.text.redact import RedactingFilter

__all__ = ["LEVELS", "ROOT_LOGGER", "JsonFormatter", "TextFormatter", "configure_logging"]

ROOT_LOGGER = "rds_backup"
LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
STABLE_KEYS = ("ts", "level", "logger", "event", "msg")
DEFAULT_EVENT = "log"

# Marks handlers we installed, so a second configure_logging replaces instead of adding.
_OURS = "_rds_backup_handler"

_BARE_VALUE_RE = re.compile(r"^[^\s\"=]+$")


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields(record: logging.LogRecord) -> Mapping[str, object]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


def _in_message(record: logging.LogRecord) -> frozenset[str]:
    said = getattr(record, "in_message", None)
    return frozenset(str(k) for k in said) if isinstance(said, Collection) else frozenset()


def _event(record: logging.LogRecord) -> str:
    event = getattr(record, "event", None)
    return str(event) if event else DEFAULT_EVENT


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


def _text_value(value: object) -> str:
    if isinstance(value, bool) or value is None:
        text = json.dumps(value)
    elif isinstance(value, str):
        text = value
    else:
        text = str(value)
    text = printable(text)
    return text if _BARE_VALUE_RE.match(text) else json.dumps(text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-11-26T05:40:00Z INFO message key=value``; UTC, no colour, no control characters.

    Fields the record's ``in_message`` names are left out: the message says them already.
    A traceback follows on its own lines, each indented by two spaces.
    """

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, printable(record.getMessage())]
        said = _in_message(record)
        for key, value in _fields(record).items():
            if key in said:
                continue
            parts.append(f"{printable(str(key)).replace(' ', '_')}={_text_value(value)}")
        line = " ".join(parts)
        extra = [_exception_text(self, record), record.stack_info]
        for block in extra:
            if block:
                line += "".join(f"\n  {printable(b)}" for b in block.splitlines())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: the stable keys, then the record's ``fields``.

    A field that collides with a stable key is renamed ``field_<key>``; values JSON cannot
    encode are written as ``str(value)``.
    """

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _event(record),
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            k = str(key)
            obj[f"field_{k}" if k in obj or k == "exc" else k] = value
        exc = _exception_text(self, record)
        if exc:
            obj["exc"] = exc
        if record.stack_info:
            obj["stack"] = record.stack_info
        # ensure_ascii keeps the line free of raw control characters and odd line separators.
        return json.dumps(obj, default=str, ensure_ascii=True, separators=(",", ":"))


def configure_logging(
    *,
    fmt: Literal["text", "json"] = "text",
    level: str = "info",
    quiet: bool = False,
    stream: TextIO | None = None,
    tqdm_aware: bool = False,
) -> None:
    """Send the ``rds_backup`` logger tree to ``stream`` (default: ``sys.stderr`` at call time).

    ``quiet`` shows errors only, whatever ``level`` says. With ``tqdm_aware`` lines are written
    through ``tqdm.write`` so they never break progress bars. Every handler redacts secrets.
    Calling again replaces the handler installed before (no duplicates). The tree does not
    propagate to the root logger, so a host application's handlers do not print lines twice.
    """
    try:
        threshold = logging.ERROR if quiet else LEVELS[level.lower()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}"
        ) from None
    if fmt == "text":
        formatter: logging.Formatter = TextFormatter()
    elif fmt == "json":
        formatter = JsonFormatter()
    else:
        raise ValueError(f"unknown log format {fmt!r}; expected text or json")

    handler: logging.Handler
    if tqdm_aware:
        handler = TqdmLoggingHandler(stream)
    else:
        # Look sys.stderr up now, not at import, so redirection (and pytest capture) works.
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    setattr(handler, _OURS, True)

    logger = logging.getLogger(ROOT_LOGGER)
    for old in list(logger.handlers):
        if getattr(old, _OURS, False):
            logger.removeHandler(old)
            old.close()
    logger.addHandler(handler)
    logger.setLevel(threshold)
    logger.propagate = False
