#!/usr/bin/env bash
# Pair-affinity benchmark (scripts/affinity-bench.ts) with Debian's nginx, installed when missing.
#   bash scripts/affinity-bench.sh [--routing pair,target] [--requests N] [--concurrency N] [--json FILE] ...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh
apt_install nginx
[ -d node_modules ] || npm ci
exec node --import tsx scripts/affinity-bench.ts "$@"
