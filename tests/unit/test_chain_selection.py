"""Point-in-time chain selection and ``--to-time`` parsing, as pure functions: any listing
order, pages that overlap, noise; the chain covers T without a gap, or the error names one."""

from __future__ import annotations

import random
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downloader.chain.select import (
    FULL_TYPES,
    chain_id,
    folder_names,
    parse_point_in_time,
    select_chain,
    utc_text,
)
from downloader.errors import ChainUnreachableError, UsageError
from downloader.models import Backup
from downloader.text.nextsteps import chain_steps

T0 = datetime(2026, 11, 28, 0, 0, tzinfo=timezone(timedelta(hours=8)))
NOISE = ("BUILDING", "FAILED", "DELETING")


def mk(i: int, kind: str, begin: int, length: int, status: str = "COMPLETED") -> Backup:
    """A backup beginning ``begin`` minutes after T0, lasting ``length`` minutes."""
    start = T0 + timedelta(minutes=begin)
    return Backup(
        id=f"{i:032x}br01",
        name=f"b{i}",
        instance_id="inst",
        type=kind,
        size_kb=1,
        status=status,
        begin_time=start,
        end_time=start + timedelta(minutes=length),
        engine="MySQL",
    )


@st.composite
def listings(draw: st.DrawFn) -> tuple[list[Backup], datetime]:
    """A realistic list: fulls, runs of abutting incrementals with gaps between some of
    them, twins, noise of every status, in any order; and a moment T."""
    out: list[Backup] = []
    n = 0
    for _ in range(draw(st.integers(0, 3))):
        out.append(mk(n, draw(st.sampled_from(sorted(FULL_TYPES))), draw(st.integers(0, 240)), 12))
        n += 1
    at = draw(st.integers(-60, 60))
    for _ in range(draw(st.integers(0, 60))):
        length = draw(st.integers(5, 30))
        out.append(mk(n, "incremental", at, length))
        n += 1
        if draw(st.integers(0, 9)) == 0:
            out.append(mk(n, "incremental", at, draw(st.integers(1, length))))  # a twin
            n += 1
        at += length + draw(st.sampled_from([0] * 24 + [1, 15, -2]))  # gaps, overlaps
    for _ in range(draw(st.integers(0, 3))):  # differential fulls, taken after some full
        out.append(mk(n, "fragment", draw(st.integers(0, 300)), draw(st.integers(3, 12))))
        n += 1
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["auto", "manual", "incremental", "fragment"]))
        begin = draw(st.integers(-60, 900))
        out.append(mk(n, kind, begin, draw(st.integers(1, 30)), draw(st.sampled_from(NOISE))))
        n += 1
    order = draw(st.permutations(out))
    moment = T0 + timedelta(minutes=draw(st.integers(-30, 600)), seconds=draw(st.integers(0, 59)))
    if out and draw(st.integers(0, 4)) == 0:  # exactly where a backup ended
        moment = draw(st.sampled_from(out)).end_time  # type: ignore[assignment]
    return list(order), moment


def covered(incs: list[Backup], at: datetime) -> bool:
    """Whether some COMPLETED incremental covers the moment just after ``at``."""
    return any(
        b.status == "COMPLETED" and b.begin_time <= at < b.end_time  # type: ignore[operator]
        for b in incs
        if b.type == "incremental"
    )


def reaches(backups: list[Backup], start: datetime, t: datetime) -> bool:
    """Whether COMPLETED incrementals cover every moment from ``start`` to ``t``."""
    reach = start
    while reach < t:
        ends = [
            b.end_time
            for b in backups
            if b.status == "COMPLETED"
            and b.type == "incremental"
            and b.begin_time <= reach < b.end_time  # type: ignore[operator]
        ]
        if not ends:
            return False
        reach = max(ends)  # type: ignore[type-var]
    return True


def differentials_of(backups: list[Backup], full: Backup, t: datetime) -> list[Backup]:
    """The COMPLETED differentials taken against ``full`` (begun after it ended, before any
    newer full ended) that ended by ``t``."""
    fulls = [b for b in backups if b.status == "COMPLETED" and b.type in FULL_TYPES]
    return [
        b
        for b in backups
        if b.status == "COMPLETED"
        and b.type == "fragment"
        and b.begin_time >= full.end_time  # type: ignore[operator]
        and b.end_time <= t  # type: ignore[operator]
        and not any(full.end_time < f.end_time <= b.begin_time for f in fulls)  # type: ignore[operator]
    ]


def restores(backups: list[Backup], full: Backup, t: datetime) -> bool:
    """Whether ``full``, with or without one of its differentials, restores to ``t``."""
    bases = [full, *differentials_of(backups, full, t)]
    return any(b.end_time == t or reaches(backups, b.begin_time, t) for b in bases)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(listings())
def test_the_chain_covers_t_without_gaps_or_the_error_names_the_gap(
    case: tuple[list[Backup], datetime],
) -> None:
    backups, t = case
    fulls = [
        b
        for b in backups
        if b.status == "COMPLETED" and b.type in FULL_TYPES and b.end_time <= t  # type: ignore[operator]
    ]
    try:
        chain = select_chain(backups, t, "inst")
    except ChainUnreachableError as exc:
        assert str(t.isoformat()) in str(exc)
        if exc.reason == "no_full":
            assert not fulls
            if exc.gap_to is not None:  # the earliest moment it names is one that restores
                assert exc.gap_to > t and exc.gap_to.isoformat() in str(exc)
                select_chain(backups, exc.gap_to, "inst")
            return
        assert fulls
        newest = max(fulls, key=lambda b: b.end_time)  # type: ignore[arg-type,return-value]
        assert exc.gap_from is not None and exc.gap_from.isoformat() in str(exc)
        if exc.reachable is not None:  # the newest moment it names is one that restores
            assert exc.reachable < t and exc.reachable.isoformat() in str(exc)
            select_chain(backups, exc.reachable, "inst")
        else:
            assert "no moment before it can be reached" in str(exc)
        # The gap is real: after the full began, before T, and nothing covers it.
        assert newest.begin_time <= exc.gap_from < t  # type: ignore[operator]
        assert not covered(backups, exc.gap_from)
        if exc.reason == "gap":
            assert exc.gap_to is not None and exc.gap_from < exc.gap_to  # may be after T
            assert exc.gap_to.isoformat() in str(exc)
        else:
            assert exc.reason == "not_yet"
            assert not any(
                b.type == "incremental" and b.status == "COMPLETED" and b.begin_time > exc.gap_from  # type: ignore[operator]
                for b in backups
            )
        return
    full, diff, incs = chain.full, chain.differential, list(chain.incrementals)
    # The newest COMPLETED full that ended by T and restores to T (an older one can, where
    # a newer cannot: its differential may begin after the gap the newer one begins in).
    assert full.status == "COMPLETED" and full.type in FULL_TYPES and full in fulls
    newer = [f for f in fulls if f.end_time > full.end_time]  # type: ignore[operator]
    assert not any(restores(backups, f, t) for f in newer)
    assert all(b.status == "COMPLETED" and b.type == "incremental" for b in incs)
    assert [link.backup for link in chain.links] == [full, *([diff] if diff else []), *incs]
    # Its newest differential by T (taken against it), unless only the full alone reaches T.
    diffs = differentials_of(backups, full, t)
    if diff is not None:
        assert diff.end_time == max(b.end_time for b in diffs)  # type: ignore[type-var]
    # No gaps, from the base's begin to T; it stops at the first that reaches T. A base
    # that ended at T needs no incremental.
    base = diff or full
    reach = base.begin_time
    assert reach is not None
    if base.end_time == t:
        assert incs == []
        reach = t
    for i, b in enumerate(incs):
        assert b.begin_time <= reach < b.end_time  # type: ignore[operator]
        reach = b.end_time
        assert (reach >= t) == (i == len(incs) - 1)  # type: ignore[operator]
    assert reach >= t
    assert [b.begin_time for b in incs] == sorted(b.begin_time for b in incs)  # type: ignore[type-var]
    # The same chain whatever the listing's order, and however it was paged.
    shuffled = list(backups)
    random.Random(len(backups)).shuffle(shuffled)
    pages = [shuffled[i : i + 7] for i in range(0, len(shuffled), 5)]  # pages overlap
    again = select_chain([b for page in pages for b in page], t, "inst")
    assert [link.backup.id for link in again.links] == [link.backup.id for link in chain.links]
    # Folders sort as the chain goes.
    assert sorted(link.folder for link in chain.links) == [link.folder for link in chain.links]


def test_a_realistic_chain_and_its_folders() -> None:
    backups = [
        mk(1, "auto", 0, 12),
        mk(2, "auto", 1440, 12),
        mk(3, "manual", 1450, 5, "FAILED"),
        *(mk(10 + i, "incremental", 1430 + 10 * i, 10) for i in range(10)),
        mk(40, "incremental", 1440, 10, "BUILDING"),
    ]
    chain = select_chain(list(reversed(backups)), T0 + timedelta(minutes=1475), "inst")
    assert chain.full.id == backups[1].id
    # 14:30-14:40 ends at the full's begin (not needed); 14:40 ... 15:20 (reaches 15:15).
    assert [b.begin_time for b in chain.incrementals] == [
        T0 + timedelta(minutes=m) for m in (1440, 1450, 1460, 1470)
    ]
    assert [link.folder[:15] for link in chain.links] == [
        "01-auto-0000000",
        "02-incremental-",
        "03-incremental-",
        "04-incremental-",
        "05-incremental-",
    ]


def test_the_gap_and_what_can_be_reached_are_named() -> None:
    backups = [mk(1, "auto", 0, 12), mk(2, "incremental", 0, 10), mk(3, "incremental", 20, 10)]
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(backups, T0 + timedelta(minutes=25), "inst")
    err = caught.value
    assert (err.reason, err.gap_from, err.gap_to) == (
        "gap",
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=20),
    )
    # The full ends at 00:12, after the gap: it restores to its end by itself, and no later.
    assert err.reachable == T0 + timedelta(minutes=12)
    assert err.exit_code == 1
    assert "2026-11-28T00:10:00+08:00 to 2026-11-28T00:20:00+08:00" in str(err)
    assert "(a gap); the newest moment that can be reached is 2026-11-28T00:12:00+08:00" in str(err)
    # An earlier full whose incrementals run to the gap reaches less than the newer full.
    earlier = [mk(4, "auto", -30, 12), mk(5, "incremental", -30, 30), *backups]
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(earlier, T0 + timedelta(minutes=25), "inst")
    assert caught.value.reachable == T0 + timedelta(minutes=12)
    assert select_chain(earlier, T0 + timedelta(minutes=10), "inst").full.id == earlier[0].id


def test_the_moment_named_as_reachable_is_never_one_that_is_refused() -> None:
    # A full alone restores to the moment it ended, and to no later one.
    alone = [mk(1, "auto", 0, 12)]
    chain = select_chain(alone, T0 + timedelta(minutes=12), "inst")
    assert [link.backup.id for link in chain.links] == [alone[0].id]
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(alone, T0 + timedelta(minutes=13), "inst")
    assert caught.value.reachable == T0 + timedelta(minutes=12)
    # Before any full: the earliest end of a full.
    backups = [mk(1, "auto", 60, 12), mk(2, "auto", 120, 12), mk(3, "incremental", 120, 20)]
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(backups, T0 + timedelta(minutes=30), "inst")
    assert caught.value.reason == "no_full"
    assert "the earliest moment that can be restored is 2026-11-28T01:12:00+08:00" in str(
        caught.value
    )


def test_nothing_yet_and_no_full_are_refused() -> None:
    backups = [mk(1, "auto", 60, 12), mk(2, "incremental", 60, 10)]
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(backups, T0 + timedelta(minutes=90), "inst")
    assert caught.value.reason == "not_yet"
    # The incrementals end at 01:10, before the full does (01:12): the full's end.
    assert "the newest moment that can be reached is 2026-11-28T01:12:00+08:00" in str(caught.value)
    backups.append(mk(3, "incremental", 70, 10))
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(backups, T0 + timedelta(minutes=90), "inst")
    assert "the newest moment that can be reached is 2026-11-28T01:20:00+08:00" in str(caught.value)
    with pytest.raises(ChainUnreachableError) as caught:
        select_chain(backups, T0 + timedelta(minutes=30), "inst")
    assert caught.value.reason == "no_full"
    assert "the earliest moment that can be restored is 2026-11-28T01:12:00+08:00" in str(
        caught.value
    )


def test_a_differential_takes_its_place_between_the_full_and_the_incrementals() -> None:
    backups = [
        mk(1, "auto", 0, 12),
        mk(2, "fragment", 360, 6),  # 06:00-06:06
        mk(3, "fragment", 720, 6),  # 12:00-12:06
        mk(4, "fragment", 730, 20, "FAILED"),
        *(mk(10 + i, "incremental", 10 * i, 10) for i in range(80)),  # 00:00 ... 13:20
    ]
    chain = select_chain(backups, T0 + timedelta(minutes=725), "inst")  # 12:05
    # 12:05 is before the 12:00 differential ended: the 06:00 one, then its incrementals.
    assert chain.differential is not None and chain.differential.id == backups[1].id
    assert chain.incrementals[0].begin_time == T0 + timedelta(minutes=360)
    assert chain.incrementals[-1].end_time == T0 + timedelta(minutes=730)
    folders = [link.folder[:12] for link in chain.links]
    assert folders[:3] == ["01-auto-0000", "02-fragment-", "03-increment"]
    # At the newest differential's end: the full and it, no incremental.
    at_end = select_chain(backups, T0 + timedelta(minutes=726), "inst")
    assert [link.backup.id for link in at_end.links] == [backups[0].id, backups[2].id]
    # At the full's end: the full alone.
    assert len(select_chain(backups, T0 + timedelta(minutes=12), "inst").links) == 1
    # A differential begun before the full ended belongs to an older full: never taken.
    older = [mk(1, "auto", 0, 12), mk(2, "fragment", 5, 10), mk(3, "incremental", 0, 60)]
    chain = select_chain(older, T0 + timedelta(minutes=30), "inst")
    assert chain.differential is None and len(chain.incrementals) == 1
    # A differential that ends after T is not taken.
    gap = [mk(1, "auto", 0, 12), mk(2, "fragment", 100, 5), mk(3, "incremental", 0, 90)]
    chain = select_chain(gap, T0 + timedelta(minutes=80), "inst")
    assert chain.differential is None and chain.incrementals == (gap[2],)


def test_folder_names_sort_in_chain_order_and_refuse_unsafe_ids() -> None:
    many = [mk(i, "incremental", i, 1) for i in range(150)]
    names = folder_names(many)
    assert names[0].startswith("001-incremental-") and sorted(names) == names
    bad = Backup("../x", "n", "i", "auto", 1, "COMPLETED", T0, T0)
    with pytest.raises(UsageError, match="cannot name a folder"):
        folder_names([bad])


# ------------------------------------------------------------------ --to-time


offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


YEARS = {"min_value": datetime(1970, 1, 1), "max_value": datetime(2200, 1, 1)}


@given(st.datetimes(**YEARS, timezones=offsets).map(lambda d: d.replace(microsecond=0)))
def test_a_time_with_an_offset_is_that_instant(when: datetime) -> None:
    assert parse_point_in_time(when.isoformat()) == when
    compact = when.strftime("%Y-%m-%dT%H:%M:%S%z")  # +0800, as RDS writes it
    assert parse_point_in_time(compact) == when
    assert utc_text(parse_point_in_time(compact)) == utc_text(when.astimezone(UTC))


@given(st.datetimes(**YEARS).map(lambda d: d.replace(microsecond=0)))
def test_a_time_without_an_offset_is_refused(when: datetime) -> None:
    with pytest.raises(UsageError, match="has no UTC offset: whose") as caught:
        parse_point_in_time(when.isoformat())
    assert f"whose {when:%H:%M}?" in str(caught.value)
    assert "add +08:00 or Z" in str(caught.value)


def test_z_and_offsets_are_compared_as_instants() -> None:
    assert parse_point_in_time("2026-11-29T05:00:00Z") == parse_point_in_time(
        "2026-11-29T13:00:00+08:00"
    )
    with pytest.raises(UsageError, match="not an ISO 8601 time"):
        parse_point_in_time("yesterday 13:00")
    # One spelling per instant, and one instant per spelling: a fraction is kept.
    same = ("2026-11-29T13:00:00+08:00", "2026-11-29T00:00:00-05:00", "2026-11-29T05:00:00Z")
    assert {chain_id("i", parse_point_in_time(t)) for t in same} == {"chain:i@2026-11-29T05:00:00Z"}
    later = parse_point_in_time("2026-11-29T13:00:00.25+0800")
    assert chain_id("i", later) == "chain:i@2026-11-29T05:00:00.250000Z"


# ------------------------------------------------------------------ restore steps


def test_mysql_steps_replay_the_binlogs_in_folder_order_up_to_t(tmp_path: Path) -> None:
    t = datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=8)))
    backups = [("01-auto-f", ["f_full_1.qp", "f_full_2.qp"])]
    backups += [(f"{i:02d}-incremental-b{i}", [f"mysql-bin.{i + 7:06d}"]) for i in range(2, 12)]
    for folder, names in backups:
        (tmp_path / folder).mkdir()
        for n in [*names, "rds-backup-manifest.json"]:
            (tmp_path / folder / n).write_text("x")
    lines = chain_steps("MySQL", backups, t, str(tmp_path))
    text = "\n".join(lines)
    assert "xtrabackup --prepare" in text and "xtrabackup_binlog_info" in text
    replay = next(ln for ln in lines if "mysqlbinlog --start-position" in ln)
    assert replay.strip().startswith("TZ=UTC mysqlbinlog")
    assert "--stop-datetime='2026-11-29 05:00:00'" in replay  # 13:00 at +08:00, in UTC
    assert replay.endswith("| mysql -u root -p")
    # Run the printed lines with stand-ins for mysqlbinlog and mysql: the full ends in the
    # third binlog, so that one (from the position) and every later one are replayed, in
    # chain order, and no manifest.
    restored = tmp_path / "restored"
    restored.mkdir()
    (restored / "xtrabackup_binlog_info").write_text("mysql-bin.000011\t4567\tuuid:1-9\n")
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith("read BINLOG"))
    script = "\n".join(ln.strip() for ln in lines[start : lines.index(replay) + 1])
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mysqlbinlog").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    (fake / "mysql").write_text("#!/bin/sh\ncat\n")
    for tool in fake.iterdir():
        tool.chmod(0o755)
    run = subprocess.run(
        ["bash", "-c", f"D={restored}\n{script}"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": f"{fake}:/usr/bin:/bin"},
    )
    args = run.stdout.split("\n")
    assert args[:2] == ["--start-position=4567", "--stop-datetime=2026-11-29 05:00:00"]
    want = [str(tmp_path / f / n) for f, names in backups[3:] for n in names]
    assert [a for a in args[2:] if a] == want
    assert "not in the chain" not in run.stdout


def test_postgresql_and_sql_server_steps_stop_at_t() -> None:
    t = datetime(2026, 11, 29, 13, 0, tzinfo=timezone(timedelta(hours=8)))
    pg = chain_steps(
        "PostgreSQL",
        [("01-auto-a", ["a_base.tar.gz"]), ("02-incremental-b", ["000000010000000000000001.gz"])],
        t,
        "/r",
    )
    text = "\n".join(pg)
    assert "tar -xf /r/01-auto-a/a_base.tar.gz" in text
    assert "recovery_target_time = '2026-11-29 13:00:00+08:00'" in text
    assert "recovery.signal" in text and "recovery_target_action = 'promote'" in text
    mssql = chain_steps(
        "SQLServer",
        [
            ("01-auto-a", ["a.bak"]),
            ("02-incremental-b", ["b_log.bak"]),
            ("03-incremental-c", ["c_log.bak"]),
        ],
        t,
        "/r",
        databases={
            "01-auto-a/a.bak": "sales",
            "02-incremental-b/b_log.bak": "sales",
            "03-incremental-c/c_log.bak": "sales",
        },
    )
    logs = [ln for ln in mssql if "RESTORE LOG" in ln]
    assert len(logs) == 2 and "02-incremental-b" in logs[0] and "03-incremental-c" in logs[1]
    assert all("STOPAT = '2026-11-29T13:00:00'" in ln for ln in logs)
    assert "UTC+0800" in mssql[0]
    assert mssql[-1].endswith('RESTORE DATABASE [sales] WITH RECOVERY"')
