"""The life of one file in a run: its states and the only transitions allowed. Pure.

::

    WAITING ──probe──> PROBING ──plan──> RANGED ──complete──> FINISHING ──done──> DONE
       │                  │   └─sequential─> SEQUENTIAL ─complete─┘   └─fail──> FAILED
       └──────plan (resumed: size known)──┘         (the server ignores Range)
    PROBING / RANGED / SEQUENTIAL ──restart──> RESTARTING ──drained──> WAITING
    PROBING / RANGED / SEQUENTIAL / RESTARTING ──fail──> FAILING ──drained──> FAILED

RESTARTING and FAILING hand out no more work and wait until the ranges in flight have
ended (drained) before the restart or the failure is carried out. The scheduler owns each
file's state; everything else asks it for a transition by event (:func:`after`), so the
table below is the whole state machine.
"""

from __future__ import annotations

import enum


class FileState(enum.Enum):
    WAITING = "waiting"  # not opened yet (or opened again after a restart)
    PROBING = "probing"  # first request in flight: size and identity unknown
    RANGED = "ranged"  # ranges planned, fetched in parallel
    SEQUENTIAL = "sequential"  # the server ignores Range: one stream to the end
    RESTARTING = "restarting"  # the object changed: start over once the slots drain
    FAILING = "failing"  # failed: give up once the slots drain
    FINISHING = "finishing"  # all bytes on disk, being verified and moved into place
    DONE = "done"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        """Ranges of it may be fetched."""
        return self in _RUNNING

    @property
    def draining(self) -> bool:
        """A restart or failure waits for its ranges in flight to end."""
        return self is FileState.RESTARTING or self is FileState.FAILING

    @property
    def closed(self) -> bool:
        return self is FileState.DONE or self is FileState.FAILED


class Event(enum.Enum):
    PROBE = "probe"  # a connection takes its first request
    PLAN = "plan"  # size known: ranges planned
    SEQUENTIAL = "sequential"  # a 200 to a ranged request
    RESTART = "restart"  # the object changed under us
    FAIL = "fail"
    DRAINED = "drained"  # no range of it is in flight any more
    COMPLETE = "complete"  # every byte is on disk
    DONE = "done"  # verified and in place


_RUNNING = frozenset({FileState.RANGED, FileState.SEQUENTIAL})
_S = FileState
_E = Event
_NEXT: dict[tuple[FileState, Event], FileState] = {
    (_S.WAITING, _E.PROBE): _S.PROBING,
    (_S.WAITING, _E.PLAN): _S.RANGED,
    (_S.PROBING, _E.PLAN): _S.RANGED,
    (_S.PROBING, _E.SEQUENTIAL): _S.SEQUENTIAL,
    (_S.RANGED, _E.SEQUENTIAL): _S.SEQUENTIAL,
    (_S.SEQUENTIAL, _E.SEQUENTIAL): _S.SEQUENTIAL,
    (_S.RANGED, _E.COMPLETE): _S.FINISHING,
    (_S.SEQUENTIAL, _E.COMPLETE): _S.FINISHING,
    (_S.FINISHING, _E.DONE): _S.DONE,
    (_S.FINISHING, _E.FAIL): _S.FAILED,  # it did not verify: nothing is in flight
    (_S.RESTARTING, _E.DRAINED): _S.WAITING,
    (_S.FAILING, _E.DRAINED): _S.FAILED,
}
for _state in (_S.PROBING, _S.RANGED, _S.SEQUENTIAL):
    _NEXT[(_state, _E.RESTART)] = _S.RESTARTING
    _NEXT[(_state, _E.FAIL)] = _S.FAILING
_NEXT[(_S.RESTARTING, _E.FAIL)] = _S.FAILING  # a failure outranks a restart


def after(state: FileState, event: Event) -> FileState | None:
    """The state ``event`` leads to from ``state``; None: the event means nothing there
    (a second failure of a failing file, a restart of one already restarting)."""
    return _NEXT.get((state, event))
