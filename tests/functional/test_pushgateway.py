"""``sync --metrics-push``: the run's metrics land in a real Prometheus Pushgateway (Debian's
``prometheus-pushgateway``, started here on loopback), grouped by job and shard, and read
back from its /metrics; a gateway that is not there is a warning, never the run's failure."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_sync import FLEET, PLAIN, fleet, sync_cli

from downloader.sim import Simulator, SimulatorThread
from downloader.sync.push import push_target

BINARY = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    if BINARY is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus-pushgateway is not installed: .ci/run installs it")
        pytest.skip("prometheus-pushgateway is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [BINARY, f"--web.listen-address=127.0.0.1:{port}",
         f"--persistence.file={tmp_path / 'pushgateway.db'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the Pushgateway did not start")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pushed(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def test_push_target_groups_by_job_and_shard() -> None:
    assert push_target("http://gw:9091/") == "http://gw:9091/metrics/job/rds-backup"
    assert push_target("http://gw:9091", shard=2) == "http://gw:9091/metrics/job/rds-backup/shard/2"


def test_sync_pushes_its_metrics_grouped_by_shard(gateway: str, tmp_path: Path) -> None:
    sim = Simulator(catalog=fleet())
    root = tmp_path / "mirror"
    with SimulatorThread(sim):
        result = sync_cli(sim, root, "--instance-id", PLAIN, "--metrics-push", gateway)
        sharded = sync_cli(
            sim, root, "--all-instances", "--shard", "1/2", "--metrics-push", gateway
        )
    assert result.returncode == 0, result.stderr
    assert sharded.returncode in (0, 1), sharded.stderr
    pushed = _pushed(gateway)
    runs = pushed["rds_backup_last_run_success"]
    groups = {(labels["job"], labels.get("shard", "")) for labels, _ in runs}
    assert groups == {("rds-backup", ""), ("rds-backup", "1")}  # one never replaced the other
    unsharded = [v for labels, v in runs if labels.get("shard", "") == ""]
    assert unsharded == [1.0]
    instances = {
        labels.get("instance_id") for labels, _ in pushed["rds_backup_instance_last_run_success"]
    }
    assert PLAIN in instances
    assert instances <= set(FLEET)


def test_an_unreachable_gateway_is_a_warning(tmp_path: Path) -> None:
    sim = Simulator(catalog=fleet())
    url = f"http://127.0.0.1:{_free_port()}"  # nobody listens there
    with SimulatorThread(sim):
        result = sync_cli(sim, tmp_path / "mirror", "--instance-id", PLAIN, "--metrics-push", url)
    assert result.returncode == 0, result.stderr
    assert "cannot push the metrics to the Pushgateway" in result.stderr
    bad = sync_cli(sim, tmp_path / "m2", "--instance-id", PLAIN, "--metrics-push", "ftp://x")
    assert bad.returncode == 2 and "http(s)://HOST:PORT" in bad.stderr
