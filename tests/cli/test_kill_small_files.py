"""kill -9 during a run of many small files: the "complete" records of finished files are
written in batches, so a kill often lands between a file's move into place and its batch.
The rerun must check such a file in place, never fetch it again, and end byte-exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from downloader.disk.storage import STATE_DIR
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_MANY

KIB = 1024


def _env(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(sim.env())
    env["RDS_BACKUP_ENDPOINT"] = sim.endpoint
    return env


def _recorded_complete(out: Path) -> set[str]:
    names = set()
    for path in (out / STATE_DIR / "journal").glob("*.json"):
        record = json.loads(path.read_text())
        if record["complete"]:
            names.add(record["name"])
    return names


def _placed(sim: Simulator, out: Path) -> set[str]:
    return {f.name for f in sim.backups[MYSQL_MANY].files if (out / f.name).exists()}


def test_kill_9_amid_many_small_files_refetches_no_finished_file(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    server = sim_thread
    files = server.backups[MYSQL_MANY].files
    conns = 4
    args = [sys.executable, "-m", "downloader", "download", MYSQL_MANY, "-o", str(tmp_path),
            "--max-connections", str(conns), "--progress", "quiet"]  # fmt: skip
    server.faults.throttle_bps = 512 * KIB
    kills = 0
    finished: dict[str, int] = {}  # file in place at a kill -> requests logged by then
    unrecorded = 0  # files in place at a kill whose "complete" record was not written yet
    for _ in range(12):  # until the kills have landed in that window (the test's point)
        before = _placed(server, tmp_path)
        if len(before) == len(files) or (unrecorded and kills >= 2):
            break
        proc = subprocess.Popen(args, env=_env(server), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        # Kill the moment more files are in place: their batch of "complete" records is
        # most likely not written yet.
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if _placed(server, tmp_path) - before:
                break
            time.sleep(0.002)
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
        logged = len(server.stats.object_requests_log)
        unrecorded += len(_placed(server, tmp_path) - _recorded_complete(tmp_path))
        for name in _placed(server, tmp_path):
            finished.setdefault(name, logged)
            assert (tmp_path / name).read_bytes() == server.expected_bytes(MYSQL_MANY, name)
    assert kills >= 2
    assert finished
    assert unrecorded  # the kills did land between a move into place and its record
    server.faults.throttle_bps = None
    final = subprocess.run(args, env=_env(server), capture_output=True, text=True, timeout=60,
                           check=False)  # fmt: skip
    assert final.returncode == 0, final.stderr
    for f in files:
        assert (tmp_path / f.name).read_bytes() == server.expected_bytes(MYSQL_MANY, f.name)
    # A file in place when a run was killed is never asked for again.
    log = server.stats.object_requests_log
    for name, seen in finished.items():
        again = [r for r in log[seen:] if r.name == name]
        assert not again, (name, again)
    # And the rest cost at most what was in flight: a file per connection per kill.
    total = sum(f.size for f in files)
    biggest = max(f.size for f in files)
    assert server.stats.object_bytes_sent <= total + kills * conns * biggest
    assert not list((tmp_path / STATE_DIR / "parts").iterdir())
