"""``sync``, the nightly mirror of a fleet, against the simulator: a fleet of instances (one
with more backups than a page holds, one whose object store fails), the layout, a rerun that
fetches nothing, retention beside decoys, shards, the metrics file and the exit codes.

The run itself is driven in-process (:func:`run_sync`, real loopback HTTP, real files);
the command line, its exit codes and its metrics file in real subprocesses.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from downloader.api.auth import AkSkAuth
from downloader.api.client import RdsClient, RetryPolicy
from downloader.disk import tree
from downloader.disk.storage import MANIFEST_NAME, STATE_DIR
from downloader.download import TransportConfig
from downloader.engine.core import EngineConfig
from downloader.errors import LockHeldError, RdsBackupError
from downloader.sim import SimBackup, SimFile, Simulator, SimulatorThread
from downloader.sync.plan import Shard, shard_of
from downloader.sync.run import SyncConfig, run_sync

T0 = datetime(2024, 6, 1, 16, 0, tzinfo=UTC)
MANY = f"{0xA:030x}in01"  # 130 backups: two pages of the backups list
PLAIN = f"{0xB:030x}in01"  # three auto backups and a binlog
BROKEN = f"{0xC:030x}in01"  # its object store refuses every file (when told to)
SMALL = f"{0xD:030x}in01"  # one COMPLETED backup, a newer one still BUILDING
EXTRA = [f"{n:030x}in03" for n in range(0x10, 0x14)]  # one backup each
FLEET = [MANY, PLAIN, BROKEN, SMALL, *EXTRA]


def bid(instance: str, n: int) -> str:
    return f"{instance[24:30]}{n:026x}br01"  # the instance's last hex digits, then n


def backup(
    instance: str, n: int, days_ago: float, kind: str = "auto", size: int = 300
) -> SimBackup:
    begin = T0 - timedelta(days=days_ago)
    b = bid(instance, n)
    return SimBackup(
        b,
        instance,
        f"fleet-{n}",
        kind,
        "COMPLETED",
        "MySQL",
        "8.0",
        begin,
        begin + timedelta(minutes=5),
        [SimFile(f"{b}_1.qp", size + n), SimFile(f"{b}_meta.qp", 17)],
    )


def fleet() -> list[SimBackup]:
    out = [backup(MANY, n, days_ago=130 - n, size=100) for n in range(130)]
    out += [backup(PLAIN, n, days_ago=3 - n) for n in range(3)]
    out.append(backup(PLAIN, 9, days_ago=0.5, kind="incremental"))
    out += [backup(BROKEN, n, days_ago=2 - n) for n in range(2)]
    out += [backup(SMALL, 0, days_ago=1), backup(SMALL, 1, days_ago=0)]
    out[-1].status = "BUILDING"
    out += [backup(i, 0, days_ago=1) for i in EXTRA]
    return out


def break_store(sim: Simulator, instance: str = BROKEN) -> None:
    """Every object GET of ``instance``'s files answers 403 (even after new links)."""
    sim.faults.fault_files = {
        f.name for b in sim.backups.values() if b.instance_id == instance for f in b.files
    }
    sim.faults.error_status, sim.faults.error_count = 403, -1


def mend_store(sim: Simulator) -> None:
    sim.faults.fault_files, sim.faults.error_status, sim.faults.error_count = None, None, 1


def newest(sim: Simulator, instance: str, kind: str = "auto") -> SimBackup:
    done = [
        b
        for b in sim.backups.values()
        if b.instance_id == instance and b.type == kind and b.status == "COMPLETED"
    ]
    return max(done, key=lambda b: b.end_time)


def assert_mirrored(sim: Simulator, root: Path, b: SimBackup) -> None:
    folder = root / b.instance_id / b.id
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["backup_id"] == b.id
    assert sorted(e["name"] for e in manifest["files"]) == sorted(f.name for f in b.files)
    for f in b.files:
        assert (folder / f.name).read_bytes() == sim.expected_bytes(b.id, f.name), f.name


def backup_dirs(root: Path, instance: str) -> list[str]:
    where = root / instance
    return sorted(p.name for p in where.iterdir() if p.is_dir() and not p.is_symlink())


# ------------------------------------------------------------------ in-process runs


@pytest.fixture
async def fleet_sim() -> AsyncIterator[Simulator]:
    sim = Simulator(catalog=fleet())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def client(fleet_sim: Simulator) -> AsyncIterator[RdsClient]:
    async with aiohttp.ClientSession() as session:
        yield RdsClient(
            endpoint=fleet_sim.endpoint,
            project_id=fleet_sim.project_id,
            auth=AkSkAuth(fleet_sim.ak, fleet_sim.sk, project_id=fleet_sim.project_id),
            session=session,
            retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01),
        )


def config(root: Path, **kw: object) -> SyncConfig:
    engine = EngineConfig(out_dir=root, backup_id="", retries=1, backoff_base=0.001)
    settings: dict[str, object] = {
        "root": root,
        "engine": engine,
        "transport": TransportConfig(expiry_margin=0),
        "progress": "quiet",
    }
    settings.update(kw)
    return SyncConfig(**settings)  # type: ignore[arg-type]


async def test_instances_are_listed_page_by_page(fleet_sim: Simulator, client: RdsClient) -> None:
    one_page = await client.list_instances()
    assert sorted(i.id for i in one_page) == sorted(FLEET)
    assert fleet_sim.stats.instances_list_calls == 1
    paged = await client.list_instances(page_size=3)
    assert [i.id for i in paged] == [i.id for i in one_page]
    assert fleet_sim.stats.instances_list_calls == 1 + 3  # 8 instances, 3 a page
    assert {i.engine for i in paged} == {"MySQL"}


async def test_retention_spares_decoys_failed_backups_and_failed_instances(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    root = tmp_path / "mirror"
    plain = [fleet_sim.backups[bid(PLAIN, n)] for n in range(3)]
    broken = [fleet_sim.backups[bid(BROKEN, n)] for n in range(2)]
    for b in (plain[1], plain[2], broken[1]):
        b.status = "BUILDING"
    ids = (PLAIN, BROKEN)

    first = await run_sync(config(root, instance_ids=ids, keep=1), client)
    assert first.exit_code == 0, first.to_json()
    plain[1].status = "COMPLETED"
    second = await run_sync(config(root, instance_ids=ids, keep=2), client)
    assert second.exit_code == 0, second.to_json()
    assert backup_dirs(root, PLAIN) == sorted(b.id for b in plain[:2])

    # Decoys under ROOT/<instance>/ that retention must never touch.
    decoys = root / PLAIN
    unfinished = decoys / bid(PLAIN, 7)  # named like a backup, no manifest
    (unfinished / STATE_DIR).mkdir(parents=True)
    (unfinished / "part.qp").write_bytes(b"x")
    foreign = decoys / bid(PLAIN, 8)  # a manifest, but of another backup
    shutil.copytree(decoys / plain[0].id, foreign)
    (decoys / "notes.txt").write_text("hand-written\n")
    outside = tmp_path / "elsewhere"
    shutil.copytree(decoys / plain[0].id, outside / plain[0].id)
    (decoys / bid(PLAIN, 6)).symlink_to(outside / plain[0].id)  # a link to a complete copy
    (root / "stray").mkdir()

    plain[2].status = broken[1].status = "COMPLETED"
    break_store(fleet_sim)
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    dry = await run_sync(config(root, instance_ids=ids, keep=1, dry_run=True), client)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    plan = dry.plan_lines()
    assert f"would fetch {PLAIN}/{plain[2].id}" in "\n".join(plan)
    assert f"would remove {PLAIN}/{plain[0].id}" in plan
    assert f"would remove {PLAIN}/{plain[1].id}" in plan

    third = await run_sync(config(root, instance_ids=ids, keep=1), client)
    assert third.exit_code == 1
    by_id = {i.instance_id: i for i in third.instances}
    assert by_id[PLAIN].ok and by_id[PLAIN].removed == [plain[0].id, plain[1].id]
    assert [b.backup_id for b in by_id[PLAIN].of("fetched")] == [plain[2].id]
    assert_mirrored(fleet_sim, root, plain[2])
    assert not (decoys / plain[0].id).exists() and not (decoys / plain[1].id).exists()
    for kept in (unfinished / "part.qp", foreign / MANIFEST_NAME, decoys / "notes.txt"):
        assert kept.is_file(), kept
    assert (decoys / bid(PLAIN, 6)).is_symlink()
    assert (outside / plain[0].id / MANIFEST_NAME).is_file()
    assert (root / "stray").is_dir()

    # The failed instance: no retention at all (keep=1 would otherwise remove its older
    # backup), and the failed backup's folder stays for the next run to resume.
    assert not by_id[BROKEN].ok and by_id[BROKEN].removed == []
    assert [b.backup_id for b in by_id[BROKEN].of("failed")] == [broken[1].id]
    assert_mirrored(fleet_sim, root, broken[0])
    assert (root / BROKEN / broken[1].id).is_dir()
    assert not (root / BROKEN / broken[1].id / MANIFEST_NAME).exists()

    mend_store(fleet_sim)
    fourth = await run_sync(config(root, instance_ids=ids, keep=1), client)
    assert fourth.exit_code == 0, fourth.to_json()
    assert backup_dirs(root, BROKEN) == [broken[1].id]
    assert_mirrored(fleet_sim, root, broken[1])


async def test_shards_cover_the_fleet_exactly_once(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    for count in range(1, 6):
        seen: list[str] = []
        for index in range(1, count + 1):
            shard = Shard(index, count)
            report = await run_sync(config(tmp_path, shard=shard, dry_run=True), client)
            mine = [i.instance_id for i in report.instances]
            assert all(shard_of(i, count) == index for i in mine)
            seen += mine
        assert sorted(seen) == sorted(FLEET), count
    assert not list(tmp_path.iterdir())  # dry runs write nothing


async def test_the_newest_of_more_than_a_page_of_backups(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    report = await run_sync(config(tmp_path, instance_ids=(MANY, SMALL)), client)
    assert report.exit_code == 0, report.to_json()
    assert fleet_sim.stats.backups_list_calls == 2 + 1  # MANY's 130 take two pages
    for instance in (MANY, SMALL):
        b = newest(fleet_sim, instance)
        assert backup_dirs(tmp_path, instance) == [b.id]
        assert_mirrored(fleet_sim, tmp_path, b)


# ------------------------------------------------------------------ the command line


@pytest.fixture
def threaded() -> Iterator[tuple[Simulator, SimulatorThread]]:
    sim = Simulator(catalog=fleet())
    thread = SimulatorThread(sim)
    with thread:
        yield sim, thread


@pytest.fixture
def served(threaded: tuple[Simulator, SimulatorThread]) -> Simulator:
    return threaded[0]


def sync_cli(
    sim: Simulator, root: Path, *args: str, **env_extra: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(sim.env())
    env.update(RDS_BACKUP_ENDPOINT=sim.endpoint, RDS_BACKUP_API_RATE="6000", HOME=str(root.parent))
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "downloader", "sync", "-o", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def metrics(path: Path) -> dict[str, dict[str, float]]:
    """{metric: {instance id or "": value}}, read with Prometheus' own parser."""
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels.get("instance_id", "")] = sample.value
    return out


def test_cli_mirrors_a_fleet_skips_on_rerun_and_keeps_metrics(
    threaded: tuple[Simulator, SimulatorThread], tmp_path: Path
) -> None:
    served, thread = threaded
    root, prom = tmp_path / "mirror", tmp_path / "rds.prom"
    args = ["--all-instances", "--keep", "3", "--metrics-file", str(prom)]
    break_store(served)
    first = sync_cli(served, root, *args, "--json")
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    assert report["failed_instances"] == [BROKEN]
    by_id = {i["instance_id"]: i for i in report["instances"]}
    assert sorted(by_id) == sorted(FLEET)
    assert by_id[BROKEN]["failed"][0]["backup_id"] == newest(served, BROKEN).id
    for instance in FLEET:
        if instance != BROKEN:
            assert_mirrored(served, root, newest(served, instance))
            assert by_id[instance]["fetched"][0]["backup_id"] == newest(served, instance).id
    m = metrics(prom)
    assert m["rds_backup_last_run_success"] == {"": 0.0}
    assert m["rds_backup_instance_last_run_success"][BROKEN] == 0.0
    assert m["rds_backup_instance_last_run_success"][PLAIN] == 1.0
    assert BROKEN not in m["rds_backup_instance_last_success_timestamp_seconds"]
    assert m["rds_backup_instance_bytes_downloaded"][SMALL] == sum(
        f.size for f in newest(served, SMALL).files
    )
    assert m["rds_backup_instance_files_failed"][BROKEN] == 2
    assert oct(prom.stat().st_mode & 0o777) == "0o644"

    mend_store(served)
    served.stats.reset()
    second = sync_cli(served, root, *args)
    assert second.returncode == 0, second.stderr
    assert served.stats.backup_files_calls == 1  # only the broken instance's links
    broken_bytes = sum(f.size for f in newest(served, BROKEN).files)
    assert served.stats.object_bytes_sent == broken_bytes  # the others: not a byte
    assert f"{PLAIN}  ok  fetched 0 (0 B), skipped 1" in second.stderr
    m = metrics(prom)
    assert m["rds_backup_last_run_success"] == {"": 1.0}
    last_success = m["rds_backup_instance_last_success_timestamp_seconds"]
    assert set(last_success) == set(FLEET)
    newest_end = newest(served, BROKEN).end_time.timestamp()
    assert m["rds_backup_instance_latest_backup_timestamp_seconds"][BROKEN] == newest_end

    # A newer backup of SMALL, whose store now fails: its last success and its newest
    # mirrored backup are carried over from the previous file; the others move on.
    small_before = newest(served, SMALL)
    thread.call(lambda: setattr(served.backups[bid(SMALL, 1)], "status", "COMPLETED"))
    break_store(served, SMALL)
    third = sync_cli(served, root, *args)
    assert third.returncode == 1
    assert f"failed: {SMALL}" in third.stderr
    m = metrics(prom)
    after = m["rds_backup_instance_last_success_timestamp_seconds"]
    assert after[SMALL] == last_success[SMALL]
    assert after[PLAIN] > last_success[PLAIN]
    latest = m["rds_backup_instance_latest_backup_timestamp_seconds"]
    assert latest[SMALL] == small_before.end_time.timestamp()
    assert m["rds_backup_instance_last_run_success"][SMALL] == 0.0
    assert m["rds_backup_last_run_success"] == {"": 0.0}


def test_cli_exit_codes(served: Simulator, tmp_path: Path) -> None:
    root = tmp_path / "mirror"
    (root / STATE_DIR).mkdir(parents=True, mode=0o700)
    with open(root / STATE_DIR / "lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = sync_cli(served, root, "--instance-id", PLAIN)
    assert locked.returncode == 5, locked.stderr
    assert "locked" in locked.stderr and served.stats.api_calls == 0

    refused = sync_cli(
        served, root, "--instance-id", PLAIN, "--instance-id", SMALL, HUAWEICLOUD_SDK_SK="x" * 40
    )
    assert refused.returncode == 3, refused.stderr
    assert "credentials refused" in refused.stderr

    for bad in (
        [],
        ["--all-instances", "--instance-id", PLAIN],
        ["--all-instances", "--shard", "4/3"],
        ["--all-instances", "--shard", "two"],
        ["--instance-id", "../etc"],
        ["--all-instances", "--keep", "0"],
    ):
        done = sync_cli(served, root, *bad)
        assert done.returncode == 2, (bad, done.stderr)
        assert "Traceback" not in done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(("Error: ", "rds-backup: error: ")), done.stderr

    sharded = sync_cli(served, root, "--all-instances", "--shard", "2/3", "--dry-run", "--json")
    assert sharded.returncode == 0, sharded.stderr
    listed = [i["instance_id"] for i in json.loads(sharded.stdout)["instances"]]
    assert listed == sorted(i for i in FLEET if shard_of(i, 3) == 2)
    assert not [p for p in root.iterdir() if p.name != STATE_DIR]


def test_instances_being_built_or_without_backups_are_skipped_not_failed(
    tmp_path: Path,
) -> None:
    """A new instance in BUILD with no backup yet failed the run (exit 1): an instance that
    has nothing to mirror because it has no backup yet, or is not ACTIVE, is skipped with
    its status, in the summary, --json and the metrics. One not ACTIVE that has backups is
    still mirrored; an ACTIVE one whose only backup FAILED still fails."""
    new, idle, first, frozen, broken = (f"{n:030x}in01" for n in (0x21, 0x22, 0x23, 0x24, 0x25))
    catalog = [backup(PLAIN, 0, 1), backup(first, 0, 0), backup(frozen, 0, 1)]
    catalog += [backup(broken, 0, 1)]
    catalog[1].status = "BUILDING"
    catalog[3].status = "FAILED"
    sim = Simulator(catalog=catalog)
    sim.instance_status.update({new: "BUILD", idle: "ACTIVE", frozen: "FROZEN"})
    root, prom = tmp_path / "mirror", tmp_path / "rds.prom"
    with SimulatorThread(sim):
        result = sync_cli(sim, root, "--all-instances", "--metrics-file", str(prom), "--json")
        text = sync_cli(sim, root, "--all-instances")
    assert result.returncode == 1, result.stderr  # broken's only backup FAILED
    report = json.loads(result.stdout)
    assert report["failed_instances"] == [broken]
    assert sorted(report["skipped_instances"]) == sorted([new, idle, first])
    by_id = {i["instance_id"]: i for i in report["instances"]}
    assert by_id[new]["skipped_because"] == "no backup yet (status BUILD)"
    assert by_id[new]["status"] == "BUILD" and by_id[new]["ok"] is True
    assert by_id[idle]["skipped_because"] == "no backup yet"
    assert by_id[first]["skipped_because"] == "no backup yet"
    assert by_id[frozen]["skipped_because"] is None and by_id[frozen]["ok"] is True
    assert_mirrored(sim, root, sim.backups[bid(frozen, 0)])
    assert f"{new}  skipped  no backup yet (status BUILD)" in text.stderr
    assert "sync: 6 instance(s), 1 failed, 3 skipped," in text.stderr
    skipped: dict[str, tuple[str, float]] = {}
    for family in text_string_to_metric_families(prom.read_text()):
        for sample in family.samples:
            if sample.name == "rds_backup_instance_skipped":
                skipped[sample.labels["instance_id"]] = (sample.labels["status"], sample.value)
    assert skipped[new] == ("BUILD", 1.0) and skipped[idle] == ("ACTIVE", 1.0)
    assert skipped[frozen] == ("FROZEN", 0.0) and skipped[PLAIN] == ("ACTIVE", 0.0)
    m = metrics(prom)
    assert m["rds_backup_instance_last_run_success"][new] == 1.0  # not a failure
    assert new not in m["rds_backup_instance_last_success_timestamp_seconds"]  # nor a success


def test_cli_interrupted_run_still_writes_its_metrics(served: Simulator, tmp_path: Path) -> None:
    root, prom = tmp_path / "mirror", tmp_path / "rds.prom"
    # The backup's data file stalls after 100 bytes: the stop always lands mid-fetch.
    served.faults.stall_after_bytes = 100
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
    env.update(served.env(), RDS_BACKUP_ENDPOINT=served.endpoint, RDS_BACKUP_API_RATE="6000")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "downloader",
            "sync",
            "-o",
            str(root),
            "--instance-id",
            MANY,
            "--metrics-file",
            str(prom),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while served.stats.object_bytes_sent == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    m = metrics(prom)
    assert m["rds_backup_last_run_success"] == {"": 0.0}
    assert m["rds_backup_instance_last_run_success"] == {MANY: 0.0}


async def test_a_run_that_cannot_list_its_instances_keeps_their_last_success(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    root, prom = tmp_path / "mirror", tmp_path / "rds.prom"
    first = await run_sync(config(root, metrics_file=prom), client)
    assert first.exit_code == 0, first.to_json()
    before = metrics(prom)["rds_backup_instance_last_success_timestamp_seconds"]
    assert set(before) == set(FLEET)

    # The API is down: the run knows no instance, and every one of them failed with it.
    fleet_sim.faults.api_error_status, fleet_sim.faults.api_error_count = 500, -1
    with pytest.raises(RdsBackupError):
        await run_sync(config(root, metrics_file=prom), client)
    m = metrics(prom)
    assert m["rds_backup_last_run_success"] == {"": 0.0}
    assert m["rds_backup_instance_last_success_timestamp_seconds"] == before
    assert m["rds_backup_instance_last_run_success"] == dict.fromkeys(FLEET, 0.0)
    assert set(m["rds_backup_instance_latest_backup_timestamp_seconds"]) == set(FLEET)


def snapshot(top: Path) -> dict[str, tuple[int, int]]:
    """Every path below ``top`` with its size and mtime: what "nothing changed" compares."""
    return {
        str(p.relative_to(top)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(top.rglob("*"))
    }


async def test_a_linked_instance_folder_is_refused_and_never_entered(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    root = tmp_path / "mirror"
    plain = [fleet_sim.backups[bid(PLAIN, n)] for n in range(3)]
    plain[2].status = "BUILDING"
    plain[1].status = "BUILDING"
    assert (await run_sync(config(root, instance_ids=(PLAIN,)), client)).exit_code == 0
    plain[1].status = "COMPLETED"
    assert (await run_sync(config(root, instance_ids=(PLAIN,)), client)).exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / PLAIN).rename(elsewhere / PLAIN)
    (root / PLAIN).symlink_to(elsewhere / PLAIN)
    plain[2].status = "COMPLETED"  # a new backup: a run through the link would write it there
    before = snapshot(elsewhere)

    for dry_run in (True, False):
        report = await run_sync(
            config(root, instance_ids=(PLAIN, SMALL), keep=1, dry_run=dry_run), client
        )
        assert report.exit_code == 2, (dry_run, report.to_json())
        by_id = {i.instance_id: i for i in report.instances}
        result = by_id[PLAIN]
        assert not result.ok and result.removed == [], dry_run
        assert [b.error for b in result.of("failed")] == [
            f"refusing the output folder: {root / PLAIN} is a symbolic link; "
            "remove it and run again"
        ]
        (line, *_) = report.summary()  # the one-line summary names it, not only the log
        assert "FAILED" in line and f"{root / PLAIN} is a symbolic link" in line, line
        assert by_id[SMALL].ok  # the rest of the fleet goes on
    assert snapshot(elsewhere) == before
    assert backup_dirs(elsewhere, PLAIN) == [plain[0].id, plain[1].id]


def test_cli_refuses_a_linked_backup_folder_and_writes_nothing_outside_root(
    served: Simulator, tmp_path: Path
) -> None:
    """``ROOT/<instance>/<backup id>`` planted as a link to a folder outside ROOT holding a
    file of the backup's name: sync exits 2 naming the link; that file keeps its bytes."""
    root, outside = tmp_path / "mirror", tmp_path / "outside"
    target = newest(served, SMALL)
    outside.mkdir()
    victim = outside / target.files[0].name
    victim.write_bytes(b"precious, not a backup\n")
    (root / SMALL).mkdir(parents=True)
    (root / SMALL / target.id).symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)

    done = sync_cli(served, root, "--instance-id", SMALL, "--instance-id", PLAIN, "--json")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{root / SMALL / target.id} is a symbolic link" in done.stderr
    report = json.loads(done.stdout)
    assert report["failed_instances"] == [SMALL]
    assert snapshot(outside) == before
    assert victim.read_bytes() == b"precious, not a backup\n"
    assert_mirrored(served, root, newest(served, PLAIN))  # the other instance is mirrored


async def test_an_unsharded_run_and_a_shard_of_the_same_root_never_overlap(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    root = tmp_path / "mirror"
    state = root / STATE_DIR
    state.mkdir(parents=True, mode=0o700)
    ids = (PLAIN,)
    with open(state / "lock", "a") as held:  # an unsharded sync (or download -o ROOT)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LockHeldError):
            await run_sync(config(root, instance_ids=ids, shard=Shard(1, 1)), client)
    with open(state / "lock", "a") as held:  # a shard's run, as it holds the root's lock
        fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with pytest.raises(LockHeldError):
            await run_sync(config(root, instance_ids=ids), client)
        # Other shards of the same root still run side by side.
        with open(state / "shard-2-of-3.lock", "a") as shard_two:
            fcntl.flock(shard_two, fcntl.LOCK_EX | fcntl.LOCK_NB)
            done = await run_sync(config(root, shard=Shard(1, 3)), client)
    assert done.exit_code == 0, done.to_json()
    assert done.instances and fleet_sim.stats.backups_list_calls == len(done.instances)


# ------------------------------------------------------------------ retention's proof


def forge(folder: Path, backup_id: str, files: dict[str, bytes], created: str) -> None:
    """A hand-made folder with a manifest naming ``backup_id``, dated ``created``."""
    folder.mkdir(parents=True)
    entries = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        entries.append({"name": name, "size": len(data), "size_kb": 1, "crc64": "0" * 16})
    manifest = {
        "manifest_version": 2,
        "backup_id": backup_id,
        "created": created,
        "files": entries,
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


async def mirror_three(sim: Simulator, client: RdsClient, root: Path) -> list[SimBackup]:
    """PLAIN's three backups, each mirrored by a run of its own (as nights pass)."""
    plain = [sim.backups[bid(PLAIN, n)] for n in range(3)]
    for b in plain:
        b.status = "BUILDING"
    for b in plain:
        b.status = "COMPLETED"
        done = await run_sync(config(root, instance_ids=(PLAIN,)), client)
        assert done.exit_code == 0, done.to_json()
    assert backup_dirs(root, PLAIN) == sorted(b.id for b in plain)
    return plain


async def test_retention_removes_only_what_the_sync_finished_by_the_apis_time(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    root = tmp_path / "mirror"
    plain = await mirror_three(fleet_sim, client, root)
    here = root / PLAIN
    # Decoys dated 2099: two copies of a real backup, each manifest renamed to its folder,
    # and a folder of notes with a manifest listing them.
    for n in (7, 8):
        shutil.copytree(here / plain[0].id, here / bid(PLAIN, n))
        manifest = json.loads((here / bid(PLAIN, n) / MANIFEST_NAME).read_text())
        manifest.update(backup_id=bid(PLAIN, n), created="2099-01-01T00:00:00Z")
        (here / bid(PLAIN, n) / MANIFEST_NAME).write_text(json.dumps(manifest))
    notes = here / bid(PLAIN, 5)
    forge(notes, notes.name, {"notes.txt": b"mine\n"}, "2099-06-01T00:00:00Z")
    decoys = [bid(PLAIN, 5), bid(PLAIN, 7), bid(PLAIN, 8)]

    kept = await run_sync(config(root, instance_ids=(PLAIN,), keep=3), client)
    assert kept.exit_code == 0, kept.to_json()
    assert kept.instances[0].removed == []  # three real backups: all kept
    assert backup_dirs(root, PLAIN) == sorted([b.id for b in plain] + decoys)

    # A note left in a real backup's folder: that folder is never removed (and says why).
    (here / plain[0].id / "README.txt").write_text("restore with care\n")
    one = await run_sync(config(root, instance_ids=(PLAIN,), keep=1), client)
    assert one.exit_code == 0, one.to_json()
    (result,) = one.instances
    assert result.removed == [plain[1].id]
    assert any(
        f"{here / plain[0].id / 'README.txt'} is not a file of the backup" in w
        for w in result.warnings
    ), result.warnings
    assert backup_dirs(root, PLAIN) == sorted([plain[0].id, plain[2].id, *decoys])
    assert (notes / "notes.txt").read_bytes() == b"mine\n"
    assert_mirrored(fleet_sim, root, plain[2])


async def test_retention_adopts_a_complete_folder_of_an_older_mirror(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path
) -> None:
    """A mirror made before the ledger (its record held end times only): a folder whose
    manifest, files and journal agree, of a backup the API lists, is the sync's own."""
    root = tmp_path / "mirror"
    plain = await mirror_three(fleet_sim, client, root)
    record = root / STATE_DIR / "times" / f"{PLAIN}.json"
    old = {"version": 1, "backups": json.loads(record.read_text())["backups"]}
    record.write_text(json.dumps(old))
    one = await run_sync(config(root, instance_ids=(PLAIN,), keep=1), client)
    assert one.exit_code == 0, one.to_json()
    assert one.instances[0].removed == [plain[0].id, plain[1].id]
    assert backup_dirs(root, PLAIN) == [plain[2].id]
    assert set(json.loads(record.read_text())["finished"]) == {plain[2].id}


async def test_retention_removes_through_descriptors_when_the_instance_folder_is_swapped(
    fleet_sim: Simulator, client: RdsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ROOT/<instance> swapped for a link to a copy outside ROOT between retention's check
    and the removal: the copy outside stays whole."""
    root = tmp_path / "mirror"
    plain = await mirror_three(fleet_sim, client, root)
    outside = tmp_path / "outside"
    shutil.copytree(root / PLAIN, outside / PLAIN, symlinks=True)
    before = snapshot(outside)
    checked = tree.inventory
    swaps = []

    def swap_after_the_check(fd: int) -> dict[str, tree.Entry]:
        listed = checked(fd)
        (root / PLAIN).rename(root / f"{PLAIN}.real")
        (root / PLAIN).symlink_to(outside / PLAIN, target_is_directory=True)
        swaps.append(fd)
        return listed

    monkeypatch.setattr(tree, "inventory", swap_after_the_check)
    report = await run_sync(config(root, instance_ids=(PLAIN,), keep=2), client)
    assert swaps, "the removal never reached its check"
    assert report.instances[0].removed == [plain[0].id]
    assert snapshot(outside) == before
    assert not (root / f"{PLAIN}.real" / plain[0].id).exists()  # the one it checked is gone


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_cli_refuses_a_metrics_file_that_is_no_regular_file(
    served: Simulator, tmp_path: Path, kind: str
) -> None:
    """A FIFO would block the run forever, holding ROOT's lock and deaf to SIGTERM."""
    root, prom = tmp_path / "mirror", tmp_path / "rds.prom"
    if kind == "fifo":
        os.mkfifo(prom)
    elif kind == "folder":
        prom.mkdir()
    else:
        prom.symlink_to(tmp_path / "elsewhere.prom")
    for command in (["sync", "--instance-id", SMALL], ["download", newest(served, SMALL).id]):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RDS_BACKUP", "HUAWEI"))}
        env.update(served.env(), RDS_BACKUP_ENDPOINT=served.endpoint)
        args = [*command, "-o", str(root), "--metrics-file", str(prom)]
        done = subprocess.run(
            [sys.executable, "-m", "downloader", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()[-1:]
        assert str(prom) in line and "--metrics-file" in line, done.stderr
    assert served.stats.api_calls == 0
    assert not root.exists()
    assert prom.is_symlink() if kind == "link" else not prom.is_file()
