"""A set's runs summarised (median of the verified rounds, highest peak RSS) and printed as a table.

May import: base, datasets, runs.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .base import GIB, KIB, MIB, fmt_size
from .datasets import DataSet
from .runs import RunResult


@dataclass(slots=True)
class Summary:
    label: str
    runs: int
    ok: int
    wall: float | None
    mibs: float | None
    cpu_gib: float | None
    rss_mb: float | None
    reqs: int | None
    conns: int | None


def summarize(label: str, runs: Sequence[RunResult], total: int) -> Summary:
    good = [r for r in runs if r.verified]
    if not good:
        return Summary(
            label,
            len(runs),
            0,
            None,
            None,
            None,
            max((r.rss_kb for r in runs), default=0) * KIB / 1e6,
            None,
            None,
        )
    wall = statistics.median(r.wall for r in good)
    cpu = statistics.median(r.cpu for r in good)
    return Summary(
        label,
        len(runs),
        len(good),
        wall,
        total / MIB / wall,
        cpu / (total / GIB),
        max(r.rss_kb for r in runs) * KIB / 1e6,
        round(statistics.median(r.reqs for r in good)),
        round(statistics.median(r.conns for r in good)),
    )


def fmt(v: float | None, spec: str) -> str:
    if v is not None:
        return format(v, spec)
    width = re.match(r"\d*", spec)
    return "-".rjust(int(width.group() or 0) if width else 0)


def print_table(ds: DataSet, rows: Sequence[Summary], rounds: int, rate: int) -> None:
    cap = f", each connection capped at {fmt_size(rate)}/s" if ds.slow else ", no rate cap"
    print(
        f"\n== {ds.key}: {ds.title} ({fmt_size(ds.total)} in total{cap}); "
        f"median of {rounds} round(s) =="
    )
    w = max(36, *(len(s.label) for s in rows))
    head = (
        f"{'tool':<{w}} {'wall s':>8} {'MiB/s':>8} {'CPU s/GiB':>10} {'peak RSS MB':>12} "
        f"{'reqs':>6} {'conns':>6}  verified"
    )
    print(head)
    print("-" * len(head))
    for s in rows:
        ver = f"{s.ok}/{s.runs} ok" if s.ok == s.runs else f"{s.ok}/{s.runs} ** FAILED **"
        print(
            f"{s.label:<{w}} {fmt(s.wall, '8.2f')} {fmt(s.mibs, '8.1f')} "
            f"{fmt(s.cpu_gib, '10.2f')} {fmt(s.rss_mb, '12.1f')} "
            f"{fmt(s.reqs, '6d')} {fmt(s.conns, '6d')}  {ver}"
        )
