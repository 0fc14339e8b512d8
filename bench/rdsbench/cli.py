"""The command line: options, the run (tools, data, nginx, every chosen set, the targets),
and the one place that turns errors and signals into a message and an exit code.

May import: everything else in this package.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .base import BENCH_DIR, GIB, KIB, MIB, BenchError, Terminated, fmt_size
from .datasets import SET_NAMES, Data, make_sets
from .env import Env
from .machine import machine_info
from .nginx import Nginx
from .suites import bench_set, bench_stream
from .targets import Verdict, print_verdicts
from .tools import ensure_tools, find_rds


def parse_rate(text: str) -> int:
    """``8m`` -> 8 MiB/s in bytes (nginx reads k/m the same way, 1024-based)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r} (say e.g. 8m, 512k)")
    n = int(m.group(1)) * {"": 1, "k": KIB, "m": MIB, "g": GIB}[m.group(2).lower()]
    if n <= 0:
        raise argparse.ArgumentTypeError("the rate must be positive")
    return n


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Benchmark rds-backup against aria2c and curl on a local nginx "
        "(see bench/README.md for what is measured).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 256 MiB, 16 x 4 MiB, 128 MiB + 4 x 16 MiB (under 2 min)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="rounds per data set (default: 3, or 2 with --quick)",
    )
    p.add_argument(
        "--sets",
        default="big,tls,many,wan,stream",
        help="comma-separated data sets among big, tls, many, wan, stream (default: all)",
    )
    p.add_argument(
        "--wan-rate",
        type=parse_rate,
        default=parse_rate("8m"),
        metavar="RATE",
        help="per-connection rate cap of the WAN-like set, nginx syntax: 8m = 8 MiB/s "
        "(default: 8m)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=BENCH_DIR / "out",
        help="data, nginx files, logs and outputs; keep it on the disk to measure "
        "(default: bench/out/)",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="apt-get install what is missing (nginx-light, aria2, curl)",
    )
    p.add_argument(
        "--rds-backup",
        dest="rds_backup",
        metavar="CMD",
        help="how to run rds-backup (default: next to this python, or on PATH)",
    )
    p.add_argument(
        "--rds-tuned",
        metavar="FLAGS",
        default="",
        help="also run rds-backup with these extra flags, labelled TUNED "
        '(e.g. "-x 16 --max-connections 16")',
    )
    p.add_argument(
        "--baseline",
        metavar="CMD",
        help="also run another rds-backup build with the same flags (e.g. one installed from "
        "an earlier commit: .../venv/bin/rds-backup), to compare two builds in one run",
    )
    p.add_argument(
        "--baseline-label",
        default="(baseline)",
        help="how to label the --baseline build in the tables (e.g. its commit)",
    )
    p.add_argument(
        "--no-rss-check",
        dest="rss_check",
        action="store_false",
        help="skip the rds-backup runs on the WAN set's big file without a cap "
        "(peak RSS at two file sizes)",
    )
    p.add_argument(
        "--show-commands", action="store_true", help="print each tool's command line (first round)"
    )
    args = p.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SET_NAMES]
    if unknown or not sets:
        names = ", ".join(unknown) or "(none)"
        p.error(f"--sets: unknown set(s) {names}; use {', '.join(SET_NAMES)}")
    args.sets = sets
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    return args


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        raise Terminated

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def bench(args: argparse.Namespace) -> int:
    tools = ensure_tools(args.install)
    rds = find_rds(args.rds_backup)
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(workdir / "runs", ignore_errors=True)  # leftovers of an interrupted run
    sets = make_sets(args.quick)
    chosen = [sets[k] for k in args.sets]
    need = list(chosen)
    if "big" in args.sets and args.rss_check and sets["wan"] not in need:
        need.append(sets["wan"])  # its big file, unthrottled, is the smaller RSS probe
    data = Data(workdir / "data")
    data.ensure(need)
    biggest = max(ds.total for ds in chosen)
    free = shutil.disk_usage(workdir).free
    if free < biggest + 256 * MIB:
        raise BenchError(
            f"not enough disk space in {workdir} for one output copy: "
            f"{fmt_size(biggest)} needed, {fmt_size(free)} free"
        )
    nginx = Nginx(tools["nginx"], workdir, data.root, args.wan_rate)
    env = Env(args, workdir, data, nginx, rds, tools["aria2c"], tools["curl"])
    if args.baseline:
        env.baseline = find_rds(args.baseline)
    all_verdicts: list[Verdict] = []
    started = time.perf_counter()
    with sigterm_as_exit():
        try:
            first = chosen[0]
            nginx.start(f"/{first.folder}/{first.files[0].name}")
            print("\n".join(machine_info(env)))
            pid = nginx.proc.pid if nginx.proc else "?"
            print(
                f"nginx:      http://127.0.0.1:{nginx.port}/ (pid {pid}, "
                f"sendfile on, {min(2, os.cpu_count() or 1)} workers; /slow/ capped at "
                f"{fmt_size(args.wan_rate)}/s per connection)"
            )
            print(
                "units:      MiB/s = 2^20 bytes/s; RSS in MB = 10^6 bytes; CPU = user+sys of "
                "the tool's process; rounds alternate the tool order"
            )
            for ds in chosen:
                if ds.key == "stream":
                    all_verdicts += bench_stream(env, ds)
                else:
                    all_verdicts += bench_set(env, ds)
        finally:
            nginx.stop()
    print(
        f"\n== targets ({'QUICK sizes' if args.quick else 'full sizes'}; "
        f"wall {time.perf_counter() - started:.0f} s) =="
    )
    print_verdicts(all_verdicts)
    if env.failures:
        print("\n" + "!" * 78)
        print(f"!! {len(env.failures)} run(s) FAILED verification:")
        for f in env.failures:
            print(f"!!   {f}")
        print("!" * 78)
        return 1
    fails = sum(1 for v in all_verdicts if v.ok is False)
    print(f"\nall outputs verified (size and SHA-256); {fails} target(s) missed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        return bench(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nbench: interrupted (nginx and the running tool stopped)", file=sys.stderr)
        return 130
    except Terminated:
        print("\nbench: terminated (nginx and the running tool stopped)", file=sys.stderr)
        return 143
    except OSError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 2
