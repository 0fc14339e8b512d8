"""The metrics file: Prometheus text format (read back with prometheus_client's own parser),
written atomically, a failed instance's last success carried over from the previous file."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from downloader.sync.metrics import (
    InstanceMetrics,
    RunMetrics,
    carry_over,
    parse_previous,
    read_previous,
    render,
    write_run_metrics,
    write_sync_metrics,
)

RUN = RunMetrics(finished_at=1_717_000_000.5, success=True, duration=12.25, bytes_downloaded=42)


def parsed(text: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge"
        assert family.documentation
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels.get("instance_id", "")] = sample.value
    return out


def test_run_level_lines_parse() -> None:
    m = parsed(render(RUN))
    assert m == {
        "rds_backup_last_run_timestamp_seconds": {"": 1_717_000_000.5},
        "rds_backup_last_run_success": {"": 1.0},
        "rds_backup_last_run_duration_seconds": {"": 12.25},
        "rds_backup_last_run_bytes_downloaded": {"": 42.0},
    }


def test_instance_lines_parse() -> None:
    instances = [
        InstanceMetrics("b-inst", True, 1_717_000_000.0, 1_716_990_000.0, 1000, 0),
        InstanceMetrics("a-inst", False, None, None, 10, 3),
    ]
    m = parsed(render(RunMetrics(1.0, False, 2.0), instances))
    assert m["rds_backup_last_run_success"] == {"": 0.0}
    assert m["rds_backup_instance_last_run_success"] == {"a-inst": 0.0, "b-inst": 1.0}
    # Unknown (a first failure) is absent, never 0, which would read as "1970".
    assert m["rds_backup_instance_last_success_timestamp_seconds"] == {"b-inst": 1_717_000_000.0}
    assert m["rds_backup_instance_bytes_downloaded"] == {"a-inst": 10.0, "b-inst": 1000.0}
    assert m["rds_backup_instance_files_failed"] == {"a-inst": 3.0, "b-inst": 0.0}
    assert "rds_backup_last_run_bytes_downloaded" not in m


UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@given(st.text(min_size=1), st.floats(0, 4e9, allow_nan=False))
def test_any_instance_id_survives_the_format(instance_id: str, when: float) -> None:
    # Any id an API answer may carry: a carriage return, a lone surrogate (JSON's "\ud800")
    # and other controls included. The file is UTF-8 that Prometheus' own parser reads, and
    # the next run reads every id back exactly.
    text = render(RUN, [InstanceMetrics(instance_id, True, when, when, 0, 0)])
    text.encode("utf-8")
    shown = UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", instance_id)
    assert parsed(text)["rds_backup_instance_last_success_timestamp_seconds"] == {shown: when}
    assert parse_previous(text)["instance_last_success_timestamp_seconds"] == {instance_id: when}


def test_an_id_with_a_carriage_return_or_a_surrogate_is_one_parseable_line() -> None:
    ids = ["ab\rcd", "ab\ud800cd", "tab\there", "back\\u0041slash"]
    text = render(RUN, [InstanceMetrics(i, True, 1.0, 1.0, 0, 0) for i in ids])
    m = parsed(text)["rds_backup_instance_last_run_success"]
    assert set(m) == {"ab\\u000dcd", "ab\\ud800cd", "tab\\u0009here", "back\\u0041slash"}
    assert set(parse_previous(text)["instance_last_success_timestamp_seconds"]) == set(ids)


def test_carry_over_keeps_a_failed_instances_last_success_only() -> None:
    previous = {
        "instance_last_success_timestamp_seconds": {"bad": 100.0, "good": 50.0},
        "instance_latest_backup_timestamp_seconds": {"bad": 90.0},
    }
    now = [
        InstanceMetrics("good", True, 200.0, 190.0),
        InstanceMetrics("bad", False, None, None),
        InstanceMetrics("new", False, None, None),
    ]
    out = {i.instance_id: i for i in carry_over(now, previous)}
    assert (out["good"].last_success, out["good"].latest_backup) == (200.0, 190.0)
    assert (out["bad"].last_success, out["bad"].latest_backup) == (100.0, 90.0)
    assert (out["new"].last_success, out["new"].latest_backup) == (None, None)


def test_write_sync_metrics_replaces_the_file_and_carries_over(tmp_path: Path) -> None:
    path = tmp_path / "rds_backup.prom"
    old_umask = os.umask(0o077)
    try:
        write_sync_metrics(path, RUN, [InstanceMetrics("x", True, 100.0, 90.0, 5, 0)])
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # the collector runs as another user
    write_sync_metrics(path, RunMetrics(2e9, False, 1.0), [InstanceMetrics("x", False, None, None)])
    m = parsed(path.read_text())
    assert m["rds_backup_instance_last_success_timestamp_seconds"] == {"x": 100.0}
    assert m["rds_backup_instance_latest_backup_timestamp_seconds"] == {"x": 90.0}
    assert m["rds_backup_instance_last_run_success"] == {"x": 0.0}
    assert [p.name for p in tmp_path.iterdir()] == ["rds_backup.prom"]  # no temporary left


def test_write_run_metrics_writes_the_run_level_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "download.prom"
    path.write_text("stale\n")
    write_run_metrics(path, success=False, started_at=1000.0, finished_at=1060.5)
    m = parsed(path.read_text())
    assert m == {
        "rds_backup_last_run_timestamp_seconds": {"": 1060.5},
        "rds_backup_last_run_success": {"": 0.0},
        "rds_backup_last_run_duration_seconds": {"": 60.5},
    }


def test_a_link_at_the_temporary_name_is_never_followed(tmp_path: Path) -> None:
    # The temporary name is random and created exclusively: nothing else is written.
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    path = tmp_path / "m.prom"
    path.symlink_to(target)  # the final name itself is replaced, not written through
    write_run_metrics(path, success=True, started_at=0.0, finished_at=1.0)
    assert target.read_text() == "keep\n"
    assert not path.is_symlink() and "rds_backup_last_run_success 1" in path.read_text()


def test_read_previous_of_nothing_or_garbage(tmp_path: Path) -> None:
    assert read_previous(tmp_path / "missing.prom") == {}
    junk = tmp_path / "junk.prom"
    junk.write_bytes(b"\xff\xfe garbage {{{\nrds_backup_instance_files_failed 3\n")
    assert read_previous(junk) == {}


def test_a_fifo_in_place_of_the_previous_file_is_not_waited_on(tmp_path: Path) -> None:
    """Put there after the command line's check: reading it must not wait for a writer
    (the run holds ROOT's lock meanwhile); the write then replaces it."""
    fifo = tmp_path / "rds.prom"
    os.mkfifo(fifo)
    got: list[dict[str, dict[str, float]]] = []
    reader = threading.Thread(target=lambda: got.append(read_previous(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): let it go, and fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert got == [{}]
    write_sync_metrics(fifo, RUN, [])
    assert stat.S_ISREG(fifo.lstat().st_mode)
