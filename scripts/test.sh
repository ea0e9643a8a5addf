#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), lints, then
# runs every test, the end-to-end ones against real sshd, nginx and PM2 included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m ruff check adapto_ops tests benchmarks reference
# Modules run side by side, a module per worker: every e2e module has a loopback
# slot of its own (tests/operate_sandbox.py) and spends most of its time waiting
# on sshd, nginx, PM2 and PostgreSQL. Pass -n 0 to run them one after another.
python3 -m pytest -q -n 3 --dist loadfile "$@"
