"""One run per output folder: an advisory ``flock`` on ``.rds-backup/lock``.

The kernel drops the lock when its holder dies, however it dies, so a killed run never
leaves a stale lock behind; the pid written into the file is only for the message.
``verify`` takes the lock shared, so it never reads files a download is still writing.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import stat
import time
from pathlib import Path

from downloader.disk import storage
from downloader.errors import DownloadRunningError, LockHeldError, UntrustedFolderError


class FolderLock:
    def __init__(self, path: Path, folder: str) -> None:
        self.path = path
        self.folder = folder
        self._fd: int | None = None

    def _try(self, shared: bool = False) -> bool:
        # Never through a link, at its name or as its folder: O_CREAT would make (and the
        # write below truncate) a file wherever it points.
        storage.lstat_private(self.path.parent)
        fd = storage.open_private(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        if shared:  # other holders share it: the pid in the file stays the last writer's
            self._fd = fd
            return True
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def try_shared(self) -> None:
        """Share the lock with other readers (``verify``), without waiting: no download can
        start while it is held. Raises DownloadRunningError if a download holds it. Creates
        nothing: with no lock file, no run has ever locked the folder."""
        try:
            fd = storage.open_private(self.path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DownloadRunningError(self.folder, self.holder()) from None
        self._fd = fd

    def holder(self) -> int | None:
        try:
            text = storage.read_private(self.path).decode("ascii", "replace").strip()
        except (OSError, UntrustedFolderError):
            return None
        pid = int(text) if text.isdigit() else None
        # A reader (verify) holding the lock shared writes no pid: the one left in the file
        # may be an earlier download's, which is no longer running.
        return pid if pid and _alive(pid) else None

    async def acquire(
        self,
        *,
        wait: bool,
        max_wait: float | None = None,
        poll: float = 0.2,
        shared: bool = False,
    ) -> None:
        """Take the lock (``shared``: with other shared holders, never with an exclusive
        one), creating its file; LockHeldError when held and not ``wait``."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while not self._try(shared):
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise LockHeldError(self.folder, self.holder())
            await asyncio.sleep(poll)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock


def lock_at(state_fd: int, folder: str) -> int:
    """Take the lock of the folder whose state folder is open as ``state_fd``, exclusive and
    without waiting, through that descriptor (never through a link at ``lock``); the
    descriptor returned holds it until closed. LockHeldError when a run holds it."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open("lock", flags, storage.FILE_MODE, dir_fd=state_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UntrustedFolderError(f"{folder}/lock", "is a symbolic link") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UntrustedFolderError(f"{folder}/lock", "is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockHeldError(folder, None) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
