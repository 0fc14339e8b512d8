"""downloader.journal: a resume record round-trips and is rejected when it cannot be
trusted."""

from __future__ import annotations

import json

import pytest

from downloader.journal import JournalError, record_from_json


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
    ],
)
def test_journal_record_rejects_what_it_cannot_trust(change: dict[str, object]) -> None:
    obj = good_record() | change
    with pytest.raises(JournalError):
        record_from_json(obj)
