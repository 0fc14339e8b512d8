"""A small tmpfs for disk-error tests (a full disk, a read-only one). Import as
``from mounts import tmpfs``: ``tests/`` is on ``sys.path`` (see ``fakes.py``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def tmpfs(where: Path, options: str = "size=1m") -> Iterator[Path]:
    """A tmpfs mounted at ``where`` (made here) with ``options``, unmounted afterwards; the
    test is skipped where mounting is not allowed."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
