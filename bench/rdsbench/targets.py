"""The targets: each summary judged against its peers measured in the same run.

May import: datasets, tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .datasets import DataSet
from .tables import Summary


@dataclass(slots=True)
class Verdict:
    what: str
    value: float | None
    target: str
    ok: bool | None  # None: could not be judged
    unit: str = "x"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# The targets: throughput as a ratio to a peer measured in the same run (None: no target).
NEED_ARIA = {"big": None, "tls": 1.5, "many": 1.5, "wan": 1.0}
NEED_CURL = {"big": 1.0, "tls": 1.0, "many": None, "wan": None}
ARIA_LABEL = {
    "big": "aria2c -x16",
    "tls": "aria2c -x16",
    "many": "aria2c -j8",
    "wan": "aria2c -x16 -s16 -j4",
}
CPU_VS_CURL = {"tls": 1.3}  # CPU-seconds per GiB, as a ratio to curl's
RSS_LIMIT_MB = 60  # every set, WAN at 32 connections included


MAX_CONNECTIONS = 32  # rds-backup's default connection budget
CEILING_SHARE = 0.9  # of the WAN set's ceiling: every connection at its cap


def judge(ds: DataSet, by_key: dict[str, Summary], wan_rate: int | None = None) -> list[Verdict]:
    rds = by_key["rds-backup"]
    curl = by_key["curl"]
    out = []
    if ds.key == "wan" and wan_rate:
        ceiling = MAX_CONNECTIONS * wan_rate / 2**20
        share = None if rds.mibs is None else rds.mibs / ceiling
        out.append(
            Verdict(
                f"wan: throughput vs the ceiling ({ceiling:.0f} MiB/s)",
                share,
                f">= {CEILING_SHARE:.2f}x",
                None if share is None else share >= CEILING_SHARE,
            )
        )
    for peer, need in (("aria2c", NEED_ARIA[ds.key]), ("curl", NEED_CURL[ds.key])):
        r = ratio(rds.mibs, by_key[peer].mibs)
        label = ARIA_LABEL[ds.key] if peer == "aria2c" else "curl"
        out.append(
            Verdict(
                f"{ds.key}: throughput vs {label}",
                r,
                "(no target)" if need is None else f">= {need:.2f}x",
                None if need is None or r is None else r >= need,
            )
        )
    cpu_need = CPU_VS_CURL.get(ds.key)
    r_cpu = ratio(rds.cpu_gib, curl.cpu_gib)
    out.append(
        Verdict(
            f"{ds.key}: CPU s/GiB vs curl",
            r_cpu,
            "(no target)" if cpu_need is None else f"<= {cpu_need:.2f}x",
            None if cpu_need is None or r_cpu is None else r_cpu <= cpu_need,
        )
    )
    rss = rds.rss_mb if rds.ok else None
    out.append(
        Verdict(
            f"{ds.key}: rds-backup peak RSS MB",
            rss,
            f"< {RSS_LIMIT_MB}",
            unit="",
            ok=None if rss is None else rss < RSS_LIMIT_MB,
        )
    )
    return out


def print_verdicts(verdicts: Sequence[Verdict]) -> None:
    for v in verdicts:
        mark = {True: "PASS", False: "FAIL", None: "    "}[v.ok]
        val = "-" if v.value is None else f"{v.value:.2f}{v.unit}"
        print(f"  {mark}  {v.what:<48} {val:>9}   target {v.target}")
