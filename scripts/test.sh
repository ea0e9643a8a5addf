#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), lints, then
# runs every test, the end-to-end ones against real sshd, nginx and PM2 included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check adapto_ops tests benchmarks reference
python3 -m pytest -q "$@"
