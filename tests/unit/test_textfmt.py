"""downloader.text.fmt: the one scrubber, the one table renderer, sizes both ways."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.text.fmt import format_size, parse_size, printable, render_table, unsafe_char

# C0, C1, line breaks; bidirectional controls; lone surrogates.
CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@given(st.text())
def test_printable_leaves_one_line_without_controls(text: str) -> None:
    out = printable(text)
    assert len(out) == len(text)
    assert not CONTROL.search(out)
    assert out.splitlines() in ([], [out])


def test_printable_spaces_for_breaks_question_marks_for_the_rest() -> None:
    assert printable("a\tb\nc\r\u2028d\x1b[2Je\x7f") == "a b c  d?[2Je?"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("csi\x9b2J", "csi?2J"),  # the 8-bit CSI: some terminals obey it like ESC [
        ("next\x85line", "next?line"),  # C1 NEL
        ("evil\u202ekp.qp", "evil?kp.qp"),  # right-to-left override: shows as "evilpq.pk"
        ("\u202a\u202b\u202c\u202d", "????"),
        ("\u2066x\u2067y\u2068z\u2069", "?x?y?z?"),  # isolates
        ("\u200ea\u200f\u061c", "?a??"),  # the invisible marks
        ("lone\ud800", "lone?"),  # cannot be encoded to UTF-8: printing it would fail
        ("caf\u00e9 \u65e5\u672c", "caf\u00e9 \u65e5\u672c"),  # letters stay
    ],
)
def test_printable_escapes_c1_bidi_and_surrogates(text: str, shown: str) -> None:
    assert printable(text) == shown
    printable(text).encode("utf-8")  # strict: a terminal or a log file can take it
    assert (unsafe_char(text) is None) == (text == shown)


def test_render_table_aligns_scrubs_and_trims() -> None:
    table = render_table(
        ("NAME", "SIZE"),
        [("a.qp", "1.0 KiB"), ("evil\x1b[2J.qp", "12 B")],
        right={1},
        rule=True,
    )
    assert table.splitlines() == [
        "NAME            SIZE",
        "-----------  -------",
        "a.qp         1.0 KiB",
        "evil?[2J.qp     12 B",
    ]


def test_render_table_without_rows_or_rule() -> None:
    assert render_table(("ID", "TYPE "), []) == "ID  TYPE"


def test_render_table_refuses_ragged_rows() -> None:
    with pytest.raises(ValueError):
        render_table(("A", "B"), [("only one",)])


@pytest.mark.parametrize(
    ("text", "value"),
    [("8M", 8 << 20), ("1k", 1024), ("2.5G", int(2.5 * (1 << 30))), ("100KiB/s", 102400)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "fast", "-5M", "5X", "1 T"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@given(st.integers(min_value=0, max_value=1 << 50))
def test_parse_size_reads_what_format_size_writes(n: int) -> None:
    text = format_size(n)
    if text.endswith(("TiB", "PiB")):
        return  # parse_size stops at G
    # format_size keeps one decimal: off by at most 0.05 of a unit, 5% at 1.0.
    assert abs(parse_size(text.replace(" ", "")) - n) <= n / 20


def test_times_for_people_are_local_with_their_offset_and_for_machines_rfc3339() -> None:
    import os
    import time
    from datetime import UTC, datetime

    from downloader.cli.render import iso_time, local_time

    when = datetime(2024, 5, 20, 10, 0, tzinfo=UTC)
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Singapore"
    time.tzset()
    try:
        assert local_time(when) == "2024-05-20 18:00:00 +08:00"
    finally:
        if old is None:
            os.environ.pop("TZ")
        else:
            os.environ["TZ"] = old
        time.tzset()
    assert iso_time(when) == "2024-05-20T10:00:00+00:00"
    assert local_time(None) == "-" and iso_time(None) is None
