from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Literal

import pytest

from downloader.cli.logsetup import configure_logging
from downloader.progress import TqdmLoggingHandler

URL = "https://b.obs.example.com/k.qp?AccessKeyId=AKAKAKAK&Expires=1&Signature=s%2B"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR) ")


@pytest.fixture(autouse=True)
def restore_logger() -> Iterator[None]:
    logger = logging.getLogger("rds_backup")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_text_lines() -> None:
    stream = io.StringIO()
    configure_logging(fmt="text", level="info", quiet=False, stream=stream, tqdm_aware=False)
    log = logging.getLogger("rds_backup.engine")
    log.info(
        "fetching %s\x1b[31m now\r\n",
        "x.qp",
        extra={"fields": {"file": "x.qp", "bytes": 1024, "detail": "two words", "url": URL}},
    )
    log.debug("hidden")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    line = lines[0]
    assert TEXT_LINE.match(line)
    assert not CONTROL.search(line)
    assert " INFO fetching x.qp?[31m now" in line
    assert 'file=x.qp bytes=1024 detail="two words"' in line
    assert "AKAKAKAK" not in line and "url=https://b.obs.example.com/k.qp?<redacted>" in line


def test_text_traceback_lines_are_clean() -> None:
    stream = io.StringIO()
    configure_logging(fmt="text", level="debug", quiet=False, stream=stream, tqdm_aware=False)
    try:
        raise ValueError(f"bad link {URL}")
    except ValueError:
        logging.getLogger("rds_backup.x").exception("oops")
    lines = stream.getvalue().splitlines()
    assert TEXT_LINE.match(lines[0])
    assert any("ValueError: bad link" in ln for ln in lines)
    assert all(ln.startswith("  ") for ln in lines[1:])
    assert not any(CONTROL.search(ln) for ln in lines)
    assert "AKAKAKAK" not in stream.getvalue()


def test_json_lines() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="debug", quiet=False, stream=stream, tqdm_aware=False)
    log = logging.getLogger("rds_backup.transfer")
    log.warning(
        "retrying %s",
        "x.qp",
        extra={
            "event": "retry",
            "fields": {
                "file": "x.qp",
                "status": 503,
                "attempt": 2,
                "request_id": "r-1",
                "msg": "collides",
                "url": URL,
            },
        },
    )
    log.info("plain\nline")
    objs = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(objs) == 2
    first, second = objs
    assert list(first)[:5] == ["ts", "level", "logger", "event", "msg"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["ts"])
    assert first["level"] == "warning"
    assert first["logger"] == "rds_backup.transfer"
    assert first["event"] == "retry"
    assert first["msg"] == "retrying x.qp"
    assert (first["file"], first["status"], first["attempt"], first["request_id"]) == (
        "x.qp",
        503,
        2,
        "r-1",
    )
    assert first["field_msg"] == "collides"
    assert first["url"].endswith("?<redacted>")
    assert second["event"] == "log" and second["msg"] == "plain\nline"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_fields_the_message_says_are_left_out_of_text_only(fmt: Literal["text", "json"]) -> None:
    stream = io.StringIO()
    configure_logging(fmt=fmt, level="info", quiet=False, stream=stream, tqdm_aware=False)
    logging.getLogger("rds_backup.progress").warning(
        "x.qp: 503 Service Unavailable; retry 2/5",
        extra={
            "fields": {"file": "x.qp", "status": 503, "attempt": 2, "request_id": "r-1"},
            "in_message": ("file",),
        },
    )
    line = stream.getvalue().rstrip("\n")
    if fmt == "text":
        assert line.endswith("retry 2/5 status=503 attempt=2 request_id=r-1"), line
        assert "file=" not in line
    else:
        obj = json.loads(line)
        assert (obj["file"], obj["status"], obj["attempt"]) == ("x.qp", 503, 2)
        assert "in_message" not in obj


def test_json_exception() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="info", quiet=False, stream=stream, tqdm_aware=False)
    try:
        raise OSError(f"connect {URL}")
    except OSError:
        logging.getLogger("rds_backup.x").error("failed", exc_info=True)
    obj = json.loads(stream.getvalue())
    assert "OSError: connect" in obj["exc"]
    assert "AKAKAKAK" not in stream.getvalue()


def test_quiet_and_levels() -> None:
    stream = io.StringIO()
    configure_logging(fmt="text", level="debug", quiet=True, stream=stream, tqdm_aware=False)
    log = logging.getLogger("rds_backup.y")
    log.warning("not shown")
    log.error("shown")
    assert [ln.split(" ", 2)[2] for ln in stream.getvalue().splitlines()] == ["shown"]
    with pytest.raises(ValueError):
        configure_logging(fmt="text", level="loud", quiet=False, stream=stream, tqdm_aware=False)


def test_idempotent_and_tqdm_aware() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="text", level="info", quiet=False, stream=first, tqdm_aware=False)
    configure_logging(fmt="text", level="info", quiet=False, stream=second, tqdm_aware=True)
    logger = logging.getLogger("rds_backup")
    ours = [h for h in logger.handlers if getattr(h, "_rds_backup_handler", False)]
    assert len(ours) == 1 and isinstance(ours[0], TqdmLoggingHandler)
    logging.getLogger("rds_backup.z").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
