"""``verify DIR``: a finished folder (or a chain's folder, backup folder by backup folder)
re-read and checked against its manifest (:mod:`downloader.disk.manifest`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from downloader.disk import storage
from downloader.disk.digest import crc64_from_json
from downloader.disk.hashing import ContentFeed, hash_file
from downloader.disk.holdings import FOLDER_RE
from downloader.disk.lock import FolderLock
from downloader.disk.manifest import CHAIN_KIND, load_manifest
from downloader.errors import UsageError
from downloader.results import SERVER_CHECKSUM, SIZE_ONLY, ContentVerdict

# A content check for a file name and size (``downloader.content.checker_for``), given by
# the caller: the disk knows no formats.
CheckerFor = Callable[[str, int | None], ContentFeed]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    # As the manifest records it: how well the bytes were verified when they arrived.
    integrity: str = SIZE_ONLY
    # What the file's own structure says now (None: not checked).
    content: ContentVerdict | None = None


def entry_integrity(entry: object) -> str:
    """A manifest entry's integrity level; anything but SERVER_CHECKSUM (a manifest of an
    earlier version says nothing) is SIZE_ONLY."""
    is_server = isinstance(entry, dict) and entry.get("integrity") == SERVER_CHECKSUM
    return SERVER_CHECKSUM if is_server else SIZE_ONLY


def verify_folder(
    folder: Path,
    *,
    progress: Callable[[str, int], None] | None = None,
    checker_for: CheckerFor | None = None,
) -> tuple[dict[str, Any], list[Check]]:
    """Re-read every file the manifest lists and compare its size and every checksum the
    manifest records (CRC-64; SHA-256 and MD5 where present), holding the folder's lock
    shared: DownloadRunningError while a download writes the folder. With
    ``checker_for``, the same read checks each file's own structure again."""
    layout = storage.Layout(folder)
    lock = FolderLock(layout.lock, str(folder))
    lock.try_shared()
    try:
        return _verify_entries(layout, progress, checker_for)
    finally:
        lock.release()


def _verify_entries(
    layout: storage.Layout,
    progress: Callable[[str, int], None] | None,
    checker_for: CheckerFor | None = None,
) -> tuple[dict[str, Any], list[Check]]:
    manifest = load_manifest(layout.manifest)
    if manifest.get("kind") == CHAIN_KIND:
        return manifest, _verify_chain(layout, manifest, progress, checker_for)
    return manifest, _check_entries(layout, manifest["files"], progress, checker_for=checker_for)


def _check_entries(
    layout: storage.Layout,
    entries: Sequence[object],
    progress: Callable[[str, int], None] | None,
    where: str = "files",
    checker_for: CheckerFor | None = None,
) -> list[Check]:
    checks = []
    for i, entry in enumerate(entries):
        # Named by position where the entry gives no usable name (a tampered manifest).
        if not isinstance(entry, dict):
            checks.append(Check(f"{where}[{i}]", False, "manifest entry is not an object"))
            continue
        name = entry.get("name")
        if not isinstance(name, str):
            checks.append(Check(f"{where}[{i}]", False, "manifest entry without a name"))
            continue
        try:
            # Its folders entered one by one, never through a link (UntrustedFolderError):
            # a linked ``db1`` would have the files elsewhere called ok.
            path = layout.checked_final(name)
        except UsageError as exc:
            checks.append(Check(name, False, str(exc)))
            continue
        check = _check_file(path, name, entry, progress, checker_for)
        checks.append(replace(check, integrity=entry_integrity(entry)))
    return checks


def _verify_chain(
    layout: storage.Layout,
    manifest: dict[str, Any],
    progress: Callable[[str, int], None] | None,
    checker_for: CheckerFor | None = None,
) -> list[Check]:
    """Each backup folder of the chain, in chain order: there, a real folder, holding its
    own manifest of that backup, not being written to; then every file the chain's
    manifest lists in it, against the size and checksums recorded there."""
    chain = manifest.get("chain")
    if not isinstance(chain, list) or not chain:
        return [Check("chain", False, "the chain's manifest lists no backups")]
    files = [e for e in manifest["files"]]
    checks: list[Check] = []
    seen: set[str] = set()
    for i, item in enumerate(chain):
        folder = item.get("folder") if isinstance(item, dict) else None
        if not isinstance(folder, str) or not FOLDER_RE.match(folder) or "/" in folder:
            checks.append(Check(f"chain[{i}]", False, "manifest entry without a backup folder"))
            continue
        seen.add(folder)
        assert isinstance(item, dict)
        problem = _folder_problem(layout.root / folder, item.get("backup_id"))
        if problem is not None:
            checks.append(Check(folder, False, problem))
            continue
        sub = storage.Layout(layout.root / folder)
        lock = FolderLock(sub.lock, str(sub.root))
        lock.try_shared()
        try:
            mine = [e for e in files if _folder_of(e) == folder]
            if not mine:
                checks.append(Check(folder, False, "the chain's manifest lists no file in it"))
            checks += _check_entries(layout, mine, progress, folder, checker_for)
        finally:
            lock.release()
    strays = [e for e in files if _folder_of(e) not in seen]
    for entry in strays:
        name = entry.get("name") if isinstance(entry, dict) else None
        checks.append(Check(str(name), False, "not in any backup folder of the chain"))
    # A backup folder the chain does not list (added, or one renamed): the restore steps'
    # globs (``*-incremental-*/...``) would replay its files with the chain's.
    try:
        names = sorted(os.listdir(layout.root))
    except OSError as exc:
        return [*checks, Check(".", False, f"unreadable: {exc.strerror or exc}")]
    for name in names:
        if FOLDER_RE.match(name) and name not in seen:
            checks.append(Check(name, False, "not a backup folder of the chain: move it out"))
    return checks


def _folder_of(entry: object) -> str | None:
    name = entry.get("name") if isinstance(entry, dict) else None
    return name.split("/", 1)[0] if isinstance(name, str) and "/" in name else None


def _folder_problem(path: Path, backup_id: object) -> str | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return f"missing: the folder of backup {backup_id} is not there"
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"not a folder ({_kind(st.st_mode)})"
    try:
        held = load_manifest(storage.Layout(path).manifest).get("backup_id")
    except UsageError as exc:
        return str(exc)
    if held != backup_id:
        return f"its manifest is of backup {held}, the chain's says {backup_id}"
    return None


def _check_file(
    path: Path,
    name: str,
    entry: dict[str, Any],
    progress: Callable[[str, int], None] | None,
    checker_for: CheckerFor | None = None,
) -> Check:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return Check(name, False, "missing")
    except OSError as exc:
        return Check(name, False, f"unreadable: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        # Never read through a link, nor open a folder or a FIFO (which would block).
        return Check(name, False, f"not a regular file ({_kind(st.st_mode)})")
    size, want_size = st.st_size, entry.get("size")
    if size != want_size:
        said = want_size if isinstance(want_size, int) else "no size"
        return Check(name, False, f"size {size}, manifest says {said}")
    want_crc = crc64_from_json(entry.get("crc64"))
    if want_crc is None and entry.get("crc64") is not None:
        return Check(name, False, "the manifest's crc64 is neither 16 hex digits nor a number")
    want_sha = entry.get("sha256")
    want_md5 = entry.get("md5")
    if not any(isinstance(w, (int, str)) for w in (want_crc, want_sha, want_md5)):
        return Check(name, False, "the manifest records no checksum for this file")
    checker = checker_for(name, size) if checker_for is not None else None
    try:
        digests = hash_file(
            path,
            sha256=bool(want_sha),
            md5=bool(want_md5),
            progress=None if progress is None else lambda n: progress(name, n),
            content=checker,
        )
    except OSError as exc:
        return Check(name, False, f"unreadable: {exc.strerror or exc}")
    verdict = checker.finish() if checker is not None else None
    crc, sha, md5 = digests.crc64, digests.sha256, digests.md5
    changed = "mismatch: the file changed since it was downloaded"
    if want_crc is not None and crc.value != want_crc:
        return Check(name, False, f"CRC-64 {changed}")
    if sha is not None and sha.hexdigest() != want_sha:
        return Check(name, False, f"SHA-256 {changed}")
    if md5 is not None and md5.hexdigest() != want_md5:
        return Check(name, False, f"MD5 {changed}")
    if verdict is not None and verdict.damaged:
        # Its checksums match what was recorded: the bytes are the ones downloaded, and
        # those are damaged (a verdict recorded before this check existed said nothing).
        return Check(name, False, f"content damaged: {verdict.detail()}", content=verdict)
    # What was compared, not a second "ok" after the line's own.
    sums = [n for n, d in (("CRC-64", want_crc), ("SHA-256", sha), ("MD5", md5)) if d is not None]
    parts = ["size", *sums]
    said = f"{', '.join(parts[:-1])} and {parts[-1]} match"
    if verdict is not None and verdict.ok:
        said += f"; {verdict.checked}"
    return Check(name, True, said, content=verdict)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "a special file"
