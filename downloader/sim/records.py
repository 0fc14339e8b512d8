"""The simulator's backups and files, as ListBackups and ListBackupFiles show them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["KIB", "MIB", "SimBackup", "SimFile"]

KIB = 1024
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SimFile:
    """One backup file. ``size`` is in bytes; the API reports ``ceil(size / 1024)`` KB."""

    name: str
    size: int
    database_name: str | None = None
    multipart_etag: bool = False
    shape: str | None = None  # "xbstream" or "tar.gz": real backup content (sim.shapes)

    @property
    def size_kb(self) -> int:
        # The real rounding is undocumented (facts §7.2); ceil is the cautious guess.
        return math.ceil(self.size / KIB)


@dataclass(slots=True)
class SimBackup:
    """One backup as ListBackups shows it, with its files."""

    id: str
    instance_id: str
    name: str
    type: str  # auto | manual | incremental | fragment
    status: str  # COMPLETED | BUILDING | FAILED
    engine: str  # MySQL | PostgreSQL | SQLServer
    engine_version: str
    begin_time: datetime
    end_time: datetime
    files: list[SimFile] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Total bytes of all files."""
        return sum(f.size for f in self.files)

    @property
    def size_kb(self) -> int:
        return math.ceil(self.size / KIB)

    def file(self, name: str) -> SimFile:
        for f in self.files:
            if f.name == name:
                return f
        raise KeyError(name)
