"""downloader.ranges: range sets, chunking, Content-Range parsing, the KB size rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.ranges import (
    MIB,
    RangeSet,
    default_chunk_size,
    kb_size_matches,
    parse_content_range,
    split,
)


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
        (0, 1, True),  # an empty file listed as 1 KB: within one KB
        (0, 2, False),
        (1, 0, True),
        (1, 1, True),
        (1, 2, False),
        (1023, 0, True),
        (1023, 1, True),
        (1023, 2, True),  # 1.023 kB, 1000-based ceil
        (1024, 1, True),
        (1024, 2, True),
        (1025, 0, False),  # more than a KB listed as nothing
        (1025, 1, True),
        (1025, 2, True),
        (1025, 3, False),
        (1500, 1, True),  # 1000-based round
        (1500, 2, True),
        (2047, 2, True),
        (10_240_000, 10_240, True),  # 1000-based: 10240 KB of 1000 bytes
        (10_240_000, 10_000, True),  # 1024-based floor
        (1 * 1024 * 1024, 800, True),  # 22% under: plausible
        (1 * 1024 * 1024, 700, False),  # 33% under: a different file
        (1 * 1024 * 1024, 1300, True),
        (1 * 1024 * 1024, 1400, False),
        (1 * 1024 * 1024, 0, False),
        (1 * 1024 * 1024, 2048, False),  # twice the size
    ],
)
def test_kb_rule_examples(size: int, kb: int, ok: bool) -> None:
    assert kb_size_matches(size, kb) is ok


def _roundings(size: int) -> set[int]:
    """Every way an API might turn bytes into KB: floor, ceil and round (half up and half
    to even), 1024- and 1000-based."""
    out: set[int] = set()
    for unit in (1024, 1000):
        out |= {size // unit, -(-size // unit), (2 * size + unit) // (2 * unit)}
        out.add(round(size / unit))
    return out


sizes = st.one_of(st.integers(0, 4096), st.integers(0, 1 << 44))


@given(sizes)
def test_kb_rule_accepts_every_rounding(size: int) -> None:
    for kb in _roundings(size):
        assert kb_size_matches(size, kb), kb


@given(sizes, st.integers(0, 1 << 44))
def test_kb_rule_accepts_within_a_quarter_and_rejects_a_clear_disagreement(
    size: int, kb: int
) -> None:
    listed = kb * 1024
    if 4 * abs(listed - size) <= size or abs(listed - size) <= 1024:
        assert kb_size_matches(size, kb)
    # Off by more than a quarter plus a KB in either unit: sizes that clearly disagree.
    if kb * 1000 > size + size // 4 + 1024 or kb * 1024 < size - size // 4 - 1024:
        assert not kb_size_matches(size, kb)


@given(st.integers(0, 200_000))
def test_kb_rule_accepts_an_interval(size: int) -> None:
    """What is accepted for one byte count is a run of KB figures with no holes."""
    accepted = [kb for kb in range(size // 500 + 4) if kb_size_matches(size, kb)]
    assert accepted == list(range(accepted[0], accepted[-1] + 1))
    assert not kb_size_matches(size, size // 500 + 4)
