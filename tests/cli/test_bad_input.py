"""Bad input that used to end in a traceback or a wrong answer: state files and answers nested
too deeply or of the wrong shape, names holding control or bidirectional characters, names
that cannot all be placed, and ``verify`` during a download. The real command in
subprocesses, against the simulator."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import assert_exact, cli, start

from downloader.disk.lock import FolderLock
from downloader.disk.storage import MANIFEST_NAME, PATH_MAX, STATE_DIR, Layout
from downloader.disk.verify import verify_folder
from downloader.errors import LockHeldError
from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread
from downloader.sim.catalog import MYSQL_FULL

KIB = 1024
DEEP = 100_000
# What must never reach a terminal raw: C0 (but \t, \n), DEL, C1, bidirectional controls.
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
ESCAPE = "\x1b]0;owned\x07\u202e\x9b2J"  # a title change, a right-to-left override, 8-bit CSI


def one_backup(backup_id: str, files: list[SimFile], **kw: str) -> SimBackup:
    start_at = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    fields: dict[str, str] = {"engine": "MySQL", "engine_version": "8.0", **kw}
    return SimBackup(
        id=backup_id, instance_id="inst", name="b", type="auto", status="COMPLETED",
        begin_time=start_at, end_time=start_at + datetime.timedelta(hours=1), files=files,
        **fields,
    )  # fmt: skip


@pytest.fixture
def served(request: pytest.FixtureRequest) -> Iterator[Simulator]:
    """A simulator serving the one backup the test is parametrized with."""
    sim = Simulator(catalog=[request.param])
    with SimulatorThread(sim):
        yield sim


def one_line_error(result: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ------------------------------------------------------------- JSON nested too deeply


def test_nested_links_file_is_a_usage_error(sim_thread: Simulator, tmp_path: Path) -> None:
    links = tmp_path / "links.json"
    links.write_text("[" * DEEP + "]" * DEEP)
    out = tmp_path / "out"
    result = cli(["download", MYSQL_FULL, "-o", str(out), "--links-file", str(links)], sim_thread)
    one_line_error(result, 2, f"links file {links} is not valid JSON: nested too deeply")
    assert sim_thread.stats.object_requests == 0
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    ["[" * DEEP, '{"manifest_version": 1, "files": ' + "[" * DEEP + "]" * DEEP + "}"],
    ids=["top", "in-files"],
)
def test_nested_manifest_is_a_usage_error(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST_NAME).write_text(text)
    result = cli(["verify", str(tmp_path)], None)
    one_line_error(result, 2, "is not valid JSON: nested too deeply")


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_manifest_that_is_no_file_is_refused(tmp_path: Path, kind: str) -> None:
    manifest = tmp_path / MANIFEST_NAME
    if kind == "link":
        manifest.symlink_to("/dev/zero")  # endless: read, it would fill memory
    else:
        os.mkfifo(manifest)  # opened for reading, it would wait for a writer forever
    result = cli(["verify", str(tmp_path)], None, timeout=20)
    words = "is a symbolic link" if kind == "link" else "is not a regular file"
    one_line_error(result, 2, f"{manifest} {words}")


def test_nested_journal_records_restart_their_files(sim_thread: Simulator, tmp_path: Path) -> None:
    """A record nested too deeply is a warning and its file restarts: on the way in
    (resume) and when the manifest gathers every completed record."""
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
    journal = tmp_path / STATE_DIR / "journal"
    records = list(journal.glob("*.json"))
    assert records
    nested = ("[" * DEEP + "]" * DEEP).encode()
    for path in records:
        path.write_bytes(nested)
    (journal / ("0" * 32 + ".json")).write_bytes(nested)  # no file of this run: read at the end
    result = cli(args, sim_thread)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "journal unreadable (not valid JSON: nested too deeply)" in result.stderr
    assert_exact(sim_thread, MYSQL_FULL, tmp_path)


def test_nested_api_answers_are_api_errors(sim_thread: Simulator, tmp_path: Path) -> None:
    sim_thread.faults.api_body = b"[" * DEEP
    result = cli(["files", MYSQL_FULL], sim_thread)
    one_line_error(result, 3, "not JSON: nested too deeply")
    iam = {
        "HUAWEICLOUD_SDK_AK": "",
        "HUAWEICLOUD_SDK_SK": "",
        "RDS_BACKUP_IAM_USER": sim_thread.iam_user,
        "RDS_BACKUP_IAM_PASSWORD": sim_thread.iam_password,
        "RDS_BACKUP_IAM_DOMAIN": sim_thread.iam_domain,
        "HUAWEICLOUD_SDK_IAM_ENDPOINT": sim_thread.endpoint,
    }
    result = cli(["files", MYSQL_FULL], sim_thread, **iam)
    one_line_error(result, 3, "IAM answer is not JSON: nested too deeply")
    assert sim_thread.stats.iam_calls >= 1


# ---------------------------------------------------------------- a malformed manifest


def test_verify_reports_every_malformed_entry(sim_thread: Simulator, tmp_path: Path) -> None:
    assert cli(["download", MYSQL_FULL, "-o", str(tmp_path)], sim_thread).returncode == 0
    path = tmp_path / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    good = len(manifest["files"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "zero").symlink_to("/dev/zero")
    first = manifest["files"][0]["name"]
    manifest["files"] += [
        1,
        "x",
        None,
        [],
        {"size": 1},
        {"name": "sub", "size": 4096, "crc64": 1},  # a folder
        {"name": "zero", "size": 0, "crc64": 0},  # a link to a device: never read
        {"name": f"evil{ESCAPE}.qp", "size": 1, "crc64": 1},
        {"name": "gone.qp", "size": [[[1]]], "crc64": 1},
        {"name": first, "size": "x" * 10_000, "crc64": 1},
    ]
    manifest["backup_id"] = f"id{ESCAPE}"
    path.write_text(json.dumps(manifest))
    result = cli(["verify", str(tmp_path)], None)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not RAW.search(result.stdout + result.stderr)
    lines = result.stdout.splitlines()
    assert sum(line.startswith("ok") for line in lines) == good
    for i in range(good, good + 4):
        assert f"FAIL  files[{i}]  manifest entry is not an object" in lines
    assert f"FAIL  files[{good + 4}]  manifest entry without a name" in lines
    assert "FAIL  sub  not a regular file (a folder)" in lines
    assert "FAIL  zero  not a regular file (a symbolic link)" in lines
    assert any(line.startswith("FAIL  evil?]0;owned???2J.qp") for line in lines)
    assert "FAIL  gone.qp  missing" in lines
    assert any(
        line.startswith(f"FAIL  {first}  size ") and line.endswith(", manifest says no size")
        for line in lines
    )
    assert f"{good} of {good + 10} files verified (backup id?]0;owned???2J)" in result.stdout
    as_json = cli(["verify", str(tmp_path), "--json"], None)
    assert as_json.returncode == 4
    assert not json.loads(as_json.stdout)["ok"]


# ------------------------------------------------------- names: refused, and escaped


BIDI = one_backup(
    "bidi00000000000000000000000000000br01",
    [SimFile("ok.qp", 10 * KIB), SimFile("evil\u202ekp.qp", 10 * KIB, database_name=ESCAPE)],
    engine_version=f"8.0{ESCAPE}",
)


@pytest.mark.parametrize("served", [BIDI], indirect=True)
def test_names_with_bidi_or_c1_are_refused_and_escaped(served: Simulator, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = cli(["download", BIDI.id, "-o", str(out)], served)
    one_line_error(result, 2, "bidirectional control U+202E in name")
    assert not RAW.search(result.stderr)
    assert served.stats.object_requests == 0
    assert not out.exists()
    listed = cli(["files", BIDI.id], served)
    assert listed.returncode == 0, listed.stderr
    assert "evil?kp.qp" in listed.stdout and "?]0;owned???2J" in listed.stdout
    assert not RAW.search(listed.stdout)
    as_json = cli(["files", BIDI.id, "--json"], served)
    assert not RAW.search(as_json.stdout)
    assert {f["name"] for f in json.loads(as_json.stdout)["files"]} == {"ok.qp", "evil\u202ekp.qp"}
    backups = cli(["backups", "--instance-id", "inst"], served)
    assert backups.returncode == 0, backups.stderr
    assert "MySQL 8.0?]0;owned???2J" in backups.stdout
    assert not RAW.search(backups.stdout)


SQLSERVER = one_backup(
    "sqlesc00000000000000000000000000000br01",
    [SimFile("db1/full.bak", 20 * KIB, database_name=f"db1{ESCAPE}")],
    engine="SQLServer",
    engine_version="2019_SE",
)


@pytest.mark.parametrize("served", [SQLSERVER], indirect=True)
def test_api_text_is_escaped_in_the_summary_and_logs(served: Simulator, tmp_path: Path) -> None:
    result = cli(["download", SQLSERVER.id, "-o", str(tmp_path / "log")], served)
    assert result.returncode == 0, result.stderr
    assert "db1?]0;owned???2J  20.0 KiB" in result.stderr  # the summary
    assert not RAW.search(result.stderr)
    # At a terminal (bars), where the restore hints are shown; tqdm's own cursor moves aside.
    result = cli(
        ["download", SQLSERVER.id, "-o", str(tmp_path / "tty"), "--progress", "tty"], served
    )
    assert result.returncode == 0, result.stderr
    assert "RESTORE DATABASE [db1?]]0;owned???2J]" in result.stderr  # the next steps
    assert not RAW.search(re.sub(r"\r|\x1b\[A", "", result.stderr))


def test_api_error_messages_are_escaped(sim_thread: Simulator) -> None:
    sim_thread.faults.api_error_status = 400
    body = {"error_code": "DBS.200001", "error_msg": f"bad{ESCAPE}"}
    sim_thread.faults.api_body = json.dumps(body).encode()
    result = cli(["files", MYSQL_FULL], sim_thread)
    one_line_error(result, 3, "bad?]0;owned???2J")
    assert not RAW.search(result.stderr)
    sim_thread.faults.api_error_status = 400
    debug = cli(["--debug", "files", MYSQL_FULL], sim_thread)  # with the traceback
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr
    assert not RAW.search(debug.stderr)


# ---------------------------------------------- names that cannot all be placed


PREFIX = one_backup(
    "prefix000000000000000000000000000br01",
    [SimFile("ok.qp", 10 * KIB), SimFile("a", 10 * KIB), SimFile("a/b", 10 * KIB)],
)
LONG_NAME = "/".join(["d" * 200] * 20 + ["f" * 200])  # 4220 bytes: no folder can hold it
LONG = one_backup(
    "longname00000000000000000000000000br01",
    [SimFile("ok.qp", 10 * KIB), SimFile(LONG_NAME, 10 * KIB)],
)


@pytest.mark.parametrize(
    ("served", "words"),
    [
        (PREFIX, "it needs a folder 'a', which the backup lists as a file"),
        (LONG, f"would be longer than {PATH_MAX - 1} bytes"),
    ],
    indirect=["served"],
    ids=["prefix", "too-long"],
)
def test_names_that_cannot_be_placed_are_refused_before_any_fetch(
    served: Simulator, tmp_path: Path, words: str
) -> None:
    out = tmp_path / "out"
    backup_id = next(iter(served.backups))
    result = cli(["download", backup_id, "-o", str(out)], served)
    one_line_error(result, 2, words)
    assert served.stats.object_requests == 0
    assert not out.exists()
    # Only the names that can be placed: fine.
    ok = cli(["download", backup_id, "-o", str(out), "--include", "ok.qp"], served)
    assert ok.returncode == 0, ok.stderr


# ------------------------------------------------------------ verify and the lock


def test_verify_during_a_download_says_so(sim_thread: Simulator, tmp_path: Path) -> None:
    sim_thread.faults.throttle_bps = 256 * KIB
    proc = start(
        ["download", MYSQL_FULL, "-o", str(tmp_path), "--max-connections", "2"], sim_thread
    )
    try:
        deadline = time.monotonic() + 30
        while sim_thread.stats.object_bytes_sent < 100 * KIB:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        result = cli(["verify", str(tmp_path)], None)
        one_line_error(result, 5, f"a download (pid {proc.pid}) is running in {tmp_path}")
    finally:
        sim_thread.faults.throttle_bps = None
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)


def test_verify_holds_the_lock_while_it_reads(sim_thread: Simulator, tmp_path: Path) -> None:
    assert cli(["download", MYSQL_FULL, "-o", str(tmp_path)], sim_thread).returncode == 0
    download = FolderLock(Layout(tmp_path).lock, str(tmp_path))
    refused: list[str] = []

    def progress(name: str, n: int) -> None:
        # A download starting while verify reads the files finds the folder locked.
        with pytest.raises(LockHeldError):
            asyncio.run(download.acquire(wait=False))
        refused.append(name)

    _, checks = verify_folder(tmp_path, progress=progress)
    assert checks and all(c.ok for c in checks)
    assert refused
    asyncio.run(download.acquire(wait=False))  # and takes it once verify is done
    download.release()


def test_verify_shares_the_lock_and_creates_nothing(sim_thread: Simulator, tmp_path: Path) -> None:
    assert cli(["download", MYSQL_FULL, "-o", str(tmp_path)], sim_thread).returncode == 0
    layout = Layout(tmp_path)
    reader = FolderLock(layout.lock, str(tmp_path))
    reader.try_shared()  # another verify, still running
    try:
        result = cli(["verify", str(tmp_path)], None)
        assert result.returncode == 0, result.stderr  # readers share
        again = cli(["download", MYSQL_FULL, "-o", str(tmp_path)], sim_thread)
        assert again.returncode == 5, again.stderr  # a download waits for readers to finish
        # The pid left in the lock file is the last download's, which has exited.
        assert "locked by another process" in again.stderr
    finally:
        reader.release()
    # A copy without the state folder (say, read-only media) verifies, and stays as it was.
    shutil.rmtree(tmp_path / STATE_DIR)
    result = cli(["verify", str(tmp_path)], None)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / STATE_DIR).exists()
