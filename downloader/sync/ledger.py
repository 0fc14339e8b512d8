"""The sync's ledger of one instance: every backup it finished under ``ROOT/<instance_id>/``,
with the backup's end time from the API and the files (name, size) its folder holds.

It lives in ``ROOT/.rds-backup/times/<instance_id>.json``, in the root's state folder,
which only the running user can enter (0700, checked at each start). Retention counts and
removes only folders named here: what lies under ``ROOT/<instance_id>/`` is not proof of
anything (anyone able to write there can make a folder with a manifest of any date), and
retention orders by the API's end time kept here, never by a manifest's ``created``.

A version-1 file (end times only, of every folder present) is read for its times: they came
from the API. Its folders are not taken as finished by this tool; a folder is added to the
ledger when a run finds the backup complete in it (its manifest, files and journal agree).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from downloader.api.parse import parse_time
from downloader.disk import storage
from downloader.errors import MalformedJsonError, UntrustedFolderError
from downloader.text.safejson import load_json

__all__ = ["Finished", "Ledger"]

log = logging.getLogger("rds_backup.sync")

TIMES_DIR = "times"
VERSION = 2
MAX_LEDGER = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Finished:
    """A backup this tool finished in its folder: the API's end time, and its files."""

    end_time: datetime
    files: Mapping[str, int]  # name -> bytes


class Ledger:
    """One instance's ledger (see the module's docstring). ``times`` holds every end time
    known, from the API or an older file; ``finished`` the backups the tool finished."""

    def __init__(self, state_dir: Path, instance_id: str) -> None:
        self.folder = state_dir / TIMES_DIR
        self.path = self.folder / f"{instance_id}.json"
        self.times: dict[str, datetime] = {}
        self.finished: dict[str, Finished] = {}

    def load(self) -> None:
        """Read the file; a missing, unreadable or malformed one is an empty ledger (with a
        warning): retention then removes nothing it has not seen finished again."""
        try:
            raw = storage.read_private(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return
        except (OSError, UntrustedFolderError) as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return
        if len(raw) > MAX_LEDGER:
            log.warning("ignoring %s: larger than %d bytes", self.path, MAX_LEDGER)
            return
        try:
            obj = load_json(raw, str(self.path))
        except MalformedJsonError as exc:
            log.warning("ignoring %s: %s", self.path, exc)
            return
        if not isinstance(obj, dict):
            return
        backups = obj.get("backups")
        for backup_id, text in backups.items() if isinstance(backups, dict) else ():
            when = parse_time(text) if isinstance(text, str) else None
            if when is not None:
                self.times[backup_id] = when
        finished = obj.get("finished") if obj.get("version") == VERSION else None
        for backup_id, entry in finished.items() if isinstance(finished, dict) else ():
            done = _finished(entry)
            if done is not None:
                self.finished[backup_id] = done

    def note_time(self, backup_id: str, end_time: datetime) -> None:
        """The API's end time of a backup (it wins over a recorded one)."""
        self.times[backup_id] = end_time

    def note_finished(self, backup_id: str, files: Mapping[str, int]) -> bool:
        """Record that this run found ``backup_id`` complete in its folder, holding
        ``files``; False (nothing recorded) when its end time is not known."""
        when = self.times.get(backup_id)
        if when is None:
            return False
        self.finished[backup_id] = Finished(when, MappingProxyType(dict(files)))
        return True

    def forget(self, backup_id: str) -> None:
        self.finished.pop(backup_id, None)

    def save(self, present: Collection[str]) -> None:
        """Write the ledger of the backups in ``present`` (the real folders still there)."""
        data = {
            "version": VERSION,
            "backups": {
                bid: _iso(when) for bid, when in sorted(self.times.items()) if bid in present
            },
            "finished": {
                bid: {"end_time": _iso(done.end_time), "files": dict(sorted(done.files.items()))}
                for bid, done in sorted(self.finished.items())
                if bid in present
            },
        }
        storage.private_dir(self.folder)
        storage.atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode())


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _finished(entry: object) -> Finished | None:
    if not isinstance(entry, dict):
        return None
    text, files = entry.get("end_time"), entry.get("files")
    when = parse_time(text) if isinstance(text, str) else None
    if when is None or not isinstance(files, dict):
        return None
    sizes: dict[str, int] = {}
    for name, size in files.items():
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        sizes[name] = size
    return Finished(when, MappingProxyType(sizes))
