"""Small inconsistencies (issue 17, item 8): a skipped file's real size, log lines that say
a thing once, one line per resume. The real command in subprocesses, against the simulator."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

from test_cli import _wait_for_bytes, cli, start

from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL

KIB = 1024

META = f"{MYSQL_FULL}_full_2024-05-20_16-00-00_meta.qp"  # 777 bytes: the API says 1 KB


def summary_row(stderr: str, name: str) -> list[str]:
    """The summary table's cells for ``name`` (split on runs of two or more spaces)."""
    for line in stderr.splitlines():
        if line.startswith(name + " "):
            return re.split(r"\s{2,}", line)
    raise AssertionError(f"no summary row for {name}:\n{stderr}")


def json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_a_skipped_file_shows_its_real_size_not_the_apis_kb(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    args = ["download", MYSQL_FULL, "-o", str(tmp_path)]
    first = cli(args, sim_thread)
    assert first.returncode == 0, first.stderr
    assert summary_row(first.stderr, META)[2] == "777 B"

    again = cli(["--log-format", "json", *args], sim_thread)
    assert again.returncode == 0, again.stderr
    row = summary_row(again.stderr, META)
    assert row[2] == "777 B" and "already downloaded" in row[-1], row
    skips = {r["file"]: r for r in json_lines(again.stderr) if r["event"] == "file_skipped"}
    assert skips[META]["size"] == 777


def test_text_log_lines_say_a_thing_once_json_keeps_every_field(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    sim_thread.faults.error_status = 503  # one retry, whose status and attempt are news
    sim_thread.faults.fault_files = {META}
    text = cli(["download", MYSQL_FULL, "-o", str(tmp_path / "text")], sim_thread)
    assert text.returncode == 0, text.stderr
    lines = text.stderr.splitlines()
    done = [ln for ln in lines if f" INFO done {META} " in ln]
    # The message ends the line: no file=, size=, bytes=, seconds= or ok= after it.
    assert len(done) == 1 and re.search(r" \(\S+ \S+/s\)$", done[0]), done
    started = [ln for ln in lines if f" INFO start {META} " in ln]
    assert len(started) == 1 and started[0].endswith("(777 B)"), started
    assert not [ln for ln in lines if " file=" in ln or " size=" in ln or "bytes_total=" in ln]
    retries = [ln for ln in lines if " WARNING " in ln and META in ln]
    assert len(retries) == 1 and "status=503" in retries[0] and "attempt=1" in retries[0], lines

    sim_thread.faults.error_status = 503
    json_run = cli(
        ["--log-format", "json", "download", MYSQL_FULL, "-o", str(tmp_path / "json")],
        sim_thread,
    )
    assert json_run.returncode == 0, json_run.stderr
    records = json_lines(json_run.stderr)
    done_json = [r for r in records if r["event"] == "file_finished" and r["file"] == META]
    assert done_json and (done_json[0]["size"], done_json[0]["bytes"]) == (777, 777)
    assert done_json[0]["ok"] is True and "seconds" in done_json[0]
    retry = [r for r in records if r["event"] == "retry"]
    assert retry and (retry[0]["file"], retry[0]["status"], retry[0]["attempt"]) == (META, 503, 1)


def test_a_resume_is_said_once(sim_thread: Simulator, tmp_path: Path) -> None:
    sim_thread.faults.throttle_bps = 256 * KIB
    args = ["download", MYSQL_FULL, "-o", str(tmp_path), "--max-connections", "2"]
    proc = start(args, sim_thread)
    _wait_for_bytes(sim_thread, 300 * KIB, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 130, err
    sim_thread.faults.throttle_bps = None

    again = cli(args, sim_thread)
    assert again.returncode == 0, again.stderr
    names = [f.name for f in sim_thread.backups[MYSQL_FULL].files]
    # (The test's folder is named after the test: only lines about a file count.)
    resumed = [
        ln for ln in again.stderr.splitlines() if "resum" in ln and any(n in ln for n in names)
    ]
    assert resumed, again.stderr  # something was on disk to resume from
    per_file = [[ln for ln in resumed if name in ln] for name in names]
    assert all(len(said) <= 1 for said in per_file), resumed
    assert re.search(r" INFO start \S+ \(\S+ \S+, resuming at \S+ \S+\)$", resumed[0]), resumed
