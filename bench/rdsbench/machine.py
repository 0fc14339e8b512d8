"""The header of a run: git state, hashlib's SHA-256 speed, the machine and the tool versions.

May import: base, env, tools.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from .base import BENCH_DIR, GIB, KIB, MIB, fmt_size
from .env import Env
from .tools import tool_version


def git_state() -> str:
    repo = BENCH_DIR.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "downloader", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "? (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    more = f"; uncommitted changes in {', '.join(changed)}" if changed else "; clean"
    return f"{head or '?'}{more}"


def sha256_speed() -> float:
    """MiB/s of hashlib's SHA-256 on 256 MiB in memory (a floor for hashing downloaders)."""
    block = os.urandom(4 * MIB)
    h = hashlib.sha256()
    t0 = time.process_time()
    for _ in range(64):
        h.update(block)
    return 256 / max(1e-9, time.process_time() - t0)


def machine_info(env: Env) -> list[str]:
    cpu = "?"
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = fmt_size(int(line.split()[1]) * KIB)
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    speed = sha256_speed()
    return [
        f"repo:       {git_state()}",
        f"hashlib:    SHA-256 at {speed:.0f} MiB/s in one thread here, i.e. "
        f"{GIB / MIB / speed:.2f} CPU s/GiB for any tool that hashes what it fetches",
        f"machine:    {platform.node()}  {platform.system()} {platform.release()}  "
        f"{platform.machine()}",
        f"cpu:        {os.cpu_count()} logical CPUs ({affinity} usable), {cpu}",
        f"memory:     {mem} (data is served from the page cache once read; not dropped)",
        f"python:     {platform.python_version()} ({sys.executable})",
        f"rds-backup: {tool_version([*env.rds, '--version'])}  [{shlex.join(env.rds)}]",
        f"aria2c:     {tool_version([env.aria2c, '--version'])}",
        f"curl:       {tool_version([env.curl, '--version'])}",
        f"nginx:      {tool_version([env.nginx.binary, '-v'])}",
        f"workdir:    {env.workdir}",
    ]
