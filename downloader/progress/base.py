"""What every reporter shares: the :class:`Reporter` interface the engine calls, and the
counters behind the summary (:class:`ReporterBase`)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "EVENT_LEVELS",
    "Clock",
    "FileProgress",
    "FileState",
    "Reporter",
    "ReporterBase",
    "SummaryRow",
    "event_level",
    "log_event",
    "log_reported_event",
]

log = logging.getLogger("rds_backup.progress")

Clock = Callable[[], float]
FileState = Literal["pending", "active", "ok", "failed", "skipped"]

# Event kinds the engine and the run send, and the level each is logged at; unknown kinds
# log at INFO. Link re-resolutions are not events: the resolver counts them (its
# ``resolutions``) and the run report carries that count to the summary.
EVENT_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "retry": logging.WARNING,
    "link_refused": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def log_event(
    level: int,
    event: str,
    message: str,
    fields: Mapping[str, object],
    in_message: Collection[str] = (),
) -> None:
    """Log one reporter line on ``rds_backup.progress``; ``logsetup`` decides how it looks.

    ``in_message`` names the fields ``message`` already says in words: text lines leave them
    out, JSON lines keep them (as numbers a program can read)."""
    log.log(
        level,
        "%s",
        message,
        extra={"event": event, "fields": dict(fields), "in_message": tuple(in_message)},
    )


def log_reported_event(kind: str, message: str, fields: Mapping[str, object]) -> None:
    """An ``event`` as a log line. Its ``file`` is left out of text lines when the message
    names the file (the engine's messages start with it); status, attempt and request id
    are not in the words and stay."""
    name = fields.get("file")
    said = ("file",) if isinstance(name, str) and name in message else ()
    log_event(event_level(kind), kind, message, fields, said)


def event_level(kind: str) -> int:
    return EVENT_LEVELS.get(kind, logging.INFO)


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

    def file_skipped(self, name: str, reason: str, size: int | None = None) -> None:
        """``name`` needs no work (already complete); ``size`` is its real size on disk (the
        API's size is in KB, rounded)."""

    def event(self, kind: str, message: str, **fields: object) -> None:
        """Something worth telling: kind is retry, link_refused, warning, error, info, debug."""

    def tick(self, now: float | None = None) -> None:
        """Called about once a second by the engine; periodic output happens here."""

    def close(self) -> None:
        """Finish output (close bars). Idempotent."""


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

    def file_skipped(self, name: str, reason: str, size: int | None = None) -> None:
        f = self._file(name)
        now = self._clock()
        f.started_at = f.finished_at = now
        if size is not None:
            f.size = size
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
