#!/usr/bin/env bash
# The main job on a fresh machine: render every sandbox config and check it
# with the real tools (nginx -t, node, ufw --dry-run, logrotate).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
adapto render all -e sandbox --check
