"""downloader.engine.scheduler: which range runs next under the jobs, per-file and connection
limits."""

from __future__ import annotations

from downloader.engine.scheduler import FileState, Limits, PlanFile, Scheduler
from downloader.ranges import MIB, split


def plan(name: str, size: int) -> PlanFile:
    return PlanFile(name, size)


def test_biggest_file_opens_first_and_jobs_limit_open_files() -> None:
    files = [plan("small", 10 * MIB), plan("big", 100 * MIB), plan("mid", 50 * MIB)]
    sched = Scheduler(files, Limits(jobs=2, per_file=4, connections=8))
    first, second = sched.next(), sched.next()
    assert first is not None and second is not None
    assert (first.file.name, second.file.name) == ("big", "mid")
    assert first.probe and second.probe
    assert sched.next() is None  # two files open, nothing planned yet


def test_a_file_being_moved_into_place_leaves_room_for_the_next() -> None:
    files = [plan("a", 8 * MIB), plan("b", 6 * MIB), plan("c", 4 * MIB)]
    sched = Scheduler(files, Limits(jobs=2, per_file=4, connections=8))
    a, b = sched.next(), sched.next()
    assert a is not None and b is not None and sched.next() is None
    sched.plan(a.file, 8 * MIB, [])
    sched.release(a)
    assert sched.complete(a.file)  # all bytes on disk: fsync and rename under way
    assert a.file.state is FileState.FINISHING
    c = sched.next()
    assert c is not None and c.file.name == "c" and c.probe
    assert not sched.finished()  # the run is not over until "a" is in place


def test_per_file_cap_while_others_wait_and_global_budget() -> None:
    a, b = plan("a", 100 * MIB), plan("b", 90 * MIB)
    sched = Scheduler([a, b], Limits(jobs=1, per_file=2, connections=3))
    probe = sched.next()
    assert probe is not None and probe.file is a
    sched.plan(a, 100 * MIB, list(split([(4 * MIB, 100 * MIB)], 4 * MIB)))
    got = sched.next()
    assert got is not None and got.file is a
    assert sched.next() is None  # a has 2 (its cap while b waits); jobs=1 keeps b closed
    sched.release(probe)
    assert a.state is FileState.RANGED


def test_idle_connection_splits_the_largest_range() -> None:
    a = plan("a", 64 * MIB)
    sched = Scheduler([a], Limits(jobs=1, per_file=1, connections=4))
    probe = sched.next()
    assert probe is not None
    sched.plan(a, 64 * MIB, [])
    sched.probed(probe, 64 * MIB)  # the only range, still in flight
    helper = sched.next()
    assert helper is not None
    assert probe.end == helper.start
    assert helper.end == 64 * MIB
    assert helper.start - probe.pos >= 2 * MIB


def test_release_requeues_the_unfetched_part() -> None:
    a = plan("a", 64 * MIB)
    sched = Scheduler([a], Limits(jobs=1, per_file=1, connections=1))
    probe = sched.next()
    assert probe is not None
    sched.plan(a, 64 * MIB, [])
    sched.probed(probe, 8 * MIB)
    probe.pos = 3 * MIB
    sched.release(probe)
    assert list(a.pending) == [(3 * MIB, 8 * MIB)]
