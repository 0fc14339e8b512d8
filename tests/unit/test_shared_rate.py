"""--limit-rate is the whole run's: one bucket in the object-store session, whatever runs
share it (a fleet's instances at once, a chain's backups), never a share of it per run."""

from __future__ import annotations

from pathlib import Path

from downloader.download import TransportConfig, make_session
from downloader.engine.context import EngineConfig
from downloader.sync.report import SyncReport
from downloader.sync.run import SyncConfig, _Syncer


def test_the_session_holds_the_runs_one_bucket() -> None:
    loop = make_session(TransportConfig(), 8, limit_rate=1024 * 1024)
    assert loop.limiter is not None and loop.limiter.rate == 1024 * 1024
    assert make_session(TransportConfig(), 8).limiter is None


def test_sync_does_not_divide_the_rate_by_the_instances_at_once(tmp_path: Path) -> None:
    engine = EngineConfig(out_dir=tmp_path, backup_id="", connections=8, limit_rate=1 << 20)
    config = SyncConfig(root=tmp_path, engine=engine, transport=TransportConfig(), parallel=4)
    report = SyncReport(root=str(tmp_path), shard=None, dry_run=False)
    syncer = _Syncer(config, client=None, report=report, session=None)  # type: ignore[arg-type]
    # Each instance's download asks for the whole rate; the bucket it draws on is the
    # session's, shared by the instances running at a moment.
    assert syncer.engine.limit_rate == 1 << 20
    assert syncer.engine.connections == 2  # the connections are still shared out
