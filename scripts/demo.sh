#!/usr/bin/env bash
# Set up a virtual environment (once) and run the demo: a built-in simulator of the Huawei
# RDS API and object store serves a sample backup, which rds-backup downloads and checks.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv >/dev/null 2>&1 || test -x .venv/bin/python
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/rds-backup demo "$@"
