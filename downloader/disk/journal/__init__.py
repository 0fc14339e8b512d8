"""The resume journal: versioned per-file records (:mod:`.records`, pure), their files
(:mod:`.store`) and the writer that keeps them truthful during a run (:mod:`.writer`)."""

from downloader.disk.journal.records import (
    FLUSH_BYTES,
    FLUSH_SECONDS,
    VERSION,
    FileRecord,
    JournalError,
    record_from_json,
)
from downloader.disk.journal.store import Journal

__all__ = [
    "FLUSH_BYTES",
    "FLUSH_SECONDS",
    "VERSION",
    "FileRecord",
    "Journal",
    "JournalError",
    "record_from_json",
]
