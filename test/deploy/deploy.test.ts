// Offline checks of the deployment files (deploy/, Dockerfile, .dockerignore): Kubernetes schema
// validation of every manifest and rendered kustomization, cross-checks against the server's own
// settings and routes, the dashboard, alert rules and adapter rules. The checks against real
// Prometheus, promtool and nginx are in scripts/check-deploy.sh.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { ROWS, buildDashboard } from '../../scripts/lib/dashboard.ts';
import {
  adapterRules,
  dockerfileProblems,
  dockerignoreMatcher,
  variantProblems,
} from '../../scripts/lib/deploy-checks.ts';
import { validateObjects } from '../../scripts/lib/k8s-validate.ts';
import { type Obj, findKustomizations, kustomize as render } from '../../scripts/lib/kubectl.ts';
import { hasCommand } from '../../scripts/lib/proc.ts';
import { generated } from '../../scripts/gen-deploy-assets.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const K8S = path.join(ROOT, 'deploy/k8s');
const rel = (p: string) => path.relative(ROOT, p);
const VARIANTS = [
  { dir: 'deploy/k8s/overlays/cpu', name: 'cpu', gpu: false },
  { dir: 'deploy/k8s/overlays/gpu', name: 'gpu', gpu: true },
  { dir: 'deploy/k8s/examples/cpu-custom-model', name: 'cpu-custom-model', gpu: false },
];

/** Plain manifest files: every YAML under deploy/k8s that is neither a kustomization nor the adapter's Helm values. */
function manifestFiles(dir = K8S): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...manifestFiles(p));
    else if (/\.ya?ml$/.test(e.name) && !/^kustomization\.ya?ml$/.test(e.name) && !p.includes('prometheus-adapter'))
      out.push(p);
  }
  return out.sort();
}

describe('Kubernetes manifests', () => {
  const kustomizations = findKustomizations(K8S).filter((k) => k.kind === 'Kustomization');

  it('finds the base, both overlays and the example', () => {
    const dirs = kustomizations.map((k) => rel(k.dir));
    for (const d of [
      'deploy/k8s/base',
      'deploy/k8s/overlays/cpu',
      'deploy/k8s/overlays/gpu',
      'deploy/k8s/examples/cpu-custom-model',
    ])
      assert.ok(dirs.includes(d), `${d} missing`);
  });

  it('every manifest file and every rendered kustomization passes schema and strict-field validation', async () => {
    const objects: { where: string; obj: Obj }[] = [];
    for (const f of manifestFiles()) {
      for (const d of parseAllDocuments(fs.readFileSync(f, 'utf8'))) {
        const obj = d.toJS() as Obj | null;
        if (obj !== null) objects.push({ where: `${rel(f)} ${obj.kind}/${obj.metadata?.name}`, obj });
      }
    }
    for (const k of kustomizations) {
      for (const obj of render(k.dir))
        objects.push({ where: `kustomize ${rel(k.dir)}: ${obj.kind}/${obj.metadata?.name}`, obj });
    }
    assert.ok(objects.length > 40, `only ${objects.length} objects`);
    const problems = await validateObjects(objects);
    assert.deepEqual(problems, []);
  });

  it('the validation rejects unknown fields and bad types (it is not a no-op)', async () => {
    const dep = structuredClone(render(path.join(K8S, 'overlays/cpu')).find((o) => o.kind === 'Deployment')!);
    dep.spec.template.spec.containers[0].readinessProbe.periodSecond = 5;
    dep.spec.replicas = 'two';
    const problems = await validateObjects([{ where: 'broken', obj: dep }]);
    assert.ok(
      problems.some((p) => p.message.includes('periodSecond')),
      JSON.stringify(problems),
    );
    assert.ok(
      problems.some((p) => p.message.includes('replicas')),
      JSON.stringify(problems),
    );
  });

  it("renders with kubectl kustomize, and a broken kustomization fails with kubectl's message", () => {
    const rendered = render(path.join(K8S, 'overlays/cpu'));
    const cm = rendered.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('taskmoe-settings-'));
    assert.ok(cm !== undefined, "the settings ConfigMap gets kustomize's content-hash suffix");
    assert.equal(cm.data.TASKMOE_WORKERS, '4', "the overlay merges its literal into the base's settings");
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'taskmoe-kustomize-'));
    try {
      fs.writeFileSync(path.join(broken, 'kustomization.yaml'), 'resources:\n  - missing.yaml\n');
      assert.throws(() => render(broken), /kubectl kustomize .* failed .*missing\.yaml/s);
    } finally {
      fs.rmSync(broken, { recursive: true, force: true });
    }
  });

  for (const v of VARIANTS) {
    it(`${v.name}: probes, shutdown, settings, resources, services, HPA and ingress fit together`, () => {
      assert.deepEqual(variantProblems(render(path.join(ROOT, v.dir)), v), []);
    });
  }

  it('the cross-checks catch broken variants', () => {
    const objs = render(path.join(K8S, 'overlays/gpu'));
    const dep = objs.find((o) => o.kind === 'Deployment')!;
    const cm = objs.find((o) => o.kind === 'ConfigMap')!;
    const hpa = objs.find((o) => o.kind === 'HorizontalPodAutoscaler')!;
    dep.spec.template.spec.terminationGracePeriodSeconds = 20;
    delete dep.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'];
    dep.spec.template.spec.containers[0].livenessProbe.httpGet.path = '/readyz';
    cm.data.TASKMOE_CACHE_SIZE = '10';
    hpa.spec.metrics[0].pods.metric.name = 'taskmoe_nonexistent';
    const problems = variantProblems(objs, { name: 'gpu', gpu: true }).join('\n');
    for (const want of [
      'terminationGracePeriodSeconds',
      'nvidia.com/gpu',
      'livenessProbe',
      'TASKMOE_CACHE_SIZE',
      'taskmoe_nonexistent',
    ]) {
      assert.ok(problems.includes(want), `expected a problem about ${want}:\n${problems}`);
    }
  });

  it('the gpu variant asks for a GPU and the cpu variant does not', () => {
    const limits = (dir: string) =>
      render(path.join(K8S, dir)).find((o) => o.kind === 'Deployment')!.spec.template.spec.containers[0].resources
        .limits;
    assert.equal(limits('overlays/gpu')['nvidia.com/gpu'], 1);
    assert.equal(limits('overlays/cpu')['nvidia.com/gpu'], undefined);
  });
});

describe('generated files', () => {
  it('deploy/grafana/taskmoe.json and deploy/k8s/base/prometheusrule.yaml are up to date', () => {
    for (const { file, text } of generated()) {
      assert.equal(
        fs.readFileSync(file, 'utf8'),
        text,
        `${rel(file)} is stale: node --import tsx scripts/gen-deploy-assets.ts`,
      );
    }
  });
});

describe('Grafana dashboard', () => {
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy/grafana/taskmoe.json'), 'utf8')) as Obj;
  const panels = (dash.panels as Obj[]).filter((p) => p.type !== 'row');

  it('has namespace, pod and pair variables', () => {
    const names = (dash.templating.list as Obj[]).map((v) => v.name);
    for (const v of ['datasource', 'namespace', 'pod', 'pair']) assert.ok(names.includes(v), `variable ${v}`);
  });

  it('has the panels issue 5 lists', () => {
    const titles = panels.map((p) => p.title as string);
    for (const want of [
      'Generated tokens/s by pair',
      'Requests/s by status code',
      'Request latency p50 / p95 / p99',
      'Queue depth by pair',
      'Queue wait p50 / p95 by pair',
      'Batch size (sentences)',
      'Batch size (tokens)',
      'Cache hit ratio',
      'Cache bytes',
      'Cache entries',
      'Cache evictions/s',
      'Sub-network load time',
      'Rejections by reason',
      'Engine tensors',
      'Process CPU',
      'Process memory',
    ])
      assert.ok(titles.includes(want), `panel ${want}`);
  });

  it('every query is scoped by the namespace and pod variables and uses the datasource variable', () => {
    for (const p of panels) {
      assert.equal(p.datasource.uid, '${datasource}', p.title);
      for (const t of p.targets as Obj[]) {
        assert.match(t.expr, /namespace="\$namespace"/, `${p.title}: ${t.expr}`);
        assert.match(t.expr, /pod=~"\$pod"/, `${p.title}: ${t.expr}`);
        if (/by pair/.test(p.title)) assert.match(t.expr, /pair=~"\$pair"/, `${p.title}: ${t.expr}`);
      }
    }
  });

  it('panels have unique ids and do not overlap', () => {
    const ids = (dash.panels as Obj[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    const cells = new Set<string>();
    for (const p of dash.panels as Obj[]) {
      const g = p.gridPos;
      assert.ok(g.x >= 0 && g.x + g.w <= 24, `${p.title} is off the grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `${p.title} overlaps another panel`);
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('is what the generator builds', () => {
    assert.deepEqual(dash, JSON.parse(JSON.stringify(buildDashboard())));
    assert.equal(ROWS.flatMap((r) => r.panels).length, panels.length);
  });
});

describe('Prometheus rules and prometheus-adapter', () => {
  const rules = parseYaml(
    fs.readFileSync(path.join(ROOT, 'deploy/prometheus/taskmoe-alerts.rules.yml'), 'utf8'),
  ) as Obj;
  const alerts = (rules.groups as Obj[]).flatMap((g) => g.rules as Obj[]);

  it('alert on latency, rejections, queue saturation, cache thrashing, tensor leaks and unready pods', () => {
    const names = alerts.map((a) => a.alert);
    for (const want of [
      'TaskmoeHighLatencyP99',
      'TaskmoeRejectionsSustained',
      'TaskmoeQueueSaturated',
      'TaskmoeCacheThrashing',
      'TaskmoeTensorLeak',
      'TaskmoePodsNotReady',
    ]) {
      assert.ok(names.includes(want), want);
    }
    for (const a of alerts) {
      assert.ok(a.for, `${a.alert} has no for:`);
      assert.ok(a.labels?.severity, `${a.alert} has no severity`);
      assert.ok(a.annotations?.summary && a.annotations?.description, `${a.alert} has no summary/description`);
    }
  });

  it(
    'promtool check rules passes',
    { skip: hasCommand('promtool') ? false : 'promtool not installed (apt-get install prometheus)' },
    () => {
      const r = spawnSync(
        'promtool',
        ['check', 'rules', path.join(ROOT, 'deploy/prometheus/taskmoe-alerts.rules.yml')],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stdout + r.stderr);
    },
  );

  it('adapter rules use the templates prometheus-adapter fills in', () => {
    const rs = adapterRules();
    assert.ok(rs.length >= 1);
    for (const r of rs) {
      for (const t of ['<<.Series>>', '<<.LabelMatchers>>', '<<.GroupBy>>'])
        assert.ok(r.metricsQuery.includes(t), `${r.name.as}: ${t}`);
      assert.deepEqual(Object.keys(r.resources.overrides).sort(), ['namespace', 'pod']);
    }
  });
});

describe('Dockerfile and .dockerignore', () => {
  it('has cpu and gpu targets, non-root, the demo model, /models, Node 20, CUDA 11.2 + cuDNN 8', () => {
    assert.deepEqual(dockerfileProblems(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')), []);
  });

  it('the build context holds the sources, lockfile and demo model, and nothing else', () => {
    const excluded = dockerignoreMatcher(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
    for (const p of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'src/server/app.ts',
      'bin/taskmoe.js',
      'models/demo/config.json',
    ]) {
      assert.equal(excluded(p), false, `${p} must be in the context`);
    }
    for (const p of [
      'node_modules/fastify/package.json',
      'dist/cli/main.js',
      '.git/HEAD',
      'test/deploy.test.ts',
      'runs/x/log.txt',
      'models/other/config.json',
      'deploy/k8s/base/deployment.yaml',
      'src/debug.log',
    ]) {
      assert.equal(excluded(p), true, `${p} must not be in the context`);
    }
  });
});

describe('deployment guide (docs/deployment.md)', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'docs', 'deployment.md'), 'utf8');
  it('covers build, push, apply, scale and every dashboard panel', () => {
    assert.match(readme, /^#+ Deployment/m);
    for (const h of ['Build', 'Push', 'Apply', 'Scale'])
      assert.match(readme, new RegExp(`^#+ .*${h}`, 'm'), `section ${h}`);
    for (const p of ROWS.flatMap((r) => r.panels))
      assert.ok(readme.includes(p.title), `panel ${p.title} not described`);
  });
});
