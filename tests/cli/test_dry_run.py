"""``download --dry-run``: what would be fetched, what a resume already holds, the free space
after; and the folder (or its absence) exactly as it was."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

from test_cli import cli, start

from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL, MYSQL_MANY


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``root``: its mode and, for a file, its bytes' hash."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (st.st_mode, digest)
    return out


def test_a_dry_run_into_no_folder_creates_nothing(sim_thread: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "new"
    result = cli(["download", MYSQL_MANY, "-o", str(out), "--dry-run", "--json"], sim_thread)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    files = sim_thread.backups[MYSQL_MANY].files
    assert plan["dry_run"] is True and len(plan["files"]) == len(files)
    assert {f["state"] for f in plan["files"]} == {"fetch"}
    assert plan["bytes_to_fetch"] == sum(f["size"] for f in plan["files"]) > 0
    assert plan["free_bytes_after"] == plan["free_bytes"] - plan["bytes_to_fetch"]
    assert not out.exists()
    assert sim_thread.stats.object_requests == 0  # no byte asked for


def test_a_dry_run_of_a_stopped_download_shows_what_it_holds_and_changes_nothing(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    sim_thread.faults.throttle_bps = 2 * 1024 * 1024
    proc = start(["download", MYSQL_FULL, "-o", str(out), "--progress", "quiet"], sim_thread)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((out / ".rds-backup" / "journal").glob("*")):
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sim_thread.faults.throttle_bps = None
    before = tree(out)
    requests = sim_thread.stats.object_requests
    result = cli(["download", MYSQL_FULL, "-o", str(out), "--dry-run"], sim_thread)
    assert result.returncode == 0, result.stderr
    assert "dry run: backup" in result.stdout and "free space after" in result.stdout
    assert "resume" in result.stdout or "in place" in result.stdout
    assert tree(out) == before  # not a byte, a mode or an entry changed
    assert sim_thread.stats.object_requests == requests
    plan = json.loads(
        cli(["download", MYSQL_FULL, "-o", str(out), "--dry-run", "--json"], sim_thread).stdout
    )
    held = sum(f["held"] for f in plan["files"])
    assert 0 < held and plan["bytes_to_fetch"] < sum(f["size"] for f in plan["files"])
