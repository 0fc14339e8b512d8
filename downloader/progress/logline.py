"""Reporters without bars: :class:`LogReporter` for cron, systemd and CI, and
:class:`QuietReporter` for ``--quiet``. Neither writes ``\\r`` or starts a thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from downloader.text.fmt import format_duration, format_rate, format_size

from .base import Clock, ReporterBase, log_event, log_reported_event

__all__ = ["LogReporter", "QuietReporter"]


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
        log_event(
            logging.INFO,
            "run_started",
            f"backup {backup_id}: {len(files)} file(s), {format_size(total)}",
            {"backup_id": backup_id, "files": len(files), "bytes_total": total},
            in_message=("backup_id", "files", "bytes_total"),
        )

    def file_started(self, name: str, size: int | None, already: int = 0) -> None:
        super().file_started(name, size, already)
        f = self.files[name]
        resume = f", resuming at {format_size(f.already)}" if f.already else ""
        log_event(
            logging.INFO,
            "file_started",
            f"start {name} ({format_size(f.size)}{resume})",
            {"file": name, "size": f.size, "already": f.already},
            in_message=("file", "size", "already"),
        )

    def file_size_known(self, name: str, size: int) -> None:
        super().file_size_known(name, size)
        log_event(
            logging.DEBUG,
            "file_size_known",
            f"size of {name} is {size} bytes",
            {"file": name, "size": size},
            in_message=("file", "size"),
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
            # What this run fetched is news only when it is not the whole file (a resume).
            said = ("file", "size", "seconds", "ok")
            log_event(
                logging.INFO,
                "file_finished",
                f"done {name} {format_size(f.size)} in {format_duration(f.seconds)}"
                f" ({format_rate(rate)})",
                fields,
                in_message=(*said, "bytes") if f.transferred == f.size else said,
            )
        else:
            fields["detail"] = detail
            log_event(
                logging.ERROR,
                "file_failed",
                f"FAILED {name}: {detail or 'failed'}",
                fields,
                in_message=("file", "detail", "ok"),
            )

    def file_skipped(self, name: str, reason: str, size: int | None = None) -> None:
        super().file_skipped(name, reason, size)
        f = self.files[name]
        log_event(
            logging.INFO,
            "file_skipped",
            f"skip {name} {format_size(f.size)}: {reason}",
            {"file": name, "size": f.size, "reason": reason},
            in_message=("file", "size", "reason"),
        )

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        log_reported_event(kind, message, fields)

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
        log_event(
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
            in_message=("bytes_done", "bytes_total", "percent", "rate", "eta_s", "active"),
        )


class QuietReporter(ReporterBase):
    """Says nothing except failures: ``file_finished(ok=False)`` and ``event("error", ...)``."""

    def file_finished(self, name: str, *, ok: bool, detail: str | None = None) -> None:
        super().file_finished(name, ok=ok, detail=detail)
        if not ok:
            log_event(
                logging.ERROR,
                "file_failed",
                f"FAILED {name}: {detail or 'failed'}",
                {"file": name, "detail": detail},
                in_message=("file", "detail"),
            )

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        if kind == "error":
            log_reported_event(kind, message, fields)
