// Writes the generated deployment files from their sources:
//   deploy/grafana/taskmoe.json          <- scripts/lib/dashboard.ts
//   deploy/k8s/base/prometheusrule.yaml  <- deploy/prometheus/taskmoe-alerts.rules.yml
// With --check it writes nothing and exits 1 when a file is not what generation gives.
//
//   node --import tsx scripts/gen-deploy-assets.ts [--check]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse, stringify } from 'yaml';
import { buildDashboard } from './lib/dashboard.ts';

export const ROOT = path.resolve(import.meta.dirname, '..');
export const DASHBOARD_FILE = path.join(ROOT, 'deploy/grafana/taskmoe.json');
export const RULES_FILE = path.join(ROOT, 'deploy/prometheus/taskmoe-alerts.rules.yml');
export const PROMETHEUS_RULE_FILE = path.join(ROOT, 'deploy/k8s/base/prometheusrule.yaml');

export function dashboardText(): string {
  return JSON.stringify(buildDashboard(), null, 2) + '\n';
}

export function prometheusRuleText(rulesYaml = fs.readFileSync(RULES_FILE, 'utf8')): string {
  const rules = parse(rulesYaml) as { groups: unknown[] };
  const doc = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'taskmoe' },
    spec: { groups: rules.groups },
  };
  return [
    '# GENERATED from deploy/prometheus/taskmoe-alerts.rules.yml by scripts/gen-deploy-assets.ts: edit that',
    '# file and rerun. kube-prometheus-stack selects PrometheusRules by its release label by default',
    '# (ruleSelector): add it here through an overlay, or set ruleSelectorNilUsesHelmValues=false.',
    stringify(doc, { lineWidth: 0 }),
  ].join('\n');
}

export function generated(): { file: string; text: string }[] {
  return [
    { file: DASHBOARD_FILE, text: dashboardText() },
    { file: PROMETHEUS_RULE_FILE, text: prometheusRuleText() },
  ];
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  let stale = 0;
  for (const { file, text } of generated()) {
    const rel = path.relative(ROOT, file);
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    if (current === text) {
      console.log(`up to date: ${rel}`);
    } else if (check) {
      console.error(`stale: ${rel} (run: node --import tsx scripts/gen-deploy-assets.ts)`);
      stale++;
    } else {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      console.log(`wrote ${rel}`);
    }
  }
  return stale === 0 ? 0 : 1;
}

if (import.meta.filename === process.argv[1] || process.argv[1]?.endsWith('gen-deploy-assets.ts')) {
  process.exitCode = main(process.argv.slice(2));
}
