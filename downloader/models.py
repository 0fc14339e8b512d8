"""Value objects shared by the API client, the resolver and the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One entry of the backup-files answer (``files[]``)."""

    name: str
    size_kb: int
    download_link: str
    link_expired_time: datetime | None  # None: unknown or unparsable; refresh on first 403
    database_name: str | None = None


@dataclass(frozen=True, slots=True)
class FileListing:
    """The whole backup-files answer, plus when the server said it was made."""

    files: tuple[BackupFile, ...]
    bucket: str
    server_date: datetime | None = None  # from the HTTP Date header, for clock-skew correction
    warnings: tuple[str, ...] = ()  # e.g. an unparsable link_expired_time


@dataclass(frozen=True, slots=True)
class Backup:
    """One entry of the backups list (``backups[]``)."""

    id: str
    name: str
    instance_id: str
    type: str
    size_kb: int
    status: str
    begin_time: datetime | None
    end_time: datetime | None
    engine: str | None = None
    engine_version: str | None = None
    databases: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Instance:
    """One entry of the instances list (``instances[]`` of ListInstances)."""

    id: str
    name: str
    status: str
    type: str  # Single | Ha | Replica | Enterprise
    engine: str | None = None
    engine_version: str | None = None


def sendable_etag(etag: str) -> bool:
    """Whether ``etag`` can be sent back as ``If-Match`` as it came: no control characters
    (C0, DEL, C1). aiohttp refuses to send a header holding one (a header injection guard),
    so an ETag like that, from an answer or a journal record, is no identity to pin to."""
    return not any(c < " " or "\x7f" <= c <= "\x9f" for c in etag)
