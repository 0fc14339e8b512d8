"""Units, the two exceptions the CLI turns into exit codes, and where bench/ is.

May import: the standard library only.
"""

from __future__ import annotations

from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

BENCH_DIR = Path(__file__).resolve().parent.parent  # bench/: the default workdir is in it


class BenchError(Exception):
    """A problem to report in one line, without a traceback."""


class Terminated(Exception):
    """SIGTERM arrived: unwind (stopping nginx and the running tool) and exit 143."""


def fmt_size(n: float) -> str:
    for unit, div in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= div:
            v = n / div
            return f"{v:.0f} {unit}" if v == int(v) else f"{v:.2f} {unit}"
    return f"{n:.0f} B"
