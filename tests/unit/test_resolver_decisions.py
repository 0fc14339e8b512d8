"""downloader.engine.resolver's pure decision: when a link must be refreshed."""

from __future__ import annotations

from downloader.engine.resolver import Link, decide_refresh


def test_refresh_decision_uses_margin_capped_by_lifetime() -> None:
    long_link = Link("u", expires=1000.0, generation=1, issued=400.0)
    assert not decide_refresh(long_link, 900.0, margin=60)
    assert decide_refresh(long_link, 941.0, margin=60)
    short = Link("u", expires=1004.0, generation=1, issued=1000.0)  # lives 4 s
    assert not decide_refresh(short, 1001.0, margin=60)  # a quarter of 4 s, not 60 s
    assert decide_refresh(short, 1003.1, margin=60)
    unknown = Link("u", expires=None, generation=1, issued=0.0)
    assert not decide_refresh(unknown, 10**10, margin=60)
