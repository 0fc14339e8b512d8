"""The journal's records on disk, under one output folder's state folder.

Written atomically (temporary name, fsync, rename); read back validated (a record that does
not parse, or disagrees with its part file, is not trusted: the file restarts).
"""

from __future__ import annotations

import json
import os

from downloader.journal.records import FileRecord, record_from_json
from downloader.storage import Layout, atomic_write


class Journal:
    """Reads and writes the records under one output folder's state folder."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def load(self, backup_id: str, name: str, size_kb: int) -> tuple[FileRecord | None, str | None]:
        """The record for this file, or (None, why it was not usable). No record: (None, None)."""
        path = self.layout.record(name)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"journal unreadable ({exc.strerror})"
        try:
            rec = record_from_json(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            return None, f"journal unreadable ({exc})"
        if (rec.backup_id, rec.name, rec.size_kb) != (backup_id, name, size_kb):
            return None, "journal belongs to another backup or file version"
        if not rec.complete and rec.done:
            part = self.layout.part(name)
            try:
                on_disk = part.stat().st_size
            except FileNotFoundError:
                if self.moved_into_place(rec):
                    return rec, None
                return None, "journal without its part file"
            if on_disk < max(e for _, e in rec.done):
                return None, "part file shorter than the journal says"
        return rec, None

    def moved_into_place(self, rec: FileRecord) -> bool:
        """Whether a run may have stopped between moving this file into place and recording
        it complete: the record names every byte, the part file is gone and a file of the
        right size has the final name. The caller checks it against the record's CRC-64."""
        if rec.complete or rec.size is None or self.layout.part(rec.name).exists():
            return False
        if rec.done != ([(0, rec.size)] if rec.size else []):
            return False
        final = self.layout.final(rec.name)
        try:
            return final.is_file() and final.stat().st_size == rec.size
        except OSError:
            return False

    def save(self, rec: FileRecord) -> None:
        data = json.dumps(rec.to_json(), separators=(",", ":")).encode()
        atomic_write(self.layout.record(rec.name), data)

    def remove(self, name: str) -> None:
        for path in (self.layout.record(name), self.layout.part(name)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def completed(self) -> list[FileRecord]:
        """Every record marked complete (any backup), for the manifest and for skipping."""
        out = []
        try:
            paths = sorted(self.layout.journal.glob("*.json"))
        except OSError:
            return []
        for path in paths:
            try:
                rec = record_from_json(json.loads(path.read_bytes()))
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            if rec.complete:
                out.append(rec)
        return out
