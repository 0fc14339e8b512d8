#!/usr/bin/env bash
# Set up a virtual environment (once) and run the demo: a built-in simulator of the Huawei
# RDS API and object store serves a sample backup, which rds-backup downloads and checks.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv . rds-backup
exec .venv/bin/rds-backup demo "$@"
