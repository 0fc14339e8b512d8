"""downloader.ratelimit.parse_rate: --limit-rate values."""

from __future__ import annotations

import pytest

from downloader.errors import UsageError
from downloader.ranges import MIB
from downloader.ratelimit import parse_rate


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
