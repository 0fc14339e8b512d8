"""What a DBA does next with the files that arrived: a few concrete, copyable lines.

Sources: MySQL full backups are qpress-compressed xbstream archives (``*.qp``, restored with
``xbstream -x -p 4 < file.qp`` then XtraBackup decompress/prepare; Huawei/OTC "Restoring Data
from Backup Files to a Self-built MySQL Database"); PostgreSQL full backups are ``.tar.gz``
physical copies extracted into an empty data directory of the same version (Huawei
``rds_pg_08_0049``); SQL Server backups are ``.bak`` files for ``RESTORE DATABASE``.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

__all__ = ["chain_steps", "engine_family", "next_steps"]

Family = Literal["mysql", "postgresql", "sqlserver"]
Kind = Literal[
    "mysql_full",
    "mysql_binlog",
    "pg_full",
    "pg_full_wal",
    "pg_wal",
    "mssql_full",
    "mssql_log",
    "unknown",
]

MYSQL_DIR = "/var/lib/mysql-restore"
PG_DIR = "/var/lib/pgsql/restore"
PG_WAL_DIR = "/var/lib/pgsql/wal_archive"

_WAL_RE = re.compile(r"^[0-9A-F]{24}(\.partial|\.backup|\.gz|\.zst|\.lz4|\.bz2)*$", re.I)
_BINLOG_RE = re.compile(r"(binlog|bin-log|-bin\.\d+|\.\d{6}($|\.))", re.I)
_TAR_RE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tar\.xz|tar\.zst)$", re.I)
# A full backup's WAL archive (the segments written while the base was copied), beside its
# base archive: ``..._wal_<time>.tar.gz`` (RDS), ``pg_wal.tar.gz`` (pg_basebackup).
_PG_WAL_TAR_RE = re.compile(r"(^|[_.-])(pg_)?(wal|xlog)([_.-]|$)", re.I)
_MSSQL_LOG_RE = re.compile(r"(\.trn$|_log[._]|log_|incr)", re.I)


def engine_family(engine: str | None) -> Family | None:
    """``mysql``/``postgresql``/``sqlserver`` for an RDS ``datastore.type``, else None."""
    if not engine:
        return None
    e = re.sub(r"[^a-z]", "", engine.lower())
    if "mysql" in e or "mariadb" in e:
        return "mysql"
    if "postgres" in e or e == "pg":
        return "postgresql"
    if "sqlserver" in e or "mssql" in e:
        return "sqlserver"
    return None


def _kind(name: str, family: Family | None) -> Kind:
    n = name.lower()
    is_qp = n.endswith((".qp", "_qp.xb", ".xbstream", ".xb"))
    if family == "mysql":
        return "mysql_full" if is_qp else "mysql_binlog"
    if family == "postgresql":
        if not _TAR_RE.search(n):
            return "pg_wal"
        return "pg_full_wal" if _PG_WAL_TAR_RE.search(posixpath.basename(n)) else "pg_full"
    if family == "sqlserver":
        return "mssql_log" if _MSSQL_LOG_RE.search(n) else "mssql_full"
    # Unknown engine: guess from the name alone.
    if is_qp:
        return "mysql_full"
    if n.endswith(".bak"):
        return "mssql_log" if _MSSQL_LOG_RE.search(n) else "mssql_full"
    if n.endswith(".trn"):
        return "mssql_log"
    if _TAR_RE.search(n):
        return "pg_full_wal" if _PG_WAL_TAR_RE.search(posixpath.basename(n)) else "pg_full"
    if _WAL_RE.match(posixpath.basename(name)):
        return "pg_wal"
    if _BINLOG_RE.search(n):
        return "mysql_binlog"
    return "unknown"


def _sh(path: str) -> str:
    return shlex.quote(path)


def _tsql_str(s: str) -> str:
    return "N'" + s.replace("'", "''") + "'"


def _tsql_name(s: str) -> str:
    return "[" + s.replace("]", "]]") + "]"


def _dq(s: str) -> str:
    """Double-quote for a POSIX shell, so the T-SQL single quotes inside stay readable."""
    return '"' + re.sub(r'(["\\$`])', r"\\\1", s) + '"'


def _common_start(texts: Sequence[str]) -> str:
    """The characters every one of ``texts`` starts with (of names, not path components)."""
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and first[n] == last[n]:
        n += 1
    return first[:n]


def _glob(paths: Sequence[str]) -> str:
    """One shell word for ``paths``: the path itself, or a glob matching them all, so that a
    backup of 40 files is one short line rather than 40 paths (printed twice, before)."""
    if len(paths) == 1:
        return _sh(paths[0])
    folders = {posixpath.dirname(p) for p in paths}
    if len(folders) != 1:
        return " ".join(_sh(p) for p in paths)
    folder = folders.pop()
    names = [posixpath.basename(p) for p in paths]
    head = _common_start(names)
    tail = _common_start([n[len(head) :][::-1] for n in names])[::-1]
    if not head and not tail:  # a bare * would take the manifest and anything else there
        return " ".join(_sh(p) for p in paths)
    # Quoted pieces around a bare *: a space or a * in a name stays literal.
    return _sh(posixpath.join(folder, head)) + "*" + (_sh(tail) if tail else "")


def _mysql_full(paths: Sequence[str]) -> list[str]:
    # $D keeps every line short: the recipe must leave the run's summary on an 80x24 screen.
    if len(paths) == 1:
        what = "1 file"
        extract = f"  xbstream -x -p 4 -C $D < {_sh(paths[0])}"
    else:
        what = f"{len(paths)} files"
        extract = f'  for f in {_glob(paths)}; do xbstream -x -p 4 -C $D < "$f"; done'
    return [
        f"MySQL full backup ({what}, xbstream + qpress): restore with Percona XtraBackup of "
        "the instance's major version:",
        f"  D={MYSQL_DIR}; mkdir -p $D",
        extract,
        "  xtrabackup --decompress --remove-original --parallel=4 --target-dir=$D",
        "  xtrabackup --prepare --target-dir=$D   # 5.6/5.7: innobackupex --decompress, then"
        " --apply-log",
        "  chown -R mysql:mysql $D   # then set datadir=$D in my.cnf and start mysqld",
    ]


def _mysql_binlogs(paths: Sequence[str]) -> list[str]:
    return [
        "MySQL binlogs: after the full backup is restored and running, replay them in order:",
        f"  mysqlbinlog {_glob(paths)} | mysql -u root -p",
        "To stop at a point in time, add --stop-datetime='YYYY-MM-DD hh:mm:ss' to mysqlbinlog.",
    ]


def _pg_full(bases: Sequence[str], wals: Sequence[str]) -> list[str]:
    """The base archive goes into an empty data directory, the full backup's own WAL archive
    into its ``pg_wal`` (the segments the base needs to start consistent)."""
    lines = [
        "PostgreSQL full backup: with PostgreSQL stopped (same major version as the "
        "instance), extract the base archive into an empty data directory"
        + (" and its WAL archive into that directory's pg_wal:" if wals else ":"),
        f"  mkdir -m 700 -p {PG_DIR}",
    ]
    lines += [f"  tar -xf {_sh(b)} -C {PG_DIR}" for b in bases]
    if wals:
        lines.append(f"  mkdir -m 700 -p {PG_DIR}/pg_wal")
        lines += [f"  tar -xf {_sh(w)} -C {PG_DIR}/pg_wal" for w in wals]
    lines += [
        f"  chown -R postgres:postgres {PG_DIR}",
        "Keep your own postgresql.conf and pg_hba.conf (drop RDS-only settings), then start it:",
        f"  pg_ctl -D {PG_DIR} start",
    ]
    return lines


def _pg_wal(paths: Sequence[str]) -> list[str]:
    compressed = all(p.lower().endswith(".gz") for p in paths)
    restore = f"gunzip -c {PG_WAL_DIR}/%f.gz > %p" if compressed else f"cp {PG_WAL_DIR}/%f %p"
    return [
        "PostgreSQL WAL (incremental) files: with the full backup restored and PostgreSQL "
        "stopped, archive them and let recovery replay them (add recovery_target_time = "
        "'...' to stop at a moment):",
        f"  mkdir -p {PG_WAL_DIR} && cp {_glob(paths)} {PG_WAL_DIR}/",
        f"  echo \"restore_command = '{restore}'\" >> {PG_DIR}/postgresql.auto.conf",
        f"  touch {PG_DIR}/recovery.signal",
        f"  pg_ctl -D {PG_DIR} start",
    ]


def _sqlcmd(query: str) -> str:
    return f"  sqlcmd -S localhost -U sa -Q {_dq(query)}"


def _mssql(fulls: Sequence[tuple[str, str]], logs: Sequence[tuple[str, str]]) -> list[str]:
    lines = [
        "SQL Server: copy the files where the SQL Server service account can read them "
        "(paths below are where they are now), then:",
    ]
    log_dbs = {db for _, db in logs}
    for path, db in fulls:
        recovery = "NORECOVERY" if db in log_dbs else "RECOVERY"
        lines.append(
            _sqlcmd(
                f"RESTORE DATABASE {_tsql_name(db)} FROM DISK = {_tsql_str(path)} "
                f"WITH {recovery}, STATS = 10"
            )
        )
    for path, db in logs:
        lines.append(
            _sqlcmd(f"RESTORE LOG {_tsql_name(db)} FROM DISK = {_tsql_str(path)} WITH NORECOVERY")
        )
    for db in sorted(log_dbs):
        lines.append(_sqlcmd(f"RESTORE DATABASE {_tsql_name(db)} WITH RECOVERY"))
    lines.append(
        "If the data/log file paths differ on this server, add MOVE N'<logical>' TO N'<path>'"
        " clauses; RESTORE FILELISTONLY FROM DISK = ... lists the logical names."
    )
    return lines


_LABELS: dict[Kind, str] = {
    "mysql_full": "MySQL full backup",
    "mysql_binlog": "MySQL binlog",
    "pg_full": "PostgreSQL full backup",
    "pg_full_wal": "PostgreSQL full backup",  # the base's own WAL: one with it
    "pg_wal": "PostgreSQL WAL",
    "mssql_full": "SQL Server",
    "mssql_log": "SQL Server",
    "unknown": "other",
}


def _partial(
    selected: Sequence[str],
    backup: Sequence[str],
    family: Family | None,
    db_of: Mapping[str, str | None],
) -> list[str]:
    """A warning when the selection holds only some of the files that restore together: the
    parts of a full backup, or one SQL Server database's full and log files. A selection of
    whole SQL Server databases is complete for them and gets no warning."""

    def key(name: str) -> tuple[str, str]:
        kind = _kind(name, family)
        if kind in ("mssql_full", "mssql_log"):
            return (_LABELS[kind], f" of database {db_of.get(name) or '?'}")
        return (_LABELS[kind], "")

    wanted: dict[tuple[str, str], int] = {}
    for name in backup:
        wanted[key(name)] = wanted.get(key(name), 0) + 1
    got: dict[tuple[str, str], int] = {}
    for name in selected:
        got[key(name)] = got.get(key(name), 0) + 1
    short = [
        f"{n} of {wanted[k]} {k[0]} files{k[1]}"
        for k, n in sorted(got.items())
        if n < wanted.get(k, 0)
    ]
    if not short:
        return []
    return [
        f"Warning: partial selection ({'; '.join(short)}): a restore needs all of them; "
        "fetch the rest without --include/--exclude into this folder first."
    ]


def next_steps(
    engine: str | None,
    file_names: Sequence[str],
    out_dir: str,
    *,
    databases: Mapping[str, str | None] | None = None,
    backup_names: Sequence[str] | None = None,
) -> list[str]:
    """Lines telling a DBA how to restore ``file_names`` (downloaded into ``out_dir``).

    ``engine`` is the RDS ``datastore.type`` (MySQL, PostgreSQL, SQLServer, MariaDB) or None,
    in which case the kind of each file is guessed from its name. ``databases`` maps a file name
    to its SQL Server database (``files[].database_name``) when known. ``backup_names``, every
    file of the backup, adds a warning first when ``file_names`` is only part of what
    restores together. Paths are absolute: SQL Server reads a relative one from its own folder.
    """
    if not file_names:
        return []
    family = engine_family(engine)
    groups: dict[Kind, list[str]] = {}
    for name in sorted(file_names):
        groups.setdefault(_kind(name, family), []).append(name)
    out_dir = os.path.abspath(out_dir or ".")

    def path(name: str) -> str:
        return posixpath.join(out_dir, name)

    db_of = databases or {}
    lines = _partial(file_names, backup_names or file_names, family, db_of)
    if "mysql_full" in groups:
        lines += _mysql_full([path(n) for n in groups["mysql_full"]])
    if "mysql_binlog" in groups:
        lines += _mysql_binlogs([path(n) for n in groups["mysql_binlog"]])
    if "pg_full" in groups or "pg_full_wal" in groups:
        lines += _pg_full(
            [path(n) for n in groups.get("pg_full", [])],
            [path(n) for n in groups.get("pg_full_wal", [])],
        )
    if "pg_wal" in groups:
        lines += _pg_wal([path(n) for n in groups["pg_wal"]])
    if "mssql_full" in groups or "mssql_log" in groups:
        fulls = [(path(n), db_of.get(n) or "<database>") for n in groups.get("mssql_full", [])]
        logs = [(path(n), db_of.get(n) or "<database>") for n in groups.get("mssql_log", [])]
        lines += _mssql(fulls, logs)
    if "unknown" in groups:
        unknown = groups["unknown"]
        shown = ", ".join(unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        lines.append(
            f"Downloaded to {out_dir}: {shown}. Restore with the tools of the source database "
            "engine (RDS documentation: restoring from a backup file)."
        )
    return lines


def _names_glob(out_dir: str, names: Sequence[str]) -> str:
    """One shell word for the incrementals' files in folder order (a glob sorts, and the
    folders' numbers are zero-padded), or "" (no common start: * would take the manifests)."""
    if not names:
        return ""
    head = _common_start(names)
    tail = _common_start([n[len(head) :][::-1] for n in names])[::-1]
    if not head:
        return ""
    return f"{_sh(out_dir)}/*-incremental-*/{_sh(head)}*{_sh(tail) if tail else ''}"


def chain_steps(
    engine: str | None,
    backups: Sequence[tuple[str, Sequence[str]]],
    to_time: datetime,
    out_dir: str,
    *,
    databases: Mapping[str, str | None] | None = None,
) -> list[str]:
    """How to restore a point-in-time chain downloaded into ``out_dir``: ``backups`` are
    ``(folder, file names)`` in chain order, the full backup first, then a differential full
    (a ``-fragment-`` folder) if the chain has one; ``databases`` maps a file's path in
    ``out_dir`` (``folder/name``) to its SQL Server database."""
    if not backups:
        return []
    out_dir = os.path.abspath(out_dir or ".")
    family = engine_family(engine)
    (full_folder, full_names), incs = backups[0], backups[1:]
    diffs: list[str] = []
    if incs and "-fragment-" in incs[0][0]:
        diffs = [posixpath.join(out_dir, incs[0][0], n) for n in sorted(incs[0][1])]
        incs = incs[1:]
    fulls = [posixpath.join(out_dir, full_folder, n) for n in sorted(full_names)]
    inc_paths = [posixpath.join(out_dir, f, n) for f, names in incs for n in sorted(names)]
    inc_names = [n for _, names in incs for n in names]
    every = _names_glob(out_dir, inc_names) or " ".join(_sh(p) for p in inc_paths)
    utc = to_time.astimezone(UTC)
    head = f"Point-in-time restore to {to_time.isoformat()}: the full backup, then "
    if diffs:
        head = head.replace("backup, then", "backup, the differential, then")
    if family == "mysql":
        base, info = ("the full", "$D")
        steps = _mysql_full(fulls)
        if diffs:
            base, info = ("the differential", "$I")
            steps = [
                *steps[:-2],
                "  xtrabackup --prepare --apply-log-only --target-dir=$D",
                f"  I={MYSQL_DIR}-diff; mkdir -p $I",
                *(f"  xbstream -x -p 4 -C $I < {_sh(p)}" for p in diffs),
                "  xtrabackup --decompress --remove-original --parallel=4 --target-dir=$I",
                "  xtrabackup --prepare --target-dir=$D --incremental-dir=$I",
                steps[-1],
            ]
        return [
            head + "the binlogs in folder order:",
            *steps,
            f"  then replay, in one mysqlbinlog, the binlog {base} ends in (from its position)"
            " and every later one:",
            f"  read BINLOG POS _ < {info}/xtrabackup_binlog_info",
            f"  FILES=$(printf '%s\\n' {every} | sed -n \"\\|/$BINLOG\\$|,\\$p\")",
            '  [ -n "$FILES" ] || echo "$BINLOG is not in the chain: the full ends before it"',
            f'  TZ=UTC mysqlbinlog --start-position="$POS" '
            f"--stop-datetime='{utc:%Y-%m-%d %H:%M:%S}' $FILES | mysql -u root -p",
            "  (mysqlbinlog reads --stop-datetime in its machine's time zone: TZ=UTC makes it "
            f"UTC, and {to_time.isoformat()} is {utc:%H:%M:%S} UTC)",
        ]
    if family == "postgresql":
        lines = [head + "the incrementals (WAL) replayed up to it:"]
        bases = [f for f in fulls if _kind(f, family) == "pg_full"]
        wals = [f for f in fulls if _kind(f, family) == "pg_full_wal"]
        lines += [*_pg_full(bases, wals)[1:-3], f"  chown -R postgres:postgres {PG_DIR}"]
        compressed = all(n.lower().endswith(".gz") for n in inc_names)
        restore = f"gunzip -c {PG_WAL_DIR}/%f.gz > %p" if compressed else f"cp {PG_WAL_DIR}/%f %p"
        return [
            *lines,
            f"  mkdir -p {PG_WAL_DIR} && cp {every} {PG_WAL_DIR}/",
            f"  postgresql.conf: restore_command = '{restore}'",
            f"    recovery_target_time = '{to_time.isoformat(sep=' ')}'  (its offset is kept: "
            "any server time zone)",
            "    recovery_target_action = 'promote'",
            f"  touch {PG_DIR}/recovery.signal; pg_ctl -D {PG_DIR} start  (replays to it, "
            "then promotes)",
        ]
    if family == "sqlserver":
        db_of = databases or {}

        def db(path: str) -> str:
            return db_of.get(posixpath.relpath(path, out_dir)) or "<database>"

        stop = f"{to_time:%Y-%m-%dT%H:%M:%S}"
        full_sql = "RESTORE DATABASE {} FROM DISK = {} WITH NORECOVERY"
        log_sql = "RESTORE LOG {} FROM DISK = {} WITH NORECOVERY, STOPAT = '" + stop + "'"
        return [
            head + "each log backup in folder order, stopping at it. STOPAT is in the source "
            f"instance's time zone (its commit times): {stop} is at UTC{to_time:%z}; convert "
            "it if that instance's zone differs:",
            *(_sqlcmd(full_sql.format(_tsql_name(db(p)), _tsql_str(p))) for p in fulls),
            *(_sqlcmd(full_sql.format(_tsql_name(db(p)), _tsql_str(p))) for p in diffs),
            *(_sqlcmd(log_sql.format(_tsql_name(db(p)), _tsql_str(p))) for p in inc_paths),
            *(
                _sqlcmd(f"RESTORE DATABASE {_tsql_name(n)} WITH RECOVERY")
                for n in sorted({db(p) for p in fulls})
            ),
        ]
    on_top = f", then the differential {posixpath.dirname(diffs[0])}" if diffs else ""
    return [
        head + "the incrementals in folder order:",
        f"  restore {posixpath.join(out_dir, full_folder)}{on_top} with the engine's tools, then "
        f"apply the backups of {posixpath.join(out_dir, '*-incremental-*')} in order up to "
        f"{to_time.isoformat()}",
    ]
