"""The tools compared: finding (or installing) them, and each one's command line per data set.

May import: base, datasets, env.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import KIB, BenchError
from .datasets import DataSet, FileSpec
from .env import Env

APT_PACKAGES = {"nginx": "nginx-light", "aria2c": "aria2", "curl": "curl"}


@dataclass(frozen=True, slots=True)
class Tool:
    key: str  # rds-backup / aria2c / curl / rds-backup*
    label: str  # as printed, with the flags that matter


COMMON_ARIA2 = [
    "--file-allocation=none",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--allow-overwrite=true",
    "--auto-file-renaming=false",
    "--download-result=hide",
]
ARIA2_SET_FLAGS = {
    "big": ["-x16", "-s16", "-k1M"],
    "tls": ["-x16", "-s16", "-k1M"],
    "many": ["-j8"],
    "wan": ["-x16", "-s16", "-j4"],
}


def tools_for(env: Env, ds: DataSet) -> list[Tool]:
    a = " ".join(ARIA2_SET_FLAGS[ds.key])
    curl = {
        "big": "curl",
        "tls": "curl",
        "many": "curl --parallel --parallel-max 8",
        "wan": f"curl --parallel ({len(ds.files)} at once)",
    }[ds.key]
    tools = [
        Tool("rds-backup", "rds-backup (defaults)"),
        Tool("aria2c", f"aria2c {a}"),
        Tool("curl", curl),
    ]
    if env.args.rds_tuned:
        tools.append(Tool("rds-backup*", f"rds-backup {env.args.rds_tuned} (TUNED)"))
    if env.baseline is not None:
        tools.append(Tool("rds-backup@base", f"rds-backup (defaults) {env.args.baseline_label}"))
    return tools


def write_links(path: Path, urls: Sequence[tuple[str, int, str]]) -> None:
    """A saved backup-files answer, as ``rds-backup download --links-file`` reads it."""
    doc = {
        "files": [
            {
                "name": name,
                "size": -(-size // KIB),
                "download_link": url,
                "link_expired_time": "2099-01-01T00:00:00+0000",
                "database_name": "",
            }
            for name, size, url in urls
        ],
        "bucket": "bench",
    }
    path.write_text(json.dumps(doc, indent=1))


def command(
    env: Env,
    tool: Tool,
    ds: DataSet,
    out: Path,
    files: Sequence[FileSpec],
    urls: Sequence[str],
    tag: str,
) -> list[str]:
    cfg = env.workdir / "cfg"
    cfg.mkdir(exist_ok=True)
    if tool.key == "rds-cat":
        links = cfg / f"links-{tag}.json"
        write_links(links, [(f.name, f.size, u) for f, u in zip(files, urls, strict=True)])
        (spec,) = files
        cat = [*env.rds, "--quiet", "cat", "bench", spec.name, "--links-file", str(links)]
        # exec: the measured process is rds-backup itself, its stdout the output file
        return ["/bin/sh", "-c", f"exec {shlex.join(cat)} > {shlex.quote(str(out / spec.name))}"]
    if tool.key.startswith("rds-backup"):
        links = cfg / f"links-{tag}.json"
        write_links(links, [(f.name, f.size, u) for f, u in zip(files, urls, strict=True)])
        extra = shlex.split(env.args.rds_tuned) if tool.key == "rds-backup*" else []
        rds = env.baseline if tool.key == "rds-backup@base" and env.baseline else env.rds
        return [
            *rds,
            "--quiet",
            "download",
            "bench",
            "-o",
            str(out),
            "--links-file",
            str(links),
            "--progress",
            "quiet",
            *(["--ca-bundle", str(env.nginx.ca)] if ds.tls else []),
            *extra,
        ]
    if tool.key == "aria2c":
        base = [env.aria2c, *ARIA2_SET_FLAGS[ds.key], *COMMON_ARIA2, "-d", str(out)]
        if ds.tls:
            base.append(f"--ca-certificate={env.nginx.ca}")
        if len(files) == 1:
            return [*base, "-o", files[0].name, urls[0]]
        lst = cfg / f"aria2-{tag}.txt"
        lst.write_text("".join(f"{u}\n  out={f.name}\n" for f, u in zip(files, urls, strict=True)))
        return [*base, "-i", str(lst)]
    if tool.key == "curl":
        base = [env.curl, "-sS", "--fail"]
        if ds.tls:
            base += ["--cacert", str(env.nginx.ca)]
        pairs = [x for f, u in zip(files, urls, strict=True) for x in ("-o", str(out / f.name), u)]
        if len(files) == 1:
            return [*base, *pairs]
        par = 8 if ds.key == "many" else len(files)
        return [*base, "--parallel", "--parallel-max", str(par), *pairs]
    raise AssertionError(tool.key)


def tool_version(argv: Sequence[str]) -> str:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"
    text = (p.stdout or p.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def find_rds(override: str | None) -> list[str]:
    if override:
        argv = shlex.split(override)
        try:
            ok = (
                subprocess.run([*argv, "--version"], capture_output=True, timeout=60).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            ok = False
        if not ok:
            raise BenchError(f"--rds-backup {override!r}: `{override} --version` does not run")
        return argv
    sibling = Path(sys.executable).parent / "rds-backup"
    if sibling.is_file():
        return [str(sibling)]
    found = shutil.which("rds-backup")
    if found:
        return [found]
    probe = subprocess.run(
        [sys.executable, "-c", "import downloader.cli"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        return [sys.executable, "-m", "downloader"]
    raise BenchError(
        "rds-backup is not installed for this Python: run `pip install -e .` in the repository "
        "(or run this script with the venv's python, or pass --rds-backup CMD)"
    )


def ensure_tools(install: bool) -> dict[str, str]:
    found = {name: find_binary(name) for name in APT_PACKAGES}
    missing = [n for n, p in found.items() if p is None]
    if missing and install:
        pkgs = [APT_PACKAGES[n] for n in missing]
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print(f"installing {' '.join(pkgs)} with apt-get ...", flush=True)
        for argv in ([*sudo, "apt-get", "update"], [*sudo, "apt-get", "install", "-y", *pkgs]):
            try:
                rc = subprocess.run(argv, check=False).returncode
            except OSError as exc:
                raise BenchError(f"could not run {shlex.join(argv)}: {exc}") from exc
            if rc != 0:
                raise BenchError(f"`{shlex.join(argv)}` failed (exit {rc})")
        found = {name: find_binary(name) for name in APT_PACKAGES}
        missing = [n for n, p in found.items() if p is None]
    if missing:
        names = " ".join(APT_PACKAGES[n] for n in missing)
        raise BenchError(
            f"missing: {', '.join(missing)}. Install with:\n"
            f"    sudo apt-get update && sudo apt-get install -y {names}\n"
            "or run this script with --install."
        )
    return {n: p for n, p in found.items() if p is not None}
