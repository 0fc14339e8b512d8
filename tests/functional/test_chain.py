"""Point-in-time chains end to end: the real ``rds-backup`` in subprocesses against the
simulator's chain instances (hundreds of backups, so ListBackups pages), real folders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.sim import Simulator
from downloader.sim.catalog import MYSQL_FULL
from downloader.sim.chains import (
    CHAIN_DIFF_INSTANCE,
    CHAIN_GAP_INSTANCE,
    CHAIN_MYSQL_INSTANCE,
    CHAIN_PG_INSTANCE,
)

KIB = 1024
T = "2024-05-20T02:45:00+08:00"  # the 2024-05-20 full and five binlog backups
T_LONG = "2024-05-20T03:25:00+08:00"  # the same full and nine


def cli(args: list[str], sim: Simulator, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "downloader", *args],
        env=env_for(sim),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def env_for(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(sim.env())
    env["RDS_BACKUP_ENDPOINT"] = sim.endpoint
    env["RDS_BACKUP_API_RATE"] = "6000"  # the API budget's pacing is tested elsewhere
    env["HOME"] = str(Path(env.get("TMPDIR", "/tmp")))
    return env


def chain_json(sim: Simulator, instance: str, t: str) -> dict[str, object]:
    shown = cli(["backups", "--instance-id", instance, "--to-time", t, "--json"], sim)
    assert shown.returncode == 0, shown.stderr
    out: dict[str, object] = json.loads(shown.stdout)
    return out


def assert_chain_exact(sim: Simulator, out: Path, rows: list[dict[str, object]]) -> None:
    """Every backup's folder holds exactly its files, byte for byte; the folder holds the
    backup folders, the chain's manifest and one state folder, nothing else."""
    folders = [str(r["folder"]) for r in rows]
    assert sorted(os.listdir(out)) == sorted([*folders, MANIFEST_NAME, STATE_DIR])
    assert sorted(os.listdir(out / STATE_DIR)) == ["chain.json", "lock"]
    for folder, row in zip(folders, rows, strict=True):
        backup = sim.backups[str(row["id"])]
        names = {f.name for f in backup.files}
        assert set(os.listdir(out / folder)) == names | {MANIFEST_NAME, STATE_DIR}
        for f in backup.files:
            assert (out / folder / f.name).read_bytes() == sim.expected_bytes(backup.id, f.name)


def test_backups_to_time_prints_the_chain_paging_the_whole_list(sim_thread: Simulator) -> None:
    sim = sim_thread
    lists = sim.stats.backups_list_calls
    table = cli(["backups", "--instance-id", CHAIN_MYSQL_INSTANCE, "--to-time", T], sim)
    assert table.returncode == 0, table.stderr
    # 354 backups at most 100 a page: four pages, whatever order they came in.
    assert sim.stats.backups_list_calls - lists == 4
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["#", "ID", "TYPE", "SIZE", "BEGIN", "END"]
    kinds = [ln.split()[2] for ln in lines[1:7]]
    assert kinds == ["auto"] + ["incremental"] * 5
    assert "6 backups restore instance" in table.stdout
    shown = chain_json(sim, CHAIN_MYSQL_INSTANCE, "2024-05-19T18:45:00Z")  # the same instant
    rows = shown["backups"]
    assert isinstance(rows, list) and [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r["id"] for r in rows] == [ln.split()[1] for ln in lines[1:7]]
    assert rows[0]["begin_time"] == "2024-05-20T02:00:00+08:00"
    assert rows[-1]["end_time"] == "2024-05-20T02:50:00+08:00"  # the first reaching T
    assert all(r["status"] == "COMPLETED" for r in rows)
    assert sim.stats.object_requests == 0  # nothing fetched
    typed = ["backups", "--instance-id", CHAIN_MYSQL_INSTANCE, "--to-time", T, "--status", "FAILED"]
    refused = cli(typed, sim)
    assert refused.returncode == 2 and "--status cannot be used with --to-time" in refused.stderr


def test_download_to_time_layout_manifest_verify_and_rerun(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    sim = sim_thread
    rows = chain_json(sim, CHAIN_MYSQL_INSTANCE, T)["backups"]
    assert isinstance(rows, list)
    out = tmp_path / "pitr"
    args = ["download", "--instance-id", CHAIN_MYSQL_INSTANCE, "--to-time", T, "-o", str(out)]
    first = cli(args, sim)
    assert first.returncode == 0, first.stderr
    assert_chain_exact(sim, out, rows)
    assert [r["folder"][:3] for r in rows] == ["01-", "02-", "03-", "04-", "05-", "06-"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["kind"] == "chain" and manifest["instance_id"] == CHAIN_MYSQL_INSTANCE
    assert manifest["to_time"] == T and manifest["to_time_utc"] == "2024-05-19T18:45:00Z"
    assert [
        (c["backup_id"], c["type"], c["begin_time"], c["end_time"]) for c in manifest["chain"]
    ] == [(r["id"], r["type"], r["begin_time"], r["end_time"]) for r in rows]
    for entry in manifest["files"]:
        folder, name = entry["name"].split("/")
        bid = folder.split("-", 2)[2]
        assert entry["size"] == sim.backups[bid].file(name).size
        assert entry["crc64"] == f"{sim.expected_crc64(bid, name):016x}"
    assert len(manifest["files"]) == sum(len(sim.backups[str(r["id"])].files) for r in rows)
    assert "manifest:" in first.stderr and "6 backups to" in first.stderr

    sent, calls = sim.stats.object_bytes_sent, sim.stats.backup_files_calls
    again = cli([*args, "--json"], sim)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["ok"] and report["bytes_fetched"] == 0
    assert sim.stats.object_bytes_sent == sent  # a rerun fetches nothing ...
    assert sim.stats.backup_files_calls == calls  # ... and asks the API for no links
    assert [b["folder"] for b in report["backups"]] == [r["folder"] for r in rows]
    steps = "\n".join(report["next_steps"])
    assert "TZ=UTC mysqlbinlog" in steps and "--stop-datetime='2024-05-19 18:45:00'" in steps

    checked = cli(["verify", str(out)], sim)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "7 of 7 files verified (a chain of 6 backups" in checked.stdout
    # One byte flipped in one backup's folder: exit 4, naming that file.
    victim = out / str(rows[3]["folder"]) / sim.backups[str(rows[3]["id"])].files[0].name
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    flipped = cli(["verify", str(out), "--json"], sim)
    assert flipped.returncode == 4
    bad = [f for f in json.loads(flipped.stdout)["files"] if not f["ok"]]
    assert [f["name"] for f in bad] == [f"{rows[3]['folder']}/{victim.name}"]
    assert "CRC-64 mismatch" in bad[0]["detail"]
    # The download again: that file alone is fetched, with links asked for it then.
    repaired = cli(args, sim)
    assert repaired.returncode == 0, repaired.stderr
    assert_chain_exact(sim, out, rows)
    assert sim.stats.backup_files_calls == calls + 1
    assert sim.stats.object_bytes_sent - sent == victim.stat().st_size
    # A backup folder gone: exit 4, naming it.
    gone = out / str(rows[5]["folder"])
    gone.rename(tmp_path / "elsewhere")
    missing = cli(["verify", str(out)], sim)
    assert missing.returncode == 4
    assert f"FAIL  {rows[5]['folder']}  missing" in missing.stdout
    # Back, and a backup folder the chain does not list beside it (the restore steps' globs
    # would replay its binlogs with the chain's): exit 4, naming it.
    (tmp_path / "elsewhere").rename(gone)
    assert cli(["verify", str(out)], sim).returncode == 0
    shutil.copytree(gone, out / "07-incremental-0123")
    extra = cli(["verify", str(out)], sim)
    assert extra.returncode == 4
    assert "FAIL  07-incremental-0123  not a backup folder of the chain" in extra.stdout


def test_a_differential_full_takes_its_place_in_the_chain(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    """``fragment`` backups (differential fulls): the full, the newest differential before
    T, then the incrementals after it; a T at the full's end is the full alone."""
    sim = sim_thread
    t = "2024-05-20T09:05:00+08:00"
    rows = chain_json(sim, CHAIN_DIFF_INSTANCE, t)["backups"]
    assert isinstance(rows, list)
    assert [r["type"] for r in rows] == ["auto", "fragment", *["incremental"] * 7]
    assert rows[1]["begin_time"].startswith("2024-05-20T08:00:00")
    assert rows[2]["begin_time"].startswith("2024-05-20T08:00:00")  # from the differential on
    out = tmp_path / "pitr"
    args = ["download", "--instance-id", CHAIN_DIFF_INSTANCE, "--to-time", t, "-o", str(out)]
    done = cli([*args, "--json"], sim)
    assert done.returncode == 0, done.stderr
    assert_chain_exact(sim, out, rows)
    assert str(rows[1]["folder"]).startswith("02-fragment-")
    steps = "\n".join(json.loads(done.stdout)["next_steps"])
    assert "--incremental-dir=$I" in steps and "02-fragment-" in steps
    assert "read BINLOG POS _ < $I/xtrabackup_binlog_info" in steps

    at_end = chain_json(sim, CHAIN_DIFF_INSTANCE, "2024-05-20T02:12:00+08:00")["backups"]
    assert isinstance(at_end, list) and [r["type"] for r in at_end] == ["auto"]


def test_a_chain_and_a_plain_backup_never_share_a_folder(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    sim = sim_thread
    plain = tmp_path / "plain"
    assert cli(["download", MYSQL_FULL, "-o", str(plain)], sim).returncode == 0
    into_plain = cli(
        ["download", "--instance-id", CHAIN_MYSQL_INSTANCE, "--to-time", T, "-o", str(plain)], sim
    )
    assert into_plain.returncode == 2
    assert f"already holds {MYSQL_FULL}" in into_plain.stderr
    assert not [p for p in os.listdir(plain) if p.startswith("01-")]

    chain = tmp_path / "chain"
    args = [
        "download",
        "--instance-id",
        CHAIN_PG_INSTANCE,
        "--to-time",
        "2024-05-20T03:40:00+08:00",
    ]
    done = cli([*args, "-o", str(chain), "--json"], sim)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [b["type"] for b in report["backups"]] == [
        "auto",
        "incremental",
        "incremental",
        "incremental",
    ]
    steps = "\n".join(report["next_steps"])
    assert "recovery_target_time = '2024-05-20 03:40:00+08:00'" in steps
    into_chain = cli(["download", MYSQL_FULL, "-o", str(chain)], sim)
    assert into_chain.returncode == 2
    assert "point-in-time chain" in into_chain.stderr
    other_moment = cli([*args[:-1], "2024-05-20T03:50:00+08:00", "-o", str(chain)], sim)
    assert other_moment.returncode == 2 and "already holds the chain" in other_moment.stderr
    # Half a second later is another instant too (the same backups, but another restore).
    later = cli([*args[:-1], "2024-05-20T03:40:00.5+08:00", "-o", str(chain)], sim)
    assert later.returncode == 2 and "already holds the chain" in later.stderr


def test_a_gap_is_refused_with_nothing_fetched(sim_thread: Simulator, tmp_path: Path) -> None:
    sim = sim_thread
    out = tmp_path / "gap"
    args = ["download", "--instance-id", CHAIN_GAP_INSTANCE, "-o", str(out)]
    refused = cli([*args, "--to-time", "2024-05-20T06:00:00+08:00"], sim)
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert "covers 2024-05-20T05:00:00+08:00 to 2024-05-20T05:10:00+08:00" in line
    assert "the newest moment that can be reached is 2024-05-20T05:00:00+08:00" in line
    assert "Traceback" not in refused.stderr
    assert sim.stats.backup_files_calls == 0 and sim.stats.object_requests == 0
    assert not out.exists()  # no folder, no content
    # Before the gap the same instance restores.
    fine = cli([*args, "--to-time", "2024-05-20T04:55:00+08:00", "--json"], sim)
    assert fine.returncode == 0, fine.stderr
    assert len(json.loads(fine.stdout)["backups"]) == 1 + 18


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to-time", "2024-05-20T13:00:00"], "has no UTC offset: whose 13:00? add +08:00 or Z"),
        (["--to-time", T, MYSQL_FULL], "give either BACKUP_ID"),
        (["--to-time", T, "--latest"], "--latest and --to-time cannot be combined"),
        (["--to-time", T, "--include", "*.qp"], "--include cannot be used with --to-time"),
        (["--to-time", T, "--database", "x"], "--database cannot be used with --to-time"),
        (["--to-time", T, "--links-file", "x.json"], "--links-file and --to-time"),
        (["--to-time", T, "--instance-id", ""], "--to-time needs --instance-id"),
    ],
)
def test_what_to_time_refuses_is_a_usage_error(
    sim_thread: Simulator, tmp_path: Path, extra: list[str], message: str
) -> None:
    args = ["download", "--instance-id", CHAIN_MYSQL_INSTANCE, "-o", str(tmp_path / "o")]
    result = cli([*args, *extra], sim_thread)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sim_thread.stats.api_calls == 0


def test_killed_mid_chain_resumes_without_fetching_twice(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    sim = sim_thread
    rows = chain_json(sim, CHAIN_MYSQL_INSTANCE, T_LONG)["backups"]
    assert isinstance(rows, list) and len(rows) == 10
    out = tmp_path / "pitr"
    conns = 2
    args = [
        "download",
        "--instance-id",
        CHAIN_MYSQL_INSTANCE,
        "--to-time",
        T_LONG,
        "-o",
        str(out),
        "--max-connections",
        str(conns),
    ]
    sim.faults.throttle_bps = 24 * KIB  # each connection: the full's big file takes seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", *args],
        env=env_for(sim),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    # Killed once some backups are complete and others are under way.
    while not any((out / str(r["folder"]) / MANIFEST_NAME).exists() for r in rows[1:]):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "the chain did not start"
        time.sleep(0.01)
    proc.kill()  # SIGKILL: no cleanup at all
    proc.wait()
    done_before = [r["folder"] for r in rows if (out / str(r["folder"]) / MANIFEST_NAME).exists()]
    assert 0 < len(done_before) < len(rows)
    assert not (out / MANIFEST_NAME).exists()  # the chain is not complete
    # Never a wrong file under a final name.
    for r in rows:
        for f in sim.backups[str(r["id"])].files:
            path = out / str(r["folder"]) / f.name
            if path.exists():
                assert path.read_bytes() == sim.expected_bytes(str(r["id"]), f.name)
    # Meanwhile the folder is the chain's: a plain download is refused.
    plain = cli(["download", MYSQL_FULL, "-o", str(out)], sim)
    assert plain.returncode == 2 and "point-in-time chain" in plain.stderr

    sim.faults.throttle_bps = None
    calls = sim.stats.backup_files_calls
    again = cli([*args, "--json"], sim)
    assert again.returncode == 0, again.stderr
    assert_chain_exact(sim, out, rows)
    report = json.loads(again.stdout)
    for b in report["backups"]:
        if b["folder"] in done_before:
            assert b["bytes_fetched"] == 0 and all(f["result"] == "skipped" for f in b["files"])
    # Links were asked for only the backups not complete at the kill.
    assert sim.stats.backup_files_calls - calls == len(rows) - len(done_before)
    # Bytes the server sent over both runs: every file once, plus what was in flight at
    # the kill (at most one file per connection: these files are one range each).
    total = sum(f.size for r in rows for f in sim.backups[str(r["id"])].files)
    biggest = max(f.size for r in rows for f in sim.backups[str(r["id"])].files)
    assert sim.stats.object_bytes_sent <= total + conns * biggest, (
        sim.stats.object_bytes_sent,
        total,
    )
    assert cli(["verify", str(out)], sim).returncode == 0
