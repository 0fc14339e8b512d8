"""What a ``sync`` run decides, as pure functions: which instances are this machine's shard,
which backups of an instance to mirror, which folders retention removes, and the exit code.

Nothing here touches the network or the disk; :mod:`downloader.sync.run` does the I/O
around these decisions, and :mod:`downloader.sync.folders` gathers what they look at.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from downloader.disk.storage import MANIFEST_NAME, NAME_MAX, STATE_DIR
from downloader.disk.tree import Entry
from downloader.errors import UsageError
from downloader.models import Backup
from downloader.text.fmt import unsafe_char

__all__ = [
    "Folder",
    "Shard",
    "folder_name_problem",
    "in_shard",
    "instance_active",
    "parse_shard",
    "pick_targets",
    "retention",
    "run_exit_code",
    "shard_of",
    "skip_reason",
    "stray_entry",
]

_SHARD_RE = re.compile(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", re.ASCII)


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` of ``count`` (1 <= index <= count), as ``--shard K/N`` gives it."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"shard {self.index}/{self.count}: K must be within 1..N")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/5"`` -> ``Shard(2, 5)``; anything else is a one-line usage error."""
    m = _SHARD_RE.fullmatch(text)
    if m is None:
        raise UsageError(f"expected K/N, such as 2/5 (1 <= K <= N), not {text!r}")
    index, count = int(m[1]), int(m[2])
    if not 1 <= index <= count:
        raise UsageError(f"{text.strip()}: K must be within 1..N (1 <= K <= N)")
    return Shard(index, count)


def shard_of(instance_id: str, count: int) -> int:
    """The shard (1..count) an instance belongs to: ``crc32(id) % count + 1``.

    CRC-32 of the id's UTF-8 bytes is the same on every machine and every Python (unlike
    ``hash()``), so N machines split a fleet with no coordination, each instance exactly once.
    """
    return zlib.crc32(instance_id.encode("utf-8", "surrogatepass")) % count + 1


def in_shard(instance_id: str, shard: Shard | None) -> bool:
    """Whether ``instance_id`` is this machine's (always, without ``--shard``)."""
    return shard is None or shard_of(instance_id, shard.count) == shard.index


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` (an instance or backup id, from the command line or the API) cannot be
    one folder directly under its parent, or None when it can.

    Refused: empty, ``.``/``..``, a slash or backslash, a leading dot (it would hide, or be
    the state folder ``.rds-backup``), a control or bidirectional character, more than
    NAME_MAX bytes.
    """
    if not name or not name.strip():
        return "it is empty"
    if "/" in name or "\\" in name:
        return "it holds a slash"
    if name.startswith("."):
        return "it starts with a dot"
    bad = unsafe_char(name)
    if bad is not None:
        return f"it holds the character U+{ord(bad):04X}"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return f"it is longer than {NAME_MAX} bytes"
    return None


def pick_targets(backups: Iterable[Backup], types: Sequence[str]) -> list[Backup]:
    """The backups to mirror: for each type in ``types`` (in that order), the COMPLETED one
    with the newest end time (ties: newest begin time, then id). A type with none adds none.

    The list's order and its status filter are not to be trusted (the API honours the
    filter for SQL Server only), so both are done here.
    """
    done = [b for b in backups if b.status.upper() == "COMPLETED" and b.end_time is not None]
    out: list[Backup] = []
    for kind in dict.fromkeys(types):
        of_kind = [b for b in done if b.type == kind]
        if of_kind:
            out.append(max(of_kind, key=_newness))
    return out


def _newness(b: Backup) -> tuple[datetime, datetime, str]:
    assert b.end_time is not None
    return (b.end_time, b.begin_time or b.end_time, b.id)


@dataclass(frozen=True, slots=True)
class Folder:
    """One entry directly under ``ROOT/<instance_id>/``, as retention needs to see it.

    ``real_dir``: a folder, not a link or a file. ``proven``: the sync's ledger (kept in
    ROOT's private state folder) records finishing this backup here; a manifest in the
    folder proves nothing, anyone able to write there can make one. ``when``: the backup's
    end time from the API, as the ledger keeps it (never a manifest's date); None when not
    known.
    """

    name: str
    real_dir: bool
    proven: bool
    when: datetime | None

    @property
    def complete(self) -> bool:
        """A finished backup of the tool's: the sync's ledger says it finished it."""
        return (
            self.real_dir
            and self.proven
            and self.when is not None
            and folder_name_problem(self.name) is None
        )


def retention(
    folders: Iterable[Folder],
    *,
    keep: int | None,
    protected: Collection[str] = (),
    instance_failed: bool = False,
) -> list[str]:
    """The folder names to remove so that the newest ``keep`` complete folders remain.

    Only complete folders (:attr:`Folder.complete`) are ever named, newest first by
    ``(when, name)``; never one in ``protected`` (this run's targets, and backups that failed
    in it); nothing at all when ``keep`` is None (keep everything) or the instance failed in
    this run. Returned oldest first.
    """
    if keep is None or instance_failed:
        return []
    if keep < 1:
        raise UsageError("--keep must be at least 1")
    complete = sorted(
        (f for f in folders if f.complete),
        key=lambda f: (f.when, f.name),
        reverse=True,
    )
    beyond = [f.name for f in complete[keep:] if f.name not in protected]
    return beyond[::-1]


# What a backup folder may hold besides its files: the manifest, and in the state folder
# the lock, the journal's records and part files (a download's leftovers, our own).
_STATE_FOLDERS = (f"{STATE_DIR}/parts", f"{STATE_DIR}/journal")


def stray_entry(entries: Mapping[str, Entry], files: Mapping[str, int]) -> str | None:
    """The first entry (by path relative to a backup folder) that is not the backup's: not
    a file ``files`` lists with its size, nor a folder on the way to one, nor the manifest
    or the tool's state; None when there is none. Retention never removes a folder holding
    a stray entry (hand-made notes, a link, a file grown or shrunk since)."""
    needed = {STATE_DIR, *_STATE_FOLDERS}
    for name in files:
        parts = name.split("/")
        needed.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for rel, entry in sorted(entries.items()):
        if entry.kind == "dir" and rel in needed:
            continue
        if entry.kind != "file":
            return rel
        if rel in (MANIFEST_NAME, f"{STATE_DIR}/lock") or files.get(rel) == entry.size:
            continue
        folder, _, _ = rel.rpartition("/")
        if folder in _STATE_FOLDERS:
            continue
        return rel
    return None


def instance_active(status: str | None) -> bool:
    """Whether the instances list calls it ACTIVE; unknown (named with --instance-id)
    counts as ACTIVE: its errors are failures."""
    return status is None or status.upper() == "ACTIVE"


def skip_reason(listed: Sequence[Backup], status: str | None) -> str | None:
    """Why an instance with nothing to mirror is skipped rather than failed, or None.

    Pure. Nothing to mirror is no failure when the instance has no backup yet (none
    listed, or only its first still BUILDING) or is not ACTIVE (BUILD, FROZEN, SHUTDOWN
    ...): its status says why. An ACTIVE instance whose backups all FAILED, or that has
    none of the kinds asked for, is a failure."""
    if all(b.status.upper() == "BUILDING" for b in listed):
        return "no backup yet" + ("" if instance_active(status) else f" (status {status})")
    if not instance_active(status):
        return f"status {status}, no COMPLETED backup to mirror"
    return None


def run_exit_code(*, succeeded: int, failed: int, auth_failed: int, untrusted: int = 0) -> int:
    """0 when every instance succeeded; 2 when a folder of an instance was refused as
    planted (a link where the sync keeps a folder), as ``download`` refuses one; 3 when
    every instance failed because the API refused the credentials (nothing can work until
    they are fixed); 1 otherwise."""
    if failed == 0:
        return 0
    if untrusted:
        return 2
    if succeeded == 0 and auth_failed == failed:
        return 3
    return 1
