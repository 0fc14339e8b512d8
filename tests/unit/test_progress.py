from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from fakes import FakeClock

from downloader.cli.logsetup import configure_logging
from downloader.progress import (
    LogReporter,
    QuietReporter,
    SummaryRow,
    TerminalReporter,
    format_duration,
    format_size,
    make_reporter,
    run_totals,
    size_only_note,
    summary_table,
)

MiB = 1024 * 1024


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    logger = logging.getLogger("rds_backup")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    stream = io.StringIO()
    configure_logging(fmt="json", level="debug", quiet=False, stream=stream, tqdm_aware=False)
    yield stream
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def events(stream: io.StringIO, name: str) -> list[dict[str, object]]:
    return [r for r in records(stream) if r["event"] == name]


# --------------------------------------------------------------------------- LogReporter


def test_log_reporter_one_line_per_interval(logs: io.StringIO) -> None:
    clock = FakeClock()
    rep = LogReporter(interval=10, clock=clock)
    rep.run_started(
        backup_id="b1", files=[("a.qp", 100 * MiB), ("b.qp", 100 * MiB)], total_bytes=200 * MiB
    )
    rep.file_started("a.qp", 100 * MiB)
    for _ in range(35):  # the engine ticks once a second
        clock.advance(1)
        rep.advance("a.qp", MiB)
        rep.tick()
    lines = events(logs, "progress")
    assert len(lines) == 3  # at 10, 20, 30 s
    last = lines[-1]
    assert last["bytes_done"] == 30 * MiB and last["bytes_total"] == 200 * MiB
    assert last["percent"] == 15.0
    assert last["rate"] == MiB  # over the last interval
    assert last["eta_s"] == 170  # 170 MiB left at 1 MiB/s on average
    assert last["active"] == 1
    assert "progress 30.0 MiB/200.0 MiB (15.0%), 1.0 MiB/s, ETA 2m50s, 1 active" in str(last["msg"])
    assert not any("\r" in str(r["msg"]) for r in records(logs))


def test_log_reporter_tick_with_explicit_now_and_late_ticks(logs: io.StringIO) -> None:
    clock = FakeClock(0.0)
    rep = LogReporter(interval=5, clock=clock)
    rep.tick(100.0)  # before the run: nothing
    rep.run_started(backup_id="b", files=[("a", None)], total_bytes=None)
    rep.tick(4.9)
    rep.tick(60.0)  # a long gap still yields one line, not a burst
    rep.tick(61.0)
    rep.tick(65.0)
    progress = events(logs, "progress")
    assert len(progress) == 2
    assert progress[0]["bytes_total"] is None and progress[0]["percent"] is None
    rep.close()
    rep.tick(1000.0)
    assert len(events(logs, "progress")) == 2


def test_negative_advance(logs: io.StringIO) -> None:
    clock = FakeClock()
    rep = LogReporter(interval=1, clock=clock)
    rep.run_started(backup_id="b", files=[("a.qp", 10 * MiB)], total_bytes=10 * MiB)
    rep.file_started("a.qp", 10 * MiB, already=2 * MiB)
    rep.advance("a.qp", 4 * MiB)
    rep.advance("a.qp", -3 * MiB)  # a retry discarded a partial range
    assert rep.files["a.qp"].done == 3 * MiB
    assert rep.files["a.qp"].transferred == MiB
    assert rep.bytes_done == 3 * MiB
    clock.advance(1)
    rep.tick()
    assert events(logs, "progress")[0]["bytes_done"] == 3 * MiB


def test_log_reporter_lifecycle_lines_and_counters(logs: io.StringIO) -> None:
    clock = FakeClock()
    rep = LogReporter(interval=30, clock=clock)
    rep.run_started(
        backup_id="b9", files=[("a.qp", 4 * MiB), ("b.qp", None), ("c.qp", 1)], total_bytes=None
    )
    rep.file_started("a.qp", 4 * MiB, already=MiB)
    rep.file_started("b.qp", None)
    rep.file_size_known("b.qp", 2 * MiB)
    rep.event("retry", "retrying a.qp", file="a.qp", attempt=1, status=503)
    rep.event("retry", "retrying a.qp", file="a.qp", attempt=2)
    rep.event("link_refused", "403 on b.qp", file="b.qp", status=403)
    rep.event("warning", "b.qp: restarting this file", file="b.qp")
    clock.advance(2)
    rep.advance("a.qp", 3 * MiB)
    rep.file_finished("a.qp", ok=True)
    rep.file_finished("b.qp", ok=False, detail="403 after re-resolving")
    rep.file_skipped("c.qp", "already complete")
    rep.close()
    rep.close()

    assert (rep.retries, rep.refused) == (2, 1)
    assert rep.event_counts == {"retry": 2, "link_refused": 1, "warning": 1}
    assert rep.bytes_total == 4 * MiB + 2 * MiB + 1
    by_event = {r["event"]: r for r in records(logs)}
    assert by_event["run_started"]["backup_id"] == "b9"
    assert by_event["file_started"]["file"] == "b.qp"
    assert by_event["retry"]["level"] == "warning" and by_event["retry"]["attempt"] == 2
    assert by_event["file_finished"]["msg"] == "done a.qp 4.0 MiB in 2.0s (1.5 MiB/s)"
    assert by_event["file_failed"]["level"] == "error"
    assert by_event["file_failed"]["detail"] == "403 after re-resolving"
    assert by_event["file_skipped"]["reason"] == "already complete"

    rows = rep.summary_rows({"a.qp": "db1"})
    assert [(r.name, r.database, r.ok, r.detail) for r in rows] == [
        ("a.qp", "db1", True, None),
        ("b.qp", None, False, "403 after re-resolving"),
        ("c.qp", None, True, "already complete"),
    ]
    assert rows[0].seconds == 2.0 and rows[0].transferred == 3 * MiB


def test_quiet_reporter_only_errors(logs: io.StringIO) -> None:
    rep = QuietReporter(clock=FakeClock())
    rep.run_started(backup_id="b", files=[("a", 10), ("b", 10)], total_bytes=20)
    rep.file_started("a", 10)
    rep.advance("a", 10)
    rep.file_finished("a", ok=True)
    rep.event("retry", "retrying")
    rep.event("warning", "hm")
    rep.file_finished("b", ok=False, detail="gone")
    rep.event("error", "bad thing", file="b")
    rep.tick(1e9)
    rep.close()
    got = [(r["level"], r["msg"]) for r in records(logs)]
    assert got == [("error", "FAILED b: gone"), ("error", "bad thing")]
    assert rep.retries == 1


# --------------------------------------------------------------------------- TerminalReporter


def render_terminal(output: str) -> list[str]:
    """Replay the few controls tqdm uses (\\r, \\n, cursor up) onto a screen of lines."""
    lines: list[list[str]] = [[]]
    row = col = 0
    for token in re.findall(r"\x1b\[A|\r|\n|[^\r\n\x1b]", output):
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append([])
        elif token == "\x1b[A":
            row = max(0, row - 1)
        else:
            line = lines[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = token
            col += 1
    return [text for text in ("".join(chars).rstrip() for chars in lines) if text]


def test_terminal_reporter_bars_and_log_lines_stay_apart() -> None:
    out = io.StringIO()
    logger = logging.getLogger("rds_backup")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        configure_logging(fmt="text", level="info", quiet=False, stream=out, tqdm_aware=True)
        rep = TerminalReporter(file=out, max_bars=2)
        rep.run_started(
            backup_id="b",
            files=[("alpha.qp", 8 * MiB), ("beta.qp", 8 * MiB), ("gamma.qp", 8 * MiB)],
            total_bytes=24 * MiB,
        )
        rep.file_started("alpha.qp", 8 * MiB, already=MiB)
        rep.file_started("beta.qp", 8 * MiB)
        rep.file_started("gamma.qp", 8 * MiB)  # no slot: counts in the overall bar only
        assert set(rep._bars) == {"alpha.qp", "beta.qp"}
        rep.advance("alpha.qp", 2 * MiB)
        rep.advance("gamma.qp", MiB)
        logging.getLogger("rds_backup.engine").warning("log line in the middle")
        rep.event("retry", "retrying beta.qp after 503", file="beta.qp", attempt=2)
        rep.advance("beta.qp", 3 * MiB)
        rep.advance("beta.qp", -2 * MiB)
        rep.file_finished("alpha.qp", ok=True)
        assert set(rep._bars) == {"beta.qp", "gamma.qp"}  # the freed slot went to gamma
        rep.file_finished("beta.qp", ok=False, detail="object changed")
        rep.tick()
        rep.close()
        rep.close()
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]

    text = out.getvalue()
    assert "alpha.qp" in text and "total" in text and "/24.0 MiB [" in text
    assert "\r" in text  # bars were drawn on the given stream
    screen = render_terminal(text)
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    for message in (
        ts + r" WARNING log line in the middle",
        # The file is in the words, so not repeated as a field; the attempt is news.
        ts + r" WARNING retrying beta\.qp after 503 attempt=2",
        r"resume alpha\.qp at 1\.0 MiB of 8\.0 MiB",
        r"done alpha\.qp 8\.0 MiB in \S+ \([^)]+\)",
        r"FAILED beta\.qp: object changed",
    ):
        # Each message survives on the screen as a whole line: no bar drew over it or beside it.
        assert any(re.fullmatch(message, line) for line in screen), (message, screen)
    # The log lines come before (above) the final overall bar, in order.
    assert screen[-1].startswith("total") and "100%" not in screen[-1]
    assert rep.retries == 1
    assert rep.files["beta.qp"].done == MiB


def test_terminal_reporter_unknown_sizes_and_skip() -> None:
    out = io.StringIO()
    rep = TerminalReporter(file=out, max_bars=3)
    rep.run_started(backup_id="b", files=[("x" * 80 + ".qp", None), ("y.qp", 5)], total_bytes=None)
    rep.file_started("x" * 80 + ".qp", None)
    rep.file_size_known("x" * 80 + ".qp", 10)
    assert rep.bytes_total == 15
    rep.file_skipped("y.qp", "already complete")
    rep.advance("x" * 80 + ".qp", 10)
    rep.file_finished("x" * 80 + ".qp", ok=True)
    rep.close()
    text = out.getvalue()
    assert "skip y.qp 5 B: already complete\n" in text
    assert "…" in text  # the long name was shortened in its bar
    assert rep.bytes_done == 15


# Sizes and rates as tqdm's unit_scale writes them: SI prefixes ("24.0M", "3.15MB/s").
SI_UNITS = re.compile(r"\d(?:[kMGT]B?(?:/s)?|B/s)(?![a-zA-Z])")


def test_terminal_bars_write_binary_units_with_binary_names() -> None:
    out = io.StringIO()
    rep = TerminalReporter(file=out, max_bars=3)
    rep.run_started(backup_id="b", files=[("a.qp", 8 * MiB), ("b.qp", None)], total_bytes=None)
    rep.file_started("a.qp", 8 * MiB, already=MiB)
    rep.file_started("b.qp", None)
    rep.advance("a.qp", 3 * MiB)
    rep.advance("b.qp", 5000)
    bar = rep._bars["a.qp"]
    # The rate as the bar draws it, for a given speed (tqdm measures its own on the wall
    # clock): 3 MiB/s is "3.0 MiB/s", as in the summary, not tqdm's "3.15MB/s".
    line = bar.format_meter(**{**bar.format_dict, "rate": 3 * MiB})
    unknown = rep._bars["b.qp"]
    line_unknown = unknown.format_meter(**{**unknown.format_dict, "rate": 1536})
    rep.close()
    text = out.getvalue()
    assert "| 4.0 MiB/8.0 MiB [" in line and ", 3.0 MiB/s]" in line
    assert ": 4.9 KiB [" in line_unknown and ", 1.5 KiB/s]" in line_unknown
    assert "1.0 MiB/8.0 MiB" in text  # the bar as first drawn: the bytes already on disk
    for drawn in (line, line_unknown, text):
        assert not SI_UNITS.search(drawn), drawn


def test_make_reporter() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_reporter(mode="auto", stream=io.StringIO(), interval=5), LogReporter)
    assert isinstance(make_reporter(mode="log", stream=Tty(), interval=5), LogReporter)
    assert isinstance(make_reporter(mode="quiet", stream=Tty(), interval=5), QuietReporter)
    rep = make_reporter(mode="tty", stream=io.StringIO(), interval=5)
    assert isinstance(rep, TerminalReporter)
    rep.close()


# --------------------------------------------------------------------------- summary


def test_summary_table() -> None:
    rows = [
        SummaryRow(
            "full_backup_2026.qp", "mysql", 3 * 1024 * MiB, 125.0, True, transferred=3 * 1024 * MiB
        ),
        SummaryRow("b.bak", None, 2048, 0.5, False, "HTTP 403\r\n\x1b[2Jlink refused"),
        SummaryRow("c.qp", "db", 10, None, True, "already complete", transferred=0),
    ]
    table = summary_table(rows)
    lines = table.splitlines()
    assert lines[0].split() == ["FILE", "DATABASE", "SIZE", "TIME", "RATE", "RESULT"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert lines[2].split() == [
        "full_backup_2026.qp",
        "mysql",
        "3.0",
        "GiB",
        "2m05s",
        "24.6",
        "MiB/s",
        "ok",
    ]
    assert "FAILED: HTTP 403" in lines[3] and "link refused" in lines[3]
    assert "ok (already complete)" in lines[4] and " - " in lines[4]
    assert not re.search(r"[\x00-\x1f\x7f]", table.replace("\n", ""))
    assert all(line == line.rstrip() for line in lines)
    # columns line up: RESULT starts at the same column everywhere
    col = lines[0].index("RESULT")
    assert lines[2][col:].startswith("ok") and lines[3][col:].startswith("FAILED")


def test_run_totals_report_the_resolvers_count() -> None:
    # Re-resolutions are counted by the resolver (RunReport.resolutions), not by reporters.
    line = run_totals(
        files=3,
        failed=1,
        bytes_fetched=5 * MiB,
        seconds=12.34,
        retries=4,
        resolutions=2,
        refusals=1,
    )
    assert line == (
        "2 of 3 files complete, 5.0 MiB fetched in 12.3 s, 4 retries, "
        "2 link re-resolutions, 1 links refused"
    )


def test_run_totals_count_size_only_files_when_there_are_some() -> None:
    kw = dict(files=3, failed=0, bytes_fetched=0, seconds=1, retries=0, resolutions=0)
    assert run_totals(**kw, refusals=0, size_only=2).endswith("links refused, 2 size-only")
    assert run_totals(**kw, refusals=0, size_only=0).endswith("links refused")
    assert size_only_note(1).startswith("1 file was verified size-only")
    assert size_only_note(2).startswith("2 files were verified size-only")


def test_formatters() -> None:
    assert format_size(None) == "?"
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(-MiB) == "-1.0 MiB"
    assert format_duration(None) == "-"
    assert format_duration(3.25) == "3.2s"
    assert format_duration(190) == "3m10s"
    assert format_duration(7500) == "2h05m"
