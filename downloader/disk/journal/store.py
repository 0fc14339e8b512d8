"""The journal's records on disk, under one output folder's state folder.

Written atomically (temporary name, fsync, rename); read back validated (a record that does
not parse, or disagrees with its part file, is not trusted: the file restarts).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence

from downloader.disk.journal.records import FileRecord, JournalError, record_from_json
from downloader.disk.storage import Layout, atomic_write, fsync_dir, lstat_private, read_private
from downloader.errors import MalformedJsonError
from downloader.ranges import kb_size_matches
from downloader.text.safejson import load_json


def _parse(raw: bytes) -> FileRecord:
    """A record from its file's bytes. Raises MalformedJsonError or JournalError (a
    ValueError) when it must not be trusted."""
    try:
        return record_from_json(load_json(raw, "journal record"))
    except RecursionError as exc:
        # Nested just under the parser's limit, the validation's message (a repr) can still
        # overflow the stack of a deep caller.
        raise JournalError("nested too deeply") from exc


class Journal:
    """Reads and writes the records under one output folder's state folder."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def load(self, backup_id: str, name: str, size_kb: int) -> tuple[FileRecord | None, str | None]:
        """The record for this file, or (None, why it was not usable). No record: (None, None)."""
        path = self.layout.record(name)
        try:
            raw = read_private(path)  # a link there is refused (UntrustedFolderError)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"journal unreadable ({exc.strerror})"
        try:
            rec = _parse(raw)
        except MalformedJsonError as exc:
            return None, f"journal unreadable (not valid JSON: {exc.problem})"
        except ValueError as exc:
            return None, f"journal unreadable ({exc})"
        if (rec.backup_id, rec.name, rec.size_kb) != (backup_id, name, size_kb):
            return None, "journal belongs to another backup or file version"
        # A copied or hand-edited folder's record is not the listing's word: a size no
        # rounding of the listed KB allows (2**63, say) would be planned, chunk by chunk.
        if rec.size is not None and not kb_size_matches(rec.size, size_kb):
            return None, f"journal says {rec.size} bytes, which the listed {size_kb} KB rule out"
        if rec.complete:
            return rec, None
        part = self.layout.part(name)
        try:
            on_disk: int | None = lstat_private(part).st_size
        except FileNotFoundError:
            on_disk = None
        if rec.done:
            if on_disk is None:
                if self.moved_into_place(rec):
                    return rec, None
                return None, "journal without its part file"
            if on_disk < max(e for _, e in rec.done):
                return None, "part file shorter than the journal says"
        # Longer than the whole file: not the part file this record was written beside
        # (preallocation makes it exactly as long, writes never longer).
        if on_disk is not None and rec.size is not None and on_disk > rec.size:
            return None, f"part file of {on_disk} bytes, longer than the journal's {rec.size}"
        return rec, None

    def moved_into_place(self, rec: FileRecord) -> bool:
        """Whether a run may have stopped between moving this file into place and recording
        it complete: the record names every byte, the part file is gone and a file of the
        right size has the final name. The caller checks it against the record's CRC-64."""
        if rec.complete or rec.size is None or os.path.lexists(self.layout.part(rec.name)):
            return False
        if rec.done != ([(0, rec.size)] if rec.size else []):
            return False
        final = self.layout.final(rec.name)
        try:
            # The file itself, not what a link there points to: a link (even to an exact
            # copy) is not the file this run moved into place.
            st = os.lstat(final)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == rec.size

    def save(self, rec: FileRecord) -> None:
        self.save_many([rec])

    def save_many(self, recs: Sequence[FileRecord]) -> None:
        """Write each record atomically (its own fsync and rename), then fsync the journal
        folder once for all of them: one batch costs one folder fsync, not one per file."""
        for rec in recs:
            data = json.dumps(rec.to_json(), separators=(",", ":")).encode()
            atomic_write(self.layout.record(rec.name), data, sync_folder=False)
        if recs:
            fsync_dir(self.layout.journal)

    def remove(self, name: str) -> None:
        for path in (self.layout.record(name), self.layout.part(name)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def backup_ids(self) -> set[str]:
        """The backup ids of every readable record, finished or not: which backups this
        folder holds (records that cannot be read name none)."""
        ids = set()
        try:
            paths = sorted(self.layout.journal.glob("*.json"))
        except OSError:
            return set()
        for path in paths:
            try:
                ids.add(_parse(read_private(path)).backup_id)
            except (OSError, ValueError, MalformedJsonError):
                continue
        return ids

    def completed(self) -> list[FileRecord]:
        """Every record marked complete (any backup), for the manifest and for skipping."""
        out = []
        try:
            paths = sorted(self.layout.journal.glob("*.json"))
        except OSError:
            return []
        for path in paths:
            try:
                rec = _parse(read_private(path))
            except (OSError, ValueError, MalformedJsonError):
                continue
            if rec.complete:
                out.append(rec)
        return out
