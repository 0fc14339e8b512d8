"""The output folder on disk: safe local names, the state folder, part files and the move
into place.

Everything written goes under the output folder: final files, the manifest, and one hidden
state folder (``.rds-backup/``) holding part files, the journal and the lock. Part files are
created 0600, preallocated when asked, synced before they are renamed into place.

The folder may be hostile: whoever could write to it before the run may have planted links
to elsewhere. So the state folders are checked (real folders of the running user, forced to
0700), every state and part file is opened with ``O_NOFOLLOW`` (new ones also ``O_EXCL``),
and a file's folders are walked one by one from the output folder, never through a link.
What cannot be trusted is refused (:class:`~downloader.errors.UntrustedFolderError`).
"""

from __future__ import annotations

import errno as errno_mod
import hashlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from downloader.errors import StorageError, UnsafeNameError, UntrustedFolderError
from downloader.text.fmt import format_size, unsafe_char

STATE_DIR = ".rds-backup"
NAME_MAX = 255  # bytes in one path component (Linux limits.h; ext4, xfs, btrfs)
PATH_MAX = 4096  # bytes in a whole path, its terminating NUL included
MANIFEST_NAME = "rds-backup-manifest.json"
FILE_MODE = 0o600
DIR_MODE = 0o700


def safe_relative_path(name: str) -> PurePosixPath:
    """Map an untrusted API file name to a path relative to the output folder.

    Refuses anything that could land outside the folder, hide among our own files or show as
    something it is not: absolute paths, ``..``, drive letters, backslashes, NUL, C0 and C1
    control characters, bidirectional controls, lone surrogates, components over NAME_MAX
    bytes, the manifest's name and the state folder. Subfolders (``a/b.bak``) are kept,
    inside the output folder.
    """
    if not name or not name.strip():
        raise UnsafeNameError(name, "empty name")
    bad = unsafe_char(name)
    if bad is not None:
        raise UnsafeNameError(name, f"{_char_kind(bad)} U+{ord(bad):04X} in name")
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
        if len(part.encode()) > NAME_MAX:
            raise UnsafeNameError(name, f"path component longer than {NAME_MAX} bytes")
    # Not even as a folder: ``rds-backup-manifest.json/x`` would leave no room for the manifest.
    if parts[0] in (STATE_DIR, MANIFEST_NAME):
        raise UnsafeNameError(name, "collides with rds-backup's own files")
    return PurePosixPath(*parts)


def _char_kind(c: str) -> str:
    if 0xD800 <= ord(c) <= 0xDFFF:
        return "lone surrogate"
    if ord(c) < 0xA0 or c in "\u2028\u2029":
        return "control character"
    return "bidirectional control"


def check_names(root: Path, names: Iterable[str]) -> None:
    """Refuse, before anything is fetched, names that cannot all be placed under ``root``:
    an unsafe name (:func:`safe_relative_path`), a final path of PATH_MAX bytes or more, or
    a file that another name needs as its folder (``a`` and ``a/b``). Pure: only ``root``'s
    absolute name is looked at; a name would otherwise fail only after its download."""
    base = len(os.fsencode(os.path.abspath(root)))
    listed: list[str] = []
    folders: dict[str, str] = {}  # a folder some name needs -> the first such name
    for name in names:
        rel = safe_relative_path(name)
        # PATH_MAX counts the terminating NUL (Linux limits.h); names are UTF-8 on disk.
        if base + 1 + len(name.encode()) >= PATH_MAX:
            raise UnsafeNameError(
                name, f"its path under {root} would be longer than {PATH_MAX - 1} bytes"
            )
        for i in range(1, len(rel.parts)):
            folders.setdefault("/".join(rel.parts[:i]), name)
        listed.append(str(rel))
    for name in listed:
        if name in folders:
            raise UnsafeNameError(
                folders[name], f"it needs a folder {name!r}, which the backup lists as a file"
            )


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

    def checked_final(self, name: str) -> Path:
        """The final path of ``name``, refusing a link among the folders it goes through
        under the output folder (``db`` in ``db/x.qp``): the move into place would land
        wherever it points."""
        final = self.final(name)
        at = self.root
        for part in final.relative_to(self.root).parts[:-1]:
            at = at / part
            try:
                st = os.lstat(at)
            except FileNotFoundError:
                break  # created at the move into place, by this run
            except OSError:
                break  # not a link; whatever else is wrong shows at the move
            if stat.S_ISLNK(st.st_mode):
                raise UntrustedFolderError(str(at), "is a symbolic link")
        return final

    def prepare(self, *, state_only: bool = False) -> None:
        """Create the folder and the private state folder (with its part and journal
        folders, unless ``state_only``: a run that keeps only its lock there); refuse a state
        folder that is not a real folder of the running user, or that holds a link."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create {exc.filename}: {exc.strerror}", errno=exc.errno
            ) from exc
        # Each checked before anything is made inside it: a link is never followed.
        for d in (self.state,) if state_only else (self.state, self.parts, self.journal):
            private_dir(d)
            refuse_links_in(d)


def private_dir(path: Path) -> None:
    """Make ``path`` a folder only the running user can enter (0700), or check that it is
    one: a real folder (not a link), owned by the running user."""
    try:
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}", errno=exc.errno) from exc
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if os.path.islink(path):
            raise UntrustedFolderError(str(path), "is a symbolic link") from exc
        if exc.errno == errno_mod.ENOTDIR:
            raise UntrustedFolderError(str(path), "is not a folder") from exc
        raise StorageError(f"cannot open {path}: {exc.strerror}", errno=exc.errno) from exc
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise UntrustedFolderError(
                str(path), f"belongs to uid {st.st_uid}, not to the running user"
            )
        if stat.S_IMODE(st.st_mode) != DIR_MODE:
            # A folder made by an older run, or by someone else's umask: private from now on.
            os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)


def refuse_links_in(folder: Path) -> None:
    """No entry of a state folder may be a link: the tool never makes one, so one there was
    planted (refused here at the start; every open also refuses one, in case of a race)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink():
                raise UntrustedFolderError(str(folder / entry.name), "is a symbolic link")


def open_private(path: Path, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` for a state or part file: never through a link at its name, and only a
    regular file (``O_NONBLOCK`` while checking: opening a planted FIFO would hang)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno_mod.ELOOP:
            raise UntrustedFolderError(str(path), "is a symbolic link") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UntrustedFolderError(str(path), "is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def part_opener(path: str, flags: int) -> int:
    """An ``opener`` for :func:`open`: a part file, through :func:`open_private`."""
    return open_private(Path(path), flags)


def read_private(path: Path) -> bytes:
    """The bytes of a state file (a journal record, the lock), never read through a link."""
    with open(open_private(path, os.O_RDONLY), "rb") as fh:
        return fh.read()


def lstat_private(path: Path) -> os.stat_result:
    """``lstat`` of a state or part file, refusing a link in its place."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UntrustedFolderError(str(path), "is a symbolic link")
    return st


def create_part(path: Path, *, new: bool) -> None:
    """Create the part file, 0600. ``new``: the file starts from byte 0, so whatever has its
    name is a leftover (of a run stopped before its first record) and makes way for a file
    of our own (``O_EXCL``); otherwise an existing part file is kept, to resume."""
    if not new:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT))
        return
    try:
        os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        return
    except FileExistsError:
        lstat_private(path)  # a link there is refused, not silently removed
        os.unlink(path)
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))


def preallocate(path: Path, size: int) -> bool:
    """Reserve ``size`` bytes for ``path``; False where the filesystem cannot."""
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return False
    fd = open_private(path, os.O_WRONLY)
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
    fd = open_private(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
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


def move_into_place(part: Path, final: Path, root: Path) -> None:
    """fsync the part file, rename it to its final name atomically, fsync the folder.

    ``final`` lies under the output folder ``root``; its folders are opened one at a time
    from there, never through a link, and the rename is made relative to the last one: a
    link planted on the way (even after the start's check) cannot take the file elsewhere.
    """
    fd = open_private(part, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    folder = _open_folders(root, final.relative_to(root).parent)
    try:
        os.replace(part, final.name, dst_dir_fd=folder)
        os.fsync(folder)
    finally:
        os.close(folder)


def _open_folders(root: Path, rel: PurePath) -> int:
    """A descriptor of ``root / rel``, creating its folders as ``mkdir -p`` would, each one
    opened with ``O_NOFOLLOW`` relative to the one before."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    at = root
    try:
        for part in rel.parts:
            at = at / part
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                sub = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise UntrustedFolderError(str(at), "is a symbolic link") from exc
                raise
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    hidden: bool = False,
    sync_folder: bool = True,
) -> None:
    """Write ``data`` to ``path`` through a temporary name: write, fsync, rename, fsync the
    folder (``sync_folder=False``: the caller fsyncs it once after several writes).

    The temporary name is new (``O_EXCL``) and unguessable: the manifest's lies in the output
    folder, where someone may have planted a link at a name we would pick (``hidden``: with a
    leading dot). 0600 under the umask; with ``mode``, that mode whatever the umask.
    """
    tmp = path.with_name(f"{'.' if hidden else ''}{path.name}.{secrets.token_hex(8)}.tmp")
    fd = open_private(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE if mode is None else mode
    )
    try:
        try:
            if mode is not None:
                os.fchmod(fd, mode)
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
    if sync_folder:
        fsync_dir(path.parent)


def allocated(path: Path) -> int:
    """Bytes the file already holds on disk (a preallocated part file holds all of them)."""
    try:
        return os.lstat(path).st_blocks * 512
    except FileNotFoundError:
        return 0


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def disk_error(exc: OSError, name: str, needed: int | None = None) -> StorageError:
    """Words for an I/O error while writing ``name``."""
    if exc.errno in (errno_mod.ENOSPC, errno_mod.EDQUOT, errno_mod.EFBIG):
        need = f"; {format_size(needed)} more are needed" if needed else ""
        return StorageError(
            f"no space left writing {name}{need}; free space and run again to resume",
            file=name,
            errno=exc.errno,
        )
    return StorageError(
        f"I/O error writing {name}: {exc.strerror or exc}", file=name, errno=exc.errno
    )
