"""The examples/ folder, tried for real against the simulator.

* ``nightly-backup.sh``: end to end in a subprocess (``sync``, its log, retention, the lock,
  a failing run deletes nothing, the 0600 env file);
* ``systemd/``: the units parse, the service's ``rds-backup sync`` command line (with the
  env example filled in) mirrors against the simulator, and they pass
  ``systemd-analyze verify`` when it is installed;
* ``k8s/cronjob.yaml``, ``Dockerfile``: an Indexed Job whose pods' shards are 1..N exactly,
  run through ``sh`` as the pod would, with flags the CLI parses; non-root, read-only root;
* ``prometheus/``: alert rules on metrics the metrics file really holds;
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
from typing import Any

import click
import pytest
import yaml

from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread, default_catalog
from downloader.sim.catalog import (
    MYSQL_FULL,
    MYSQL_INSTANCE,
    PG_FULL,
    PG_INSTANCE,
    SQLSERVER_DB,
    SQLSERVER_INSTANCE,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SCRIPT = EXAMPLES / "nightly-backup.sh"
SYSTEMD = EXAMPLES / "systemd"
WALKTHROUGH = EXAMPLES / "restore-sqlserver-database.md"
CRONJOB = EXAMPLES / "k8s" / "cronjob.yaml"
DOCKERFILE = EXAMPLES / "Dockerfile"
ALERTS = EXAMPLES / "prometheus" / "rds-backup-alerts.yml"
MANIFEST = "rds-backup-manifest.json"

pytestmark = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


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
        "RDS_BACKUP_API_RATE": "6000",
        **sim.env(),
    }
    try:
        yield Served(sim, thread, env, binary)
    finally:
        thread.stop()


def nightly_env(served: Served, root: Path, **extra: str) -> dict[str, str]:
    env = dict(served.env)
    env.update(
        NIGHTLY_ENV_FILE="", RDS_BACKUP_INSTANCE_ID=MYSQL_INSTANCE, RDS_BACKUP_OUTPUT=str(root)
    )
    env.update(extra)
    return env


def run_nightly(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def backup_folders(folder: Path) -> list[str]:
    """The backup folders of one instance's folder (real folders; not hidden ones)."""
    if not folder.is_dir():
        return []
    return sorted(
        p.name for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and p.name[0] != "."
    )


def complete_folders(folder: Path) -> list[str]:
    """Those whose manifest names their own backup: what the mirror holds complete."""
    out = []
    for name in backup_folders(folder):
        manifest = folder / name / MANIFEST
        if manifest.is_file() and json.loads(manifest.read_text()).get("backup_id") == name:
            out.append(name)
    return out


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


def sync_command() -> click.Command:
    from downloader.cli import cli

    assert isinstance(cli, click.Group)
    command = cli.commands["sync"]
    assert isinstance(command, click.Command)
    return command


def parse_sync_args(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``[global options...] sync [options...]`` parsed by the real CLI's click objects, as
    the command would receive them with ``env`` set: a flag the CLI lacks, or a bad value,
    raises."""
    from downloader.cli import cli

    assert isinstance(cli, click.Group)
    at = argv.index("sync")
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with cli.make_context("rds-backup", [*argv[:at], "sync"], resilient_parsing=True) as top:
            with sync_command().make_context("sync", argv[at + 1 :], parent=top) as ctx:
                return dict(ctx.params)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sync_variables() -> dict[str, click.Option]:
    """Every RDS_BACKUP_* variable ``rds-backup sync`` (and the group) reads -> its option."""
    from downloader.cli import cli

    out: dict[str, click.Option] = {}
    for param in [*cli.params, *sync_command().params]:
        if isinstance(param, click.Option):
            names = param.envvar if isinstance(param.envvar, list) else [param.envvar]
            out.update({n: param for n in names if n})
    return out


# --------------------------------------------------------------------------- nightly script


def test_script_is_valid_bash_and_documents_cron() -> None:
    assert os.access(SCRIPT, os.X_OK), "examples/nightly-backup.sh should be executable"
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert re.search(r'"\$rds_backup" --log-format text sync ', text)
    assert "rm -rf" not in text  # retention is sync's, not the script's
    assert re.search(r"^#\s+MAILTO=\S+@\S+", text, re.M)
    # a crontab entry: five time fields, then the script
    assert re.search(r"^#\s+(\S+\s+){5}/\S*/nightly-backup\.sh\s*$", text, re.M)
    if shutil.which("shellcheck"):
        done = subprocess.run(
            ["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout


def test_nightly_mirrors_the_newest_backup(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    env = nightly_env(served, root, NIGHTLY_VERIFY="1")
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""  # a good night mails nothing

    backup = served.sim.backups[MYSQL_FULL]  # the newest COMPLETED auto backup
    mine = root / MYSQL_INSTANCE
    assert backup_folders(mine) == complete_folders(mine) == [MYSQL_FULL]
    manifest = json.loads((mine / MYSQL_FULL / MANIFEST).read_text())
    assert sorted(f["name"] for f in manifest["files"]) == sorted(f.name for f in backup.files)
    for f in backup.files:
        assert sha256(mine / MYSQL_FULL / f.name) == served.sim.expected_sha256(MYSQL_FULL, f.name)
    assert stat.S_IMODE((mine / MYSQL_FULL).stat().st_mode) & 0o077 == 0  # umask 077

    log = (root / "nightly-backup.log").read_text()
    assert f"instance {MYSQL_INSTANCE}: ok; fetched {MYSQL_FULL}; skipped -" in log
    assert "files verified" in log
    assert "done (exit 0)" in log
    assert_no_secrets(log, served.sim.sk, served.sim.obs_sk)

    # Same backup the next night: found complete, not a byte fetched, nothing duplicated.
    served.sim.stats.reset()
    again = run_nightly(env)
    assert again.returncode == 0, again.stderr
    assert served.sim.stats.object_requests == 0
    assert backup_folders(mine) == [MYSQL_FULL]
    assert (
        f"instance {MYSQL_INSTANCE}: ok; fetched -; skipped {MYSQL_FULL}"
        in (root / "nightly-backup.log").read_text()
    )


def test_nightly_retention_keeps_the_newest_complete_backups(
    served: Served, tmp_path: Path
) -> None:
    root = tmp_path / "backups"
    mine = root / MYSQL_INSTANCE
    # What retention must leave alone: an unfinished download (no manifest), a copy whose
    # manifest names another backup, a file.
    unfinished = mine / f"{'a' * 32}br01"
    copy = mine / "hand-made-copy"
    for d in (unfinished, copy):
        (d / ".rds-backup").mkdir(parents=True)
    (copy / MANIFEST).write_text(json.dumps({"manifest_version": 2, "backup_id": "x", "files": []}))
    (mine / "notes.txt").write_text("keep me\n")
    env = nightly_env(served, root, RDS_BACKUP_KEEP="2")

    written = []
    for n in NIGHTS:
        backup = served.complete(n)
        done = run_nightly(env)
        assert done.returncode == 0, done.stderr
        written.append(backup.id)
        assert complete_folders(mine) == sorted(written[-2:])
        assert unfinished.is_dir() and (copy / MANIFEST).is_file()
        assert (mine / "notes.txt").is_file()

    log = (root / "nightly-backup.log").read_text()
    assert log.count(f"; removed {night_id(1)}") == log.count(f"; removed {night_id(2)}") == 1
    assert_no_secrets(log, served.sim.sk)


def test_nightly_second_run_exits_while_the_lock_is_held(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    (root / ".rds-backup").mkdir(parents=True, mode=0o700)
    env = nightly_env(served, root)
    with open(root / ".rds-backup" / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        started = time.monotonic()
        done = run_nightly(env, timeout=20)
        assert time.monotonic() - started < 10
        assert done.returncode == 5
        assert "FAILED with exit code 5" in done.stderr and "locked by" in done.stderr
        assert backup_folders(root / MYSQL_INSTANCE) == []
        assert served.sim.stats.api_calls == 0
    # released: the next run goes ahead
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert complete_folders(root / MYSQL_INSTANCE) == [MYSQL_FULL]


def test_nightly_failure_exits_non_zero_and_deletes_nothing(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    mine = root / MYSQL_INSTANCE
    env = nightly_env(served, root, RDS_BACKUP_KEEP="1")
    assert run_nightly(env).returncode == 0
    first = complete_folders(mine)
    assert first == [MYSQL_FULL]

    # Wrong secret key: the API refuses (exit 3); the output goes to stderr for cron's mail.
    wrong = "WrongSecretKey0000000000000000000000000000"
    done = run_nightly({**env, "HUAWEICLOUD_SDK_SK": wrong})
    assert done.returncode == 3
    assert "FAILED with exit code 3" in done.stderr
    assert "credentials refused" in done.stderr
    assert complete_folders(mine) == first
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
    assert f"instance {MYSQL_INSTANCE}: FAILED: {newer.id}" in done.stderr
    assert complete_folders(mine) == first
    assert backup_folders(mine) == sorted([*first, newer.id])

    # Fixed: the next run completes it, and only now the older one goes.
    served.sim.faults.deny_objects = False
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert backup_folders(mine) == complete_folders(mine) == [newer.id]


def env_file_from_example(served: Served, path: Path, **extra: str) -> None:
    """The shipped env example with the simulator's values filled in."""
    values = {
        "RDS_BACKUP_INSTANCE_ID": f'"{MYSQL_INSTANCE} {PG_INSTANCE}"',
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
    lines += [f"{k}={v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")


def test_nightly_reads_credentials_from_a_0600_env_file(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    env_file = tmp_path / "rds-backup.env"
    env_file_from_example(served, env_file, RDS_BACKUP_OUTPUT=str(root))
    env = {
        k: v
        for k, v in served.env.items()
        if not k.startswith(("HUAWEICLOUD_", "RDS_BACKUP_ENDPOINT"))
    }
    env.update(NIGHTLY_ENV_FILE=str(env_file))

    env_file.chmod(0o644)
    done = run_nightly(env)
    assert done.returncode == 2
    assert "chmod 600" in done.stderr
    assert not root.exists()

    env_file.chmod(0o600)
    done = run_nightly(env)
    assert done.returncode == 0, done.stderr
    assert complete_folders(root / MYSQL_INSTANCE) == [MYSQL_FULL]
    assert complete_folders(root / PG_INSTANCE) == [PG_FULL]
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


def test_systemd_service_runs_sync_hardened() -> None:
    unit = parse_unit(SYSTEMD / "rds-backup.service")
    svc = unit["Service"]
    assert svc["Type"] == ["oneshot"]
    exec_start = shlex.split(svc["ExecStart"][0])
    assert Path(exec_start[0]).name == "rds-backup" and "sync" in exec_start
    assert svc["NoNewPrivileges"] == ["yes"]
    assert svc["ProtectSystem"] == ["strict"]
    assert svc["PrivateTmp"] == ["yes"]
    assert "User" in svc
    assert svc["EnvironmentFile"] == ["/etc/rds-backup/rds-backup.env"]
    env = dict(v.partition("=")[::2] for v in svc["Environment"])
    params = parse_sync_args(exec_start[1:], {**env, "RDS_BACKUP_ALL_INSTANCES": "1"})
    assert params["output"] == Path(env["RDS_BACKUP_OUTPUT"])  # from the unit's Environment=
    writable = " ".join(svc["ReadWritePaths"]).split()
    assert env["RDS_BACKUP_OUTPUT"] in writable
    assert str(Path(env["RDS_BACKUP_METRICS_FILE"]).parent) in writable
    # Everything the unit and the env example set is read by rds-backup sync or the script.
    variables = sync_variables()
    for key in env:
        assert key in variables, key
    script_text = SCRIPT.read_text()
    example = (SYSTEMD / "rds-backup.env.example").read_text()
    assert "0600" in example
    for line in example.splitlines():
        line = line.lstrip("# ")
        if re.match(r"[A-Z][A-Z0-9_]*=", line):
            key = line.partition("=")[0]
            if key.startswith("RDS_BACKUP_"):
                assert key in variables, key
            else:
                assert key.startswith("HUAWEICLOUD_SDK_") or key in script_text, key


def test_systemd_service_command_mirrors_with_the_env_example(
    served: Served, tmp_path: Path
) -> None:
    """ExecStart= with the unit's Environment= and the env example (simulator's values),
    as systemd would run it: the instances of the example, into the unit's root."""
    svc = parse_unit(SYSTEMD / "rds-backup.service")["Service"]
    root, metrics_dir = tmp_path / "var-backups-rds", tmp_path / "textfile"
    metrics_dir.mkdir()
    env_file = tmp_path / "rds-backup.env"
    env_file_from_example(served, env_file)
    env = {k: v for k, v in served.env.items() if not k.startswith(("HUAWEICLOUD_", "RDS_"))}
    for line in env_file.read_text().splitlines():  # as EnvironmentFile= reads it
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.strip('"')
    for assignment in svc["Environment"]:
        key, _, value = assignment.partition("=")
        env[key] = value
    env["RDS_BACKUP_OUTPUT"] = str(root)
    env["RDS_BACKUP_METRICS_FILE"] = str(metrics_dir / Path(env["RDS_BACKUP_METRICS_FILE"]).name)
    env["RDS_BACKUP_API_RATE"] = "6000"
    argv = shlex.split(svc["ExecStart"][0])
    done = subprocess.run(
        [str(served.bin), *argv[1:]], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert complete_folders(root / MYSQL_INSTANCE) == [MYSQL_FULL]
    assert complete_folders(root / PG_INSTANCE) == [PG_FULL]
    assert "rds_backup_last_run_success 1" in (metrics_dir / "rds_backup.prom").read_text()
    assert_no_secrets(done.stderr, served.sim.sk)


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
    # ExecStart= must exist for verify; point it at the rds-backup of this environment.
    service = (SYSTEMD / "rds-backup.service").read_text()
    service = re.sub(
        r"^ExecStart=\S+", f"ExecStart={rds_backup_bin(tmp_path)}", service, flags=re.M
    )
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


# --------------------------------------------------------------------------- Kubernetes


def cronjob() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]
    (job,) = [d for d in docs if d["kind"] == "CronJob"]
    assert job["apiVersion"] == "batch/v1"
    return job


def test_cronjob_is_an_indexed_job_of_one_shard_per_pod(tmp_path: Path) -> None:
    job = cronjob()
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    spec = job["spec"]["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    shards = int(env["SHARDS"]["value"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == shards > 1
    assert pod["restartPolicy"] == "Never"

    # Run the pod's command through sh, as the container would, with a stand-in for
    # rds-backup that records its arguments, for every index the Job hands out.
    command = [*container["command"], *container["args"]]
    assert command[:2] == ["/bin/sh", "-c"]
    (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "backups"]
    script = command[2].replace(mount, str(tmp_path / "backups"))
    stub = tmp_path / "bin" / "rds-backup"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$OUT"\n')
    stub.chmod(0o755)
    seen = []
    for index in range(spec["completions"]):
        out = tmp_path / f"argv-{index}"
        plain = {k: e["value"] for k, e in env.items() if "value" in e}
        run_env = {
            **plain,
            "PATH": f"{stub.parent}:/usr/bin:/bin",
            "JOB_COMPLETION_INDEX": str(index),
            "OUT": str(out),
        }
        subprocess.run(["/bin/sh", "-c", script], env=run_env, check=True, timeout=30)
        argv = out.read_text().splitlines()
        params = parse_sync_args(argv, plain)  # every flag and variable parses
        shard = params["shard"]
        assert (shard.index, shard.count) == (index + 1, shards)
        assert params["all_instances"] and params["output"] == tmp_path / "backups"
        assert params["metrics_push"] == "http://pushgateway.monitoring.svc:9091"
        assert params["limit_rate"] == 50 * 2**20 and params["api_rate"] == 12
        seen.append(shard.index)
    assert sorted(seen) == list(range(1, shards + 1))

    # The environment names real options; none sets a shard or an output of its own.
    variables = sync_variables()
    for name in env:
        assert (
            name in ("SHARDS", "HOME") or name.startswith("HUAWEICLOUD_SDK_") or (name in variables)
        ), name


def test_cronjob_is_non_root_read_only_with_credentials_from_a_secret() -> None:
    pod = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in container["env"]}
    for secret in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK"):
        assert "value" not in env[secret]
        assert env[secret]["valueFrom"]["secretKeyRef"]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "persistentVolumeClaim" in volumes[mounts["/backups"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]  # the only other writable place

    # The image runs as the same non-root user, with /tmp as HOME and the same volume.
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages[-1] == "python:3.11-slim"
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] == f"{pod['securityContext']['runAsUser']}:10001"
    assert re.search(r"^ENTRYPOINT \[\"rds-backup\"\]", text, re.M)
    assert re.search(r"HOME=/tmp", text)
    assert re.search(r'^VOLUME \["/backups"\]', text, re.M)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (REPO / path).exists(), path


# --------------------------------------------------------------------------- Prometheus


def test_alert_rules_use_the_metrics_the_file_holds() -> None:
    from downloader.sync.metrics import InstanceMetrics, RunMetrics, render

    written = {
        line.split("{")[0].split()[0]
        for line in render(
            RunMetrics(1.0, True, 1.0, 1), [InstanceMetrics("i", True, 1.0, 1.0, 1, 0)]
        ).splitlines()
        if not line.startswith("#")
    }
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"RdsBackupTooOld", "RdsBackupLastRunFailed"} <= set(alerts)
    for rule in alerts.values():
        used = set(re.findall(r"\brds_backup_[a-z_]+", rule["expr"]))
        assert used and used <= written, (rule["alert"], used - written)
        assert rule["annotations"]["summary"]
    assert "26 * 3600" in alerts["RdsBackupTooOld"]["expr"]
    assert (
        "rds_backup_instance_latest_backup_timestamp_seconds" in alerts["RdsBackupTooOld"]["expr"]
    )
    assert alerts["RdsBackupLastRunFailed"]["expr"] == "rds_backup_last_run_success == 0"
    promtool = shutil.which("promtool")
    if promtool:
        done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr


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
    r"((?:[ \t]+--?[a-z-]+(?:[ \t]+(?:text|json))?)*)"
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
        DOCKERFILE.read_text(),
        CRONJOB.read_text(),
        (REPO / "README.md").read_text(),
        *(page.read_text() for page in sorted((REPO / "docs").glob("*.md"))),
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
    assert {"download", "sync", "backups", "files", "verify", "simulate", "cat"} <= seen


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


def test_streamed_restore_of_an_unknown_backup_says_why_and_exits_with_its_code(
    served: Served, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["bash", str(STREAMED), "nosuchbackup", str(tmp_path / "restore")],
        env=streamed_env(served, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot list the files of backup nosuchbackup (exit 3)" in done.stderr
