"""tqdm bars at a terminal; the only module that imports tqdm.

:class:`TerminalReporter` draws an overall bar and a bounded number of per-file bars; log
lines that must coexist with them go through :class:`TqdmLoggingHandler`, which ``logsetup``
installs.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    # tqdm ships no type information; types-tqdm is used when installed.
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from downloader.text.fmt import format_duration, format_rate, format_size, printable
from downloader.text.redact import REDACTOR

from .base import Clock, FileProgress, ReporterBase, log_reported_event

__all__ = ["MAX_BARS", "TerminalReporter", "TqdmLoggingHandler"]

MAX_BARS = 10
DESC_WIDTH = 28


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


def _tqdm() -> type[tqdm[Any]]:
    """tqdm, imported on first use: runs without a terminal (cron) never pay for it."""
    from tqdm import tqdm

    return tqdm  # type: ignore[no-any-return,unused-ignore]


# tqdm's own unit_scale writes sizes with SI prefixes ("24.0M", "kB") and rates in powers
# of 1000 ("MB/s") whatever unit_divisor says: the bars use the summary's words instead.
_WITH_TOTAL = "{l_bar}{bar}| {size_n}/{size_total} [{elapsed}<{remaining}, {size_rate}{postfix}]"
_NO_TOTAL = "{desc}: {size_n} [{elapsed}, {size_rate}{postfix}]"


def _binary_units(stats: Mapping[str, Any]) -> dict[str, Any]:
    """A bar's ``format_meter`` arguments, its sizes and rate written by
    :mod:`downloader.text.fmt` (``8.0 MiB``, ``3.2 MiB/s``: binary units with binary names,
    as in the summary)."""
    out = dict(stats)
    n, total, rate, elapsed = out["n"], out["total"], out["rate"], out["elapsed"]
    if rate is None and elapsed:
        rate = (n - out.get("initial", 0)) / elapsed  # what tqdm falls back to
    out.update(
        size_n=format_size(n),
        size_total=format_size(total),
        size_rate=format_rate(rate),
        bar_format=_WITH_TOTAL if total else _NO_TOTAL,
    )
    return out


@functools.cache
def _bar_class() -> type[tqdm[Any]]:
    base = _tqdm()

    class BinaryBar(base):  # type: ignore[valid-type,misc]
        @staticmethod
        def format_meter(**stats: Any) -> str:
            return base.format_meter(**_binary_units(stats))

    return BinaryBar


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
        return _bar_class()(
            total=total,
            initial=initial,
            desc=desc,
            file=self.file,
            leave=leave,
            unit="B",
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
        if f.already:
            # The only line a start gets at a terminal: the bar shows the rest.
            self._write(f"resume {name} at {format_size(f.already)} of {format_size(f.size)}")

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

    def file_skipped(self, name: str, reason: str, size: int | None = None) -> None:
        if self._closed:
            return
        overall = self._ensure_overall()
        before = self._file(name).done
        super().file_skipped(name, reason, size)
        f = self.files[name]
        self._close_file_bar(name)
        self._sync_overall_total()
        self._add_initial(overall, f.done - before)
        self._write(f"skip {name} {format_size(f.size)}: {reason}")

    def event(self, kind: str, message: str, **fields: object) -> None:
        super().event(kind, message, **fields)
        log_reported_event(kind, message, fields)

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
