"""The examples/ folder, tried for real against the simulator.

* ``nightly-backup.sh``: end to end in a subprocess (download, log, retention, flock, a failing
  run deletes nothing, the 0600 env file);
* ``systemd/``: the units parse, point at the script, and pass ``systemd-analyze verify`` when
  it is installed;
* ``restore-sqlserver-database.md``: its ``sh`` blocks run in order against the simulator
  (the ``sqlcmd`` restore needs a SQL Server and is not run);
* ``restore-mysql-streamed.sh``: run with a stand-in for ``xbstream`` that keeps what it
  receives.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread, default_catalog
from downloader.sim.catalog import (
    MYSQL_FULL,
    MYSQL_INSTANCE,
    SQLSERVER_DB,
    SQLSERVER_INSTANCE,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCRIPT = EXAMPLES / "nightly-backup.sh"
SYSTEMD = EXAMPLES / "systemd"
WALKTHROUGH = EXAMPLES / "restore-sqlserver-database.md"
MANIFEST = "rds-backup-manifest.json"
FOLDER_RE = re.compile(r"^\d{8}T\d{6}Z_[0-9A-Za-z]+$")

pytestmark = pytest.mark.skipif(
    not (shutil.which("bash") and shutil.which("flock")), reason="needs bash and flock(1)"
)


# --------------------------------------------------------------------------- helpers


def rds_backup_bin(tmp_path: Path) -> Path:
    """The ``rds-backup`` console script next to this Python, else a wrapper around it."""
    script = Path(sys.executable).parent / "rds-backup"
    if script.is_file() and os.access(script, os.X_OK):
        return script
    wrapper = tmp_path / "bin" / "rds-backup"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m downloader "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@dataclass
class Served:
    sim: Simulator
    thread: SimulatorThread
    env: dict[str, str]  # a clean environment pointing rds-backup at the simulator
    bin: Path

    def complete(self, n: int) -> SimBackup:
        """Night ``n``'s backup finishes: BUILDING -> COMPLETED (the newest one from now)."""
        backup = self.sim.backups[night_id(n)]
        self.thread.call(lambda: setattr(backup, "status", "COMPLETED"))
        return backup


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # The object store indexes its keys at start, so later nights are in the catalog from the
    # beginning, still BUILDING; a test "completes" them one by one.
    sim = Simulator(catalog=default_catalog() + [night(n) for n in NIGHTS])
    thread = SimulatorThread(sim)
    endpoint = thread.start()
    binary = rds_backup_bin(tmp_path)
    home = tmp_path / "home"  # no ~/.huaweicloud/credentials of the person running the tests
    home.mkdir()
    env = {
        "PATH": os.pathsep.join(
            [
                str(binary.parent),
                str(Path(sys.executable).parent),
                os.environ.get("PATH", "/usr/bin:/bin"),
            ]
        ),
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "RDS_BACKUP_ENDPOINT": endpoint,
        "RDS_BACKUP_BIN": str(binary),
        **sim.env(),
    }
    try:
        yield Served(sim, thread, env, binary)
    finally:
        thread.stop()


def nightly_env(served: Served, root: Path, **extra: str) -> dict[str, str]:
    env = dict(served.env)
    env.update(
        NIGHTLY_ENV_FILE="", NIGHTLY_INSTANCE_ID=MYSQL_INSTANCE, NIGHTLY_BACKUP_ROOT=str(root)
    )
    env.update(extra)
    return env


def run_nightly(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def folder_name(backup: SimBackup) -> str:
    return f"{backup.end_time.astimezone(UTC):%Y%m%dT%H%M%SZ}_{backup.id}"


def backup_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and FOLDER_RE.match(p.name))


def complete_folders(root: Path) -> list[str]:
    return [n for n in backup_folders(root) if (root / n / MANIFEST).is_file()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NIGHTS = (1, 2, 3, 4)


def night_id(n: int) -> str:
    return f"{n:032x}br01"


def night(n: int) -> SimBackup:
    """A small auto backup of the MySQL instance, ``n`` days after MYSQL_FULL, BUILDING."""
    begin = datetime(2024, 5, 20, 16, 0, tzinfo=UTC) + timedelta(days=n)
    bid = night_id(n)
    return SimBackup(
        bid,
        MYSQL_INSTANCE,
        f"sim-night-{n}",
        "auto",
        "BUILDING",
        "MySQL",
        "8.0",
        begin,
        begin + timedelta(minutes=5),
        [SimFile(f"{bid}_full_1.qp", 1000 + n), SimFile(f"{bid}_full_meta.qp", 7)],
    )


def assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert "Signature=" not in text
    assert "X-Amz-Signature" not in text


# --------------------------------------------------------------------------- nightly script


def test_script_is_valid_bash_and_documents_cron() -> None:
    assert os.access(SCRIPT, os.X_OK), "examples/nightly-backup.sh should be executable"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert "flock -n" in text
    assert re.search(r"^#\s+MAILTO=\S+@\S+", text, re.M)
    # a crontab entry: five time fields, then the script
    assert re.search(r"^#\s+(\S+\s+){5}/\S*/nightly-backup\.sh\s*$", text, re.M)
    if shutil.which("shellcheck"):
        done = subprocess.run(
            ["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout


def test_nightly_downloads_the_latest_backup(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    env = nightly_env(served, root, NIGHTLY_VERIFY="1")
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # a good night mails nothing

    backup = served.sim.backups[MYSQL_FULL]  # the newest COMPLETED auto backup
    assert backup_folders(root) == [folder_name(backup)]
    dest = root / folder_name(backup)
    manifest = json.loads((dest / MANIFEST).read_text())
    assert manifest["backup_id"] == MYSQL_FULL
    assert sorted(f["name"] for f in manifest["files"]) == sorted(f.name for f in backup.files)
    for f in backup.files:
        assert (dest / f.name).stat().st_size == f.size
        assert sha256(dest / f.name) == served.sim.expected_sha256(MYSQL_FULL, f.name)
    assert stat.S_IMODE(dest.stat().st_mode) & 0o077 == 0  # umask 077

    log = (root / "nightly-backup.log").read_text()
    assert f"newest backup: {MYSQL_FULL}" in log
    assert "files verified" in log
    assert "done (exit 0)" in log
    assert_no_secrets(log, served.sim.sk, served.sim.obs_sk)

    # Same backup the next night: the same folder, found complete, nothing duplicated.
    again = run_nightly(env)
    assert again.returncode == 0, again.stderr
    assert backup_folders(root) == [folder_name(backup)]
    assert (dest / MANIFEST).is_file()


def test_nightly_retention_keeps_the_newest_complete_backups(
    served: Served, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    root.mkdir()
    # Folders retention must leave alone: unfinished downloads (no manifest), old or new,
    # and anything not named like the script's folders.
    stale = root / f"20200101T000000Z_{'a' * 32}br01"
    future = root / f"29991231T000000Z_{'b' * 32}br01"
    other = root / "hand-made-copy"
    for d in (stale, future, other):
        (d / ".rds-backup").mkdir(parents=True)
    (other / MANIFEST).write_text("{}")
    env = nightly_env(served, root, NIGHTLY_KEEP="2")

    written = []
    for n in NIGHTS:
        backup = served.complete(n)
        done = run_nightly(env)
        assert done.returncode == 0, done.stderr
        written.append(folder_name(backup))
        assert complete_folders(root) == written[-2:]
        for d in (stale, future, other):
            assert d.is_dir()

    log = (root / "nightly-backup.log").read_text()
    assert log.count("retention: removing") == 2
    assert f"keeping {future}: no manifest" in log
    assert_no_secrets(log, served.sim.sk)


def test_nightly_second_run_exits_while_the_lock_is_held(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    root.mkdir()
    env = nightly_env(served, root)
    with open(root / ".nightly-backup.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        done = run_nightly(env, timeout=20)
        assert time.monotonic() - started < 10
        assert done.returncode == 5
        assert "another run holds" in done.stderr
        assert backup_folders(root) == []
        assert served.sim.stats.api_calls == 0
    # released: the next run goes ahead
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert complete_folders(root) == [folder_name(served.sim.backups[MYSQL_FULL])]


def test_nightly_failure_exits_non_zero_and_deletes_nothing(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    env = nightly_env(served, root, NIGHTLY_KEEP="1")
    assert run_nightly(env).returncode == 0
    first = complete_folders(root)
    assert len(first) == 1

    # Wrong secret key: the API refuses (exit 3); the output goes to stderr for cron's mail.
    wrong = "WrongSecretKey0000000000000000000000000000"
    done = run_nightly({**env, "HUAWEICLOUD_SDK_SK": wrong})
    assert done.returncode == 3
    assert "FAILED with exit code 3" in done.stderr
    assert "credentials refused" in done.stderr
    assert complete_folders(root) == first
    log = (root / "nightly-backup.log").read_text()
    assert "FAILED (exit 3)" in log
    assert_no_secrets(log + done.stderr, wrong, served.sim.sk)

    # A newer backup whose download fails: exit 1, the older backup stays (KEEP=1 would
    # otherwise remove it), the new folder has no manifest.
    newer = served.complete(1)
    served.sim.faults.deny_objects = True
    done = run_nightly(env)
    assert done.returncode == 1
    assert "FAILED with exit code 1" in done.stderr
    assert complete_folders(root) == first
    assert backup_folders(root) == sorted([*first, folder_name(newer)])

    # Fixed: the next run completes it, and only now the older one goes.
    served.sim.faults.deny_objects = False
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert backup_folders(root) == complete_folders(root) == [folder_name(newer)]


def env_file_from_example(served: Served, path: Path) -> None:
    """The shipped env example with the simulator's values filled in."""
    values = {
        "NIGHTLY_INSTANCE_ID": MYSQL_INSTANCE,
        "HUAWEICLOUD_SDK_PROJECT_ID": served.sim.project_id,
        "HUAWEICLOUD_SDK_AK": served.sim.ak,
        "HUAWEICLOUD_SDK_SK": served.sim.sk,
    }
    lines = []
    for line in (SYSTEMD / "rds-backup.env.example").read_text().splitlines():
        key = line.partition("=")[0]
        lines.append(f"{key}={values.pop(key)}" if key in values else line)
    assert not values, f"the env example lacks {sorted(values)}"
    lines.append(f"RDS_BACKUP_ENDPOINT={served.env['RDS_BACKUP_ENDPOINT']}")
    path.write_text("\n".join(lines) + "\n")


def test_nightly_reads_credentials_from_a_0600_env_file(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    env_file = tmp_path / "rds-backup.env"
    env_file_from_example(served, env_file)
    env = {
        k: v
        for k, v in served.env.items()
        if not k.startswith(("HUAWEICLOUD_", "RDS_BACKUP_ENDPOINT"))
    }
    env.update(NIGHTLY_ENV_FILE=str(env_file), NIGHTLY_BACKUP_ROOT=str(root))

    env_file.chmod(0o644)
    done = run_nightly(env)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr
    assert not root.exists() or backup_folders(root) == []

    env_file.chmod(0o600)
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert complete_folders(root) == [folder_name(served.sim.backups[MYSQL_FULL])]
    assert_no_secrets((root / "nightly-backup.log").read_text(), served.sim.sk)

    done = run_nightly({**env, "NIGHTLY_ENV_FILE": str(tmp_path / "missing.env")})
    assert done.returncode == 2
    assert "does not exist" in done.stderr


# --------------------------------------------------------------------------- systemd units


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as {section: {key: [values, in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_service_runs_the_example_script_hardened() -> None:
    unit = parse_unit(SYSTEMD / "rds-backup.service")
    svc = unit["Service"]
    assert svc["Type"] == ["oneshot"]
    exec_start = shlex.split(svc["ExecStart"][0])
    script = EXAMPLES / Path(exec_start[0]).name
    assert script == SCRIPT and os.access(script, os.X_OK)
    assert svc["NoNewPrivileges"] == ["yes"]
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["PrivateTmp"] == ["yes"]
    assert "User" in svc
    env = dict(v.partition("=")[::2] for v in svc["Environment"])
    assert env["NIGHTLY_ENV_FILE"] == ""  # systemd loaded the env file already
    root = env["NIGHTLY_BACKUP_ROOT"]
    assert root in " ".join(svc["ReadWritePaths"]).split()
    assert svc["EnvironmentFile"] == ["/etc/rds-backup/rds-backup.env"]
    # Everything the unit sets is something the script or rds-backup reads.
    script_text = SCRIPT.read_text()
    for key in env:
        assert key == "PATH" or key in script_text, key
    example = (SYSTEMD / "rds-backup.env.example").read_text()
    assert "0600" in example
    for line in example.splitlines():
        if line and not line.startswith("#"):
            key = line.partition("=")[0]
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), line
            assert key.startswith(("HUAWEICLOUD_SDK_", "RDS_BACKUP_")) or key in script_text


def test_systemd_timer_is_daily_persistent_and_randomized() -> None:
    timer = parse_unit(SYSTEMD / "rds-backup.timer")
    t = timer["Timer"]
    assert t["OnCalendar"]
    assert t["Persistent"] == ["true"]
    assert t["RandomizedDelaySec"]
    assert t.get("Unit", ["rds-backup.service"]) == ["rds-backup.service"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]
    analyze = shutil.which("systemd-analyze")
    if analyze:
        done = subprocess.run(
            [analyze, "calendar", t["OnCalendar"][0]], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # ExecStart= must exist for verify; point it at the script in this checkout.
    service = (SYSTEMD / "rds-backup.service").read_text()
    service = re.sub(r"^ExecStart=\S+", f"ExecStart={SCRIPT}", service, flags=re.M)
    (tmp_path / "rds-backup.service").write_text(service)
    shutil.copy(SYSTEMD / "rds-backup.timer", tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "rds-backup.service", "rds-backup.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert not re.search(r"Unknown (key|section|lvalue)|Invalid|Failed to parse", out), out


# --------------------------------------------------------------------------- walkthrough


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block, in order."""
    return [
        (m[1], m[2])
        for m in re.finditer(r"^```(\S*)\n(.*?)^```\s*$", path.read_text(), re.M | re.S)
    ]


def test_walkthrough_runs_against_the_simulator(served: Served, tmp_path: Path) -> None:
    blocks = code_blocks(WALKTHROUGH)
    tested = [body for lang, body in blocks if lang == "sh"]
    script = "set -euo pipefail\n" + "\n".join(tested)
    for step in (
        "rds-backup backups --instance-id",
        "rds-backup files",
        "--database",
        "rds-backup verify",
    ):
        assert step in script
    # Step 5 is shown but not run here: it needs a SQL Server.
    shown = "\n".join(body for lang, body in blocks if lang != "sh")
    assert "RESTORE DATABASE" in shown and "WITH MOVE" in shown and "RECOVERY" in shown
    assert "sqlcmd" in shown and "sqlcmd" not in script

    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "walkthrough.sh").write_text(script)
    done = subprocess.run(
        ["bash", str(tmp_path / "walkthrough.sh")],
        cwd=work,
        env=served.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout

    backup = served.sim.backups[SQLSERVER_DB]
    assert backup.instance_id == SQLSERVER_INSTANCE
    assert f"backup: {SQLSERVER_DB}" in out  # the newest COMPLETED full backup
    for f in backup.files:  # `files` shows every database of the backup
        assert f.name in out and f.database_name
    sales = backup.file(f"{SQLSERVER_DB}_sales.bak")
    dest = work / "restore-sales"
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(
        [sales.name, MANIFEST]
    )
    assert (dest / sales.name).stat().st_size == sales.size
    assert sha256(dest / sales.name) == served.sim.expected_sha256(SQLSERVER_DB, sales.name)
    manifest = json.loads((dest / MANIFEST).read_text())
    assert [f["database_name"] for f in manifest["files"]] == ["sales"]
    assert "1 of 1 files verified" in out
    assert f"restore from: ./restore-sales/{sales.name}" in out


# `rds-backup [--global-opt [text]]... command rest-of-line` (literal, or the script's variable)
COMMAND_RE = re.compile(
    r'(?:rds-backup|"\$rds_backup")'
    r"((?:[ \t]+--?[a-z-]+(?:[ \t]+text)?)*)"
    r"[ \t]+([a-z]+)\b([^|;#`\n]*)"
)


def test_examples_only_use_real_commands_and_options() -> None:
    """Every ``rds-backup <command> --option`` shown in the examples exists in the CLI."""
    import click

    from downloader.cli import cli

    group_opts = {o for p in cli.params for o in getattr(p, "opts", [])}
    texts = [
        SCRIPT.read_text(),
        (SYSTEMD / "rds-backup.service").read_text(),
        (EXAMPLES / "README.md").read_text(),
        STREAMED.read_text(),
    ]
    texts += [body for lang, body in code_blocks(WALKTHROUGH) if lang != "text"]
    seen = set()
    for text in texts:
        text = text.replace("\\\n", " ")  # join continued lines
        for m in COMMAND_RE.finditer(text):
            name = m[2]
            if name not in cli.commands:
                continue  # prose ("rds-backup user", "rds-backup download links"...)
            command = cli.commands[name]
            assert isinstance(command, click.Command)
            known = group_opts | {o for p in command.params for o in getattr(p, "opts", [])}
            for opt in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", m[1] + m[3]):
                if opt in ("-", "--"):
                    continue
                assert opt in known | {"-h", "--help"}, f"rds-backup {name} has no {opt}: {m[0]}"
            seen.add(name)
    assert {"download", "backups", "files", "verify", "simulate", "cat"} <= seen


# --------------------------------------------------------------------------- streamed restore

STREAMED = EXAMPLES / "restore-mysql-streamed.sh"
# Stands in for `xbstream -x -C DIR`: keeps each stream it is given as DIR/stream-N.
STAND_IN = """import os, sys
target = sys.argv[sys.argv.index("-C") + 1]
n = len([p for p in os.listdir(target) if p.startswith("stream-")])
with open(os.path.join(target, f"stream-{n}"), "wb") as fh:
    fh.write(sys.stdin.buffer.read())
"""


def streamed_env(served: Served, tmp_path: Path) -> dict[str, str]:
    stand_in = tmp_path / "xbstream-stand-in.py"
    stand_in.write_text(STAND_IN)
    return {**served.env, "XBSTREAM": f"{sys.executable} {stand_in}"}


def test_streamed_restore_feeds_each_file_in_order(served: Served, tmp_path: Path) -> None:
    target = tmp_path / "restore"
    done = subprocess.run(
        ["bash", str(STREAMED), MYSQL_FULL, str(target)],
        env=streamed_env(served, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    qp = [f for f in served.sim.backups[MYSQL_FULL].files if f.name.endswith(".qp")]
    streams = sorted(target.iterdir(), key=lambda p: int(p.name.split("-")[1]))
    assert len(streams) == len(qp)
    for f, stream in zip(qp, streams, strict=True):
        assert stream.read_bytes() == served.sim.expected_bytes(MYSQL_FULL, f.name), f.name
    assert "xtrabackup --prepare" in done.stderr
    assert not list(tmp_path.glob("**/*.qp"))  # no second copy anywhere


def test_streamed_restore_stops_on_a_corrupt_stream(served: Served, tmp_path: Path) -> None:
    served.thread.call(lambda: setattr(served.sim.faults, "corrupt_at", 100))
    done = subprocess.run(
        ["bash", str(STREAMED), MYSQL_FULL, str(tmp_path / "restore")],
        env=streamed_env(served, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 4
    assert "discard" in done.stderr
