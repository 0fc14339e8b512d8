"""The mirror's folders on disk: ``ROOT/<instance_id>/<backup_id>/``, each as ``download``
writes it, and ``ROOT/.rds-backup/`` (the sync's lock, and its record of backup times per instance).

What retention looks at is gathered here (:func:`scan_instance`); what it decides is
:func:`downloader.sync.plan.retention`'s; the removal itself (:func:`remove_backup_folder`)
checks again, under the backup folder's own lock, that the folder is what it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path

from downloader.api.parse import parse_time
from downloader.disk import storage
from downloader.disk.journal import Journal
from downloader.disk.lock import FolderLock
from downloader.disk.manifest import load_manifest
from downloader.errors import (
    LockHeldError,
    MalformedJsonError,
    RdsBackupError,
    UntrustedFolderError,
    UsageError,
)
from downloader.sync.plan import Folder, folder_name_problem
from downloader.text.safejson import load_json

__all__ = [
    "BackupTimes",
    "backup_complete",
    "manifest_backup",
    "remove_backup_folder",
    "scan_instance",
]

log = logging.getLogger("rds_backup.sync")

TIMES_DIR = "times"
MAX_INDEX = 64 * 1024 * 1024


def manifest_backup(folder: Path) -> tuple[str | None, datetime | None]:
    """The backup id the folder's manifest names, and when the manifest was written; (None,
    None) without a readable manifest of the tool's (a link in its place is not read)."""
    try:
        manifest = load_manifest(storage.Layout(folder).manifest)
    except (UsageError, OSError):
        return None, None
    backup_id = manifest.get("backup_id")
    created = manifest.get("created")
    when = parse_time(created) if isinstance(created, str) else None
    return (backup_id if isinstance(backup_id, str) else None), when


def backup_complete(folder: Path, backup_id: str) -> bool:
    """Whether ``folder`` holds ``backup_id`` complete and untouched, so that a run can skip
    it without asking the API for its links: its manifest names that backup, and every file
    the manifest lists is in place with the size the manifest says and the size and mtime
    its journal record noted when it was moved into place.

    Anything else (no manifest, a file changed, a download running in it) is False: the
    backup's ``download`` then resumes, re-checks or refuses, as it always does.
    """
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        layout = storage.Layout(folder)
        lock = FolderLock(layout.lock, str(folder))
        lock.try_shared()  # no download writes its files while they are looked at
        try:
            return _manifest_matches(layout, backup_id)
        finally:
            lock.release()
    except (RdsBackupError, OSError, ValueError):
        return False


def _manifest_matches(layout: storage.Layout, backup_id: str) -> bool:
    manifest = load_manifest(layout.manifest)
    entries = manifest["files"]
    if manifest.get("backup_id") != backup_id or not entries:
        return False
    journal = Journal(layout)
    for entry in entries:
        if not isinstance(entry, dict):
            return False
        name, size, size_kb = entry.get("name"), entry.get("size"), entry.get("size_kb")
        if not (isinstance(name, str) and isinstance(size, int) and isinstance(size_kb, int)):
            return False
        st = os.lstat(layout.final(name))
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            return False
        record, _ = journal.load(backup_id, name, size_kb)
        stamp = record.in_place if record is not None and record.complete else None
        if stamp is None or (stamp.size, stamp.mtime_ns) != (st.st_size, st.st_mtime_ns):
            return False
    return True


def scan_instance(instance_dir: Path, known_times: Mapping[str, datetime]) -> list[Folder]:
    """Every entry directly under ``ROOT/<instance_id>/``, as :class:`Folder`. A folder's
    time is its backup's end time when known (``known_times``: from the API, or recorded by
    an earlier sync), else when its manifest was written.

    Raises UntrustedFolderError when ``ROOT/<instance_id>`` is a link (or not a folder):
    retention never looks, nor removes, through it (its folders are not under ROOT)."""
    try:
        st = os.lstat(instance_dir)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        raise UntrustedFolderError(str(instance_dir), "is a link or not a folder")
    entries = list(os.scandir(instance_dir))
    folders = []
    for entry in sorted(entries, key=lambda e: e.name):
        real_dir = entry.is_dir(follow_symlinks=False)
        manifest_id, created = (None, None)
        if real_dir and folder_name_problem(entry.name) is None:
            manifest_id, created = manifest_backup(Path(entry.path))
        when = known_times.get(entry.name) or created
        folders.append(Folder(entry.name, real_dir, manifest_id, when))
    return folders


async def remove_backup_folder(folder: Path, backup_id: str) -> None:
    """Remove one complete backup folder, under its own lock (a ``download`` or ``verify``
    in it makes this fail with LockHeldError), after checking once more that it is a real
    folder whose manifest names ``backup_id``, in a real ``ROOT/<instance_id>`` folder.
    Links inside are removed, never followed."""
    if not stat.S_ISDIR(os.lstat(folder.parent).st_mode):
        raise UntrustedFolderError(str(folder.parent), "is a link or not a folder")
    if not stat.S_ISDIR(os.lstat(folder).st_mode):
        raise UntrustedFolderError(str(folder), "is not a folder")
    layout = storage.Layout(folder)
    if not stat.S_ISDIR(os.lstat(layout.state).st_mode):
        raise UntrustedFolderError(str(layout.state), "is not a folder")
    lock = FolderLock(layout.lock, str(folder))
    await lock.acquire(wait=False)
    try:
        if manifest_backup(folder)[0] != backup_id:
            raise LockHeldError(str(folder), None)  # changed under us: leave it alone
        # rmtree works through folder descriptors here (it never follows a link inside).
        shutil.rmtree(folder)
    finally:
        lock.release()


class BackupTimes:
    """The sync's record of one instance's mirrored backups' end times, in
    ``ROOT/.rds-backup/times/<instance_id>.json``.

    Retention orders folders by their backup's end time; once the API no longer lists an
    old backup (RDS keeps them for days), this record still knows it. One file per instance:
    only the run that handles the instance writes it, whichever shard that is.
    """

    def __init__(self, state_dir: Path, instance_id: str) -> None:
        self.folder = state_dir / TIMES_DIR
        self.path = self.folder / f"{instance_id}.json"
        self.times: dict[str, datetime] = {}

    def load(self) -> None:
        try:
            raw = storage.read_private(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except (OSError, UntrustedFolderError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return
        if len(raw) > MAX_INDEX:
            log.warning("ignoring %s: larger than %d bytes", self.path, MAX_INDEX)
            return
        try:
            obj = load_json(raw, str(self.path))
        except MalformedJsonError as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return
        backups = obj.get("backups") if isinstance(obj, dict) else None
        for backup_id, text in backups.items() if isinstance(backups, dict) else ():
            when = parse_time(text) if isinstance(text, str) else None
            if when is not None:
                self.times[backup_id] = when

    def note(self, backup_id: str, end_time: datetime) -> None:
        self.times[backup_id] = end_time

    def save(self, present: Collection[str]) -> None:
        """Write the times of the backups in ``present`` (the folders still there)."""
        data = {
            "version": 1,
            "backups": {
                bid: when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                for bid, when in sorted(self.times.items())
                if bid in present
            },
        }
        storage.private_dir(self.folder)
        storage.atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode())
