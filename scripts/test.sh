#!/usr/bin/env bash
# Set up a virtual environment (once) and run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/venv.sh
ensure_venv '.[test]' pytest
exec .venv/bin/python -m pytest "$@"
