#!/usr/bin/env bash
# nightly-backup.sh - the nightly mirror of RDS backups, from cron: `rds-backup sync` with a
# log file, credentials from a 0600 env file, and a mail (cron's) only when something failed.
#
# What one run does:
#   1. loads settings and credentials from an env file (mode 0600, never on a command line);
#   2. runs `rds-backup sync`, which for each instance (RDS_BACKUP_INSTANCE_ID, or
#      RDS_BACKUP_ALL_INSTANCES=1 for the whole project) fetches its newest COMPLETED backup
#      into <root>/<instance-id>/<backup-id>/ (resumable; a complete folder is skipped
#      without fetching a byte), then keeps the newest RDS_BACKUP_KEEP complete folders of
#      each instance whose backups all arrived. sync holds a lock on the root: a second run
#      exits 5 at once. One failing instance never stops the others;
#   3. with NIGHTLY_VERIFY=1, re-reads each folder fetched tonight with `rds-backup verify`;
#   4. exits with sync's code (0 every instance done, 1 some failed, 2 usage, 3 auth/API,
#      5 another run holds the root, 130/143 interrupted), and on failure prints this run's
#      log lines to stderr, which cron mails.
#
# Needs (Linux): bash, GNU coreutils, python3 (to read sync's JSON report).
#
# Example crontab (crontab -e, as the user owning the backup root):
#
#   MAILTO=dba-team@example.com
#   # m  h  dom mon dow  command
#   30   2  *   *   *    /usr/local/bin/nightly-backup.sh
#
# Settings (environment variables, or lines in the env file; defaults in brackets):
#   NIGHTLY_ENV_FILE      env file to load [/etc/rds-backup/rds-backup.env]; it must be owned
#                         by you or root and not readable by group/others (chmod 600). An
#                         empty value loads nothing.
#   NIGHTLY_LOG_FILE      log file, appended to [<root>/nightly-backup.log]
#   NIGHTLY_VERIFY        1: re-read the folders fetched tonight with `rds-backup verify` [0]
#   RDS_BACKUP_BIN        the rds-backup program [rds-backup, from PATH]
# Read by rds-backup itself (every option of `rds-backup sync --help` has its variable):
#   RDS_BACKUP_OUTPUT     the mirror's root [/var/backups/rds]
#   RDS_BACKUP_INSTANCE_ID="id1 id2" or RDS_BACKUP_ALL_INSTANCES=1   what to mirror
#   RDS_BACKUP_KEEP       complete backups to keep per instance [7]
#   RDS_BACKUP_BACKUP_TYPE, RDS_BACKUP_METRICS_FILE, RDS_BACKUP_SHARD, RDS_BACKUP_LIMIT_RATE
#   HUAWEICLOUD_SDK_AK, HUAWEICLOUD_SDK_SK   access key pair (or the other credential sources
#                         listed by `rds-backup --help`)
#   HUAWEICLOUD_SDK_REGION or RDS_BACKUP_REGION, e.g. ap-southeast-1
#   HUAWEICLOUD_SDK_PROJECT_ID               project id of that region
#   RDS_BACKUP_ENDPOINT   optional: a private endpoint, or `rds-backup simulate` to try this
#
# Try it against the simulator (no cloud account needed):
#   rds-backup simulate --port 8700 &
#   export RDS_BACKUP_ENDPOINT=http://127.0.0.1:8700 HUAWEICLOUD_SDK_AK=... (printed by simulate)
#   NIGHTLY_ENV_FILE= RDS_BACKUP_ALL_INSTANCES=1 RDS_BACKUP_OUTPUT=/tmp/rds-nightly \
#     ./nightly-backup.sh; echo "exit $?"

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

export RDS_BACKUP_OUTPUT=${RDS_BACKUP_OUTPUT:-/var/backups/rds}
export RDS_BACKUP_KEEP=${RDS_BACKUP_KEEP:-7}
root=${RDS_BACKUP_OUTPUT%/}
log_file=${NIGHTLY_LOG_FILE:-$root/nightly-backup.log}
verify=${NIGHTLY_VERIFY:-0}
rds_backup=${RDS_BACKUP_BIN:-rds-backup}

if [[ -z ${RDS_BACKUP_INSTANCE_ID:-} && ${RDS_BACKUP_ALL_INSTANCES:-0} != 1 ]]; then
    die 2 "set RDS_BACKUP_INSTANCE_ID (one or more ids) or RDS_BACKUP_ALL_INSTANCES=1"
fi
[[ -n $root && $root == /* ]] || die 2 "RDS_BACKUP_OUTPUT must be an absolute path"
command -v "$rds_backup" >/dev/null || die 2 "cannot run '$rds_backup' (set RDS_BACKUP_BIN)"
command -v python3 >/dev/null || die 2 "python3 is needed to read rds-backup's JSON"

mkdir -p -- "$root" "$(dirname -- "$log_file")"
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
            printf '%s: the backup mirror in %s FAILED with exit code %d.\n' \
                "$prog" "$root" "$code"
            printf 'Last lines of this run (full log: %s):\n\n' "$log_file"
            tail -c "+$((log_start + 1))" -- "$log_file" | tail -n 60
        } >&2
    fi
    exit "$code"
}

log "start: mirror into $root (keep $RDS_BACKUP_KEEP per instance)"

# --- the mirror -----------------------------------------------------------------------------

rc=0
report=$("$rds_backup" --log-format text sync --progress log --json 2>>"$log_file") || rc=$?

# One line per instance for the log, and the folders fetched tonight (for verify).
fetched=()
if [[ -n $report ]]; then
    while IFS=$'\t' read -r kind text; do
        case $kind in
            line) log "$text" ;;
            folder) fetched+=("$text") ;;
        esac
    done < <(python3 -c '
import json, sys
report = json.load(sys.stdin)
root = sys.argv[1]
for i in report["instances"]:
    got = [b["backup_id"] for b in i["fetched"]]
    state = "ok" if i["ok"] else "FAILED: " + "; ".join(
        [i["error"]] if i["error"] else [b["backup_id"] + ": " + (b["error"] or "") for b in i["failed"]]
    )
    print("line\tinstance %s: %s; fetched %s; skipped %s; removed %s" % (
        i["instance_id"], state, " ".join(got) or "-", " ".join(i["skipped"]) or "-",
        " ".join(i["removed"]) or "-"))
    for b in got:
        print("folder\t%s/%s/%s" % (root, i["instance_id"], b))
' "$root" <<<"$report") || { log "could not read sync's report"; (( rc )) || rc=1; }
fi

if (( rc == 0 )) && [[ $verify == 1 ]]; then
    for folder in "${fetched[@]}"; do
        "$rds_backup" --log-format text verify "$folder" >>"$log_file" 2>&1 || rc=$?
    done
fi

finish "$rc"
