"""The end-of-run summary: a table of files and one line of totals."""

from __future__ import annotations

from collections.abc import Sequence

from downloader.results import ContentVerdict
from downloader.text.fmt import format_duration, format_rate, format_size, render_table

from .base import SummaryRow

__all__ = ["content_note", "run_totals", "size_only_note", "summary_table"]

_HEADER = ("FILE", "DATABASE", "SIZE", "TIME", "RATE", "RESULT")
_RIGHT = frozenset({2, 3, 4})  # the numbers


def _rate_cell(row: SummaryRow) -> str:
    moved = row.transferred if row.transferred is not None else row.size
    if not row.seconds or not moved or moved <= 0:
        return "-"
    return format_rate(moved / row.seconds)


def _result_cell(row: SummaryRow) -> str:
    if row.ok:
        return f"ok ({row.detail})" if row.detail else "ok"
    return f"FAILED: {row.detail}" if row.detail else "FAILED"


def summary_table(rows: Sequence[SummaryRow]) -> str:
    """A plain-text table (file, database, size, time, rate, result); no control characters.

    Column widths follow the content; numbers are right-aligned; no trailing spaces.
    """
    body = [
        (
            r.name,
            r.database or "-",
            format_size(r.size),
            format_duration(r.seconds),
            _rate_cell(r),
            _result_cell(r),
        )
        for r in rows
    ]
    return render_table(_HEADER, body, right=_RIGHT, rule=True)


def run_totals(
    *,
    files: int,
    failed: int,
    bytes_fetched: int,
    seconds: float,
    retries: int,
    resolutions: int,
    refusals: int,
    size_only: int = 0,
) -> str:
    """The line under the table. ``resolutions`` is the resolver's count of link
    re-resolutions (API calls after the first listing), which no reporter sees;
    ``size_only`` counts complete files no store checksum vouches for (said only when
    there are some)."""
    line = (
        f"{files - failed} of {files} files complete, {format_size(bytes_fetched)} fetched in "
        f"{seconds:.1f} s, {retries} retries, {resolutions} link re-resolutions, "
        f"{refusals} links refused"
    )
    return f"{line}, {size_only} size-only" if size_only else line


def size_only_note(count: int) -> str:
    """What ``count`` size-only files means, in one line (``download`` and ``verify``)."""
    files = "file was" if count == 1 else "files were"
    return (
        f"{count} {files} verified size-only: size and identity were checked, but the object "
        "store gave no checksum to compare the bytes with"
    )


def content_note(verdicts: Sequence[ContentVerdict | None]) -> str | None:
    """One line on what the files' own structure said (None when nothing was checked):
    how many passed, in which formats, how many were healed, damaged or not checked."""
    seen = [v for v in verdicts if v is not None]
    if not seen:
        return None
    ok = [v for v in seen if v.ok]
    formats: dict[str, int] = {}
    for v in ok:
        formats[v.format or "?"] = formats.get(v.format or "?", 0) + 1
    parts = []
    if ok:
        kinds = ", ".join(f"{n} {fmt}" for fmt, n in sorted(formats.items()))
        parts.append(f"{len(ok)} ok ({kinds})")
    healed = sum(1 for v in ok if v.healed)
    if healed:
        parts.append(f"{healed} healed after a transit error")
    damaged = sum(1 for v in seen if v.damaged)
    if damaged:
        parts.append(f"{damaged} damaged")
    unchecked = len(seen) - len(ok) - damaged
    if unchecked:
        parts.append(f"{unchecked} not checked (a format this tool does not know)")
    return "content: " + ", ".join(parts)
