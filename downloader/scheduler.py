"""Which range runs next, under one global connection budget. Pure decisions, no I/O.

Policy (as aria2 and s3transfer do it, adapted):
- at most ``jobs`` files are open at once, biggest first, so the run does not end on one
  long tail; a file is opened by its first request, which also learns its size and ETag;
- each open file takes at most ``per_file`` connections while other files still have
  work queued; once nothing is queued anywhere, any idle connection may join any file;
- an idle connection with nothing queued splits the largest range still in flight (if
  it is worth it), taking its upper half, so the last minutes use every connection.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from downloader.ranges import MIB

MIN_SPLIT = 4 * MIB  # never leave either half of a split smaller than this (a split
# closes the connection of the range it cuts, losing what was in flight on it)
SPLIT_ALIGN = 64 * 1024


class FileState(Enum):
    WAITING = "waiting"  # not opened yet
    PROBING = "probing"  # first request in flight; size unknown to the plan
    ACTIVE = "active"  # ranges planned
    DRAINING = "draining"  # stop handing out work; a restart or failure waits for slots
    FINISHING = "finishing"  # all bytes on disk, being verified and moved into place
    DONE = "done"
    FAILED = "failed"


_CLOSED = (FileState.DONE, FileState.FAILED)


@dataclass(eq=False, slots=True)
class Slot:
    """One range being fetched: bytes ``[pos, end)`` remain; ``end`` may shrink by a split."""

    file: PlanFile
    start: int
    pos: int
    end: int | None  # None: to the end of the object (probe without a size, sequential)
    epoch: int
    probe: bool = False

    def remaining(self) -> int:
        return 0 if self.end is None else max(0, self.end - self.pos)


@dataclass(eq=False, slots=True)
class PlanFile:
    name: str
    size_hint: int  # from the KB size: for ordering only
    size: int | None = None  # authoritative size once known
    state: FileState = FileState.WAITING
    pending: deque[tuple[int, int]] = field(default_factory=deque)
    slots: list[Slot] = field(default_factory=list)
    epoch: int = 0
    sequential: bool = False
    needs_probe: bool = True


@dataclass(frozen=True, slots=True)
class Limits:
    jobs: int
    per_file: int
    connections: int


class Scheduler:
    def __init__(self, files: list[PlanFile], limits: Limits) -> None:
        # Biggest first: a large file started last would be the run's long tail.
        self.files = sorted(files, key=lambda f: -f.size_hint)
        self.limits = limits
        self.busy = 0
        # How many connections may be busy now (<= limits.connections); the engine raises
        # it while every connection is busy and each is slow (see Engine._governor).
        self.soft_cap = limits.connections
        # Kept apart so that each decision looks at the few open files, not at every file
        # of a backup (decisions run each time a range ends, on every idle connection).
        self._waiting: deque[PlanFile] = deque(self.files)
        self._open: list[PlanFile] = []

    def _open_files(self) -> list[PlanFile]:
        self._open = [f for f in self._open if f.state not in _CLOSED]
        return [f for f in self._open if f.state is not FileState.WAITING]

    def _cap(self, f: PlanFile, anything_else_queued: bool) -> int:
        if f.sequential:
            return 1
        return self.limits.per_file if anything_else_queued else self.soft_cap

    def next(self) -> Slot | None:
        """A range for an idle connection, or None when there is nothing to do now."""
        if self.busy >= min(self.soft_cap, self.limits.connections):
            return None
        open_files = self._open_files()
        queued = [f for f in open_files if f.state is FileState.ACTIVE and f.pending]
        waiting = self._waiting
        # 1. queued ranges of open files, least-served file first
        for f in sorted(queued, key=lambda f: len(f.slots)):
            others = any(g is not f for g in queued) or bool(waiting)
            if len(f.slots) < self._cap(f, others):
                return self._take(f)
        # 2. open another file (its probe); files being verified and moved into place
        # hold no connection and do not count
        opened = sum(1 for f in open_files if f.state is not FileState.FINISHING)
        if waiting and opened < self.limits.jobs:
            return self._probe(waiting[0])
        if waiting:
            return None
        # 3. help the slowest: split the largest range in flight
        return self._split()

    def _take(self, f: PlanFile) -> Slot:
        start, end = f.pending.popleft()
        return self._slot(f, start, end)

    def _slot(self, f: PlanFile, start: int, end: int | None, probe: bool = False) -> Slot:
        slot = Slot(f, start, start, end, f.epoch, probe)
        f.slots.append(slot)
        self.busy += 1
        return slot

    def _probe(self, f: PlanFile) -> Slot:
        self._opened(f)
        f.state = FileState.PROBING
        return self._slot(f, 0, None, probe=True)

    def _opened(self, f: PlanFile) -> None:
        if f in self._waiting:
            self._waiting.remove(f)
        if f not in self._open:
            self._open.append(f)

    def reprobe(self, f: PlanFile) -> None:
        """The file starts over (its object changed): it is probed again, first."""
        f.state = FileState.WAITING
        if f not in self._waiting:
            self._waiting.appendleft(f)

    def _split(self) -> Slot | None:
        best: Slot | None = None
        for f in self._open_files():
            if f.state is not FileState.ACTIVE or f.sequential:
                continue
            if len(f.slots) >= self.soft_cap:
                continue
            for s in f.slots:
                if (
                    s.end is not None
                    and not s.probe
                    and (best is None or s.remaining() > best.remaining())
                ):
                    best = s
        if best is None or best.end is None or best.remaining() < 2 * MIN_SPLIT:
            return None
        mid = best.pos + best.remaining() // 2
        mid -= mid % SPLIT_ALIGN
        if mid - best.pos < MIN_SPLIT or best.end - mid < MIN_SPLIT:
            return None
        new_end = best.end
        best.end = mid
        return self._slot(best.file, mid, new_end)

    def release(self, slot: Slot) -> None:
        """A connection is done with ``slot``; put back what it did not fetch."""
        f = slot.file
        f.slots.remove(slot)
        self.busy -= 1
        if (
            slot.epoch == f.epoch
            and f.state is FileState.ACTIVE
            and slot.end is not None
            and slot.pos < slot.end
        ):
            f.pending.appendleft((slot.pos, slot.end))

    def plan(self, f: PlanFile, missing: list[tuple[int, int]]) -> None:
        self._opened(f)  # a resumed file is planned without a probe
        f.pending = deque(missing)
        f.state = FileState.ACTIVE

    def idle(self) -> bool:
        return self.busy == 0

    def finished(self) -> bool:
        return not self._waiting and all(f.state in _CLOSED for f in self._open)
