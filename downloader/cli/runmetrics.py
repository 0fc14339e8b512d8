"""``download --metrics-file``: the run-level Prometheus lines, written when the command ends
(success or not), for node_exporter's textfile collector. ``sync`` writes its own, fuller
file (:mod:`downloader.sync.metrics`)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from downloader.errors import LockHeldError
from downloader.sync.metrics import write_run_metrics

log = logging.getLogger("rds_backup.cli")


def records_run_metrics(command: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command's callback that takes ``metrics_file`` and returns its exit code.

    A run refused because another holds the folder's lock writes nothing: that run writes
    the file when it ends. A file that cannot be written is logged; the exit code stands."""

    @functools.wraps(command)
    def wrapper(*args: Any, metrics_file: Path | None = None, **kwargs: Any) -> int:
        if metrics_file is None:
            return command(*args, **kwargs)
        started = time.time()
        success = False
        write = True
        try:
            code = command(*args, **kwargs)
            success = code == 0
            return code
        except LockHeldError:
            write = False
            raise
        finally:
            if write:
                try:
                    write_run_metrics(
                        metrics_file, success=success, started_at=started, finished_at=time.time()
                    )
                except OSError as exc:
                    log.error("cannot write the metrics file %s: %s", metrics_file, exc.strerror)

    return wrapper
