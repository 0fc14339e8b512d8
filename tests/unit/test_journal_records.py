"""downloader.disk.journal: a resume record round-trips and is rejected when it cannot be
trusted."""

from __future__ import annotations

import json

import pytest

from downloader.disk.journal import JournalError, record_from_json


def good_record() -> dict[str, object]:
    return {
        "version": 1,
        "backup_id": "b",
        "name": "n",
        "size_kb": 1,
        "size": 1000,
        "etag": '"e"',
        "done": [[0, 10], [20, 30]],
        "complete": False,
    }


def test_journal_record_round_trip() -> None:
    rec = record_from_json(good_record())
    assert rec.done == [(0, 10), (20, 30)]
    assert record_from_json(json.loads(json.dumps(rec.to_json()))) == rec


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"done": [[10, 5]]},
        {"done": [[0, 2000]]},
        {"done": "x"},
        {"size": -1},
        {"size_kb": True},
        {"complete": "no"},
        {"name": None},
        {"size": None, "done": [[0, 1]]},
        {"integrity": "sha-only"},
        {"integrity": 1},
    ],
)
def test_journal_record_rejects_what_it_cannot_trust(change: dict[str, object]) -> None:
    obj = good_record() | change
    with pytest.raises(JournalError):
        record_from_json(obj)


def test_a_record_without_integrity_still_loads() -> None:
    """Records written before the field existed stay loadable (same version): unknown."""
    assert "integrity" not in good_record()
    assert record_from_json(good_record()).integrity is None
    rec = record_from_json(good_record() | {"integrity": "server-checksum"})
    assert rec.integrity == "server-checksum"
    assert record_from_json(json.loads(json.dumps(rec.to_json()))) == rec


def test_a_finished_file_stat_round_trips_and_may_be_missing() -> None:
    """The stat of a finished file in place is optional (older records lack it: unknown)."""
    assert record_from_json(good_record()).in_place is None
    stamp = {"size": 1000, "mtime_ns": 1_700_000_000_123_456_789, "ctime_ns": -5, "ino": 2**40}
    rec = record_from_json(good_record() | {"complete": True, "in_place": stamp})
    assert rec.in_place is not None and rec.in_place.to_json() == stamp
    assert record_from_json(json.loads(json.dumps(rec.to_json()))) == rec


@pytest.mark.parametrize(
    "stamp",
    [
        [1000, 1, 2, 3],
        {"size": 1000, "mtime_ns": 1, "ctime_ns": 2},
        {"size": 1000, "mtime_ns": 1, "ctime_ns": 2, "ino": True},
        {"size": 1000, "mtime_ns": 1.5, "ctime_ns": 2, "ino": 3},
        {"size": 1000, "mtime_ns": 1, "ctime_ns": 2, "ino": 2**64},
    ],
)
def test_a_malformed_stat_is_not_trusted(stamp: object) -> None:
    with pytest.raises(JournalError):
        record_from_json(good_record() | {"in_place": stamp})
