"""What a run reports: one outcome per file and the run's counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from downloader.errors import RdsBackupError, StorageError, VerificationError

# How well a file's bytes were verified. SERVER_CHECKSUM: compared with a checksum the object
# store computed (an MD5 ETag, or the CRC-64 of an answer that was the whole object).
# SIZE_ONLY: its size and identity (ETag on every range) were checked, but nothing the store
# computed from the bytes (multipart ETags, ranged answers): corruption in transit that keeps
# the size would go unseen.
SERVER_CHECKSUM = "server-checksum"
SIZE_ONLY = "size-only"
INTEGRITY_LEVELS = (SERVER_CHECKSUM, SIZE_ONLY)


# What a file's own structure said of it (:mod:`downloader.content`). OK: every checksum and
# rule its format carries held (``ContentVerdict.checked`` says which). DAMAGED: one did not
# (``damage`` says where). NOT_CHECKED: a format the checker does not know.
CONTENT_OK = "ok"
CONTENT_DAMAGED = "damaged"
CONTENT_NOT_CHECKED = "not-checked"
CONTENT_STATUSES = (CONTENT_OK, CONTENT_DAMAGED, CONTENT_NOT_CHECKED)


@dataclass(frozen=True, slots=True)
class Damage:
    """Where a file's content failed its own check: bytes ``[start, end)`` of the file
    (the chunk, event or gzip member that failed, or the header that did not parse),
    the member inside the backup they belong to, and what failed. ``local``: a checksum
    over exactly these bytes failed, so fetching them again can tell a transit error from
    a damaged source."""

    start: int
    end: int
    what: str
    member: str | None = None
    local: bool = False

    def describe(self) -> str:
        inside = f" in member {self.member!r}" if self.member else ""
        return f"{self.what}{inside} at bytes {self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class ContentVerdict:
    """One file's content verdict: its status, the format it was read as, what was
    checked (``"xbstream: 3 members, 12 chunks, CRC-32 of every chunk"``), where it is
    damaged, and how many byte ranges were fetched again and replaced (healed)."""

    status: str
    format: str | None = None
    checked: str = ""
    damage: tuple[Damage, ...] = ()
    healed: int = 0

    @property
    def ok(self) -> bool:
        return self.status == CONTENT_OK

    @property
    def damaged(self) -> bool:
        return self.status == CONTENT_DAMAGED

    def detail(self) -> str:
        """One line: what was checked, or where it is damaged."""
        if self.damaged and self.damage:
            more = f" (and {len(self.damage) - 1} more)" if len(self.damage) > 1 else ""
            return f"{self.format or 'content'}: {self.damage[0].describe()}{more}"
        healed = f", {self.healed} range(s) re-fetched and healed" if self.healed else ""
        return f"{self.checked}{healed}" if self.checked else self.status

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "format": self.format}
        if self.checked:
            out["checked"] = self.checked
        if self.damage:
            out["damage"] = [
                {"start": d.start, "end": d.end, "member": d.member, "what": d.what}
                for d in self.damage
            ]
        if self.healed:
            out["healed"] = self.healed
        return out

    @classmethod
    def from_json(cls, obj: object) -> ContentVerdict | None:
        """A recorded verdict, or None when ``obj`` is not one (never trusted blindly: a
        record or manifest may have been edited)."""
        if not isinstance(obj, dict) or obj.get("status") not in CONTENT_STATUSES:
            return None
        fmt, checked, healed = obj.get("format"), obj.get("checked", ""), obj.get("healed", 0)
        if not (fmt is None or isinstance(fmt, str)) or not isinstance(checked, str):
            return None
        if not isinstance(healed, int) or isinstance(healed, bool) or healed < 0:
            return None
        damage = []
        for d in obj.get("damage") or []:
            if not isinstance(d, dict):
                return None
            start, end, what, member = d.get("start"), d.get("end"), d.get("what"), d.get("member")
            if not (
                isinstance(start, int)
                and isinstance(end, int)
                and isinstance(what, str)
                and (member is None or isinstance(member, str))
            ):
                return None
            damage.append(Damage(start, end, what, member))
        return cls(obj["status"], fmt, checked, tuple(damage), healed)


NOT_CHECKED = ContentVerdict(CONTENT_NOT_CHECKED)


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
    integrity: str | None = None  # SERVER_CHECKSUM or SIZE_ONLY once it verified
    content: ContentVerdict | None = None  # its own structure's verdict, once read whole
    seconds: float = 0.0
    fetched: int = 0
    detail: str | None = None
    error: RdsBackupError | None = None


@dataclass(slots=True)
class RunStats:
    retries: int = 0
    restarts: int = 0
    bytes_fetched: int = 0


def failed_exit_code(failed: Sequence[FileOutcome]) -> int:
    """A run's exit code from its failed files: 0 when none failed, 6 when any could not be
    written, 4 when every failure is a verification failure, else 1."""
    if not failed:
        return 0
    # Any file the folder could not take: exit 1 would promise that running again
    # fetches the rest, which cannot happen until the disk (or its permissions) is fixed.
    if any(isinstance(o.error, StorageError) for o in failed):
        return StorageError.exit_code
    if all(isinstance(o.error, VerificationError) for o in failed):
        return VerificationError.exit_code
    return 1
