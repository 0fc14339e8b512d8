"""What a run reports: one outcome per file and the run's counters."""

from __future__ import annotations

from dataclasses import dataclass

from downloader.errors import RdsBackupError


@dataclass(slots=True)
class FileOutcome:
    name: str
    database_name: str | None
    ok: bool
    skipped: bool = False
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    crc64: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    seconds: float = 0.0
    fetched: int = 0
    detail: str | None = None
    error: RdsBackupError | None = None


@dataclass(slots=True)
class RunStats:
    retries: int = 0
    restarts: int = 0
    bytes_fetched: int = 0
