"""One run per output folder: an advisory ``flock`` on ``.rds-backup/lock``.

The kernel drops the lock when its holder dies, however it dies, so a killed run never
leaves a stale lock behind; the pid written into the file is only for the message.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from pathlib import Path

from downloader.errors import LockHeldError
from downloader.storage import FILE_MODE


class FolderLock:
    def __init__(self, path: Path, folder: str) -> None:
        self.path = path
        self.folder = folder
        self._fd: int | None = None

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def holder(self) -> int | None:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    async def acquire(
        self, *, wait: bool, max_wait: float | None = None, poll: float = 0.2
    ) -> None:
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while not self._try():
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise LockHeldError(self.folder, self.holder())
            await asyncio.sleep(poll)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock
