#!/usr/bin/env bash
# nightly-backup.sh - fetch the newest completed RDS backup of one instance, keep the last N.
#
# What one run does:
#   1. loads credentials from an env file (mode 0600, never on a command line);
#   2. takes a non-blocking flock, so two runs never overlap (the second exits 5);
#   3. asks the RDS API for the newest COMPLETED backup of the instance and names its folder
#      after the backup's end time and id: <root>/<YYYYmmddTHHMMSSZ>_<backup-id>. The same
#      backup always lands in the same folder, so a re-run resumes (or finds it done) instead
#      of downloading it twice;
#   4. downloads it (resumable; `rds-backup download` checks sizes, CRC-64 and MD5 and
#      writes rds-backup-manifest.json only when every file is complete);
#   5. only after that succeeded: keeps the newest NIGHTLY_KEEP folders that hold a manifest
#      and deletes older ones. Folders without a manifest (interrupted or failed runs) are
#      never deleted, and neither is the folder just written;
#   6. exits with rds-backup's exit code (0 done, 1 some files failed, 2 usage, 3 auth/API,
#      4 verification, 5 locked, 6 the backup root cannot take the files, 130/143
#      interrupted).
#
# Needs (Linux): bash, flock (util-linux), GNU coreutils and findutils, python3.
#
# All output is appended to NIGHTLY_LOG_FILE. A successful run prints nothing, so cron mails
# nothing; a failed run also prints the tail of its log to stderr, which cron mails to
# MAILTO. Example crontab (crontab -e, as the user owning the backup root):
#
#   MAILTO=dba-team@example.com
#   # m  h  dom mon dow  command
#   30   2  *   *   *    /usr/local/bin/nightly-backup.sh
#
# Settings (environment variables, or lines in the env file; defaults in brackets):
#   NIGHTLY_ENV_FILE      env file to load [/etc/rds-backup/rds-backup.env]; it must be owned
#                         by you or root and not readable by group/others (chmod 600). An
#                         empty value loads nothing (systemd's EnvironmentFile= did it).
#   NIGHTLY_INSTANCE_ID   RDS instance id (required)
#   NIGHTLY_BACKUP_ROOT   folder holding one sub-folder per backup [/var/backups/rds]
#   NIGHTLY_KEEP          complete backups to keep, >= 1 [7]
#   NIGHTLY_BACKUP_TYPE   auto | manual | incremental | fragment [auto]
#   NIGHTLY_LOG_FILE      log file, appended to [<root>/nightly-backup.log]
#   NIGHTLY_LOCK_FILE     flock file [<root>/.nightly-backup.lock]
#   NIGHTLY_VERIFY        1: re-read the downloaded files with `rds-backup verify` [0]
#   RDS_BACKUP_BIN        the rds-backup program [rds-backup, from PATH]
# Read by rds-backup itself (see `rds-backup download --help` for all RDS_BACKUP_* options):
#   HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK   access key pair (or the other credential sources
#                         listed by `rds-backup --help`)
#   HUAWEICLOUD_SDK_REGION or RDS_BACKUP_REGION, e.g. ap-southeast-1
#   HUAWEICLOUD_SDK_PROJECT_ID               project id of that region
#   RDS_BACKUP_ENDPOINT   optional: a private endpoint, or `rds-backup simulate` to try this
#
# Try it against the simulator (no cloud account needed):
#   rds-backup simulate --port 8700 &
#   export RDS_BACKUP_ENDPOINT=http://127.0.0.1:8700 HUAWEICLOUD_SDK_AK=... (printed by simulate)
#   NIGHTLY_ENV_FILE= NIGHTLY_INSTANCE_ID=f275a18b123fea3474caa1d0cf2903dcin01 \
#     NIGHTLY_BACKUP_ROOT=/tmp/rds-nightly ./nightly-backup.sh; echo "exit $?"

set -euo pipefail
umask 077

prog=nightly-backup

die() { # die CODE MESSAGE: before the log file is usable, stderr is all we have
    printf '%s: %s\n' "$prog" "$2" >&2
    exit "$1"
}

# --- credentials and settings -------------------------------------------------------------

env_file=${NIGHTLY_ENV_FILE-/etc/rds-backup/rds-backup.env}
if [[ -n $env_file ]]; then
    if [[ -e $env_file ]]; then
        read -r mode owner < <(stat -L -c '%a %u' -- "$env_file")
        if (( 8#$mode & 8#077 )); then
            die 2 "$env_file is mode $mode: it holds secrets, run: chmod 600 '$env_file'"
        fi
        if [[ $owner != 0 && $owner != "$EUID" ]]; then
            die 2 "$env_file belongs to uid $owner, not to you or root; refusing to load it"
        fi
        set -a # every KEY=value line becomes an exported variable, for rds-backup
        # shellcheck source=/dev/null
        . "$env_file"
        set +a
    elif [[ -n ${NIGHTLY_ENV_FILE-} ]]; then
        die 2 "NIGHTLY_ENV_FILE=$env_file does not exist"
    fi
fi

instance=${NIGHTLY_INSTANCE_ID:-}
root=${NIGHTLY_BACKUP_ROOT:-/var/backups/rds}
keep=${NIGHTLY_KEEP:-7}
backup_type=${NIGHTLY_BACKUP_TYPE:-auto}
log_file=${NIGHTLY_LOG_FILE:-$root/nightly-backup.log}
lock_file=${NIGHTLY_LOCK_FILE:-$root/.nightly-backup.lock}
verify=${NIGHTLY_VERIFY:-0}
rds_backup=${RDS_BACKUP_BIN:-rds-backup}

[[ -n $instance ]] || die 2 "set NIGHTLY_INSTANCE_ID to the RDS instance id"
[[ $keep =~ ^[1-9][0-9]*$ ]] || die 2 "NIGHTLY_KEEP must be a whole number >= 1, not '$keep'"
case $backup_type in
    auto | manual | incremental | fragment) ;;
    *) die 2 "NIGHTLY_BACKUP_TYPE must be auto, manual, incremental or fragment" ;;
esac
root=${root%/}
[[ -n $root && $root == /* ]] || die 2 "NIGHTLY_BACKUP_ROOT must be an absolute path"
command -v "$rds_backup" >/dev/null || die 2 "cannot run '$rds_backup' (set RDS_BACKUP_BIN)"
command -v python3 >/dev/null || die 2 "python3 is needed to read rds-backup's JSON"

mkdir -p -- "$root" "$(dirname -- "$log_file")" "$(dirname -- "$lock_file")"
touch -- "$log_file"
log_start=$(stat -c %s -- "$log_file") # this run's lines start at this byte

log() {
    printf '%s %s[%d]: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$prog" "$$" "$*" >>"$log_file"
}

finish() { # finish CODE: log it; on failure show this run's log on stderr for cron's mail
    local code=$1
    if (( code == 0 )); then
        log "done (exit 0)"
    else
        log "FAILED (exit $code)"
        {
            printf '%s: backup of instance %s FAILED with exit code %d.\n' \
                "$prog" "$instance" "$code"
            printf 'Last lines of this run (full log: %s):\n\n' "$log_file"
            tail -c "+$((log_start + 1))" -- "$log_file" | tail -n 60
        } >&2
    fi
    exit "$code"
}

# --- one run at a time ----------------------------------------------------------------------

exec 9>>"$lock_file"
if ! flock -n 9; then
    log "another run holds $lock_file; not starting a second one"
    die 5 "another run holds $lock_file (still running?); this run did nothing"
fi
# fd 9 stays open in rds-backup too: the lock lasts until every child has exited.

log "start: instance $instance, newest COMPLETED $backup_type backup into $root (keep $keep)"

# --- which backup -------------------------------------------------------------------------

rc=0
listing=$("$rds_backup" --log-format text backups --instance-id "$instance" \
    --backup-type "$backup_type" --status COMPLETED --json 2>>"$log_file") || rc=$?
if (( rc != 0 )); then
    log "could not list the backups of $instance"
    finish "$rc"
fi
# The list is newest first; the folder name sorts by the backup's end time (UTC).
chosen=$(python3 -c '
import json, sys
from datetime import timezone, datetime
for b in json.load(sys.stdin):
    if b.get("end_time") and b["status"].upper() == "COMPLETED":
        end = datetime.fromisoformat(b["end_time"]).astimezone(timezone.utc)
        print(b["id"], end.strftime("%Y%m%dT%H%M%SZ"))
        break
' <<<"$listing") || { log "could not read the backup list"; finish 3; }
if [[ -z $chosen ]]; then
    log "instance $instance has no COMPLETED $backup_type backup"
    finish 3
fi
read -r backup_id stamp <<<"$chosen"
[[ $backup_id =~ ^[0-9A-Za-z]+$ ]] || { log "unexpected backup id '$backup_id'"; finish 3; }
folder="${stamp}_${backup_id}"
dest="$root/$folder"
log "newest backup: $backup_id, into $dest"

# --- download (and verify) ------------------------------------------------------------------

"$rds_backup" --log-format text download "$backup_id" -o "$dest" --progress log \
    >>"$log_file" 2>&1 || rc=$?
if (( rc == 0 )) && [[ $verify == 1 ]]; then
    "$rds_backup" --log-format text verify "$dest" >>"$log_file" 2>&1 || rc=$?
fi
if (( rc != 0 )); then
    log "download of $backup_id did not complete; nothing deleted (re-run to resume)"
    finish "$rc"
fi
if [[ ! -f $dest/rds-backup-manifest.json ]]; then
    log "rds-backup exited 0 but $dest has no manifest; nothing deleted"
    finish 4
fi

# --- retention: only after a complete download ----------------------------------------------

complete=() # folder names this script made, holding a manifest, newest first
while IFS= read -r name; do
    if [[ -f $root/$name/rds-backup-manifest.json ]]; then
        complete+=("$name")
    else
        log "keeping $root/$name: no manifest (an unfinished download; remove it by hand)"
    fi
done < <(find "$root" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9]{8}T[0-9]{6}Z_[0-9A-Za-z]+' -printf '%f\n' | LC_ALL=C sort -r)

for name in "${complete[@]:keep}"; do
    [[ $name == "$folder" ]] && continue # never the folder just written
    log "retention: removing $root/$name (keeping the newest $keep)"
    rm -rf -- "${root:?}/${name:?}"
done

finish 0
