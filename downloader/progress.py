"""Progress reporting: tqdm bars at a terminal, periodic log lines without one, the summary.

The engine reports *events* through the :class:`Reporter` interface; bytes can go backwards
(``advance`` with a negative count when a retry discards a partial range). This is the only
module that imports tqdm: log output that must coexist with bars goes through
:class:`TqdmLoggingHandler`, which ``logsetup`` installs.

Implementations:

* :class:`TerminalReporter` - an overall bar plus a bounded number of per-file bars;
* :class:`LogReporter` - no bars and no ``\\r``: start/finish/skip/events as log lines at once,
  and a progress line every ``interval`` seconds, driven by :meth:`LogReporter.tick` (the
  engine calls it from its own loop; no threads, no background tasks);
* :class:`QuietReporter` - errors only.

All of them keep the counters the summary needs (:class:`ReporterBase`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

if TYPE_CHECKING:
    # tqdm ships no type information; types-tqdm is used when installed.
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from .redact import REDACTOR

__all__ = [
    "FileProgress",
    "FileState",
    "LogReporter",
    "QuietReporter",
    "Reporter",
    "ReporterBase",
    "SummaryRow",
    "TerminalReporter",
    "TqdmLoggingHandler",
    "format_duration",
    "format_rate",
    "format_size",
    "make_reporter",
    "printable",
    "summary_table",
]

log = logging.getLogger("rds_backup.progress")

Clock = Callable[[], float]
FileState = Literal["pending", "active", "ok", "failed", "skipped"]

# Event kinds the engine sends and the level each is logged at; unknown kinds log at INFO.
EVENT_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "reresolve": logging.INFO,
    "retry": logging.WARNING,
    "link_refused": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

MAX_BARS = 10


class Reporter(Protocol):
    """What the engine calls to report progress. Every method is cheap and never raises."""

    def run_started(
        self, *, backup_id: str, files: Sequence[tuple[str, int | None]], total_bytes: int | None
    ) -> None:
        """The run begins; ``files`` are ``(name, size in bytes or None if not known yet)``."""

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        """Work on ``name`` begins; ``already`` bytes are on disk from an earlier run."""

    def file_size_known(self, name: str, size: int) -> None:
        """The authoritative size of ``name`` (from ``Content-Range``) is now known."""

    def advance(self, name: str, nbytes: int) -> None:
        """``nbytes`` more bytes of ``name`` are on disk; negative when a retry discards bytes."""

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        """``name`` is done; ``ok=False`` means it failed and ``detail`` says why (one line)."""

    def file_skipped(self, name: str, reason: str) -> None:
        """``name`` needs no work (already complete)."""

    def event(self, kind: str, message: str, **fields: object) -> None:
        """Something worth telling: kind is retry, reresolve, link_refused, warning, error, info."""

    def tick(self, now: float | None = None) -> None:
        """Called about once a second by the engine; periodic output happens here."""

    def close(self) -> None:
        """Finish output (close bars). Idempotent."""


# --------------------------------------------------------------------------- formatting helpers

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` on one line with no control characters (tabs/newlines become spaces)."""

    def repl(m: re.Match[str]) -> str:
        return " " if m.group(0) in "\t\n\r\x0b\x0c\u2028\u2029" else "?"

    return _CONTROL_RE.sub(repl, text)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(n: float | None) -> str:
    """Human size in 1024-based units: ``512 B``, ``1.5 KiB``, ``3.2 GiB``; None gives ``?``."""
    if n is None:
        return "?"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    for unit in _UNITS:
        if v < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(v)} B"
            return f"{sign}{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float | None) -> str:
    """``12.3 MiB/s``, or ``-`` when unknown."""
    if bytes_per_second is None or bytes_per_second < 0:
        return "-"
    return format_size(bytes_per_second) + "/s"


def format_duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m10s``, ``2h05m``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _shorten(name: str, width: int) -> str:
    """Fit ``name`` in ``width`` columns, keeping its start and its end (the extension)."""
    name = printable(name)
    if len(name) <= width:
        return name
    if width <= 3:
        return name[:width]
    tail = max(1, (width - 1) // 3)
    head = width - 1 - tail
    return f"{name[:head]}…{name[-tail:]}"


# --------------------------------------------------------------------------- counters


@dataclass(slots=True)
class FileProgress:
    """Mutable counters for one file (owned by a reporter; read them, do not change them)."""

    name: str
    size: int | None = None
    done: int = 0  # bytes on disk, including ``already``
    already: int = 0  # bytes on disk before this run touched the file
    transferred: int = 0  # net bytes fetched by this run (negative advances subtract)
    started_at: float | None = None
    finished_at: float | None = None
    state: FileState = "pending"
    detail: str | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the end-of-run table."""

    name: str
    database: str | None
    size: int | None
    seconds: float | None
    ok: bool
    detail: str | None = None
    transferred: int | None = None  # bytes fetched this run, for the rate; None: use size


class ReporterBase:
    """Bookkeeping shared by every reporter: per-file counters and event counts.

    Subclasses call the ``super()`` method first, then render.
    """

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.files: dict[str, FileProgress] = {}
        self.event_counts: Counter[str] = Counter()
        self.backup_id: str | None = None
        self.run_started_at: float | None = None
        self._total_hint: int | None = None
        self._closed = False

    # ---- derived values
    @property
    def retries(self) -> int:
        return self.event_counts["retry"]

    @property
    def reresolutions(self) -> int:
        return self.event_counts["reresolve"]

    @property
    def refused(self) -> int:
        """403s seen from the object store (``link_refused`` events)."""
        return self.event_counts["link_refused"]

    @property
    def bytes_done(self) -> int:
        return sum(max(0, f.done) for f in self.files.values())

    @property
    def bytes_transferred(self) -> int:
        return sum(f.transferred for f in self.files.values())

    @property
    def bytes_total(self) -> int | None:
        """Sum of file sizes when all are known, else the total given at run start."""
        sizes = [f.size for f in self.files.values()]
        if sizes and all(s is not None for s in sizes):
            return sum(s for s in sizes if s is not None)
        return self._total_hint

    @property
    def active_count(self) -> int:
        return sum(1 for f in self.files.values() if f.state == "active")

    @property
    def finished_count(self) -> int:
        return sum(1 for f in self.files.values() if f.state in ("ok", "failed", "skipped"))

    def _file(self, name: str) -> FileProgress:
        f = self.files.get(name)
        if f is None:
            f = self.files[name] = FileProgress(name)
        return f

    # ---- Reporter
    def run_started(
        self, *, backup_id: str, files: Sequence[tuple[str, int | None]], total_bytes: int | None
    ) -> None:
        self.backup_id = backup_id
        self.run_started_at = self._clock()
        self._total_hint = total_bytes
        for name, size in files:
            f = self._file(name)
            if size is not None:
                f.size = size

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        f = self._file(name)
        if size is not None:
            f.size = size
        already = max(0, already)
        f.already = already
        f.done = already
        f.transferred = 0
        f.started_at = self._clock()
        f.finished_at = None
        f.state = "active"
        f.detail = None

    def file_size_known(self, name: str, size: int) -> None:
        self._file(name).size = size

    def advance(self, name: str, nbytes: int) -> None:
        f = self._file(name)
        f.done += nbytes
        f.transferred += nbytes

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        f = self._file(name)
        if f.started_at is None:
            f.started_at = self._clock()
        f.finished_at = self._clock()
        f.state = "ok" if ok else "failed"
        f.detail = detail

    def file_skipped(self, name: str, reason: str) -> None:
        f = self._file(name)
        now = self._clock()
        f.started_at = f.finished_at = now
        if f.size is not None:
            f.done = f.already = f.size
        f.transferred = 0
        f.state = "skipped"
        f.detail = reason

    def event(self, kind: str, message: str, **fields: object) -> None:
        self.event_counts[kind] += 1

    def tick(self, now: float | None = None) -> None:
        return None

    def close(self) -> None:
        self._closed = True

    # ---- summary
    def summary_rows(self, databases: Mapping[str, str | None] | None = None) -> list[SummaryRow]:
        """One :class:`SummaryRow` per file, in the order the files were first reported."""
        rows = []
        for f in self.files.values():
            if f.state == "ok":
                ok, detail = True, f.detail
            elif f.state == "skipped":
                ok, detail = True, f.detail or "already complete"
            elif f.state == "failed":
                ok, detail = False, f.detail or "failed"
            elif f.state == "active":
                ok, detail = False, "not finished"
            else:
                ok, detail = False, "not started"
            rows.append(
                SummaryRow(
                    name=f.name,
                    database=(databases or {}).get(f.name),
                    size=f.size if f.size is not None else (f.done or None),
                    seconds=f.seconds,
                    ok=ok,
                    detail=detail,
                    transferred=f.transferred,
                )
            )
        return rows


def _event_level(kind: str) -> int:
    return EVENT_LEVELS.get(kind, logging.INFO)


def _log(level: int, event: str, message: str, fields: Mapping[str, object]) -> None:
    log.log(level, "%s", message, extra={"event": event, "fields": dict(fields)})


# --------------------------------------------------------------------------- terminal


def _tqdm() -> type[tqdm[Any]]:
    """tqdm, imported on first use: runs without a terminal (cron) never pay for it."""
    from tqdm import tqdm

    return tqdm  # type: ignore[no-any-return,unused-ignore]


class TqdmLoggingHandler(logging.Handler):
    """A logging handler that writes through ``tqdm.write`` so lines never land inside a bar.

    ``stream`` is looked up at emit time when None (``sys.stderr``), so redirection works.
    """

    def __init__(self, stream: TextIO | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            stream = self.stream if self.stream is not None else sys.stderr
            _tqdm().write(msg, file=stream)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _terminal_rows(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).lines
    except (AttributeError, OSError, ValueError):
        return shutil.get_terminal_size((80, 24)).lines


def _bar_slots(stream: TextIO) -> int:
    return max(1, min(MAX_BARS, _terminal_rows(stream) - 4))


DESC_WIDTH = 28


class TerminalReporter(ReporterBase):
    """tqdm bars: one overall bar plus at most ``max_bars`` per-file bars.

    Files beyond ``max_bars`` count only in the overall bar until a bar frees up. A finished
    file's bar collapses (``leave=False``) and a one-line ``done``/``FAILED`` message is written
    above the bars. Events are logged (logger ``rds_backup.progress``); install
    :class:`TqdmLoggingHandler` (``logsetup`` does) so they do not break the bars.
    """

    def __init__(
        self,
        *,
        file: TextIO | None = None,
        max_bars: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(clock=clock)
        self.file: TextIO = file if file is not None else sys.stderr
        self.max_bars = max_bars if max_bars is not None else _bar_slots(self.file)
        self._overall: tqdm[Any] | None = None
        self._bars: dict[str, tqdm[Any]] = {}

    def _new_bar(self, *, desc: str, total: int | None, initial: int, leave: bool) -> tqdm[Any]:
        return _tqdm()(
            total=total,
            initial=initial,
            desc=desc,
            file=self.file,
            leave=leave,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            dynamic_ncols=True,
        )

    def _ensure_overall(self) -> tqdm[Any]:
        if self._overall is None:
            self._overall = self._new_bar(
                desc=f"{'total':<{DESC_WIDTH}}",
                total=self.bytes_total,
                initial=self.bytes_done,
                leave=True,
            )
        return self._overall

    def _sync_overall_total(self) -> None:
        bar = self._ensure_overall()
        total = self.bytes_total
        if bar.total != total:
            bar.total = total
            bar.refresh()

    @staticmethod
    def _add_initial(bar: tqdm[Any], nbytes: int) -> None:
        # Bytes already on disk are progress but not throughput: raise ``initial`` with ``n``
        # so tqdm's rate ((n - initial) / elapsed) stays honest.
        if nbytes:
            bar.initial += nbytes
            bar.update(nbytes)

    def _open_file_bar(self, f: FileProgress) -> None:
        if self._closed or f.name in self._bars or len(self._bars) >= self.max_bars:
            return
        self._bars[f.name] = self._new_bar(
            desc=f"{_shorten(f.name, DESC_WIDTH):<{DESC_WIDTH}}",
            total=f.size,
            initial=max(0, f.done),
            leave=False,
        )

    def _close_file_bar(self, name: str) -> None:
        bar = self._bars.pop(name, None)
        if bar is None:
            return
        bar.close()
        # Give the freed slot to the longest-running file without a bar.
        for f in self.files.values():
            if f.state == "active" and f.name not in self._bars:
                self._open_file_bar(f)
                break

    def _write(self, line: str) -> None:
        _tqdm().write(printable(REDACTOR.redact(line)), file=self.file)

    def run_started(
        self, *, backup_id: str, files: Sequence[tuple[str, int | None]], total_bytes: int | None
    ) -> None:
        if self._closed:
            return
        super().run_started(backup_id=backup_id, files=files, total_bytes=total_bytes)
        self._sync_overall_total()

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        if self._closed:
            return
        overall = self._ensure_overall()
        before = self._file(name).done
        super().file_started(name, size, already)
        f = self.files[name]
        self._sync_overall_total()
        self._add_initial(overall, f.done - before)
        self._open_file_bar(f)

    def file_size_known(self, name: str, size: int) -> None:
        if self._closed:
            return
        super().file_size_known(name, size)
        bar = self._bars.get(name)
        if bar is not None and bar.total != size:
            bar.total = size
            bar.refresh()
        self._sync_overall_total()

    def advance(self, name: str, nbytes: int) -> None:
        if self._closed:
            return
        super().advance(name, nbytes)
        bar = self._bars.get(name)
        if bar is not None:
            bar.update(nbytes)
        self._ensure_overall().update(nbytes)

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        if self._closed:
            return
        super().file_finished(name, ok=ok, detail=detail)
        f = self.files[name]
        self._close_file_bar(name)
        if ok:
            rate = f.transferred / f.seconds if f.seconds else None
            self._write(
                f"done {name} {format_size(f.size if f.size is not None else f.done)}"
                f" in {format_duration(f.seconds)} ({format_rate(rate)})"
            )
        else:
            self._write(f"FAILED {name}: {detail or 'failed'}")

    def file_skipped(self, name: str, reason: str) -> None:
        if self._closed:
            return
        overall = self._ensure_overall()
        before = self._file(name).done
        super().file_skipped(name, reason)
        f = self.files[name]
        self._close_file_bar(name)
        self._sync_overall_total()
        self._add_initial(overall, f.done - before)
        self._write(f"skip {name} {format_size(f.size)}: {reason}")

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        _log(_event_level(kind), kind, message, fields)

    def tick(self, now: float | None = None) -> None:
        # Refresh so rate and elapsed keep moving while a transfer stalls.
        if self._closed:
            return
        for bar in self._bars.values():
            bar.refresh()
        if self._overall is not None:
            self._overall.refresh()

    def close(self) -> None:
        if self._closed:
            return
        for name in list(self._bars):
            self._bars.pop(name).close()
        if self._overall is not None:
            self._overall.close()
        super().close()


# --------------------------------------------------------------------------- log lines


class LogReporter(ReporterBase):
    """For cron, systemd and CI: log lines only, never bars or ``\\r``.

    Start, finish, skip and events are logged at once (logger ``rds_backup.progress``). A
    progress line (bytes done/total, percent, rate over the last interval, ETA from the average
    rate, active files) is logged by :meth:`tick` when ``interval`` seconds have passed since the
    run started or since the previous progress line; one line at most per call.
    """

    def __init__(self, *, interval: float = 30.0, clock: Clock = time.monotonic) -> None:
        super().__init__(clock=clock)
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self._last_tick_at: float | None = None
        self._last_tick_bytes = 0

    def run_started(
        self, *, backup_id: str, files: Sequence[tuple[str, int | None]], total_bytes: int | None
    ) -> None:
        super().run_started(backup_id=backup_id, files=files, total_bytes=total_bytes)
        self._last_tick_at = self.run_started_at
        self._last_tick_bytes = self.bytes_transferred
        total = self.bytes_total
        _log(
            logging.INFO,
            "run_started",
            f"backup {backup_id}: {len(files)} file(s), {format_size(total)}",
            {"backup_id": backup_id, "files": len(files), "bytes_total": total},
        )

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        super().file_started(name, size, already)
        f = self.files[name]
        resume = f", resuming at {format_size(f.already)}" if f.already else ""
        _log(
            logging.INFO,
            "file_started",
            f"start {name} ({format_size(f.size)}{resume})",
            {"file": name, "size": f.size, "already": f.already},
        )

    def file_size_known(self, name: str, size: int) -> None:
        super().file_size_known(name, size)
        _log(
            logging.DEBUG,
            "file_size_known",
            f"size of {name} is {size} bytes",
            {"file": name, "size": size},
        )

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        super().file_finished(name, ok=ok, detail=detail)
        f = self.files[name]
        fields: dict[str, object] = {
            "file": name,
            "size": f.size,
            "bytes": f.transferred,
            "seconds": round(f.seconds or 0.0, 3),
            "ok": ok,
        }
        if ok:
            rate = f.transferred / f.seconds if f.seconds else None
            _log(
                logging.INFO,
                "file_finished",
                f"done {name} {format_size(f.size)} in {format_duration(f.seconds)}"
                f" ({format_rate(rate)})",
                fields,
            )
        else:
            fields["detail"] = detail
            _log(logging.ERROR, "file_failed", f"FAILED {name}: {detail or 'failed'}", fields)

    def file_skipped(self, name: str, reason: str) -> None:
        super().file_skipped(name, reason)
        _log(
            logging.INFO,
            "file_skipped",
            f"skip {name}: {reason}",
            {"file": name, "size": self.files[name].size, "reason": reason},
        )

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        _log(_event_level(kind), kind, message, fields)

    def tick(self, now: float | None = None) -> None:
        if self._closed or self._last_tick_at is None or self.run_started_at is None:
            return
        now = self._clock() if now is None else now
        since = now - self._last_tick_at
        if since < self.interval:
            return
        moved = self.bytes_transferred
        rate = max(0.0, (moved - self._last_tick_bytes) / since)
        self._last_tick_at = now
        self._last_tick_bytes = moved

        done, total = self.bytes_done, self.bytes_total
        elapsed = now - self.run_started_at
        average = moved / elapsed if elapsed > 0 else 0.0
        percent = min(100.0, 100.0 * done / total) if total else None
        eta = max(0, total - done) / average if total is not None and average > 0 else None
        active = self.active_count
        pct = f" ({percent:.1f}%)" if percent is not None else ""
        _log(
            logging.INFO,
            "progress",
            f"progress {format_size(done)}/{format_size(total)}{pct}, {format_rate(rate)},"
            f" ETA {format_duration(eta) if eta is not None else '?'},"
            f" {active} active, {self.finished_count}/{len(self.files)} files finished",
            {
                "bytes_done": done,
                "bytes_total": total,
                "percent": round(percent, 1) if percent is not None else None,
                "rate": round(rate),
                "eta_s": round(eta) if eta is not None else None,
                "active": active,
            },
        )


# --------------------------------------------------------------------------- quiet


class QuietReporter(ReporterBase):
    """Says nothing except failures: ``file_finished(ok=False)`` and ``event("error", ...)``."""

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        super().file_finished(name, ok=ok, detail=detail)
        if not ok:
            _log(
                logging.ERROR,
                "file_failed",
                f"FAILED {name}: {detail or 'failed'}",
                {"file": name, "detail": detail},
            )

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        if kind == "error":
            _log(logging.ERROR, kind, message, fields)


# --------------------------------------------------------------------------- summary


def _rate_cell(row: SummaryRow) -> str:
    moved = row.transferred if row.transferred is not None else row.size
    if not row.seconds or not moved or moved <= 0:
        return "-"
    return format_rate(moved / row.seconds)


def _result_cell(row: SummaryRow) -> str:
    if row.ok:
        return f"ok ({row.detail})" if row.detail else "ok"
    return f"FAILED: {row.detail}" if row.detail else "FAILED"


def summary_table(rows: Sequence[SummaryRow]) -> str:
    """A plain-text table (file, database, size, time, rate, result); no control characters.

    Column widths follow the content; numbers are right-aligned; no trailing spaces.
    """
    header = ("FILE", "DATABASE", "SIZE", "TIME", "RATE", "RESULT")
    right = (False, False, True, True, True, False)
    body = [
        (
            printable(r.name),
            printable(r.database) if r.database else "-",
            format_size(r.size),
            format_duration(r.seconds),
            _rate_cell(r),
            printable(_result_cell(r)),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "  ".join(out).rstrip()

    lines = [render(header), render(["-" * w for w in widths])]
    lines.extend(render(line) for line in body)
    return "\n".join(lines)


# --------------------------------------------------------------------------- factory


def make_reporter(
    *,
    mode: Literal["auto", "tty", "log", "quiet"],
    stream: TextIO | None = None,
    interval: float = 30.0,
    clock: Clock = time.monotonic,
) -> ReporterBase:
    """Pick a reporter: ``auto`` means bars when ``stream`` is a terminal, log lines otherwise.

    ``stream`` (default ``sys.stderr``) is where bars go; log lines go wherever ``logsetup``
    sends the ``rds_backup`` logger.
    """
    stream = stream if stream is not None else sys.stderr
    if mode == "auto":
        try:
            tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        except (AttributeError, ValueError):
            tty = False
        mode = "tty" if tty else "log"
    if mode == "tty":
        return TerminalReporter(file=stream, clock=clock)
    if mode == "log":
        return LogReporter(interval=interval, clock=clock)
    if mode == "quiet":
        return QuietReporter(clock=clock)
    raise ValueError(f"unknown progress mode {mode!r}")
