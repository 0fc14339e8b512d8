from __future__ import annotations

from downloader.nextsteps import engine_family, next_steps


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
    assert "xbstream -x -p 4 -C /var/lib/mysql-restore < /backups/b1/full_20261126.qp" in out
    assert "xtrabackup --decompress" in out and "xtrabackup --prepare" in out
    assert "mysqlbinlog /backups/b1/mysql-bin.000011 /backups/b1/mysql-bin.000012 | mysql" in out


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
