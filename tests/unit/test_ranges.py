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
        (0, 1, True),  # an empty file listed as 1 KB
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
        (1 * 1024 * 1024, 1024, True),
        (1 * 1024 * 1024, 1048, True),  # 1000-based floor of 1048.576
        (1 * 1024 * 1024, 1049, True),  # and its ceil (and round)
        (1 * 1024 * 1024, 1023, False),  # one KB short: not a rounding of these bytes
        (1 * 1024 * 1024, 1050, False),
        (1 * 1024 * 1024 * 4 // 5, 1024, False),  # 20% truncated: no longer "plausible"
        (1 * 1024 * 1024, 800, False),
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


@given(sizes, st.integers(-3, 3))
def test_kb_rule_accepts_the_roundings_and_nothing_beside_them(size: int, step: int) -> None:
    """Every rounding passes; a figure next to a rounding (in either unit) passes only if it
    is itself a rounding: a truncated or padded object fails however close it comes."""
    roundings = _roundings(size) | ({1} if size == 0 else set())
    for kb in roundings:
        neighbour = kb + step
        if neighbour >= 0:
            assert kb_size_matches(size, neighbour) is (neighbour in roundings), neighbour


@given(sizes, st.integers(0, 1 << 44))
def test_kb_rule_accepts_exactly_the_roundings(size: int, kb: int) -> None:
    roundings = _roundings(size) | ({1} if size == 0 else set())
    assert kb_size_matches(size, kb) is (kb in roundings)


@given(st.integers(1024, 1 << 44), st.integers(1, 99))
def test_kb_rule_fails_a_truncated_object(listed: int, percent_short: int) -> None:
    """An object a percent or more short of what the API lists (1024-based) fails."""
    size = listed * 1024 * (100 - percent_short) // 100
    assert not kb_size_matches(size, listed)
