from __future__ import annotations

import os
import re
import shutil
import subprocess
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
