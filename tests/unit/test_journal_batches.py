"""How many journal writes a run of many small files costs: each file's record is written
before its move into place (with every byte and the checksums) and once more, in a batch
with other files', as complete; no flush in between for a file that finishes in a second.
Real files in a temporary folder, the engine driven by a scripted object store."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from test_engine_states import KIB, FakeClock, LinkResolver, ScriptedStore, listing, payload

from downloader.disk.journal import FileRecord, Journal
from downloader.disk.storage import Layout
from downloader.engine.core import Engine, EngineConfig
from downloader.progress import QuietReporter


class CountingJournal(Journal):
    """The real journal, counting its writes (each ``save_many`` call is one batch)."""

    def __init__(self, layout: Layout) -> None:
        super().__init__(layout)
        self.batches: list[list[tuple[str, bool]]] = []

    def save_many(self, recs: Sequence[FileRecord]) -> None:
        self.batches.append([(r.name, r.complete) for r in recs])
        super().save_many(recs)


async def test_many_small_files_cost_two_record_writes_each(tmp_path: Path) -> None:
    n = 40
    store = ScriptedStore({f"f{i:02d}.bin": payload(96 * KIB, i) for i in range(n)})
    layout = Layout(tmp_path)
    layout.prepare()
    journal = CountingJournal(layout)
    clock = FakeClock()
    engine = Engine(
        EngineConfig(out_dir=tmp_path, backup_id="b1", chunk_size=256 * KIB, adaptive=False),
        listing(store).files,
        resolver=LinkResolver(listing(store), None, margin=60.0),
        session=None,  # type: ignore[arg-type]  # the scripted store needs no session
        reporter=QuietReporter(),
        journal=journal,
        clock=clock,
        sleep=clock.sleep,
        transfer=store,
    )
    outcomes = await asyncio.wait_for(engine.run(), 30)
    assert all(o.ok for o in outcomes) and len(outcomes) == n
    for name, data in store.objects.items():
        assert (tmp_path / name).read_bytes() == data
    writes = [w for batch in journal.batches for w in batch]
    # Per file: once before the move (not complete), once after (complete); nothing else.
    assert sorted(writes) == sorted(
        [(name, False) for name in store.objects] + [(name, True) for name in store.objects]
    )
    completes = [b for b in journal.batches if any(done for _, done in b)]
    assert all(all(done for _, done in b) for b in completes)
    assert len(completes) < n  # batched: files that finish together share a write
    # Every record on disk says complete: the last batch was written at the end of the run.
    assert {r.name for r in journal.completed()} == set(store.objects)
