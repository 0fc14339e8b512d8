"""Point-in-time chains: which backups restore an instance to a moment (pure, no I/O).

To restore to a moment T a DBA needs the newest COMPLETED full backup that ended at or
before T, then the newest COMPLETED differential full (``fragment``) taken after it that
ended at or before T, if any, then every COMPLETED incremental backup (MySQL binlog backups,
PostgreSQL incrementals, SQL Server log backups), in ``begin_time`` order, from the last
full's (or differential's) ``begin_time`` up to and including the first one that ends at or
after T. A full (or differential) restores by itself to the moment it ended: a T there needs
no incremental. The list's order
is undocumented and its status filter works for SQL Server only (facts §2), so the whole
listing is taken and sorted and filtered here; BUILDING, FAILED and DELETING backups never
count. Times are compared as instants, never as text.

A chain that cannot reach T (no full before it, a gap between incrementals, nothing that
reaches it yet) is :class:`~downloader.errors.ChainUnreachableError`, naming the gap and the
newest moment that can be reached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from downloader.disk.holdings import CHAIN_PREFIX
from downloader.errors import ChainUnreachableError, UsageError
from downloader.models import Backup

__all__ = [
    "DIFFERENTIAL_TYPE",
    "FULL_TYPES",
    "INCREMENTAL_TYPE",
    "Chain",
    "ChainLink",
    "chain_id",
    "folder_names",
    "parse_point_in_time",
    "select_chain",
    "utc_text",
]

FULL_TYPES = frozenset({"auto", "manual"})
DIFFERENTIAL_TYPE = "fragment"  # a differential full: the changes since the last full
INCREMENTAL_TYPE = "incremental"
COMPLETED = "COMPLETED"
_ID_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One backup of a chain: its place (1-based), the backup, its folder's name."""

    position: int
    backup: Backup
    folder: str


@dataclass(frozen=True, slots=True)
class Chain:
    """The backups that restore ``instance_id`` to ``to_time``, in restore order: the full
    backup first, then the differential (if any), then the incrementals. ``reach`` is where
    the last one ends (at or after ``to_time``)."""

    instance_id: str
    to_time: datetime
    links: tuple[ChainLink, ...]

    @property
    def full(self) -> Backup:
        return self.links[0].backup

    @property
    def differential(self) -> Backup | None:
        """The differential full applied on the full, if the chain has one."""
        second = self.links[1].backup if len(self.links) > 1 else None
        return second if second is not None and second.type == DIFFERENTIAL_TYPE else None

    @property
    def incrementals(self) -> tuple[Backup, ...]:
        return tuple(link.backup for link in self.links[1:] if link.backup.type == INCREMENTAL_TYPE)

    @property
    def engine(self) -> str | None:
        return self.full.engine

    @property
    def id(self) -> str:
        return chain_id(self.instance_id, self.to_time)

    @property
    def reach(self) -> datetime:
        last = self.links[-1].backup
        assert last.end_time is not None
        return last.end_time


def parse_point_in_time(text: str) -> datetime:
    """``2026-11-29T13:00:00+08:00`` (or ``...Z``, or ``+0800``) -> an aware datetime.

    A time without a UTC offset is refused: RDS shows times at +08:00, the machine running
    this may be in any zone, and a restore to the wrong 13:00 is silent data loss.
    """
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(
            f"{text!r} is not an ISO 8601 time: write it like 2026-11-29T13:00:00+08:00"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(
            f"{text!r} has no UTC offset: whose {when:%H:%M}? add +08:00 or Z "
            f"(e.g. {when:%Y-%m-%dT%H:%M:%S}+08:00)"
        )
    return when


def utc_text(when: datetime) -> str:
    """An instant as ``2026-11-29T05:00:00Z``: one spelling per instant (and one instant per
    spelling: a fraction of a second is kept, ``...05:00:00.500000Z``)."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if utc.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def chain_id(instance_id: str, to_time: datetime) -> str:
    """What a chain folder holds, as a single download's folder holds a backup id: the
    instance and the instant (``+08:00`` and ``Z`` spellings of it are the same chain)."""
    return f"{CHAIN_PREFIX}{instance_id}@{utc_text(to_time)}"


def _usable(b: Backup) -> bool:
    return (
        b.status.upper() == COMPLETED
        and b.begin_time is not None
        and b.end_time is not None
        and b.begin_time <= b.end_time
    )


def _begin(b: Backup) -> datetime:
    assert b.begin_time is not None
    return b.begin_time


def _end(b: Backup) -> datetime:
    assert b.end_time is not None
    return b.end_time


def newest_full(backups: Iterable[Backup], to_time: datetime) -> Backup | None:
    """The COMPLETED full backup with the newest end at or before ``to_time`` (ties: the
    newest begin, then the id, so the answer never depends on the listing's order)."""
    fulls = _fulls_by_age(backups, to_time)
    return fulls[0] if fulls else None


def _fulls_by_age(backups: Iterable[Backup], to_time: datetime | None) -> list[Backup]:
    """The COMPLETED fulls (ending at or before ``to_time``, when given), newest first."""
    fulls = [
        b
        for b in backups
        if _usable(b) and b.type in FULL_TYPES and (to_time is None or _end(b) <= to_time)
    ]
    return sorted(fulls, key=lambda b: (_end(b), _begin(b), b.id), reverse=True)


def _cover(
    start: datetime, incrementals: Sequence[Backup], to_time: datetime
) -> tuple[list[Backup], datetime, Backup | None]:
    """The incrementals (in begin order) that cover ``start`` onwards without a gap, up to
    the first that reaches ``to_time``: those taken, where they reach, and the first one
    after a gap (None: no gap before ``to_time``)."""
    reach = start
    taken: list[Backup] = []
    for inc in incrementals:
        if reach >= to_time:
            break
        if _end(inc) <= reach:
            continue  # wholly before what is still needed (or covered by a longer one)
        if _begin(inc) > reach:
            return taken, reach, inc
        taken.append(inc)
        reach = _end(inc)
    return taken, reach, None


def _restorable(base: Backup, incrementals: Sequence[Backup], to_time: datetime) -> datetime | None:
    """The newest moment at or before ``to_time`` that ``base`` (a full or a differential)
    and the incrementals restore to: its end by itself, later with the incrementals that
    cover it from its begin on; None when it ends after ``to_time``."""
    if _end(base) > to_time:
        return None
    _, reach, _ = _cover(_begin(base), incrementals, to_time)
    return min(max(reach, _end(base)), to_time)


def _differential(usable: Iterable[Backup], full: Backup, to_time: datetime) -> Backup | None:
    """The newest COMPLETED differential of ``full`` that ended by ``to_time``: one taken
    against it, i.e. begun after it ended and before any newer full ended (a differential is
    always of the newest full finished when it began)."""
    usable = list(usable)
    fulls = [b for b in usable if b.type in FULL_TYPES]

    def owner(diff: Backup) -> Backup | None:
        before = [f for f in fulls if _end(f) <= _begin(diff)]
        return max(before, key=lambda f: (_end(f), _begin(f), f.id), default=None)

    diffs = [
        b for b in usable if b.type == DIFFERENTIAL_TYPE and _end(b) <= to_time and owner(b) is full
    ]
    return max(diffs, key=lambda b: (_end(b), _begin(b), b.id), default=None)


def _best(
    usable: Sequence[Backup], full: Backup, incrementals: Sequence[Backup], to_time: datetime
) -> datetime | None:
    """The newest moment at or before ``to_time`` that ``full`` restores to, with its
    newest differential by then or without it."""
    moments = [_restorable(full, incrementals, to_time)]
    diff = _differential(usable, full, to_time)
    if diff is not None:
        moments.append(_restorable(diff, incrementals, to_time))
    return max((m for m in moments if m is not None), default=None)


def select_chain(backups: Iterable[Backup], to_time: datetime, instance_id: str) -> Chain:
    """The chain that restores ``instance_id`` to ``to_time``, from any listing in any order
    (several pages, duplicates, noise). Raises ChainUnreachableError when there is none."""
    usable = list({b.id: b for b in backups if _usable(b)}.values())  # once, however listed
    incrementals = sorted(
        (b for b in usable if b.type == INCREMENTAL_TYPE),
        # Begin order; at one begin the longest first, so a shorter twin adds nothing.
        key=lambda b: (_begin(b), -(_end(b) - _begin(b)).total_seconds(), b.id),
    )
    fulls = _fulls_by_age(usable, to_time)
    if not fulls:
        later = [f for f in _fulls_by_age(usable, None) if _end(f) > to_time]
        firsts = [_restorable(f, incrementals, _end(f)) for f in later]  # each at its end
        earliest = min((w for w in firsts if w is not None), default=None)
        raise ChainUnreachableError(
            instance_id,
            to_time,
            reason="no_full",
            gap_from=None,
            gap_to=earliest,
            reachable=None,
        )
    # Candidates, most preferred first: the newest full with its newest differential (fewer
    # incrementals to replay), then without it, then each older full likewise. An older full
    # can reach T where a newer cannot: its differential may begin after a gap that the
    # newer full's own begin falls into.
    first: tuple[list[Backup], datetime, Backup | None] | None = None
    chosen: tuple[list[Backup], list[Backup]] | None = None
    for full in fulls:
        diff = _differential(usable, full, to_time)
        for base in ([full, diff], [full]) if diff is not None else ([full],):
            taken: list[Backup] = []
            reach, after_gap = to_time, None  # it ended at T: nothing to replay
            if _end(base[-1]) < to_time:
                taken, reach, after_gap = _cover(_begin(base[-1]), incrementals, to_time)
            if first is None:
                first = (taken, reach, after_gap)
            if reach >= to_time:
                chosen = (base, taken)
                break
        if chosen is not None:
            break
    if chosen is None:
        assert first is not None
        _, reach, after_gap = first
        # The newest moment any full restores to: never one that would be refused.
        reachable = max(
            (w for w in (_best(usable, f, incrementals, to_time) for f in fulls) if w is not None),
            default=None,
        )
        raise ChainUnreachableError(
            instance_id,
            to_time,
            reason="gap" if after_gap is not None else "not_yet",
            gap_from=reach,
            gap_to=_begin(after_gap) if after_gap is not None else None,
            reachable=reachable,
        )
    base, taken = chosen
    ordered = [*base, *taken]
    names = folder_names(ordered)
    links = tuple(
        ChainLink(i + 1, b, n) for i, (b, n) in enumerate(zip(ordered, names, strict=True))
    )
    return Chain(instance_id, to_time, links)


def folder_names(backups: Sequence[Backup]) -> list[str]:
    """``01-auto-<id>``, ``02-incremental-<id>``, ...: one folder per backup, named so that
    sorting the names (``ls``, a shell glob) gives the restore order. A backup id or type
    that could not be a plain folder name is refused."""
    width = max(2, len(str(len(backups))))
    out = []
    for i, b in enumerate(backups, start=1):
        for what, value in (("backup id", b.id), ("backup type", b.type)):
            if not _ID_SAFE.match(value) or value in (".", ".."):
                raise UsageError(f"refusing {what} {value!r}: it cannot name a folder")
        out.append(f"{i:0{width}d}-{b.type}-{b.id}")
    return out
