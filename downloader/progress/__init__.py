"""Progress reporting: tqdm bars at a terminal, periodic log lines without one, the summary.

The engine reports *events* through the :class:`Reporter` interface; bytes can go backwards
(``advance`` with a negative count when a retry discards a partial range). Only
:mod:`downloader.progress.terminal` imports tqdm: log output that must coexist with bars goes
through :class:`TqdmLoggingHandler`, which ``logsetup`` installs.

Implementations:

* :class:`TerminalReporter` - an overall bar plus a bounded number of per-file bars;
* :class:`LogReporter` - no bars and no ``\\r``: start/finish/skip/events as log lines at once,
  and a progress line every ``interval`` seconds, driven by :meth:`LogReporter.tick` (the
  engine calls it from its own loop; no threads, no background tasks);
* :class:`QuietReporter` - errors only.

All of them keep the counters the summary needs (:class:`ReporterBase`).

May import: ``downloader.text`` and the floor (``errors``, ``models``, ``results``).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Literal, TextIO

from downloader.text.fmt import format_duration, format_rate, format_size, printable

from .base import Clock, FileProgress, FileState, Reporter, ReporterBase, SummaryRow
from .logline import LogReporter, QuietReporter
from .summary import content_note, run_totals, size_only_note, summary_table
from .terminal import TerminalReporter, TqdmLoggingHandler

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
    "content_note",
    "format_duration",
    "format_rate",
    "format_size",
    "make_reporter",
    "printable",
    "run_totals",
    "size_only_note",
    "summary_table",
]


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
