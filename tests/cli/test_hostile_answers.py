"""Hostile answers that used to end in a traceback: download links no GET can be sent to, an
ETag that cannot be sent back, instance ids that break a summary or a metrics file, and
``cat`` with no standard output. Each is a one-line error (per file) and an exit code, and
the rest of the run goes on. The real command in subprocesses, against the simulator."""

from __future__ import annotations

import asyncio
import datetime
import json
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_cli import assert_exact, cli, env_for, start

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient
from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread
from downloader.sim.catalog import MYSQL_FULL

KIB = 1024
PLAIN = f"{0xB:030x}in01"

# (the host[:port] put in the links, the words naming what is wrong with them)
HOSTILE_LINKS = [
    ("127.0.0.1:99999", "its port is not a number from 1 to 65535"),
    ("127.0.0.1:-1", "its port is not a number from 1 to 65535"),
    ("127.0.0.1:abc", "its port is not a number from 1 to 65535"),
    ("a..b:{port}", "its host has an empty label"),
    ("{label}.example:{port}", "its host has a label longer than 63 characters"),
    ("{long}.example:{port}", "its host is longer than 253 characters"),
    ("127\uff0e0\uff0e0\uff0e1:{port}", "its host is not plain ASCII"),
    ("localhost\uff0e\uff0e:{port}", "its host is not plain ASCII"),
]


def netloc_of(sim: Simulator, shape: str) -> str:
    port = sim.endpoint.rsplit(":", 1)[1].rstrip("/")
    return shape.format(port=port, label="a" * 64, long="a" * 300)


def saved_links(sim: Simulator, backup_id: str) -> dict[str, Any]:
    """A backup-files answer as a user saves it for ``--links-file``."""

    async def fetch() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            client = RdsClient(
                endpoint=sim.endpoint,
                project_id=sim.project_id,
                auth=AkSkAuth(sim.ak, sim.sk, project_id=sim.project_id),
                session=session,
            )
            listing = await client.show_backup_files(backup_id)
        return {
            "files": [
                {"name": f.name, "size": f.size_kb, "download_link": f.download_link}
                for f in listing.files
            ]
        }

    return asyncio.run(fetch())


def no_traceback(result: subprocess.CompletedProcess[str], code: int) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "ExceptionGroup" not in result.stderr
    # Every line is a log line or the one error line: nothing indented, no stack.
    assert all(not line[:1].isspace() for line in result.stderr.splitlines()), result.stderr


@pytest.mark.parametrize(("shape", "words"), HOSTILE_LINKS, ids=[s for s, _ in HOSTILE_LINKS])
def test_unusable_links_fail_their_files_in_one_line(
    sim_thread: Simulator, tmp_path: Path, shape: str, words: str
) -> None:
    sim_thread.faults.link_netloc = netloc_of(sim_thread, shape)
    name = max(sim_thread.backups[MYSQL_FULL].files, key=lambda f: f.size).name
    result = cli(["-q", "download", MYSQL_FULL, "-o", str(tmp_path / "out")], sim_thread)
    no_traceback(result, 1)
    assert f"{name}: the download link cannot be used: {words}" in result.stderr
    assert "Signature=" not in result.stderr  # the link is a credential: never echoed
    assert sim_thread.stats.object_requests == 0
    result = cli(["-q", "cat", MYSQL_FULL, name], sim_thread)
    no_traceback(result, 1)
    assert result.stderr.strip().splitlines()[-1] == (
        f"rds-backup: error: {name}: the download link cannot be used: {words}"
    )
    assert result.stdout == ""


def test_one_unusable_link_in_a_links_file_fails_only_its_file(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    links = tmp_path / "links.json"
    listing = saved_links(sim_thread, MYSQL_FULL)
    port = sim_thread.endpoint.rsplit(":", 1)[1].rstrip("/")
    first = listing["files"][0]
    first["download_link"] = first["download_link"].replace(f":{port}/", ":99999/", 1)
    bad = first["name"]
    links.write_text(json.dumps(listing))
    out = tmp_path / "out"
    result = cli(["-q", "download", MYSQL_FULL, "-o", str(out), "--links-file", str(links)], None)
    no_traceback(result, 1)
    assert f"{bad}: the download link cannot be used: its port" in result.stderr
    for f in sim_thread.backups[MYSQL_FULL].files:
        if f.name != bad:
            assert (out / f.name).read_bytes() == sim_thread.expected_bytes(MYSQL_FULL, f.name)
    assert not (out / bad).exists() and not (out / MANIFEST_NAME).exists()


def test_a_journal_etag_with_a_control_character_restarts_its_file(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    """Sent back as If-Match, such an ETag from a record crashed every rerun; the record is
    not trusted: a warning, and the file starts over."""
    args = ["download", MYSQL_FULL, "-o", str(tmp_path)]
    sim_thread.faults.throttle_bps = 512 * KIB
    proc = start([*args, "--max-connections", "2"], sim_thread)
    deadline = time.monotonic() + 30
    while sim_thread.stats.object_bytes_sent < 300 * KIB:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=15)
    sim_thread.faults.throttle_bps = None
    records = list((tmp_path / STATE_DIR / "journal").glob("*.json"))
    partial = 0
    for path in records:
        record = json.loads(path.read_text())
        partial += bool(record["done"]) and not record["complete"]
        record["etag"] = '"3f2a\x01-2"'
        path.write_text(json.dumps(record))
    assert partial  # a file was cut mid-way: its rerun would have sent the ETag
    result = cli(args, sim_thread)
    no_traceback(result, 0)
    assert "etag holds a control character" in result.stderr
    assert_exact(sim_thread, MYSQL_FULL, tmp_path)


def hostile_fleet() -> list[SimBackup]:
    begin = datetime.datetime(2024, 6, 1, tzinfo=datetime.UTC)
    out = []
    for n, instance in enumerate([PLAIN, "ab\ud800cd", "ab\rcd"]):
        backup_id = f"{n:030x}br01"
        files = [SimFile(f"{backup_id}_1.qp", 300 + n)]
        end = begin + datetime.timedelta(minutes=5)
        out.append(
            SimBackup(
                backup_id, instance, f"b{n}", "auto", "COMPLETED", "MySQL", "8.0", begin, end, files
            )
        )
    return out


def test_instance_ids_that_break_a_summary_or_a_metrics_file(tmp_path: Path) -> None:
    """A lone surrogate (JSON's "\\ud800") crashed sync before its summary and metrics; a
    carriage return wrote a metrics file Prometheus cannot parse. Both instances fail in
    words; the good one is mirrored; the summary, --json and the metrics file are whole."""
    sim = Simulator(catalog=hostile_fleet())
    root, prom = tmp_path / "root", tmp_path / "rds.prom"
    with SimulatorThread(sim):
        args = ["sync", "-o", str(root), "--all-instances", "--metrics-file", str(prom)]
        result = cli([*args, "--json"], sim)
        text = cli(args, sim)
    no_traceback(result, 1)
    report = json.loads(result.stdout)
    assert sorted(report["failed_instances"]) == sorted(["ab\ud800cd", "ab\rcd"])
    assert "sync: 3 instance(s), 2 failed" in text.stderr
    assert "cannot name a folder: it holds the character U+D800" in text.stderr
    assert f"{PLAIN}  ok  fetched 0" in text.stderr  # the first run mirrored it
    assert (root / PLAIN / f"{0:030x}br01" / f"{0:030x}br01_1.qp").stat().st_size == 300
    seen = {}
    for family in text_string_to_metric_families(prom.read_text(encoding="utf-8")):
        for sample in family.samples:
            if sample.name == "rds_backup_instance_last_run_success":
                seen[sample.labels["instance_id"]] = sample.value
    assert seen == {PLAIN: 1.0, "ab\\ud800cd": 0.0, "ab\\u000dcd": 0.0}


def test_cat_with_stdout_closed_is_a_usage_error(sim_thread: Simulator) -> None:
    name = sim_thread.backups[MYSQL_FULL].files[0].name
    command = f"exec {shlex.quote(sys.executable)} -m downloader cat {MYSQL_FULL} {name} >&-"
    result = subprocess.run(
        ["sh", "-c", command],
        env=env_for(sim_thread),
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    no_traceback(result, 2)
    assert result.stderr.strip() == (
        "rds-backup: error: stdout is closed: pipe the stream into a program or a file"
    )
    assert sim_thread.stats.object_requests == 0


# ------------------------------------------------------------------ the SDK's regions file


def test_a_custom_rds_endpoint_in_the_regions_file_is_used(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    """~/.huaweicloud/regions.yaml (or HUAWEICLOUD_SDK_REGIONS_FILE) names the RDS endpoint
    of a region, as the SDK honours it; the public one was used instead."""
    home = tmp_path / "home"
    (home / ".huaweicloud").mkdir(parents=True)
    (home / ".huaweicloud" / "regions.yaml").write_text(
        f"RDS:\n  - id: ap-southeast-1\n    endpoint: {sim_thread.endpoint}\n"
    )
    args = ["files", MYSQL_FULL, "--region", "ap-southeast-1"]
    result = cli(args, sim_thread, HOME=str(home), RDS_BACKUP_ENDPOINT="")
    assert result.returncode == 0, result.stderr
    assert sim_thread.backups[MYSQL_FULL].files[0].name in result.stdout
    assert sim_thread.stats.backup_files_calls == 1
    moved = tmp_path / "elsewhere.yaml"
    (home / ".huaweicloud" / "regions.yaml").rename(moved)
    result = cli(args, sim_thread, HOME=str(home), RDS_BACKUP_ENDPOINT="",
                 HUAWEICLOUD_SDK_REGIONS_FILE=str(moved))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sim_thread.stats.backup_files_calls == 2
