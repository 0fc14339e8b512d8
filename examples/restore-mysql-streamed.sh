#!/usr/bin/env bash
# Restore an RDS for MySQL full backup with no second copy on disk: each .qp file of the
# backup is streamed by `rds-backup cat` straight into xbstream, in order, while it downloads.
#
#   restore-mysql-streamed.sh BACKUP_ID TARGET_DIR
#
# Credentials and the region or endpoint come from the environment, as for every
# rds-backup command (HUAWEICLOUD_SDK_AK/SK/PROJECT_ID, RDS_BACKUP_REGION or
# RDS_BACKUP_ENDPOINT). Needs Percona XtraBackup's xbstream (same major version as the
# instance) and qpress; XBSTREAM overrides the command that receives each stream.
#
# A stream that fails (exit 1), or whose bytes do not match the object store's checksum
# (exit 4), stops the restore: TARGET_DIR then holds a partial restore; empty it and run
# again. Nothing here ever lands on disk as a .qp file.
set -euo pipefail

backup_id=${1:?usage: restore-mysql-streamed.sh BACKUP_ID TARGET_DIR}
target=${2:?usage: restore-mysql-streamed.sh BACKUP_ID TARGET_DIR}
rds_backup=${RDS_BACKUP_BIN:-rds-backup}
xbstream=${XBSTREAM:-xbstream -x -p 4}

mkdir -p "$target"
if [ -n "$(ls -A "$target")" ]; then
    echo "restore-mysql-streamed: $target is not empty" >&2
    exit 2
fi

# The backup's .qp files, by name (the listing comes from the RDS API). The listing is
# taken first, so that its exit status is checked (rds-backup has said why on stderr).
status=0
listing=$("$rds_backup" files "$backup_id" --json) || status=$?
if [ "$status" -ne 0 ]; then
    echo "restore-mysql-streamed: cannot list the files of backup $backup_id (exit $status)" >&2
    exit "$status"
fi
mapfile -t names < <(
    printf '%s' "$listing" |
        python3 -c 'import json, sys; print("\n".join(f["name"] for f in json.load(sys.stdin)["files"] if f["name"].endswith(".qp")))'
)
if [ "${#names[@]}" -eq 0 ]; then
    echo "restore-mysql-streamed: backup $backup_id has no .qp file" >&2
    exit 2
fi

for name in "${names[@]}"; do
    echo "restore-mysql-streamed: streaming $name" >&2
    # pipefail: a failed or corrupt stream fails the restore, whatever xbstream says.
    "$rds_backup" cat "$backup_id" "$name" | $xbstream -C "$target"
done

cat >&2 <<NEXT
restore-mysql-streamed: ${#names[@]} file(s) extracted into $target; next:
  xtrabackup --decompress --remove-original --parallel=4 --target-dir=$target
  xtrabackup --prepare --target-dir=$target
  chown -R mysql:mysql $target   # then point datadir at it and start mysqld
NEXT
