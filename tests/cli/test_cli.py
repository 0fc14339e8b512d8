"""The real ``rds-backup`` command in subprocesses against the simulator: exit codes,
output for cron and for terminals, redaction, signals, kill -9 and resume, disk errors."""

from __future__ import annotations

import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mounts import tmpfs

from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.sim import Simulator, SimulatorThread
from downloader.sim.catalog import MYSQL_FULL, MYSQL_MANY, MYSQL_MULTIPART, SQLSERVER_DB

KIB = 1024
MIB = 1024 * 1024
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n


@pytest.fixture
def server() -> Iterator[Simulator]:
    sim = Simulator()
    with SimulatorThread(sim):
        yield sim


def env_for(sim: Simulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(sim.env())
    env["RDS_BACKUP_ENDPOINT"] = sim.endpoint
    env["HOME"] = str(Path(env.get("TMPDIR", "/tmp")))
    env.update(extra)
    return env


def cli(
    args: list[str], sim: Simulator | None, *, timeout: float = 60, **extra: str
) -> subprocess.CompletedProcess[str]:
    env = env_for(sim, **extra) if sim else {"PATH": os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, "-m", "downloader", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(args: list[str], sim: Simulator, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "downloader", *args],
        env=env_for(sim, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_exact(sim: Simulator, backup_id: str, out: Path) -> None:
    for f in sim.backups[backup_id].files:
        assert (out / f.name).read_bytes() == sim.expected_bytes(backup_id, f.name), f.name
    if (out / MANIFEST_NAME).exists():
        for entry in json.loads((out / MANIFEST_NAME).read_text())["files"]:
            assert entry["crc64"] == f"{sim.expected_crc64(backup_id, entry['name']):016x}"


# ------------------------------------------------------------------ basics


def test_help_lists_the_commands() -> None:
    result = cli(["--help"], None)
    assert result.returncode == 0
    for command in ("download", "files", "backups", "verify", "simulate", "demo"):
        assert command in result.stdout
    result = cli(["download", "--help"], None)
    assert "RDS_BACKUP_" in result.stdout  # every option names its environment variable


def test_starting_the_command_line_imports_neither_aiohttp_nor_tqdm() -> None:
    """``--help``, ``verify`` and cron runs do not pay for aiohttp or tqdm at start-up."""
    probe = (
        "import sys, downloader.cli; print([m for m in ('aiohttp', 'tqdm') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_download_for_cron_is_plain_text(server: Simulator, tmp_path: Path) -> None:
    server.faults.throttle_bps = 2 * MIB
    result = cli(
        [
            "download",
            MYSQL_FULL,
            "-o",
            str(tmp_path),
            "--progress-interval",
            "1",
            "--max-connections",
            "2",
        ],
        server,
    )
    assert result.returncode == 0, result.stderr
    assert_exact(server, MYSQL_FULL, tmp_path)
    assert not CONTROL.search(result.stderr), "control characters in non-TTY output"
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(" progress " in line or "progress" in line.split(" ", 3)[-1] for line in lines)
    assert any("complete" in line for line in lines)
    assert result.stdout == ""


def test_json_log_and_report(server: Simulator, tmp_path: Path) -> None:
    server.faults.reset_after_bytes = 100 * KIB
    result = cli(
        ["--log-format", "json", "download", MYSQL_FULL, "-o", str(tmp_path), "--json"], server
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert events
    for ev in events:
        assert {"ts", "level", "logger", "event", "msg"} <= set(ev)
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["exit_code"] == 0
    assert report["retries"] >= 1
    names = {f["name"] for f in report["files"]}
    assert names == {f.name for f in server.backups[MYSQL_FULL].files}
    for f in report["files"]:
        assert f["result"] == "ok"
        # 16 hex digits, as OBS writes it: a JSON number above 2^53 is rounded by jq.
        assert f["crc64"] == f"{server.expected_crc64(MYSQL_FULL, f['name']):016x}"
        assert f["sha256"] is None


def test_quiet_prints_nothing_on_success(server: Simulator, tmp_path: Path) -> None:
    result = cli(["--quiet", "download", MYSQL_FULL, "-o", str(tmp_path)], server)
    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "extra", "code", "words"),
    [
        (["download", MYSQL_FULL, "-o", "{out}", "--jobs", "0"], {}, 2, "jobs"),
        (["download", "-o", "{out}"], {}, 2, "BACKUP_ID"),
        (["download", MYSQL_FULL, "-o", "{out}", "--include", "nothing*"], {}, 2, "no file"),
        (["download", "nosuchbackup", "-o", "{out}"], {}, 3, "unknown backup"),
        (
            ["download", MYSQL_FULL, "-o", "{out}"],
            {"HUAWEICLOUD_SDK_SK": "wrong" * 8},
            3,
            "credentials refused",
        ),
        (
            ["download", MYSQL_FULL, "-o", "{out}"],
            {"HUAWEICLOUD_SDK_SK": ""},
            3,
            "HUAWEICLOUD_SDK_SK",
        ),
        (
            ["download", MYSQL_FULL, "-o", "{out}", "--links-file", "{out}/missing.json"],
            {},
            2,
            "missing.json",
        ),
        (["verify", "{out}"], {}, 2, "no manifest"),
    ],
    ids=[
        "bad-option",
        "no-backup",
        "nothing-selected",
        "unknown-backup",
        "wrong-sk",
        "no-credentials",
        "no-links-file",
        "verify-empty",
    ],
)
def test_errors_are_one_line_with_meaningful_codes(
    server: Simulator,
    tmp_path: Path,
    args: list[str],
    extra: dict[str, str],
    code: int,
    words: str,
) -> None:
    tmp_path.joinpath("out").mkdir()
    args = [a.replace("{out}", str(tmp_path / "out")) for a in args]
    calls = server.stats.api_calls
    result = cli(args, server, **extra)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert words.lower() in result.stderr.lower()
    if "wrong" in str(extra.get("HUAWEICLOUD_SDK_SK", "")):
        assert server.stats.api_calls == calls + 1  # a wrong SK costs exactly one request
    # Nothing was half-written.
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name != STATE_DIR]
    assert leftovers == []


@pytest.mark.parametrize(
    "args",
    [
        ["download", MYSQL_FULL, "-o", "{out}", "--stall-timeout", "nan"],
        ["download", MYSQL_FULL, "-o", "{out}", "--connect-timeout", "inf"],
        ["download", MYSQL_FULL, "-o", "{out}", "--api-timeout", "Infinity"],
        ["download", MYSQL_FULL, "-o", "{out}", "--expiry-margin", "NaN"],
        ["files", MYSQL_FULL, "--api-timeout", "nan"],
        ["demo", "-o", "{out}", "--link-lifetime", "inf"],
    ],
    ids=["stall-nan", "connect-inf", "api-infinity", "margin-nan", "files-nan", "demo-inf"],
)
def test_non_finite_numbers_are_usage_errors(
    server: Simulator, tmp_path: Path, args: list[str]
) -> None:
    """``nan`` passes every range check and ``inf`` means "never": both are refused."""
    args = [a.replace("{out}", str(tmp_path / "out")) for a in args]
    calls = server.stats.api_calls
    result = cli(args, server)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "not a finite number" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.stats.api_calls == calls
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["download", MYSQL_FULL, "-o", ""],
        ["download", MYSQL_FULL, "--output="],
        ["download", MYSQL_FULL, "-o", "out", "--links-file", ""],
        ["download", MYSQL_FULL, "-o", "out", "--ca-bundle", ""],
        ["verify", ""],
        ["demo", "-o", ""],
    ],
    ids=["output", "output-equals", "links-file", "ca-bundle", "verify", "demo"],
)
def test_empty_paths_are_usage_errors(server: Simulator, tmp_path: Path, args: list[str]) -> None:
    """``-o ''`` used to mean the current folder; an empty path is now refused up front."""
    calls = server.stats.api_calls
    result = subprocess.run(
        [sys.executable, "-m", "downloader", *args],
        env=env_for(server),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "empty path" in result.stderr
    assert "Traceback" not in result.stderr
    assert server.stats.api_calls == calls
    assert list(tmp_path.iterdir()) == []  # nothing written where we stood


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["download", MYSQL_FULL, "-o", "{out}", "--chunk-size", "99999999G"], "at most 4G"),
        (["download", MYSQL_FULL, "-o", "{out}", "--chunk-size", "5G"], "at most 4G"),
        (["download", MYSQL_FULL, "-o", "{out}", "--chunk-size", "9" * 400], "invalid size"),
        (["download", MYSQL_FULL, "-o", "{out}", "--limit-rate", "101G"], "at most 100G"),
        (["cat", MYSQL_FULL, "x.qp", "--window", "999G"], "at most 4G"),
        (["cat", MYSQL_FULL, "x.qp", "--limit-rate", "1e3G"], "invalid rate"),
        (["demo", "-o", "{out}", "--wan-rate", "99999G"], "at most 100G"),
    ],
    ids=["chunk-absurd", "chunk-5G", "chunk-overflow", "rate", "window", "rate-exp", "wan-rate"],
)
def test_absurd_sizes_are_usage_errors(
    server: Simulator, tmp_path: Path, args: list[str], words: str
) -> None:
    """Every size and rate has a sane ceiling: a typo is refused before any work."""
    args = [a.replace("{out}", str(tmp_path / "out")) for a in args]
    calls = server.stats.api_calls
    result = cli(args, server)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert server.stats.api_calls == calls
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content",
    [b"not a certificate\n", b"\x30\x82\x01\x0a" + bytes(300), b""],
    ids=["text", "der-like", "empty"],
)
@pytest.mark.parametrize("command", ["download", "files"])
def test_ca_bundle_that_is_not_pem_is_a_usage_error(
    server: Simulator, tmp_path: Path, content: bytes, command: str
) -> None:
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(content)
    args = [command, MYSQL_FULL, "--ca-bundle", str(bundle)]
    if command == "download":
        args += ["-o", str(tmp_path / "out")]
    calls = server.stats.api_calls
    result = cli(args, server)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"{bundle} is not a PEM bundle of CA certificates" in result.stderr
    assert "Traceback" not in result.stderr and "_ssl.c" not in result.stderr
    assert server.stats.api_calls == calls
    assert not (tmp_path / "out").exists()


def test_ca_bundle_in_pem_is_accepted(server: Simulator, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    result = cli(["files", MYSQL_FULL, "--ca-bundle", str(bundle), "--json"], server)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["files"]) == 4


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_credentials_file_of_another_user_is_refused(server: Simulator, tmp_path: Path) -> None:
    """As ssh does with its keys: a credentials file must belong to the running user (or
    root), whatever its mode; someone else could have written the keys in it."""
    profile = tmp_path / "credentials"
    profile.write_text(
        f"[basic]\nak = {server.ak}\nsk = {server.sk}\nproject_id = {server.project_id}\n"
    )
    profile.chmod(0o600)
    no_env_keys = {
        "HUAWEICLOUD_SDK_AK": "",
        "HUAWEICLOUD_SDK_SK": "",
        "HUAWEICLOUD_SDK_CREDENTIALS_FILE": str(profile),
    }
    ours = cli(["files", MYSQL_FULL, "--json"], server, **no_env_keys)
    assert ours.returncode == 0, ours.stderr  # the same file, owned by us: used
    calls = server.stats.api_calls
    os.chown(profile, 65534, 65534)  # nobody
    result = cli(["files", MYSQL_FULL], server, **no_env_keys)
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert f"credentials file {profile} is owned by another user" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert server.sk not in result.stderr
    assert server.stats.api_calls == calls


def test_verification_failure_exits_4(server: Simulator, tmp_path: Path) -> None:
    server.faults.wrong_kb_size = 1024  # a MiB more than each file holds: clearly wrong
    result = cli(["download", MYSQL_FULL, "-o", str(tmp_path)], server)
    assert result.returncode == 4
    assert not (tmp_path / MANIFEST_NAME).exists()
    assert "API reports" in result.stderr


def test_an_object_a_fifth_shorter_than_listed_exits_4_naming_both_sizes(
    server: Simulator, tmp_path: Path
) -> None:
    """A truncated upload: the 1 MiB file (1025 KB listed) served while the API lists 1281
    KB, a fifth more than the store holds. No rounding explains it."""
    server.faults.wrong_kb_size = 256
    small = next(f for f in server.backups[MYSQL_FULL].files if f.size == 1 * MIB + 1)
    result = cli(["download", MYSQL_FULL, "-o", str(tmp_path), "--include", small.name], server)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert f"the object has {small.size} bytes but the API reports 1281 KB" in result.stderr
    assert not (tmp_path / small.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_some_files_failed_exits_1(server: Simulator, tmp_path: Path) -> None:
    server.faults.deny_objects = True
    result = cli(["download", MYSQL_FULL, "-o", str(tmp_path)], server)
    assert result.returncode == 1
    assert "refuses even a freshly resolved link" in result.stderr
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_locked_folder_exits_5_naming_the_holder(server: Simulator, tmp_path: Path) -> None:
    server.faults.throttle_bps = 512 * KIB
    first = start(["download", MYSQL_FULL, "-o", str(tmp_path), "--max-connections", "2"], server)
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / STATE_DIR / "lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        second = cli(["download", MYSQL_FULL, "-o", str(tmp_path)], server)
        assert second.returncode == 5
        assert f"pid {first.pid}" in second.stderr
        waiting = cli(
            ["download", MYSQL_FULL, "-o", str(tmp_path), "--wait-lock"], server, timeout=60
        )
        assert waiting.returncode == 0
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0
    assert_exact(server, MYSQL_FULL, tmp_path)


def test_secrets_never_reach_the_output(server: Simulator, tmp_path: Path) -> None:
    """A full run with faults and --debug: neither the AK/SK nor any presigned query string
    appears anywhere in what the tool prints."""
    server.faults.link_true_lifetime = 1.5  # 403s, then re-resolution
    server.faults.reset_after_bytes = 64 * KIB
    server.faults.throttle_bps = 1 * MIB
    result = cli(
        [
            "--debug",
            "download",
            MYSQL_FULL,
            "-o",
            str(tmp_path),
            "--json",
            "--max-connections",
            "2",
            "--progress-interval",
            "1",
            "--chunk-size",
            "256K",
        ],
        server,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
    assert server.stats.object_status_counts.get(403, 0) >= 1
    for secret in (server.sk, server.ak, "Signature=", "AccessKeyId=", "Expires="):
        assert secret not in out, secret
    journal = "".join(p.read_text() for p in (tmp_path / STATE_DIR / "journal").iterdir())
    manifest = (tmp_path / MANIFEST_NAME).read_text()
    for secret in (server.sk, "Signature=", "AccessKeyId="):
        assert secret not in journal + manifest


def test_verify_catches_a_flipped_byte(server: Simulator, tmp_path: Path) -> None:
    assert cli(["download", SQLSERVER_DB, "-o", str(tmp_path)], server).returncode == 0
    ok = cli(["verify", str(tmp_path)], None)
    assert ok.returncode == 0, ok.stdout
    # Each line says what was compared (it said "ok NAME ok").
    lines = [line for line in ok.stdout.splitlines() if line.startswith("ok")]
    assert len(lines) == 3 and all(line.endswith("size, CRC-64 and MD5 match") for line in lines)
    # A manifest from before crc64 was a hex string (version 1, JSON integers) still verifies.
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["manifest_version"] == 2
    assert all(re.fullmatch(r"[0-9a-f]{16}", e["crc64"]) for e in manifest["files"])
    manifest["manifest_version"] = 1
    for entry in manifest["files"]:
        entry["crc64"] = int(entry["crc64"], 16)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    old = cli(["verify", str(tmp_path)], None)
    assert old.returncode == 0, old.stdout
    victim = tmp_path / server.backups[SQLSERVER_DB].files[0].name
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    bad = cli(["verify", str(tmp_path), "--json"], None)
    assert bad.returncode == 4
    report = json.loads(bad.stdout)
    assert [f["name"] for f in report["files"] if not f["ok"]] == [victim.name]


def test_summary_and_verify_count_the_size_only_files(server: Simulator, tmp_path: Path) -> None:
    """A multipart upload fetched in ranges met no checksum the store computed: the run's
    totals and ``verify`` say how many such files there are; a backup whose every file was
    compared with one says nothing of the kind."""
    ranged = tmp_path / "ranged"
    result = cli(["download", MYSQL_MULTIPART, "-o", str(ranged), "--chunk-size", "1M"], server)
    assert result.returncode == 0, result.stderr
    totals = next(line for line in result.stderr.splitlines() if "files complete" in line)
    assert totals.endswith(", 1 size-only")
    assert "1 file was verified size-only" in result.stderr
    text = cli(["verify", str(ranged)], None)
    assert text.returncode == 0, text.stdout
    assert "1 of 1 files verified" in text.stdout
    assert "1 file was verified size-only" in text.stdout
    report = json.loads(cli(["verify", str(ranged), "--json"], None).stdout)
    assert report["size_only"] == 1
    assert [f["integrity"] for f in report["files"]] == ["size-only"]

    whole = tmp_path / "whole"  # one answer: the store's CRC-64 of the whole object
    result = cli(["download", MYSQL_MULTIPART, "-o", str(whole)], server)
    assert result.returncode == 0, result.stderr
    totals = next(line for line in result.stderr.splitlines() if "files complete" in line)
    assert totals.endswith("links refused")
    assert "verified size-only" not in result.stderr
    text = cli(["verify", str(whole)], None)
    assert text.returncode == 0 and "size-only" not in text.stdout
    report = json.loads(cli(["verify", str(whole), "--json"], None).stdout)
    assert report["size_only"] == 0
    assert [f["integrity"] for f in report["files"]] == ["server-checksum"]


def test_files_and_backups_commands(server: Simulator) -> None:
    files = cli(["files", SQLSERVER_DB, "--json"], server)
    assert files.returncode == 0, files.stderr
    listed = json.loads(files.stdout)
    assert {f["database_name"] for f in listed["files"]} == {"sales", "hr", "inventory"}
    table = cli(["files", SQLSERVER_DB], server)
    assert "sales" in table.stdout
    instance = server.backups[MYSQL_FULL].instance_id
    backups = cli(["backups", "--instance-id", instance, "--json"], server)
    assert backups.returncode == 0, backups.stderr
    shown = json.loads(backups.stdout)
    assert shown["instance_id"] == instance  # an object holding the list, as files --json
    found = shown["backups"]
    assert MYSQL_FULL in {b["id"] for b in found}
    ends = [b["end_time"] for b in found]
    assert ends == sorted(ends, reverse=True)


def test_latest_picks_the_newest_completed_backup(server: Simulator, tmp_path: Path) -> None:
    instance = server.backups[MYSQL_FULL].instance_id
    result = cli(
        ["download", "--instance-id", instance, "--latest", "-o", str(tmp_path), "--json"], server
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backup_id"] == MYSQL_FULL
    assert_exact(server, MYSQL_FULL, tmp_path)


def test_limit_rate_is_accurate(server: Simulator, tmp_path: Path) -> None:
    rate = 2 * MIB
    t0 = time.monotonic()
    result = cli(["download", MYSQL_MANY, "-o", str(tmp_path), "--limit-rate", "2M"], server)
    took = time.monotonic() - t0
    assert result.returncode == 0, result.stderr
    total = sum(f.size for f in server.backups[MYSQL_MANY].files)
    expected = total / rate
    # Within 10% (plus process start-up, which does not transfer anything).
    assert expected * 0.9 <= took <= expected * 1.1 + 1.0, (took, expected)


# ------------------------------------------------------------------ signals, crashes


def _wait_for_bytes(sim: Simulator, n: int, proc: subprocess.Popen[str], limit: float = 20) -> None:
    deadline = time.monotonic() + limit
    while sim.stats.object_bytes_sent < n:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "download did not start"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_quickly_and_resumes(
    server: Simulator, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    server.faults.throttle_bps = 256 * KIB
    args = ["download", MYSQL_FULL, "-o", str(tmp_path), "--max-connections", "2"]
    proc = start(args, server)
    _wait_for_bytes(server, 300 * KIB, proc)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == code, err
    assert time.monotonic() - t0 < 5
    assert "Traceback" not in err
    assert "interrupted" in err
    assert not (tmp_path / MANIFEST_NAME).exists()
    journals = list((tmp_path / STATE_DIR / "journal").iterdir())
    assert journals  # the journal was flushed
    server.faults.throttle_bps = None
    before = server.stats.object_bytes_sent
    again = cli(args, server)
    assert again.returncode == 0, again.stderr
    assert_exact(server, MYSQL_FULL, tmp_path)
    total = sum(f.size for f in server.backups[MYSQL_FULL].files)
    assert server.stats.object_bytes_sent - before < total  # resumed, not restarted


def test_second_ctrl_c_exits_at_once(server: Simulator, tmp_path: Path) -> None:
    server.faults.throttle_bps = 256 * KIB
    proc = start(["download", MYSQL_FULL, "-o", str(tmp_path)], server)
    _wait_for_bytes(server, 100 * KIB, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert "Traceback" not in err


def test_kill_9_at_many_points_loses_nothing_and_refetches_little(
    server: Simulator, tmp_path: Path
) -> None:
    server.faults.throttle_bps = 1 * MIB
    chunk = 512 * KIB
    conns = 2
    args = [
        "download",
        MYSQL_FULL,
        "-o",
        str(tmp_path),
        "--max-connections",
        str(conns),
        "--chunk-size",
        "512K",
    ]
    total = sum(f.size for f in server.backups[MYSQL_FULL].files)
    kills = 0
    delays = [0.3, 0.5, 0.8, 0.4, 0.6, 0.9, 0.2, 1.2]
    for delay in delays:
        proc = start(args, server)
        time.sleep(delay)
        if proc.poll() is not None:
            break
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait()
        kills += 1
        # Never a wrong file under a final name.
        for f in server.backups[MYSQL_FULL].files:
            path = tmp_path / f.name
            if path.exists():
                assert path.read_bytes() == server.expected_bytes(MYSQL_FULL, f.name)
    # One more, killed the moment a file has been moved into place: the rename and the
    # journal's "complete" record are not one atomic step, and the rerun must cope.
    proc = start(args, server)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(
            (tmp_path / f.name).exists()
            for f in server.backups[MYSQL_FULL].files
            if f.size > 1 * MIB
        ):
            break
        time.sleep(0.002)
    if proc.poll() is None:
        proc.kill()
        kills += 1
    proc.wait()
    server.faults.throttle_bps = None
    final = cli(args, server)
    assert final.returncode == 0, final.stderr
    assert kills >= 3
    assert_exact(server, MYSQL_FULL, tmp_path)
    # Bytes the server sent across all runs: the total plus at most a chunk per connection
    # per kill (what was in flight), counted as the server wrote them to its sockets.
    assert server.stats.object_bytes_sent <= total + kills * conns * chunk, (
        server.stats.object_bytes_sent,
        total,
        kills,
    )
    # After success: the files, the manifest, the state folder; no part file left.
    assert not list((tmp_path / STATE_DIR / "parts").iterdir())


def _killed_mid_file(server: Simulator, out: Path) -> tuple[list[str], str]:
    """Start a slow download of the biggest file, let the journal record some ranges, then
    kill -9 it. Returns the command's arguments and the file's name."""
    big = max(server.backups[MYSQL_FULL].files, key=lambda f: f.size)
    server.faults.throttle_bps = 512 * KIB
    args = ["download", MYSQL_FULL, "-o", str(out), "--include", big.name,
            "--max-connections", "2", "--chunk-size", "256K"]  # fmt: skip
    proc = start(args, server)
    _wait_for_bytes(server, 600 * KIB, proc)
    time.sleep(1.2)  # the journal records what is on disk at least every second
    proc.kill()
    proc.wait()
    server.faults.throttle_bps = None
    return args, big.name


def test_object_changed_between_runs_gives_the_new_content(
    server: Simulator, tmp_path: Path
) -> None:
    args, name = _killed_mid_file(server, tmp_path)
    server.change_content(MYSQL_FULL, name)
    again = cli(args, server)
    assert again.returncode == 0, again.stderr
    assert "changed" in again.stderr
    assert (tmp_path / name).read_bytes() == server.expected_bytes(MYSQL_FULL, name)


def test_corrupt_journal_restarts_the_file(server: Simulator, tmp_path: Path) -> None:
    args, name = _killed_mid_file(server, tmp_path)
    # Other files may have records too (how many had started when the kill came varies).
    journal = _record_of(tmp_path, name)
    journal.write_text('{"version": 1, "done": [[0, "garbage"')
    again = cli(args, server)
    assert again.returncode == 0, again.stderr
    assert "journal unreadable" in again.stderr
    assert (tmp_path / name).read_bytes() == server.expected_bytes(MYSQL_FULL, name)


def _flip_in_place(path: Path) -> os.stat_result:
    """Change one byte in the middle of a file in place, its size kept and its mtime put
    back (as a careless tool or bit rot leaves it): only its ctime moves."""
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(before.st_size // 2)
        byte = fh.read(1)[0]
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    kept = (after.st_size, after.st_mtime_ns, after.st_ino)
    assert kept == (before.st_size, before.st_mtime_ns, before.st_ino)
    return after


def _record_of(out: Path, name: str) -> Path:
    for path in (out / STATE_DIR / "journal").glob("*.json"):
        if json.loads(path.read_text())["name"] == name:
            return path
    raise AssertionError(f"no journal record for {name}")


def test_a_file_damaged_in_place_is_fetched_again(server: Simulator, tmp_path: Path) -> None:
    args = ["download", MYSQL_FULL, "-o", str(tmp_path), "--json"]
    assert cli(args, server).returncode == 0
    victim = max(server.backups[MYSQL_FULL].files, key=lambda f: f.size)
    _flip_in_place(tmp_path / victim.name)
    again = cli(args, server)
    assert again.returncode == 0, again.stderr
    assert f"{victim.name}: changed on disk since it was downloaded" in again.stderr
    report = json.loads(again.stdout)
    results = {f["name"]: f["result"] for f in report["files"]}
    assert results.pop(victim.name) == "ok"
    assert set(results.values()) == {"skipped"}
    assert report["bytes_fetched"] >= victim.size
    assert_exact(server, MYSQL_FULL, tmp_path)
    # Exact again, and its new stat recorded: the next run fetches nothing.
    third = cli(args, server)
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert report["bytes_fetched"] == 0
    assert {f["result"] for f in report["files"]} == {"skipped"}


def test_recheck_hashes_every_file_even_when_its_stat_was_kept(
    server: Simulator, tmp_path: Path
) -> None:
    """A change that keeps size, mtime, ctime and inode (made here by recording the damaged
    file's stat in its record) goes unseen by a plain rerun, which reads no finished file;
    ``--recheck`` reads them all and fetches the damaged one again."""
    args = ["download", MYSQL_FULL, "-o", str(tmp_path), "--json"]
    assert cli(args, server).returncode == 0
    victim = server.backups[MYSQL_FULL].files[1]
    path = tmp_path / victim.name
    st = _flip_in_place(path)
    record = _record_of(tmp_path, victim.name)
    obj = json.loads(record.read_text())
    assert obj["in_place"]["ctime_ns"] != st.st_ctime_ns
    obj["in_place"] = {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns,
        "ino": st.st_ino,
    }
    record.write_text(json.dumps(obj))
    plain = cli(args, server)
    assert plain.returncode == 0, plain.stderr
    report = json.loads(plain.stdout)
    assert report["bytes_fetched"] == 0
    assert {f["result"] for f in report["files"]} == {"skipped"}
    # Had the rerun read the file, it would have found the flipped byte.
    assert path.read_bytes() != server.expected_bytes(MYSQL_FULL, victim.name)
    rechecked = cli([*args, "--recheck"], server)
    assert rechecked.returncode == 0, rechecked.stderr
    assert f"{victim.name}: changed on disk since it was downloaded" in rechecked.stderr
    report = json.loads(rechecked.stdout)
    results = {f["name"]: f["result"] for f in report["files"]}
    assert results.pop(victim.name) == "ok"
    assert set(results.values()) == {"skipped"}
    assert report["bytes_fetched"] == victim.size
    assert_exact(server, MYSQL_FULL, tmp_path)


# ------------------------------------------------------------------ disk errors


def test_not_enough_space_fails_before_fetching(server: Simulator, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small") as mnt:
        result = cli(["download", MYSQL_FULL, "-o", str(mnt / "out")], server)
        assert result.returncode == 6  # a storage problem: running again cannot help
        assert "not enough free space" in result.stderr
        assert re.search(
            r"\d+(\.\d+)? [KMG]iB needed, \d+(\.\d+)? [KMG]?i?B available", result.stderr
        )
        assert server.stats.object_bytes_sent == 0


def test_write_error_mid_file_is_clear_and_resumable(server: Simulator, tmp_path: Path) -> None:
    """A file-size limit makes writes past 1 MiB fail with EFBIG, a real I/O error from the
    kernel (the same path as ENOSPC)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 * MIB, 1 * MIB))

    big = max(server.backups[MYSQL_FULL].files, key=lambda f: f.size)
    args = [
        sys.executable,
        "-m",
        "downloader",
        "download",
        MYSQL_FULL,
        "-o",
        str(tmp_path),
        "--no-preallocate",
        "--chunk-size",
        "256K",
    ]
    result = subprocess.run(
        args,
        env=env_for(server),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit,
        check=False,
    )
    assert result.returncode == 6, result.stderr  # the folder could not take the file
    assert "Traceback" not in result.stderr
    assert big.name in result.stderr
    assert "run again" in result.stderr
    assert not (tmp_path / big.name).exists()
    assert not (tmp_path / MANIFEST_NAME).exists()
    sent = server.stats.object_bytes_sent
    again = cli(args[3:], server)
    assert again.returncode == 0, again.stderr
    assert_exact(server, MYSQL_FULL, tmp_path)
    # The second run took only what the first could not write (plus the in-flight reads).
    assert server.stats.object_bytes_sent - sent < big.size


def test_demo_command_runs(tmp_path: Path) -> None:
    # A PATH without this environment's bin, as after scripts/demo.sh: rds-backup is not on it.
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in os.environ["PATH"].split(":") if p and p != venv_bin)
    env = {"PATH": path, "HOME": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "downloader",
            "demo",
            "-o",
            str(tmp_path / "demo"),
            "--progress",
            "log",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "byte-exact" in result.stderr
    manifest = json.loads((tmp_path / "demo" / MANIFEST_NAME).read_text())
    # A MySQL backup holds MySQL files only (a SQL Server .bak in it mixed two recipes).
    assert [e["name"] for e in manifest["files"] if not e["name"].endswith(".qp")] == []
    if sys.prefix != sys.base_prefix and not shutil.which("rds-backup", path=path):
        # The next command, runnable as printed although rds-backup is not on PATH.
        activate = shlex.quote(sys.prefix) + "/bin/activate"
        assert f"next: . {activate} && rds-backup simulate" in result.stderr
    else:
        assert "next: rds-backup simulate" in result.stderr
    shutil.rmtree(tmp_path / "demo")


def test_restore_hints_short_at_a_terminal_in_json_not_in_logs(
    server: Simulator, tmp_path: Path
) -> None:
    """MYSQL_MANY is one full backup in 40 parts: its recipe used to list all 40 paths twice,
    every night into the cron log."""
    names = [f.name for f in server.backups[MYSQL_MANY].files]
    logged = cli(["download", MYSQL_MANY, "-o", str(tmp_path / "log")], server)
    assert logged.returncode == 0, logged.stderr
    assert "xbstream" not in logged.stderr and "Warning" not in logged.stderr

    out = tmp_path / "json"
    as_json = cli(["download", MYSQL_MANY, "-o", str(out), "--json"], server)
    assert as_json.returncode == 0, as_json.stderr
    hints = json.loads(as_json.stdout)["next_steps"]
    assert 0 < len(hints) <= 6
    assert f"for f in {out}/{MYSQL_MANY}_full_2024-05-20_06-00-00_*.qp;" in "\n".join(hints)
    assert not any(name in line for name in names for line in hints)
    assert not hints[0].startswith("Warning")

    # At a terminal, with one part of the 40: the recipe, after a warning.
    one = tmp_path / "tty"
    shown = cli(
        ["download", MYSQL_MANY, "-o", str(one), "--include", names[0], "--progress", "tty"],
        server,
    )
    assert shown.returncode == 0, shown.stderr
    tail = shown.stderr[shown.stderr.index("manifest:") :].splitlines()[1:]
    assert tail[0].startswith("Warning: partial selection (1 of 40 MySQL full backup files)")
    assert any(f"< {one}/{names[0]}" in line for line in tail)
    assert len(tail) <= 8


def test_links_file_from_stdin(server: Simulator, tmp_path: Path) -> None:
    """A backup-files answer saved from the API (or the console, or Huawei's CLI), piped
    in: downloaded without any API call, and the run says its links cannot be renewed."""
    # The API's own shape, from a signed call, as a user would have saved it.
    import asyncio

    from downloader.api.auth import AkSkAuth
    from downloader.api.client import RdsClient

    async def raw() -> dict[str, object]:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            client = RdsClient(
                endpoint=server.endpoint,
                project_id=server.project_id,
                auth=AkSkAuth(server.ak, server.sk),
                session=session,
            )
            got = await client.show_backup_files(MYSQL_FULL)
        return {"bucket": got.bucket, "files": [
            {"name": f.name, "size": f.size_kb, "download_link": f.download_link,
             "link_expired_time": f.link_expired_time.strftime("%Y-%m-%dT%H:%M:%S%z")
             if f.link_expired_time else None, "database_name": f.database_name or ""}
            for f in got.files]}  # fmt: skip

    saved = json.dumps(asyncio.run(raw()))
    calls = server.stats.api_calls
    result = subprocess.run(
        [sys.executable, "-m", "downloader", "download", MYSQL_FULL, "-o", str(tmp_path),
         "--links-file", "-"],
        input=saved, env=env_for(server, HUAWEICLOUD_SDK_SK="", HUAWEICLOUD_SDK_AK=""),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cannot be renewed" in result.stderr
    assert server.stats.api_calls == calls  # no API call, no credentials needed
    assert_exact(server, MYSQL_FULL, tmp_path)


def test_simulate_command_serves_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", "simulate", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        endpoint = None
        deadline = time.monotonic() + 20
        while endpoint is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"endpoint:\s+(http://\S+)", line)
            if m:
                endpoint = m.group(1)
        assert endpoint, "simulate printed no endpoint"
        sim = Simulator()  # only for its (fixed, public) demo credentials
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **sim.env(),
               "RDS_BACKUP_ENDPOINT": endpoint}  # fmt: skip
        files = subprocess.run(
            [sys.executable, "-m", "downloader", "files", SQLSERVER_DB, "--json"],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert files.returncode == 0, files.stderr
        assert len(json.loads(files.stdout)["files"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_download_writes_run_metrics_success_or_not(server: Simulator, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def metrics() -> dict[str, float]:
        text = (tmp_path / "rds.prom").read_text()
        return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}

    prom = str(tmp_path / "rds.prom")
    ok = cli(["download", MYSQL_FULL, "-o", str(tmp_path / "a"), "--metrics-file", prom], server)
    assert ok.returncode == 0, ok.stderr
    first = metrics()
    assert first["rds_backup_last_run_success"] == 1
    assert abs(first["rds_backup_last_run_timestamp_seconds"] - time.time()) < 60

    server.faults.deny_objects = True
    bad = cli(["download", MYSQL_FULL, "-o", str(tmp_path / "b"), "--metrics-file", prom], server)
    assert bad.returncode == 1
    assert metrics()["rds_backup_last_run_success"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "rds.prom"]  # no temp left
