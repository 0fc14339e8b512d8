"""The mirror's folders on disk: ``ROOT/<instance_id>/<backup_id>/``, each as ``download``
writes it, and ``ROOT/.rds-backup/`` (the sync's lock, and its ledger of each instance).

ROOT is the user's; what lies below it may have been planted. Each folder of a backup is
reached level by level from ROOT, never through a link (:func:`backup_folder`). What
retention looks at is gathered here (:func:`scan_instance`); what it decides is
:func:`downloader.sync.plan.retention`'s; the removal itself (:func:`remove_backup_folder`)
checks again, under the backup folder's own lock and through descriptors opened from ROOT,
that the folder holds what the sync finished there and nothing else, then removes it
through those descriptors.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from downloader.disk import storage, tree
from downloader.disk.journal import Journal
from downloader.disk.lock import FolderLock, lock_at
from downloader.disk.manifest import load_manifest, load_manifest_at
from downloader.errors import RdsBackupError, UntrustedFolderError
from downloader.sync.ledger import Finished, Ledger
from downloader.sync.plan import Folder, folder_name_problem, stray_entry

__all__ = [
    "adopt_complete",
    "backup_folder",
    "complete_backup",
    "remove_backup_folder",
    "scan_instance",
]

log = logging.getLogger("rds_backup.sync")


def backup_folder(root: Path, instance_id: str, backup_id: str, *, create: bool) -> Path:
    """``ROOT/<instance_id>/<backup_id>``, each level a real folder entered without
    following a link (made when missing, with ``create``). UntrustedFolderError (exit 2)
    names a level that is a link or not a folder: ``download`` would write, and retention
    look, wherever it points."""
    try:
        fd = tree.open_below(root, [instance_id, backup_id], create=create)
    except FileNotFoundError:
        pass  # not there yet (a dry run creates nothing)
    else:
        os.close(fd)
    return root / instance_id / backup_id


def complete_backup(folder: Path, backup_id: str) -> dict[str, int] | None:
    """The files (name -> bytes) of ``backup_id`` when ``folder`` holds it complete and
    untouched, so that a run can skip it without asking the API for its links: its
    manifest names that backup, and every file the manifest lists is in place with the size
    the manifest says and the size and mtime its journal record noted when it was moved
    into place.

    Anything else (no manifest, a file changed, a download running in it) is None: the
    backup's ``download`` then resumes, re-checks or refuses, as it always does.
    """
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
        layout = storage.Layout(folder)
        lock = FolderLock(layout.lock, str(folder))
        lock.try_shared()  # no download writes its files while they are looked at
        try:
            return _manifest_matches(layout, backup_id)
        finally:
            lock.release()
    except (RdsBackupError, OSError, ValueError):
        return None


def _manifest_matches(layout: storage.Layout, backup_id: str) -> dict[str, int] | None:
    manifest = load_manifest(layout.manifest)
    files = manifest_files(manifest)
    if manifest.get("backup_id") != backup_id or not files:
        return None
    journal = Journal(layout)
    for entry in manifest["files"]:
        name, size, size_kb = entry["name"], entry["size"], entry.get("size_kb")
        if not isinstance(size_kb, int):
            return None
        st = os.lstat(layout.final(name))
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return None
        record, _ = journal.load(backup_id, name, size_kb)
        stamp = record.in_place if record is not None and record.complete else None
        if stamp is None or (stamp.size, stamp.mtime_ns) != (st.st_size, st.st_mtime_ns):
            return None
    return files


def manifest_files(manifest: Mapping[str, Any]) -> dict[str, int] | None:
    """A manifest's files, name -> bytes; None when an entry is not a file's."""
    out: dict[str, int] = {}
    for entry in manifest.get("files") or ():
        if not isinstance(entry, dict):
            return None
        name, size = entry.get("name"), entry.get("size")
        if not isinstance(name, str) or not isinstance(size, int) or isinstance(size, bool):
            return None
        out[name] = size
    return out


def scan_instance(root: Path, instance_id: str, finished: Mapping[str, Finished]) -> list[Folder]:
    """Every entry directly under ``ROOT/<instance_id>/``, as :class:`Folder`: proven when
    the ledger (``finished``) says the sync finished it, timed by the API's end time the
    ledger keeps.

    Raises UntrustedFolderError when ``ROOT/<instance_id>`` is a link (or not a folder):
    retention never looks, nor removes, through it (its folders are not under ROOT)."""
    try:
        fd = tree.open_below(root, [instance_id])
    except FileNotFoundError:
        return []
    try:
        with os.scandir(fd) as it:
            names = sorted(e.name for e in it)
        folders = []
        for name in names:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            done = finished.get(name)
            when = done.end_time if done is not None else None
            folders.append(Folder(name, stat.S_ISDIR(st.st_mode), done is not None, when))
        return folders
    finally:
        os.close(fd)


def adopt_complete(root: Path, instance_id: str, ledger: Ledger) -> None:
    """Record in the ledger the folders found complete that it does not name yet (a mirror
    of an older version, a run stopped before it saved the ledger): a backup the API (or
    the older record) gave an end time, whose folder's manifest, files and journal agree
    (:func:`complete_backup`)."""
    for f in scan_instance(root, instance_id, ledger.finished):
        if f.proven or not f.real_dir or f.name not in ledger.times:
            continue
        if folder_name_problem(f.name) is not None:
            continue
        files = complete_backup(root / instance_id / f.name, f.name)
        if files is not None and ledger.note_finished(f.name, files):
            log.info("instance %s: %s holds its backup complete", instance_id, f.name)


def remove_backup_folder(root: Path, instance_id: str, backup_id: str, done: Finished) -> None:
    """Remove one backup folder the sync finished, under its own lock (a ``download`` or
    ``verify`` in it makes this fail with LockHeldError), after checking once more that its
    manifest names ``backup_id`` and lists the files the ledger recorded (``done``), and
    that it holds nothing else (UntrustedFolderError naming the first stray entry).

    Every step goes through descriptors opened from ROOT without following links: a link
    swapped in for ``ROOT/<instance_id>`` or the folder at any moment is never entered."""
    where = root / instance_id / backup_id
    parent = tree.open_below(root, [instance_id])
    fds = [parent]
    try:
        folder = tree.open_at(parent, backup_id, where)
        fds.append(folder)
        state = tree.open_at(folder, storage.STATE_DIR, where / storage.STATE_DIR)
        fds.append(state)
        fds.append(lock_at(state, str(where)))
        manifest = load_manifest_at(folder, where)
        if manifest.get("backup_id") != backup_id:
            raise UntrustedFolderError(str(where), f"its manifest no longer names {backup_id}")
        if manifest_files(manifest) != dict(done.files):
            raise UntrustedFolderError(
                str(where), "its manifest no longer lists the files the sync finished there"
            )
        stray = stray_entry(tree.inventory(folder), done.files)
        if stray is not None:
            raise UntrustedFolderError(
                str(where / stray), "is not a file of the backup (its manifest does not list it)"
            )
        tree.remove_folder(parent, backup_id, folder)
    finally:
        for fd in reversed(fds):
            os.close(fd)
