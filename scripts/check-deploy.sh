#!/usr/bin/env bash
# Deployment checks (issue 5). Installs what it needs (Debian's prometheus, for promtool and the
# server) when missing, then:
#   1. type-checks the scripts;
#   2. the offline checks in test/deploy/deploy.test.ts: every Kubernetes manifest and every kustomization
#      (base, cpu and gpu overlays, example) as `kubectl kustomize` renders it, against the
#      Kubernetes schemas, strict fields included; cross-checks with the server's settings, routes
#      and port; dashboard, alert rules, prometheus-adapter rules, Dockerfile and .dockerignore;
#   3. generated files (dashboard JSON, PrometheusRule) up to date;
#   4. promtool check rules;
#   5. a real Prometheus scraping taskmoe under a short load, evaluating every dashboard, alert and
#      adapter expression (scripts/prometheus-check.ts);
#   6. the Dockerfile's cpu image replayed in a clean temporary copy (npm ci, build,
#      npm ci --omit=dev, start as the image's user, /readyz, a translation, SIGTERM) and the gpu
#      target's plan (scripts/image-check.ts). --quick skips the replay (about 2 minutes).
#
#   bash scripts/check-deploy.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/apt.sh

quick=0
[ "${1:-}" = "--quick" ] && quick=1

apt_install prometheus
[ -d node_modules ] || npm ci

step() { echo; echo "== $*"; }

step "type-check scripts"
npx tsc -p scripts/tsconfig.json

step "offline manifest, dashboard, rules and Dockerfile checks"
node --import tsx --test --test-reporter=dot test/deploy/deploy.test.ts

step "generated files"
node --import tsx scripts/gen-deploy-assets.ts --check

step "promtool check rules"
promtool check rules deploy/prometheus/*.rules.yml

step "real Prometheus: dashboard, alert and adapter expressions"
node --import tsx scripts/prometheus-check.ts

step "Dockerfile: gpu target plan"
node --import tsx scripts/image-check.ts --target gpu --dry-run
if [ $quick -eq 0 ]; then
  step "Dockerfile: cpu image replayed in a clean copy"
  node --import tsx scripts/image-check.ts --target cpu
fi

echo
echo "check-deploy: all checks passed"
