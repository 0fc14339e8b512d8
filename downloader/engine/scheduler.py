"""Which range runs next, under one global connection budget. Pure decisions, no I/O.

Policy (as aria2 and s3transfer do it, adapted):
- at most ``jobs`` files are open at once, biggest first, so the run does not end on one
  long tail; a file is opened by its first request, which also learns its size and ETag;
- each open file takes at most ``per_file`` connections while other files still have
  work queued; once nothing is queued anywhere, any idle connection may join any file;
- an idle connection with nothing queued splits the largest range still in flight (if
  it is worth it), taking its upper half, so the last minutes use every connection.

The scheduler owns every file's plan and state (:mod:`downloader.engine.lifecycle`): the engine
asks it for transitions (:meth:`Scheduler.fail`, :meth:`Scheduler.restart`, ...) and
never writes a :class:`PlanFile` itself. A :class:`Slot`'s ``pos`` is the one field the
transfer moves, as bytes land.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from downloader.engine.lifecycle import Event, FileState, after
from downloader.ranges import MIB

MIN_SPLIT = 4 * MIB  # never leave either half of a split smaller than this (a split
# closes the connection of the range it cuts, losing what was in flight on it)
SPLIT_ALIGN = 64 * 1024


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

    @property
    def stale(self) -> bool:
        """Its bytes are no longer wanted: the file restarted, or is being given up."""
        f = self.file
        return self.epoch != f.epoch or f.state.draining or f.state is FileState.FAILED


@dataclass(eq=False, slots=True)
class PlanFile:
    name: str
    size_hint: int  # from the KB size: for ordering only
    size: int | None = None  # authoritative size once known
    state: FileState = FileState.WAITING
    pending: deque[tuple[int, int]] = field(default_factory=deque)
    slots: list[Slot] = field(default_factory=list)
    epoch: int = 0  # bumped by each restart: slots of an older epoch are stale
    first: int = 0  # where its probe starts (a stream may start mid-object)

    @property
    def sequential(self) -> bool:
        return self.state is FileState.SEQUENTIAL


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
        # How many connections may be busy now (<= limits.connections); the engine's
        # governor raises it (allow) while every connection is busy and each is slow.
        self.soft_cap = limits.connections
        # Kept apart so that each decision looks at the few open files, not at every file
        # of a backup (decisions run each time a range ends, on every idle connection).
        self._waiting: deque[PlanFile] = deque(self.files)
        self._open: list[PlanFile] = []

    def _open_files(self) -> list[PlanFile]:
        self._open = [f for f in self._open if not f.state.closed]
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
        queued = [f for f in open_files if f.state.running and f.pending]
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
        self._to(f, Event.PROBE)
        return self._slot(f, f.first, None, probe=True)

    def _opened(self, f: PlanFile) -> None:
        if f in self._waiting:
            self._waiting.remove(f)
        if f not in self._open:
            self._open.append(f)

    def _split(self) -> Slot | None:
        best: Slot | None = None
        for f in self._open_files():
            if f.state is not FileState.RANGED:
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
            and f.state.running
            and slot.end is not None
            and slot.pos < slot.end
        ):
            f.pending.appendleft((slot.pos, slot.end))

    def finished(self) -> bool:
        return not self._waiting and all(f.state.closed for f in self._open)

    # ------------------------------------------------------------------ transitions

    def _to(self, f: PlanFile, event: Event) -> bool:
        state = after(f.state, event)
        if state is None:
            return False
        f.state = state
        if not state.running:
            f.pending.clear()  # nothing queued is fetched any more
        return True

    def plan(self, f: PlanFile, size: int, missing: list[tuple[int, int]]) -> None:
        """Its size is known (probed, or from the journal): queue what is missing."""
        self._opened(f)  # a resumed file is planned without a probe
        f.size = size
        if self._to(f, Event.PLAN):
            f.pending = deque(missing)

    def probed(self, slot: Slot, end: int) -> None:
        """The probe's answer arrived: it goes on as an ordinary range up to ``end``."""
        slot.probe = False
        slot.end = end

    def go_sequential(self, slot: Slot, first_missing: int) -> None:
        """The server answers ranged GETs with the whole object: ``slot`` becomes the
        file's one stream, from its first missing byte to the end."""
        f = slot.file
        assert f.size is not None
        slot.probe = False
        if self._to(f, Event.SEQUENTIAL):
            f.pending.clear()  # the one stream fetches everything from here
            slot.pos = min(slot.pos, first_missing)
            slot.start = slot.pos
            slot.end = f.size

    def restart(self, f: PlanFile) -> bool:
        """Start the file over once its slots drain; False if it is past restarting."""
        return self._to(f, Event.RESTART)

    def fail(self, f: PlanFile) -> bool:
        """Give the file up (once its slots drain); False if it is closed already."""
        return self._to(f, Event.FAIL)

    def complete(self, f: PlanFile) -> bool:
        """Every byte is on disk: it is verified and moved into place next."""
        return self._to(f, Event.COMPLETE)

    def done(self, f: PlanFile) -> None:
        self._to(f, Event.DONE)

    def drained(self, f: PlanFile) -> None:
        """No slot of a restarting or failing file is in flight: carry it out. A restarted
        file is probed again, before any other (its size and identity are unknown)."""
        restarting = f.state is FileState.RESTARTING
        if not self._to(f, Event.DRAINED):
            return
        if restarting:
            f.epoch += 1
            f.size = None
            if f not in self._waiting:
                self._waiting.appendleft(f)

    def allow(self, connections: int) -> None:
        """The governor's word: up to ``connections`` may be busy."""
        self.soft_cap = min(connections, self.limits.connections)
