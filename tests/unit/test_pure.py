"""The pure modules: range arithmetic, the KB rule, answer classification, scheduling
decisions, link refresh decisions, safe names, journal validation, rates."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from downloader.digest import Crc64, PieceLog, crc64, crc64_combine
from downloader.errors import UnsafeNameError, UsageError
from downloader.journal import JournalError, record_from_json
from downloader.ranges import (
    MIB,
    RangeSet,
    default_chunk_size,
    kb_size_matches,
    parse_content_range,
    split,
)
from downloader.ratelimit import parse_rate
from downloader.resolver import Link, decide_refresh
from downloader.scheduler import FileState, Limits, PlanFile, Scheduler
from downloader.storage import safe_relative_path
from downloader.transfer import Kind, classify, is_plain_md5_etag, request_headers

# ------------------------------------------------------------------ ranges


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=30))
def test_rangeset_matches_a_set_of_bytes(pairs: list[tuple[int, int]]) -> None:
    rs = RangeSet()
    model: set[int] = set()
    for a, b in pairs:
        rs.add(a, b)
        model.update(range(a, b))
    assert rs.covered() == len(model)
    ivs = rs.intervals()
    assert all(s < e for s, e in ivs)
    assert all(ivs[i][1] < ivs[i + 1][0] for i in range(len(ivs) - 1))  # disjoint, apart
    prefix = 0
    while prefix in model:
        prefix += 1
    assert rs.prefix() == prefix
    missing = {b for s, e in rs.missing(220) for b in range(s, e)}
    assert missing == set(range(220)) - model


def test_split_covers_exactly() -> None:
    pieces = list(split([(0, 10), (20, 25)], 4))
    assert pieces == [(0, 4), (4, 8), (8, 10), (20, 24), (24, 25)]


def test_default_chunk_size_bounds() -> None:
    assert default_chunk_size(1, 8) == 4 * MIB
    assert default_chunk_size(2 * 1024 * MIB, 8) == 64 * MIB
    mid = default_chunk_size(1024 * MIB, 8)
    assert 4 * MIB <= mid <= 64 * MIB and mid % MIB == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-0/10", (0, 0, 10)),
        ("bytes 5-9/10", (5, 9, 10)),
        ("bytes */0", (None, None, 0)),
        ("bytes 0-9/*", (0, 9, None)),
        ("items 0-1/2", (None, None, None)),
        ("bytes x-1/2", (None, None, 2)),
        (None, (None, None, None)),
    ],
)
def test_parse_content_range(value: str | None, expected: tuple[object, ...]) -> None:
    assert parse_content_range(value) == expected


@pytest.mark.parametrize(
    ("size", "kb", "ok"),
    [
        (0, 0, True),
        (0, 1, False),
        (1, 0, True),
        (1, 1, True),
        (1, 2, False),
        (1023, 0, True),
        (1023, 1, True),
        (1023, 2, False),
        (1024, 1, True),
        (1024, 0, False),
        (1024, 2, False),
        (1025, 1, True),
        (1025, 2, True),
        (1025, 3, False),
        (1025, 0, False),
    ],
)
def test_kb_rule_accepts_floor_and_ceil_only(size: int, kb: int, ok: bool) -> None:
    assert kb_size_matches(size, kb) is ok


# ------------------------------------------------------------------ classification


def headers(**kw: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kw.items()}))


def test_request_headers() -> None:
    assert request_headers(0, 10, None) == {"Range": "bytes=0-9"}
    assert request_headers(5, None, '"e"') == {"Range": "bytes=5-", "If-Match": '"e"'}


def test_206_must_be_what_was_asked() -> None:
    ok = classify(
        206,
        headers(Content_Range="bytes 10-19/100", ETag='"a"'),
        start=10,
        end=20,
        expect_etag='"a"',
        expect_total=100,
    )
    assert ok.kind is Kind.PARTIAL and (ok.start, ok.end, ok.total) == (10, 20, 100)
    clamped = classify(
        206,
        headers(Content_Range="bytes 90-99/100"),
        start=90,
        end=200,
        expect_etag=None,
        expect_total=None,
    )
    assert clamped.kind is Kind.PARTIAL and clamped.end == 100
    wrong = classify(
        206,
        headers(Content_Range="bytes 0-9/100"),
        start=10,
        end=20,
        expect_etag=None,
        expect_total=100,
    )
    assert wrong.kind is Kind.BAD
    other = classify(
        206,
        headers(Content_Range="bytes 10-19/100", ETag='"b"'),
        start=10,
        end=20,
        expect_etag='"a"',
        expect_total=100,
    )
    assert other.kind is Kind.CHANGED
    resized = classify(
        206,
        headers(Content_Range="bytes 10-19/101"),
        start=10,
        end=20,
        expect_etag=None,
        expect_total=100,
    )
    assert resized.kind is Kind.CHANGED


@pytest.mark.parametrize(
    ("status", "hdrs", "kind"),
    [
        (200, {"Content_Length": "100"}, Kind.WHOLE),
        (200, {}, Kind.BAD),
        (416, {"Content_Range": "bytes */0"}, Kind.EMPTY),
        (416, {"Content_Range": "bytes */50"}, Kind.PAST_END),
        (412, {}, Kind.CHANGED),
        (403, {}, Kind.REFUSED),
        (404, {}, Kind.GONE),
        (429, {"Retry_After": "3"}, Kind.RETRY),
        (503, {}, Kind.RETRY),
        (400, {}, Kind.BAD),
    ],
)
def test_classify_statuses(status: int, hdrs: dict[str, str], kind: Kind) -> None:
    answer = classify(status, headers(**hdrs), start=0, end=10, expect_etag=None, expect_total=None)
    assert answer.kind is kind
    if status == 429:
        assert answer.retry_after == 3.0


def test_request_id_is_kept() -> None:
    answer = classify(
        503, headers(x_obs_request_id="R1"), start=0, end=1, expect_etag=None, expect_total=None
    )
    assert answer.request_id == "R1"


def test_md5_shaped_etags() -> None:
    assert is_plain_md5_etag('"3b46eaf02d3b6b1206078bb86a7b7013"')
    assert not is_plain_md5_etag('"3b46eaf02d3b6b1206078bb86a7b7013-3"')
    assert not is_plain_md5_etag('"5f1e-1a2b"')
    assert not is_plain_md5_etag(None)


# ------------------------------------------------------------------ scheduling


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
    sched.release(a)
    a.file.state = FileState.FINISHING  # all bytes on disk: fsync and rename under way
    c = sched.next()
    assert c is not None and c.file.name == "c" and c.probe
    assert not sched.finished()  # the run is not over until "a" is in place


def test_per_file_cap_while_others_wait_and_global_budget() -> None:
    a, b = plan("a", 100 * MIB), plan("b", 90 * MIB)
    sched = Scheduler([a, b], Limits(jobs=1, per_file=2, connections=3))
    probe = sched.next()
    assert probe is not None and probe.file is a
    sched.plan(a, list(split([(4 * MIB, 100 * MIB)], 4 * MIB)))
    got = sched.next()
    assert got is not None and got.file is a
    assert sched.next() is None  # a has 2 (its cap while b waits); jobs=1 keeps b closed
    sched.release(probe)
    assert a.state is FileState.ACTIVE


def test_idle_connection_splits_the_largest_range() -> None:
    a = plan("a", 64 * MIB)
    sched = Scheduler([a], Limits(jobs=1, per_file=1, connections=4))
    probe = sched.next()
    assert probe is not None
    sched.plan(a, [])
    probe.probe = False
    probe.end = 64 * MIB  # the only range, still in flight
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
    sched.plan(a, [])
    probe.probe = False
    probe.end = 8 * MIB
    probe.pos = 3 * MIB
    sched.release(probe)
    assert list(a.pending) == [(3 * MIB, 8 * MIB)]


# ------------------------------------------------------------------ links


def test_refresh_decision_uses_margin_capped_by_lifetime() -> None:
    long_link = Link("u", expires=1000.0, generation=1, issued=400.0)
    assert not decide_refresh(long_link, 900.0, margin=60)
    assert decide_refresh(long_link, 941.0, margin=60)
    short = Link("u", expires=1004.0, generation=1, issued=1000.0)  # lives 4 s
    assert not decide_refresh(short, 1001.0, margin=60)  # a quarter of 4 s, not 60 s
    assert decide_refresh(short, 1003.1, margin=60)
    unknown = Link("u", expires=None, generation=1, issued=0.0)
    assert not decide_refresh(unknown, 10**10, margin=60)


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "../x",
        "a/../../x",
        "/abs",
        "C:\\x",
        "c:x",
        "a\\b",
        "nul\x00",
        "bell\x07",
        "a//b",
        "./a",
        ".rds-backup/x",
        "rds-backup-manifest.json",
        "a/" + "x" * 300,
    ],
)
def test_unsafe_names(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        safe_relative_path(name)


def test_safe_names_keep_subfolders() -> None:
    assert str(safe_relative_path("db1/full.bak")) == "db1/full.bak"
    assert str(safe_relative_path("a..b.qp")) == "a..b.qp"


# ------------------------------------------------------------------ journal, rates


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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50M", 50 * MIB),
        ("1k", 1024),
        ("2.5M", int(2.5 * MIB)),
        ("100KiB/s", 100 * 1024),
        ("1G", 1024 * MIB),
        ("4096", 4096),
    ],
)
def test_parse_rate(text: str, value: int) -> None:
    assert parse_rate(text) == value


@pytest.mark.parametrize("text", ["fast", "", "10", "-5M", "5X"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


def test_crc64_is_the_xz_variant_obs_reports() -> None:
    crc = Crc64()
    crc.update(b"1234")
    crc.update(b"56789")
    assert crc.value == 0x995DC9BBDF1939FA  # CRC-64/XZ check value of "123456789"
    whole = classify(
        200,
        headers(Content_Length="9", x_obs_checksum_crc64ecma=str(crc.value)),
        start=0,
        end=None,
        expect_etag=None,
        expect_total=None,
    )
    assert whole.whole and whole.crc64 == crc.value
    part = classify(
        206,
        headers(Content_Range="bytes 0-3/9", x_obs_checksum_crc64ecma="1"),
        start=0,
        end=4,
        expect_etag=None,
        expect_total=None,
    )
    assert not part.whole


# ------------------------------------------------------------------ checksums from pieces


@given(st.binary(max_size=3000), st.binary(max_size=3000))
def test_crc64_combine_equals_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


def test_crc64_combine_across_more_than_the_zero_buffer() -> None:
    a, b = bytes(range(256)) * 3, bytes(reversed(range(256))) * (9 * 1024 + 7)  # b > 2 MiB
    assert crc64_combine(crc64(a), crc64(b), len(b)) == crc64(a + b)


@given(
    st.integers(1, 400),
    st.lists(st.tuples(st.integers(0, 399), st.integers(1, 120), st.booleans()), max_size=40),
    st.randoms(use_true_random=False),
)
def test_pieces_and_read_back_give_the_file_crc(
    size: int, writes: list[tuple[int, int, bool]], rnd: random.Random
) -> None:
    """Connections write runs of bytes in any order, overlapping (split ranges), some
    continuing their own piece; the hasher folds pieces at the prefix and reads back what no
    piece describes. The CRC always equals the CRC of the file."""
    data = bytes((i * 7 + 3) % 251 for i in range(size))
    log = PieceLog()
    written = bytearray(size)
    covered = [False] * size
    crc = Crc64()
    hashed = 0
    pieces: dict[int, object] = {}

    def hash_prefix() -> None:
        nonlocal hashed
        prefix = hashed
        while prefix < size and covered[prefix]:
            prefix += 1
        while hashed < prefix:
            piece = log.take(hashed)
            if piece is not None:
                crc.append(piece.crc, piece.end - piece.start)
                hashed = piece.end
                continue
            nearest = log.next_start(hashed)
            limit = prefix if nearest is None else min(prefix, nearest)
            crc.update(bytes(written[hashed:limit]))
            hashed = limit

    for conn, (start, length, same_connection) in enumerate(writes):
        start %= size
        end = min(size, start + length)
        key = 0 if same_connection else conn + 1
        piece = pieces.get(key)
        pieces[key] = log.wrote(piece, start, data[start:end])  # type: ignore[arg-type]
        written[start:end] = data[start:end]
        covered[start:end] = [True] * (end - start)
        if rnd.random() < 0.5:
            hash_prefix()
    written[:] = data  # the rest arrives without pieces (as if from an earlier run)
    covered = [True] * size
    hash_prefix()
    assert hashed == size
    assert crc.value == crc64(data)
