"""Messages a newcomer meets (issue 17, items 4 and 5): regions by case or by city, a backup
that is not COMPLETED, a database named in the wrong case, an endpoint that cannot be
reached, a global option after the command. The real command in subprocesses, against the
simulator."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import cli

from downloader.sim import Simulator, SimulatorThread
from downloader.sim.catalog import (
    MYSQL_BINLOG,
    MYSQL_BUILDING,
    MYSQL_FAILED,
    MYSQL_FULL,
    MYSQL_INSTANCE,
    MYSQL_MULTIPART,
    SQLSERVER_DB,
)


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# ------------------------------------------------------------------ regions


@pytest.fixture
def singapore_sim() -> Iterator[Simulator]:
    """A simulator posing as region ap-southeast-1 (its IAM refuses other project names)."""
    sim = Simulator(region="ap-southeast-1")
    with SimulatorThread(sim):
        yield sim


def test_region_in_upper_case_is_the_region(singapore_sim: Simulator) -> None:
    sim = singapore_sim
    # IAM password login scoped by region name, no project id: the region reaches IAM too.
    env = {
        "RDS_BACKUP_ENDPOINT": "",
        "HUAWEICLOUD_SDK_AK": "",
        "HUAWEICLOUD_SDK_SK": "",
        "HUAWEICLOUD_SDK_PROJECT_ID": "",
        "HUAWEICLOUD_SDK_REGION_RDS_AP_SOUTHEAST_1": sim.endpoint,
        "HUAWEICLOUD_SDK_IAM_ENDPOINT": sim.endpoint,
        "RDS_BACKUP_IAM_USER": sim.iam_user,
        "RDS_BACKUP_IAM_PASSWORD": sim.iam_password,
        "RDS_BACKUP_IAM_DOMAIN": sim.iam_domain,
    }
    result = cli(["files", MYSQL_FULL, "--region", "AP-SOUTHEAST-1"], sim, **env)
    assert result.returncode == 0, result.stderr
    assert sim.backups[MYSQL_FULL].files[0].name in result.stdout


def test_region_by_city_name_suggests_the_id(server_default: Simulator) -> None:
    result = cli(
        ["files", MYSQL_FULL, "--region", "singapore"], server_default, RDS_BACKUP_ENDPOINT=""
    )
    err = one_line_error(result, 2)
    assert "did you mean ap-southeast-3 (Singapore)?" in err
    assert "known regions: " in err and "ap-southeast-1" in err
    assert "HUAWEICLOUD_SDK_REGION_RDS_SINGAPORE" not in err
    assert server_default.stats.api_calls == 0


@pytest.fixture
def server_default() -> Iterator[Simulator]:
    sim = Simulator()
    with SimulatorThread(sim):
        yield sim


# ------------------------------------------------------------------ a backup without files


def _newest_full(sim: Simulator) -> str:
    full = [
        b
        for b in sim.backups.values()
        if b.instance_id == MYSQL_INSTANCE and b.status == "COMPLETED" and b.type != "incremental"
    ]
    return max(full, key=lambda b: b.end_time).id


@pytest.mark.parametrize(
    ("backup_id", "status"), [(MYSQL_FAILED, "FAILED"), (MYSQL_BUILDING, "BUILDING")]
)
def test_a_backup_that_is_not_completed_says_its_status_and_what_to_take(
    server_default: Simulator, tmp_path: Path, backup_id: str, status: str
) -> None:
    args = ["download", backup_id, "-o", str(tmp_path), "--instance-id", MYSQL_INSTANCE]
    err = one_line_error(cli(args, server_default), 3)
    assert f"backup {backup_id} is {status}" in err
    assert "unknown backup" not in err
    newest = _newest_full(server_default)
    assert newest in (MYSQL_FULL, MYSQL_MULTIPART)
    assert f"the newest COMPLETED backup of instance {MYSQL_INSTANCE} is {newest}" in err
    assert "request id" in err  # the API's own words stay traceable
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


def test_without_the_instance_the_error_code_still_tells(
    server_default: Simulator, tmp_path: Path
) -> None:
    err = one_line_error(cli(["download", MYSQL_BUILDING, "-o", str(tmp_path)], server_default), 3)
    assert f"backup {MYSQL_BUILDING} is BUILDING" in err
    err = one_line_error(cli(["download", MYSQL_FAILED, "-o", str(tmp_path)], server_default), 3)
    assert "unknown backup" not in err
    assert "FAILED or unfinished" in err and "--instance-id" in err


# ------------------------------------------------------------------ --database in the wrong case


def test_a_database_in_the_wrong_case_lists_the_databases(
    server_default: Simulator, tmp_path: Path
) -> None:
    args = ["download", SQLSERVER_DB, "-o", str(tmp_path), "--database", "Sales"]
    err = one_line_error(cli(args, server_default), 2)
    assert "no file matches --database Sales" in err
    assert "the backup's databases are hr, inventory, sales" in err
    assert "did you mean --database sales?" in err
    assert server_default.stats.object_requests == 0
    # Names stay case-sensitive: the suggestion is not taken silently.
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


# ------------------------------------------------------------------ an endpoint not there


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("endpoint", "shown", "why"),
    [
        ("http://127.0.0.1:{port}", "127.0.0.1:{port}", "connection refused"),
        ("https://rds.nonexistent.invalid", "rds.nonexistent.invalid", "DNS name not found"),
    ],
    ids=["refused", "no-such-name"],
)
def test_an_endpoint_not_there_says_where_and_why_at_once(
    server_default: Simulator, tmp_path: Path, endpoint: str, shown: str, why: str
) -> None:
    port = str(_closed_port())
    endpoint, shown = endpoint.replace("{port}", port), shown.replace("{port}", port)
    started = time.monotonic()
    result = cli(["files", MYSQL_FULL], server_default, RDS_BACKUP_ENDPOINT=endpoint)
    err = one_line_error(result, 3)
    assert f"cannot reach the RDS API at {shown}: {why}" in err
    assert "Client" not in err and "Error" not in err  # no Python class names
    assert time.monotonic() - started < 20
    # Nobody there before any answer: a wrong endpoint, not worth seconds of backoff.
    debug = cli(["--debug", "files", MYSQL_FULL], server_default, RDS_BACKUP_ENDPOINT=endpoint)
    assert debug.returncode == 3
    assert "retrying in" not in debug.stderr


# ------------------------------------------------------------ a global option after the command


@pytest.mark.parametrize(
    ("argv", "hoisted"),
    [
        (["download", "X", "-q"], ["-q", "download", "X"]),
        (["sync", "--keep", "3", "--log-format", "json"],
         ["--log-format", "json", "sync", "--keep", "3"]),
        (["verify", "--log-format=json", "."], ["--log-format=json", "verify", "."]),
        (["--debug", "files", "X", "--quiet"], ["--debug", "--quiet", "files", "X"]),
        (["--log-format", "json", "backups"], ["--log-format", "json", "backups"]),
        (["cat", "X", "--", "-q"], ["cat", "X", "--", "-q"]),  # after --: an argument
        (["-q"], ["-q"]),
    ],
)  # fmt: skip
def test_global_options_after_the_command_move_before_it(
    argv: list[str], hoisted: list[str]
) -> None:
    from downloader.cli import cli as group
    from downloader.cli.runner import hoist_globals

    assert hoist_globals(group, argv) == hoisted


def test_quiet_after_the_command_prints_nothing_on_success(
    sim_thread: Simulator, tmp_path: Path
) -> None:
    """``-q`` anywhere, and ``--progress quiet``: errors only, nothing at all on success."""
    for i, extra in enumerate((["-q"], ["--progress", "quiet"])):
        out = tmp_path / str(i)
        result = cli(["download", MYSQL_BINLOG, "-o", str(out), *extra], sim_thread)
        assert result.returncode == 0, result.stderr
        assert (result.stdout, result.stderr) == ("", "")
        assert (out / "rds-backup-manifest.json").exists()
    failed = cli(["files", "nosuchbackup", "-q"], sim_thread)
    assert failed.returncode != 0 and failed.stderr.strip()  # errors still say why


def test_other_unknown_options_keep_clicks_message() -> None:
    result = cli(["files", "--no-such-thing", MYSQL_FULL], None)
    assert result.returncode == 2
    assert "No such option '--no-such-thing'" in result.stderr


def test_a_failed_run_with_json_prints_one_json_error(sim_thread: Simulator) -> None:
    """A script reading --json gets an object even when the run fails before any work."""
    result = cli(["download", "nosuchbackup", "-o", "/nonexistent/x", "--json"], sim_thread)
    assert result.returncode == 3
    answer = json.loads(result.stdout)
    assert answer["ok"] is False and answer["exit_code"] == 3
    assert answer["error"]["exit_code"] == 3 and answer["error"]["kind"].endswith("Error")
    assert "nosuchbackup" in answer["error"]["message"] or answer["error"]["message"]
    assert result.stderr.strip()  # and the person at the terminal is still told
    usage = cli(["files", "--json"], sim_thread)
    assert usage.returncode == 2 and json.loads(usage.stdout)["error"]["kind"] == "UsageError"


def test_the_fatal_line_is_a_json_record_with_json_logs(sim_thread: Simulator) -> None:
    result = cli(["files", "nosuchbackup", "--log-format", "json"], sim_thread)
    assert result.returncode == 3
    record = json.loads(result.stderr.strip().splitlines()[-1])
    assert record["level"] == "error" and record["exit_code"] == 3 and record["msg"]


def test_instances_lists_the_ids_the_other_commands_take(sim_thread: Simulator) -> None:
    shown = cli(["instances", "--json"], sim_thread)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)["instances"]
    assert MYSQL_INSTANCE in {r["id"] for r in rows}
    mysql = next(r for r in rows if r["id"] == MYSQL_INSTANCE)
    assert {"name", "engine", "engine_version", "status", "type"} <= mysql.keys()
    table = cli(["instances"], sim_thread)
    assert table.returncode == 0 and MYSQL_INSTANCE in table.stdout and "ENGINE" in table.stdout


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["files", MYSQL_INSTANCE], {},
         "the argument BACKUP_ID is an instance id, not a backup id"),
        (["download", "--instance-id", MYSQL_FULL, "--latest", "-o", "x"], {},
         "the option --instance-id is a backup id, not an instance id"),
        (["backups"], {"RDS_BACKUP_INSTANCE_ID": f"{MYSQL_INSTANCE},{MYSQL_INSTANCE}"},
         "the variable RDS_BACKUP_INSTANCE_ID holds more than one id"),
    ],
    ids=["instance-as-backup", "backup-as-instance", "two-in-a-variable"],
)  # fmt: skip
def test_an_id_slip_is_named_with_where_it_came_from(
    sim_thread: Simulator, args: list[str], env: dict[str, str], says: str
) -> None:
    result = cli(args, sim_thread, **env)
    assert result.returncode == 2
    assert says in result.stderr
    assert sim_thread.stats.api_calls == 0  # refused before any call


def test_simulate_on_a_busy_port_suggests_any_free_one() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli(["simulate", "--port", str(port)], None)
    assert result.returncode == 2
    assert "--port 0" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_id_is_named_in_the_apis_answer(sim_thread: Simulator) -> None:
    unknown = "f275a18b123fea3474caa1d0cf2903ddin01"
    result = cli(["backups", "--instance-id", unknown], sim_thread)
    assert result.returncode == 3
    assert f"instance {unknown} (project {sim_thread.project_id})" in result.stderr
