"""What runs for one data set: the tools in rotating order, the table, the ratios and targets;
and the stream set (download vs cat to a file).

May import: base, datasets, env, tools, measure, runs, tables, targets.
"""

from __future__ import annotations

import shutil
import statistics

from .base import KIB, MIB, fmt_size
from .datasets import DataSet, make_sets
from .env import Env
from .measure import run_measured
from .runs import RunResult, one_run
from .tables import fmt, print_table, summarize
from .targets import Verdict, judge, print_verdicts, ratio
from .tools import Tool, command, tools_for


def bench_set(env: Env, ds: DataSet) -> list[Verdict]:
    args = env.args
    tools = tools_for(env, ds)
    print(f"\n-- {ds.key}: {ds.title}, {args.rounds} round(s) --", flush=True)
    runs: dict[str, list[RunResult]] = {t.key: [] for t in tools}
    rss_small: list[RunResult] = []
    for rnd in range(args.rounds):
        k = rnd % len(tools)
        for tool in tools[k:] + tools[:k]:
            runs[tool.key].append(one_run(env, tool, ds, rnd))
        if ds.key == "big" and args.rss_check:
            wan = make_sets(args.quick)["wan"]
            spec = wan.files[0]
            rss_small.append(
                one_run(
                    env,
                    Tool("rds-backup", f"rds-backup {fmt_size(spec.size)} (RSS probe)"),
                    wan,
                    rnd,
                    files=[spec],
                    fast=True,
                    tag=f"rss-probe-r{rnd}",
                )
            )
    rows = [summarize(t.label, runs[t.key], ds.total) for t in tools]
    print_table(ds, rows, args.rounds, args.wan_rate)
    by_key = {t.key: s for t, s in zip(tools, rows, strict=True)}
    verdicts = judge(ds, by_key, args.wan_rate)
    if "rds-backup*" in by_key:
        tuned = by_key["rds-backup*"]
        r = ratio(tuned.mibs, by_key["aria2c"].mibs)
        print(f"  (TUNED rds-backup / aria2c: {fmt(r, '.2f')}x, not counted for the targets)")
    if "rds-backup@base" in by_key:
        base, this = by_key["rds-backup@base"], by_key["rds-backup"]

        def median_rss(key: str) -> float | None:
            got = [r.rss_kb * 1024 / 1e6 for r in runs[key] if r.verified]
            return statistics.median(got) if got else None

        print(
            f"  this build / {args.baseline_label}: throughput "
            f"{fmt(ratio(this.mibs, base.mibs), '.2f')}x, CPU s/GiB "
            f"{fmt(ratio(this.cpu_gib, base.cpu_gib), '.2f')}x, peak RSS "
            f"{fmt(this.rss_mb, '.1f')} vs {fmt(base.rss_mb, '.1f')} MB (highest round), "
            f"{fmt(median_rss('rds-backup'), '.1f')} vs "
            f"{fmt(median_rss('rds-backup@base'), '.1f')} MB (median round)"
        )
    if rss_small:
        small = make_sets(args.quick)["wan"].files[0].size
        s_small = summarize("probe", rss_small, small)
        big_rss = by_key["rds-backup"].rss_mb
        print(
            f"  rds-backup peak RSS: {fmt_size(small)} file {fmt(s_small.rss_mb, '.1f')} "
            f"MB ({fmt(s_small.mibs, '.0f')} MiB/s), {fmt_size(ds.total)} file "
            f"{fmt(big_rss, '.1f')} MB"
        )
        if s_small.rss_mb is not None and big_rss is not None:
            growth = big_rss - s_small.rss_mb
            flat = growth <= max(10.0, 0.10 * s_small.rss_mb)
            verdicts.append(
                Verdict(
                    f"RSS flat {fmt_size(small)} -> {fmt_size(ds.total)} (growth MB)",
                    growth,
                    "<= max(10 MB, 10%)",
                    flat,
                    unit="",
                )
            )
    print("  ratios (rds-backup defaults, median throughput):")
    print_verdicts(verdicts)
    return verdicts


STREAM_WINDOW_MB = 64 * MIB / 1e6  # cat's default --window


TINY_STREAM = 1000  # bytes: the tail of the stream set's file


def tiny_stream_rss(env: Env, ds: DataSet) -> float | None:
    """Peak RSS (MB) of ``cat`` streaming only the last TINY_STREAM bytes of the set's file
    (``--offset``): what the process holds before any window fills, measured the same way."""
    (spec,) = ds.files
    out = env.workdir / "runs" / "tiny-stream"
    out.mkdir(parents=True, exist_ok=True)
    urls = [env.nginx.url(ds, spec)]
    argv = command(env, Tool("rds-cat", "tiny"), ds, out, ds.files, urls, "tiny")
    argv[-1] = argv[-1].replace(" > ", f" --offset {spec.size - TINY_STREAM} > ", 1)
    _, _, _, rss, code = run_measured(argv, env.workdir / "logs" / "tiny-stream.log")
    got = (out / spec.name).stat().st_size if (out / spec.name).exists() else -1
    shutil.rmtree(out)
    if code != 0 or got != TINY_STREAM:
        print(f"  (tiny stream failed: exit {code}, {got} bytes)")
        return None
    return rss * KIB / 1e6


def bench_stream(env: Env, ds: DataSet) -> list[Verdict]:
    """``rds-backup cat NAME > file`` against ``rds-backup download`` of the same file."""
    args = env.args
    tools = [Tool("rds-backup", "rds-backup download"), Tool("rds-cat", "rds-backup cat > file")]
    print(f"\n-- {ds.key}: {ds.title}, {args.rounds} round(s) --", flush=True)
    runs: dict[str, list[RunResult]] = {t.key: [] for t in tools}
    for rnd in range(args.rounds):
        k = rnd % len(tools)
        for tool in tools[k:] + tools[:k]:
            runs[tool.key].append(one_run(env, tool, ds, rnd))
    rows = [summarize(t.label, runs[t.key], ds.total) for t in tools]
    print_table(ds, rows, args.rounds, args.wan_rate)
    dl, cat = rows
    tiny = tiny_stream_rss(env, ds)
    if tiny is not None and cat.rss_mb is not None:
        print(
            f"  cat's peak RSS above a {TINY_STREAM} B stream's ({tiny:.1f} MB, the process "
            f"before its window fills): {cat.rss_mb - tiny:.1f} MB, with a "
            f"{STREAM_WINDOW_MB:.1f} MB window"
        )
    # cat's memory above the process's own baseline (a 1000-byte stream's peak): the window,
    # which the user sizes, plus at most 10 MB in flight.
    above = None if tiny is None or cat.rss_mb is None else cat.rss_mb - tiny
    limit = STREAM_WINDOW_MB + 10
    verdicts = [
        Verdict(
            f"{ds.key}: cat throughput vs download",
            ratio(cat.mibs, dl.mibs),
            ">= 0.90x",
            None if cat.mibs is None or dl.mibs is None else cat.mibs >= 0.9 * dl.mibs,
        ),
        Verdict(
            f"{ds.key}: cat peak RSS above a tiny cat's, MB",
            above,
            f"<= window + 10 = {limit:.0f}",
            None if above is None else above <= limit,
            unit="",
        ),
    ]
    print("  ratios:")
    print_verdicts(verdicts)
    return verdicts
