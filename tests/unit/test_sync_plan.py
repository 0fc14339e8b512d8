"""The pure decisions of ``sync``: shards, which backups to mirror, retention, exit code."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.disk.tree import Entry
from downloader.errors import UsageError
from downloader.models import Backup
from downloader.sync.plan import (
    Folder,
    Shard,
    folder_name_problem,
    in_shard,
    instance_active,
    parse_shard,
    pick_targets,
    retention,
    run_exit_code,
    shard_of,
    skip_reason,
    stray_entry,
)

T0 = datetime(2024, 6, 1, tzinfo=UTC)
ids = st.text(min_size=1, max_size=40)


# ------------------------------------------------------------------ shards


@given(st.lists(ids, unique=True, max_size=60), st.integers(1, 12))
def test_shards_split_any_fleet_exactly_once(fleet: list[str], count: int) -> None:
    shards = [Shard(k, count) for k in range(1, count + 1)]
    owners = {i: [s.index for s in shards if in_shard(i, s)] for i in fleet}
    assert all(len(found) == 1 for found in owners.values()), owners


@given(ids, st.integers(1, 1000))
def test_a_shard_is_crc32_of_the_id(instance_id: str, count: int) -> None:
    expected = zlib.crc32(instance_id.encode("utf-8", "surrogatepass")) % count + 1
    assert shard_of(instance_id, count) == expected
    assert in_shard(instance_id, None)


def test_shard_of_known_ids_is_stable() -> None:
    # Fixed values: a change here would move instances between machines of a fleet.
    assert zlib.crc32(b"f275a18b123fea3474caa1d0cf2903dcin01") % 3 + 1 == shard_of(
        "f275a18b123fea3474caa1d0cf2903dcin01", 3
    )
    assert [shard_of(f"inst{n}", 4) for n in range(6)] == [
        zlib.crc32(f"inst{n}".encode()) % 4 + 1 for n in range(6)
    ]


@pytest.mark.parametrize(("text", "want"), [("1/1", (1, 1)), ("2/5", (2, 5)), (" 3 / 3 ", (3, 3))])
def test_parse_shard(text: str, want: tuple[int, int]) -> None:
    shard = parse_shard(text)
    assert (shard.index, shard.count) == want
    assert str(shard) == f"{want[0]}/{want[1]}"


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "1/0", "a/b", "-1/2", "1/2/3", ""])
def test_parse_shard_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_shard(text)


# ------------------------------------------------------------------ folder names


@pytest.mark.parametrize(
    "name", ["", " ", ".", "..", ".rds-backup", "a/b", "a\\b", "x\x1b[31m", "a\u202eb", "é" * 200]
)
def test_names_that_cannot_be_one_folder(name: str) -> None:
    assert folder_name_problem(name) is not None


def test_real_ids_are_fine() -> None:
    assert folder_name_problem("f275a18b123fea3474caa1d0cf2903dcin01") is None
    assert folder_name_problem("a82f62762401f33d9d663175c272f2bdbr01") is None


# ------------------------------------------------------------------ targets


def backup(n: int, kind: str = "auto", status: str = "COMPLETED", hours: float = 0) -> Backup:
    end = T0 + timedelta(hours=hours)
    return Backup(f"b{n}", "", "inst", kind, 1, status, end - timedelta(minutes=5), end)


def test_pick_targets_takes_the_newest_completed_of_each_type() -> None:
    listed = [
        backup(1, hours=1),
        backup(2, hours=5),
        backup(3, status="BUILDING", hours=9),
        backup(4, status="FAILED", hours=8),
        backup(5, kind="incremental", hours=3),
        backup(6, kind="manual", hours=7),
    ]
    assert [b.id for b in pick_targets(listed, ["auto"])] == ["b2"]
    assert [b.id for b in pick_targets(listed, ["incremental", "auto", "auto"])] == ["b5", "b2"]
    assert pick_targets(listed, ["fragment"]) == []
    no_end = Backup("b7", "", "inst", "auto", 1, "COMPLETED", T0, None)
    assert pick_targets([no_end], ["auto"]) == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["auto", "manual", "incremental"]),
            st.sampled_from(["COMPLETED", "BUILDING", "FAILED"]),
            st.integers(0, 100),
        ),
        max_size=30,
    )
)
def test_pick_targets_never_takes_an_unfinished_one(spec: list[tuple[str, str, int]]) -> None:
    listed = [backup(n, kind, status, hours) for n, (kind, status, hours) in enumerate(spec)]
    chosen = pick_targets(listed, ["auto", "incremental"])
    assert all(b.status == "COMPLETED" and b.type in ("auto", "incremental") for b in chosen)
    for b in chosen:
        rivals = [r for r in listed if r.type == b.type and r.status == "COMPLETED"]
        assert all(r.end_time is not None and b.end_time is not None for r in rivals)
        assert b.end_time == max(r.end_time for r in rivals if r.end_time is not None)


# ------------------------------------------------------------------ retention


def folder(name: str, hours: float | None, *, proven: bool = True, real: bool = True) -> Folder:
    when = None if hours is None else T0 + timedelta(hours=hours)
    return Folder(name, real, proven, when)


def test_retention_keeps_the_newest_complete_folders() -> None:
    folders = [folder(f"b{n}", n) for n in range(6)]
    assert retention(folders, keep=2) == ["b0", "b1", "b2", "b3"]
    assert retention(folders, keep=10) == []
    assert retention(folders, keep=None) == []
    assert retention(folders, keep=2, instance_failed=True) == []
    assert retention(folders, keep=2, protected={"b1"}) == ["b0", "b2", "b3"]


def test_retention_never_names_what_the_ledger_does_not_prove() -> None:
    folders = [
        folder("old-not-in-the-ledger", 0, proven=False),
        folder("new-not-in-the-ledger", 9, proven=False),
        folder("old-link", 2, real=False),
        folder("old-no-time", None),
        folder(".hidden", 3),
        folder("b4", 4),
        folder("b5", 5),
    ]
    assert retention(folders, keep=1) == ["b4"]


def test_retention_refuses_keep_zero() -> None:
    with pytest.raises(UsageError):
        retention([folder("b1", 1)], keep=0)


folder_specs = st.lists(
    st.tuples(
        st.text(alphabet="abc.", min_size=1, max_size=4),
        st.one_of(st.none(), st.integers(0, 50)),
        st.booleans(),
        st.booleans(),
    ),
    max_size=25,
    unique_by=lambda t: t[0],
)


@given(
    folder_specs, st.integers(1, 8), st.sets(st.text(alphabet="abc.", max_size=4)), st.booleans()
)
def test_retention_properties(
    spec: list[tuple[str, int | None, bool, bool]], keep: int, protected: set[str], failed: bool
) -> None:
    folders = [
        Folder(name, real, proven, None if hours is None else T0 + timedelta(hours=hours))
        for name, hours, proven, real in spec
    ]
    removed = retention(folders, keep=keep, protected=protected, instance_failed=failed)
    by_name = {f.name: f for f in folders}
    assert len(set(removed)) == len(removed)
    if failed:
        assert removed == []
    for name in removed:
        f = by_name[name]
        assert f.complete and f.real_dir and f.proven and name not in protected
    complete = [f for f in folders if f.complete]
    kept = [f for f in complete if f.name not in removed]
    assert len(kept) >= min(keep, len(complete))
    newest_kept = sorted(complete, key=lambda f: (f.when, f.name), reverse=True)[:keep]
    assert not {f.name for f in newest_kept} & set(removed)


# ------------------------------------------------------------------ exit code


def test_run_exit_code() -> None:
    assert run_exit_code(succeeded=3, failed=0, auth_failed=0) == 0
    assert run_exit_code(succeeded=0, failed=0, auth_failed=0) == 0
    assert run_exit_code(succeeded=2, failed=1, auth_failed=0) == 1
    assert run_exit_code(succeeded=2, failed=1, auth_failed=1) == 1
    assert run_exit_code(succeeded=0, failed=2, auth_failed=2) == 3
    assert run_exit_code(succeeded=0, failed=2, auth_failed=1) == 1
    assert run_exit_code(succeeded=2, failed=1, auth_failed=0, untrusted=1) == 2
    assert run_exit_code(succeeded=0, failed=2, auth_failed=1, untrusted=1) == 2
    assert run_exit_code(succeeded=2, failed=0, auth_failed=0, untrusted=0) == 0


def test_stray_entry() -> None:
    files = {"a.qp": 10, "db/b.qp": 5}
    own = {
        "a.qp": Entry("file", 10),
        "db": Entry("dir"),
        "db/b.qp": Entry("file", 5),
        MANIFEST_NAME: Entry("file", 400),
        STATE_DIR: Entry("dir"),
        f"{STATE_DIR}/lock": Entry("file", 6),
        f"{STATE_DIR}/journal": Entry("dir"),
        f"{STATE_DIR}/journal/0123.json": Entry("file", 300),
        f"{STATE_DIR}/parts": Entry("dir"),
    }
    assert stray_entry(own, files) is None
    assert stray_entry({"a.qp": Entry("file", 10)}, files) is None  # a file gone: nothing lost
    for extra, entry in [
        ("notes.txt", Entry("file", 3)),  # hand-made
        ("a.qp", Entry("file", 11)),  # grown since
        ("db/b.qp", Entry("link")),
        ("db/c", Entry("dir")),
        ("other", Entry("dir")),
        (f"{STATE_DIR}/journal/x", Entry("dir")),
        (f"{STATE_DIR}/fifo", Entry("other")),
        (f"{STATE_DIR}/notes", Entry("file", 1)),
        ("a.qp", Entry("dir")),
    ]:
        assert stray_entry({**own, extra: entry}, files) == extra, extra


def test_what_is_skipped_rather_than_failed() -> None:
    building, failed, done = backup(1, status="BUILDING"), backup(2, status="FAILED"), backup(3)
    assert skip_reason([], "ACTIVE") == "no backup yet"
    assert skip_reason([], None) == "no backup yet"  # named with --instance-id
    assert skip_reason([building], "ACTIVE") == "no backup yet"  # its first, in progress
    assert skip_reason([], "BUILD") == "no backup yet (status BUILD)"
    assert skip_reason([failed], "FROZEN") == "status FROZEN, no COMPLETED backup to mirror"
    # ACTIVE, with backups that all failed (or none of the kinds asked for): a failure.
    assert skip_reason([failed], "ACTIVE") is None
    assert skip_reason([building, failed], None) is None
    assert skip_reason([done], "active") is None
    assert instance_active("Active") and instance_active(None)
    assert not instance_active("BUILD")
