"""Folders below a root the user named, reached, listed and removed through descriptors.

``sync`` keeps ``ROOT/<instance_id>/<backup_id>/``; anyone able to write in ROOT may have
planted a link at either name, or may swap one in while a run looks. A path string is
resolved afresh at every use, so a check made through one says nothing of the next use.
Here every folder is opened relative to the one above it with ``O_NOFOLLOW``
(:func:`open_below`), what a folder holds is listed through its descriptor without following
a link (:func:`inventory`), and a folder is emptied and removed through the descriptor that
was checked (:func:`remove_folder`): a link swapped in at any moment is refused or removed
as a link, never entered.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from downloader.errors import StorageError, UntrustedFolderError

__all__ = ["Entry", "FolderTooDeep", "inventory", "open_at", "open_below", "remove_folder"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# A backup's files lie a few folders deep; a tree deeper than this is not one of ours, and a
# bound keeps the descriptors held (one per level) and the recursion small.
MAX_DEPTH = 64
# Entries listed at most: the memory an inventory takes is bounded, not a folder's size.
MAX_ENTRIES = 200_000


class FolderTooDeep(StorageError):
    """A folder nests deeper, or holds more entries, than a backup of ours ever does."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a listed folder: ``kind`` is ``file``, ``dir``, ``link`` or ``other``
    (a FIFO, a socket, a device); ``size`` is a file's byte count (0 otherwise)."""

    kind: str
    size: int = 0


def open_below(root: Path, names: Sequence[str], *, create: bool = False) -> int:
    """A descriptor of the folder ``root/names[0]/names[1]/...``, each level opened relative
    to the one above with ``O_NOFOLLOW`` (``root`` itself as the user named it, a link
    there being the user's choice). With ``create``, missing levels are made (0755 under the
    umask, as ``mkdir -p``); without, FileNotFoundError.

    UntrustedFolderError names the first level that is a link or not a folder."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    at = root
    try:
        for name in names:
            at = at / name
            if create:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
            sub = open_at(fd, name, at)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_at(parent: int, name: str, where: Path) -> int:
    """A descriptor of the folder ``name`` in the folder ``parent``, never through a link
    (UntrustedFolderError naming ``where``, its path for messages)."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            what = "is a symbolic link" if stat.S_ISLNK(st.st_mode) else "is not a folder"
            raise UntrustedFolderError(str(where), what) from exc
        raise


def inventory(fd: int) -> dict[str, Entry]:
    """Every entry below the folder ``fd``, by its path relative to it (``a/b.qp``), links
    and what is not a regular file included but never followed. FolderTooDeep past
    MAX_DEPTH levels or MAX_ENTRIES entries."""
    out: dict[str, Entry] = {}
    for rel, entry in _walk(fd, "", 0):
        out[rel] = entry
        if len(out) > MAX_ENTRIES:
            raise FolderTooDeep(f"more than {MAX_ENTRIES} entries below one backup folder")
    return out


def _walk(fd: int, prefix: str, depth: int) -> Iterator[tuple[str, Entry]]:
    if depth >= MAX_DEPTH:
        raise FolderTooDeep(f"folders nested deeper than {MAX_DEPTH} levels at {prefix!r}")
    with os.scandir(fd) as it:
        names = sorted(e.name for e in it)
    for name in names:
        rel = f"{prefix}{name}"
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # gone meanwhile
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            yield rel, Entry("dir")
            sub = open_at(fd, name, Path(rel))
            try:
                yield from _walk(sub, rel + "/", depth + 1)
            finally:
                os.close(sub)
        elif stat.S_ISLNK(mode):
            yield rel, Entry("link")
        elif stat.S_ISREG(mode):
            yield rel, Entry("file", st.st_size)
        else:
            yield rel, Entry("other")


def remove_folder(parent: int, name: str, fd: int) -> None:
    """Remove the folder ``fd`` (the entry ``name`` of the folder ``parent``) and all it
    holds, through descriptors: links inside are removed, never followed. The last step,
    ``rmdir`` of ``name``, takes only an empty folder, and only if ``name`` is still ``fd``:
    a folder swapped in meanwhile stays."""
    here = os.fstat(fd)
    _empty(fd, 0)
    now = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if not os.path.samestat(here, now):
        raise UntrustedFolderError(name, "was replaced while it was being removed")
    os.rmdir(name, dir_fd=parent)


def _empty(fd: int, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise FolderTooDeep(f"folders nested deeper than {MAX_DEPTH} levels")
    with os.scandir(fd) as it:
        names = [e.name for e in it]
    for name in names:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            sub = open_at(fd, name, Path(name))
            try:
                _empty(sub, depth + 1)
            finally:
                os.close(sub)
            os.rmdir(name, dir_fd=fd)
        else:
            os.unlink(name, dir_fd=fd)
