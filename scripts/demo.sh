#!/usr/bin/env bash
# The main job on a fresh machine: a rehearsal server on loopback (real sshd,
# nginx, PM2), a full deploy of the bundled reference frontend and backend to
# it over SSH, then the health check through nginx over TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
adapto sandbox up -e sandbox
adapto deploy all -e sandbox --yes
adapto health -e sandbox
