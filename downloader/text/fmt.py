"""Text for people: sizes, rates and durations, one-line scrubbing, plain tables.

Neutral ground shared by the CLI and the progress reporters; it imports neither of them, nor
click or tqdm. Everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence

__all__ = [
    "format_duration",
    "format_rate",
    "format_size",
    "parse_size",
    "printable",
    "render_table",
    "unsafe_char",
]

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything that can
# move a terminal's cursor, change its state or start a new line in a log file (C1 includes
# the 8-bit CSI, U+009B, which some terminals obey like ESC [).
_C0_C1 = "\x00-\x1f\x7f-\x9f\u2028\u2029"
# Bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069)
# and the invisible marks (U+061C, U+200E, U+200F). They reorder the text around them, so
# a name shows as something it is not ("Trojan Source", CVE-2021-42574).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Lone surrogates (from a JSON ``\ud800`` escape) cannot be encoded to UTF-8: printing one
# fails, and no file system name holds one.
_SURROGATES = "\ud800-\udfff"
_CONTROL_RE = re.compile(f"[{_C0_C1}{_BIDI}{_SURROGATES}]")
_BREAKS = "\t\n\r\x0b\x0c\u2028\u2029"


def printable(text: str) -> str:
    """``text`` on one line with no control characters (tabs/newlines become spaces; other
    controls, bidirectional controls and lone surrogates ``?``), so a terminal or a log file
    cannot be tricked by a value."""

    def repl(m: re.Match[str]) -> str:
        return " " if m.group(0) in _BREAKS else "?"

    return _CONTROL_RE.sub(repl, text)


def unsafe_char(text: str) -> str | None:
    """The first character :func:`printable` would replace, or None: what a name that is
    written to disk must not hold."""
    m = _CONTROL_RE.search(text)
    return m.group(0) if m else None


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_size(n: float | None) -> str:
    """Human size in 1024-based units: ``512 B``, ``1.5 KiB``, ``3.2 GiB``; None gives ``?``."""
    if n is None:
        return "?"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    for unit in _UNITS:
        if v < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(v)} B"
            return f"{sign}{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


def format_rate(bytes_per_second: float | None) -> str:
    """``12.3 MiB/s``, or ``-`` when unknown."""
    if bytes_per_second is None or bytes_per_second < 0:
        return "-"
    return format_size(bytes_per_second) + "/s"


def format_duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m10s``, ``2h05m``; ``-`` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?(?:/s)?\s*", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """``50M`` -> 52428800: K, M and G are powers of 1024; a trailing ``B``/``iB`` and ``/s``
    are allowed, so rates read the same. Raises ``ValueError`` on anything else."""
    m = _SIZE_RE.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a number with an optional K, M or G")
    return int(float(m.group(1)) * _MULTIPLIERS[m.group(2).upper()])


def render_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    right: Collection[int] = (),
    rule: bool = False,
) -> str:
    """A plain-text table: columns as wide as their widest cell, two spaces apart.

    Every cell goes through :func:`printable`; columns whose index is in ``right`` are
    right-aligned; ``rule`` puts a line of dashes under the header. No trailing spaces.
    """
    lines = [[printable(c) for c in header]]
    lines.extend([printable(c) for c in row] for row in rows)
    if any(len(line) != len(header) for line in lines):
        raise ValueError("every row needs one cell per column")
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    text = [render(lines[0])]
    if rule:
        text.append(render(["-" * w for w in widths]))
    text.extend(render(line) for line in lines[1:])
    return "\n".join(text)
