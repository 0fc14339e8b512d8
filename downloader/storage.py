"""The output folder on disk: safe local names, the state folder, part files and the move
into place.

Everything written goes under the output folder: final files, the manifest, and one hidden
state folder (``.rds-backup/``) holding part files, the journal and the lock. Part files are
created 0600, preallocated when asked, synced before they are renamed into place.
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from downloader.errors import StorageError, UnsafeNameError

STATE_DIR = ".rds-backup"
MANIFEST_NAME = "rds-backup-manifest.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


def safe_relative_path(name: str) -> PurePosixPath:
    """Map an untrusted API file name to a path relative to the output folder.

    Refuses anything that could land outside the folder or hide among our own files: absolute
    paths, ``..``, drive letters, backslashes, NUL and control characters, the manifest's
    name and the state folder. Subfolders (``a/b.bak``) are kept, inside the output folder.
    """
    if not name or not name.strip():
        raise UnsafeNameError(name, "empty name")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise UnsafeNameError(name, "control character in name")
    if "\\" in name:
        raise UnsafeNameError(name, "backslash in name")
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        raise UnsafeNameError(name, "drive letter in name")
    if name.startswith("/"):
        raise UnsafeNameError(name, "absolute path")
    parts = name.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeNameError(name, f"path component {part!r}")
        if len(part.encode()) > 255:
            raise UnsafeNameError(name, "path component longer than 255 bytes")
    if parts[0] == STATE_DIR or name == MANIFEST_NAME:
        raise UnsafeNameError(name, "collides with rds-backup's own files")
    return PurePosixPath(*parts)


def file_key(name: str) -> str:
    """Stable, filesystem-safe key for a file's state (the name itself may be long or odd)."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each thing lives under one output folder."""

    root: Path

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def parts(self) -> Path:
        return self.state / "parts"

    @property
    def journal(self) -> Path:
        return self.state / "journal"

    @property
    def lock(self) -> Path:
        return self.state / "lock"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    def final(self, name: str) -> Path:
        return self.root / safe_relative_path(name)

    def part(self, name: str) -> Path:
        return self.parts / (file_key(name) + ".part")

    def record(self, name: str) -> Path:
        return self.journal / (file_key(name) + ".json")

    def prepare(self) -> None:
        """Create the folder and the private state folder."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for d in (self.state, self.parts, self.journal):
                d.mkdir(mode=DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create {exc.filename}: {exc.strerror}", errno=exc.errno
            ) from exc


def create_part(path: Path) -> None:
    """Create an empty part file, 0600, if it does not exist."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
    os.close(fd)


def preallocate(path: Path, size: int) -> bool:
    """Reserve ``size`` bytes for ``path``; False where the filesystem cannot."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return False
    fd = os.open(path, os.O_WRONLY)
    try:
        os.posix_fallocate(fd, 0, size)
        return True
    except OSError as exc:
        if exc.errno in (errno_mod.EOPNOTSUPP, errno_mod.EINVAL, errno_mod.ENOSYS):
            return False
        raise
    finally:
        os.close(fd)


def truncate(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(part: Path, final: Path) -> None:
    """fsync the part file, rename it to its final name atomically, fsync the folder."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fsync_path(part)
    os.chmod(part, FILE_MODE)
    os.replace(part, final)
    fsync_dir(final.parent)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name: write, fsync, rename."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def allocated(path: Path) -> int:
    """Bytes the file already holds on disk (a preallocated part file holds all of them)."""
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def disk_error(exc: OSError, name: str, needed: int | None = None) -> StorageError:
    """Words for an I/O error while writing ``name``."""
    if exc.errno in (errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EFBIG):
        need = f"; {needed} more bytes are needed" if needed else ""
        return StorageError(
            f"no space left writing {name}{need}; free space and run again to resume",
            file=name,
            errno=exc.errno,
        )
    return StorageError(
        f"I/O error writing {name}: {exc.strerror or exc}", file=name, errno=exc.errno
    )
