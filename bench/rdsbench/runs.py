"""One run of one tool on one data set: a fresh folder, the measured command, the nginx log,
the outputs checked against the source's size and SHA-256, a progress line.

May import: base, datasets, env, tools, measure.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import KIB, MIB
from .datasets import DataSet, FileSpec
from .env import Env
from .measure import run_measured
from .tools import Tool, command


@dataclass(slots=True)
class RunResult:
    tool: str
    round: int
    wall: float
    cpu: float
    rss_kb: int
    exit_code: int
    verified: bool
    detail: str = ""
    reqs: int = 0
    conns: int = 0
    sent: int = 0


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def verify(env: Env, ds: DataSet, files: Sequence[FileSpec], out: Path) -> list[str]:
    bad = []
    for spec in files:
        p = out / spec.name
        try:
            size = p.stat().st_size
        except OSError:
            bad.append(f"{spec.name}: missing")
            continue
        if size != spec.size:
            bad.append(f"{spec.name}: {size} bytes, expected {spec.size}")
            continue
        if sha256_file(p) != env.data.sha256(ds, spec):
            bad.append(f"{spec.name}: SHA-256 differs from the source")
    return bad


def one_run(
    env: Env,
    tool: Tool,
    ds: DataSet,
    rnd: int,
    *,
    files: Sequence[FileSpec] | None = None,
    fast: bool = False,
    tag: str | None = None,
) -> RunResult:
    files = list(files or ds.files)
    tag = tag or f"{ds.key}-{tool.key.replace('*', '-tuned').replace('@', '-')}-r{rnd}"
    out = env.workdir / "runs" / tag
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    urls = [env.nginx.fast_url(ds, f) if fast else env.nginx.url(ds, f) for f in files]
    argv = command(env, tool, ds, out, files, urls, tag)
    log = env.workdir / "logs" / f"{tag}.log"
    log.parent.mkdir(exist_ok=True)
    os.sync()
    off = env.nginx.log_offset()
    wall, cpu, sys_cpu, rss, code = run_measured(argv, log)
    time.sleep(0.05)  # let nginx log the last requests
    reqs, conns, sent = env.nginx.requests_since(off)
    bad = verify(env, ds, files, out)
    if code != 0:
        bad.insert(0, f"exit code {code}")
    res = RunResult(
        tool.key, rnd, wall, cpu, rss, code, not bad, "; ".join(bad[:3]), reqs, conns, sent
    )
    total = sum(f.size for f in files)
    status = "ok" if res.verified else "FAILED"
    print(
        f"  round {rnd + 1}  {tool.label:<34} {wall:7.2f} s {total / MIB / wall:8.1f} MiB/s "
        f"cpu {cpu:6.2f} s (sys {sys_cpu:5.2f})  rss {rss * KIB / 1e6:6.1f} MB  "
        f"{reqs} reqs/{conns} conns, server sent {100 * sent / max(1, total):.0f}%  {status}",
        flush=True,
    )
    if not res.verified:
        msg = (
            f"{ds.key}: {tool.label} round {rnd + 1}: VERIFICATION FAILED: {res.detail} "
            f"(command: {shlex.join(argv)}; log: {log}; output kept in {out})"
        )
        print("!" * 78 + f"\n!! {msg}\n" + "!" * 78, flush=True)
        tail = log.read_text(errors="replace")[-1500:].strip()
        if tail:
            print("   last output:\n" + "\n".join("     " + t for t in tail.splitlines()))
        env.failures.append(msg)
    else:
        shutil.rmtree(out)
        os.sync()
    if env.args.show_commands and rnd == 0:
        print(f"      $ {shlex.join(argv)}", flush=True)
    return res
