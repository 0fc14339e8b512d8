from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from downloader.text.nextsteps import engine_family, next_steps


def text(lines: list[str]) -> str:
    assert lines and all("\n" not in line for line in lines)
    return "\n".join(lines)


def test_engine_family() -> None:
    assert engine_family("MySQL") == "mysql"
    assert engine_family("MariaDB") == "mysql"
    assert engine_family("PostgreSQL") == "postgresql"
    assert engine_family("SQLServer") == "sqlserver"
    assert engine_family("Microsoft SQL Server") == "sqlserver"
    assert engine_family("oracle") is None
    assert engine_family(None) is None


def test_mysql_full_and_binlogs() -> None:
    out = text(
        next_steps(
            "MySQL", ["full_20261126.qp", "mysql-bin.000012", "mysql-bin.000011"], "/backups/b1"
        )
    )
    assert "D=/var/lib/mysql-restore; mkdir -p $D" in out
    assert "xbstream -x -p 4 -C $D < /backups/b1/full_20261126.qp" in out
    assert "xtrabackup --decompress" in out and "xtrabackup --prepare" in out
    assert "mysqlbinlog /backups/b1/mysql-bin.00001* | mysql" in out


def test_postgresql() -> None:
    out = text(next_steps("PostgreSQL", ["base.tar.gz", "000000010000000000000003"], "/srv/dl"))
    assert "tar -xf /srv/dl/base.tar.gz -C /var/lib/pgsql/restore" in out
    assert "empty data directory" in out
    assert "cp /srv/dl/000000010000000000000003 /var/lib/pgsql/wal_archive/" in out
    assert "restore_command" in out and "recovery.signal" in out


def test_sqlserver() -> None:
    out = text(
        next_steps(
            "SQLServer",
            ["sales_full.bak", "sales_log_1.bak"],
            "/data",
            databases={"sales_full.bak": "sales", "sales_log_1.bak": "sales"},
        )
    )
    assert "RESTORE DATABASE [sales] FROM DISK = N'/data/sales_full.bak' WITH NORECOVERY" in out
    assert "RESTORE LOG [sales] FROM DISK = N'/data/sales_log_1.bak' WITH NORECOVERY" in out
    assert "RESTORE DATABASE [sales] WITH RECOVERY" in out
    assert "sqlcmd" in out

    single = text(next_steps("sqlserver", ["o'brien.bak"], "/d"))
    assert "RESTORE DATABASE [<database>] FROM DISK = N'/d/o''brien.bak' WITH RECOVERY" in single


def test_unknown_engine_guesses_from_names() -> None:
    out = text(next_steps(None, ["x.qp", "y.bak"], "/o"))
    assert "xbstream" in out and "RESTORE DATABASE" in out
    generic = next_steps(None, ["weird.bin"], "/o")
    assert len(generic) == 1 and "/o" in generic[0] and "weird.bin" in generic[0]
    assert next_steps("MySQL", [], "/o") == []


def test_paths_with_spaces_are_quoted() -> None:
    out = text(next_steps("MySQL", ["a b.qp"], "/my backups"))
    assert "< '/my backups/a b.qp'" in out


def test_many_parts_make_a_short_recipe_whose_glob_takes_exactly_them(tmp_path: Path) -> None:
    """40 parts used to be listed twice on one line of several KB; now a glob in a loop."""
    parts = [f"b1_full_2024-05-20_16-00-00_{i}.qp" for i in range(1, 41)]
    others = ["rds-backup-manifest.json", "notes.txt"]
    for name in parts + others:
        (tmp_path / name).write_bytes(b"")
    lines = next_steps("MySQL", parts, str(tmp_path))
    assert len(lines) <= 6
    assert all(len(line) < 110 + len(str(tmp_path)) for line in lines)
    out = text(lines)
    assert not any(name in out for name in parts)  # not one path, let alone twice
    assert "40 files" in out
    glob = re.search(r"for f in (.+?); do xbstream", out)
    assert glob
    if shutil.which("bash"):
        got = subprocess.run(
            ["bash", "-c", f"printf '%s\\n' {glob.group(1)}"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert sorted(got) == sorted(str(tmp_path / n) for n in parts)


def test_a_glob_never_takes_the_whole_folder() -> None:
    out = text(next_steps("MySQL", ["x.qp", "y.xb"], "/o"))  # nothing in common
    assert "for f in /o/x.qp /o/y.xb;" in out
    quoted = text(next_steps("MySQL", ["a b_1.qp", "a b_2.qp"], "/o"))
    assert "for f in '/o/a b_'*.qp;" in quoted


@pytest.mark.parametrize("engine", ["SQLServer", "MySQL", "PostgreSQL"])
def test_paths_are_absolute(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL Server reads a relative FROM DISK path from its own folder, not the shell's."""
    monkeypatch.chdir(tmp_path)
    names = {"SQLServer": ["d.bak"], "MySQL": ["f.qp"], "PostgreSQL": ["base.tar.gz"]}[engine]
    out = text(next_steps(engine, names, "restore"))
    assert os.path.join(str(tmp_path), "restore", names[0]) in out
    assert " restore/" not in out and "'restore/" not in out


def test_a_partial_selection_is_warned_first() -> None:
    backup = [f"full_{i}.qp" for i in range(1, 4)]
    lines = next_steps("MySQL", backup[:1], "/o", backup_names=backup)
    assert lines[0].startswith("Warning: partial selection (1 of 3 MySQL full backup files)")
    assert "--include" in lines[0]
    assert not next_steps("MySQL", backup, "/o", backup_names=backup)[0].startswith("Warning")


def test_whole_sql_server_databases_are_not_partial() -> None:
    backup = ["a_full.bak", "a_log_1.bak", "b_full.bak"]
    dbs = {"a_full.bak": "a", "a_log_1.bak": "a", "b_full.bak": "b"}
    one_db = next_steps("SQLServer", ["b_full.bak"], "/o", databases=dbs, backup_names=backup)
    assert not one_db[0].startswith("Warning")
    half = next_steps("SQLServer", ["a_full.bak"], "/o", databases=dbs, backup_names=backup)
    assert half[0].startswith("Warning: partial selection (1 of 2 SQL Server files of database a)")


def _run_printed(lines: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The printed command lines (indented two spaces), pasted into bash as a DBA would, with
    the restore folders moved under ``tmp_path`` and stand-ins for chown and pg_ctl."""
    from downloader.text import nextsteps

    commands = [line[2:] for line in lines if line.startswith("  ")]
    script = "\n".join(commands)
    script = script.replace(nextsteps.PG_WAL_DIR, str(tmp_path / "walarchive"))
    script = script.replace(nextsteps.PG_DIR, str(tmp_path / "pgdata"))
    stand_ins = (
        f'set -euo pipefail\nchown() {{ :; }}\npg_ctl() {{ echo "$@" > {tmp_path}/pg_ctl.args; }}\n'
    )
    return subprocess.run(
        ["bash", "-c", stand_ins + script], capture_output=True, text=True, check=False
    )


def _tar_gz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_printed_postgresql_full_restore_runs(tmp_path: Path) -> None:
    """The base archive lands in the data directory, the full's own WAL archive in its
    pg_wal, and the server is started on that directory (the printed lines, run as is)."""
    dl = tmp_path / "dl"
    dl.mkdir()
    base = "edc_base_2024-05-20_14-00-00.tar.gz"
    wal = "edc_wal_2024-05-20_14-00-00.tar.gz"
    _tar_gz(dl / base, {"PG_VERSION": b"16\n", "backup_label": b"START WAL LOCATION\n"})
    _tar_gz(dl / wal, {"000000010000000000000002": b"w" * 64})
    lines = next_steps("PostgreSQL", [base, wal], str(dl))
    result = _run_printed(lines, tmp_path)
    assert result.returncode == 0, result.stderr
    data = tmp_path / "pgdata"
    assert (data / "PG_VERSION").read_bytes() == b"16\n"
    assert (data / "pg_wal" / "000000010000000000000002").read_bytes() == b"w" * 64
    assert not (data / "000000010000000000000002").exists()  # the WAL is not in the base
    assert (tmp_path / "pg_ctl.args").read_text().split() == ["-D", str(data), "start"]
    # Selecting only the base is warned about: its WAL archive restores with it.
    assert "1 of 2" in next_steps("PostgreSQL", [base], str(dl), backup_names=[base, wal])[0]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_printed_postgresql_wal_replay_runs(tmp_path: Path) -> None:
    dl = tmp_path / "dl"
    dl.mkdir()
    names = ["000000010000000000000003.gz", "000000010000000000000004.gz"]
    for n in names:
        (dl / n).write_bytes(b"segment")
    (tmp_path / "pgdata").mkdir()
    result = _run_printed(next_steps("PostgreSQL", names, str(dl)), tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "walarchive").iterdir()) == names
    conf = (tmp_path / "pgdata" / "postgresql.auto.conf").read_text()
    assert f"restore_command = 'gunzip -c {tmp_path}/walarchive/%f.gz > %p'" in conf
    assert (tmp_path / "pgdata" / "recovery.signal").exists()
    assert (tmp_path / "pg_ctl.args").read_text().split() == [
        "-D",
        str(tmp_path / "pgdata"),
        "start",
    ]


def _stand_ins(tmp_path: Path, tools: list[str]) -> Path:
    """Programs named like the restore's tools that log their arguments (and stdin) in
    order, one line per call, to ``tmp_path/calls``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        script = bin_dir / tool
        script.write_text(
            "#!/bin/sh\n"
            f'line="{tool}"\n'
            'for a in "$@"; do line="$line $a"; done\n'
            '[ -t 0 ] || line="$line <$(head -c 40)>"\n'
            f'echo "$line" >> {tmp_path}/calls\n'  # one write: a pipeline's tools interleave
        )
        script.chmod(0o755)
    return bin_dir


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_printed_mysql_and_sql_server_steps_run(tmp_path: Path) -> None:
    """Every indented line is a command: pasted into bash (with stand-ins for the tools),
    each tool is called on the downloaded files in restore order."""
    from downloader.text import nextsteps

    dl = tmp_path / "dl"
    dl.mkdir()
    mysql = ["x_full_1.qp", "x_full_2.qp", "mysql-bin.000001", "mysql-bin.000002"]
    mssql = ["db1_full.bak", "db1_log_1.bak"]
    for n in mysql + mssql:
        (dl / n).write_bytes(n.encode())
    tools = ["xbstream", "xtrabackup", "chown", "mysqlbinlog", "mysql", "sqlcmd"]
    bin_dir = _stand_ins(tmp_path, tools)
    lines = next_steps("MySQL", mysql, str(dl)) + next_steps(
        "SQLServer", mssql, str(dl), databases=dict.fromkeys(mssql, "sales")
    )
    script = "\n".join(line[2:] for line in lines if line.startswith("  "))
    script = script.replace(nextsteps.MYSQL_DIR, str(tmp_path / "mysql"))
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    # mysqlbinlog | mysql run together: their lines may come in either order.
    first = [c.split()[0] for c in calls]
    assert first[:5] == ["xbstream", "xbstream", "xtrabackup", "xtrabackup", "chown"]
    assert sorted(first[5:7]) == ["mysql", "mysqlbinlog"] and first[7:] == ["sqlcmd"] * 3
    assert "<x_full_1.qp>" in calls[0] and "<x_full_2.qp>" in calls[1]
    binlog = next(c for c in calls if c.startswith("mysqlbinlog"))
    assert f"{dl}/mysql-bin.000001 {dl}/mysql-bin.000002" in binlog
    restore = calls[7:]
    assert "RESTORE DATABASE [sales] FROM DISK = N'" in restore[0] and "db1_full" in restore[0]
    assert "RESTORE LOG [sales]" in restore[1]
    assert "RESTORE DATABASE [sales] WITH RECOVERY" in restore[2]
