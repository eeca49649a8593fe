// What a schema cannot see: the rendered manifests of a variant checked against each other and
// against the server itself (its settings, routes and port), the prometheus-adapter rules and the
// Dockerfile. Each function returns a list of problems; none means the check passes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { SETTINGS, resolveSettings } from '../../src/server/settings.ts';
import type { Obj } from './kubectl.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const ADAPTER_VALUES = path.join(ROOT, 'deploy/k8s/prometheus-adapter/values.yaml');

/** Environment variables the server (or its backend selection) reads. */
const KNOWN_ENV = new Set([
  ...SETTINGS.map((s) => s.env),
  'TASKMOE_BACKEND',
  'TF_FORCE_GPU_ALLOW_GROWTH',
  'TF_CPP_MIN_LOG_LEVEL',
  'NODE_ENV',
  'NODE_OPTIONS',
]);
/** The server's GET routes that probes may use. */
const PROBE_ROUTES = { startup: '/readyz', readiness: '/readyz', liveness: '/healthz' } as const;

export interface AdapterRule {
  seriesQuery: string;
  metricsQuery: string;
  name: { matches: string; as: string };
  resources: Obj;
}

export function adapterRules(file = ADAPTER_VALUES): AdapterRule[] {
  const v = parseYaml(fs.readFileSync(file, 'utf8')) as Obj;
  return (v.rules?.custom ?? []) as AdapterRule[];
}

/** Parses a Kubernetes quantity into a number (cores for CPU, bytes for memory). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(q);
  if (m === null) throw new Error(`bad quantity ${q}`);
  const units: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  if (!(m[2] in units)) throw new Error(`bad quantity unit ${q}`);
  return Number(m[1]) * units[m[2]];
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/**
 * Cross-checks one rendered variant (a list of objects from one kustomization). `gpu` says whether
 * it is meant for GPU nodes.
 */
export function variantProblems(objects: Obj[], variant: { name: string; gpu: boolean }): string[] {
  const p: string[] = [];
  const err = (msg: string) => p.push(`${variant.name}: ${msg}`);
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployments = of('Deployment');
  if (deployments.length !== 1) {
    err(`expected one Deployment, found ${deployments.length}`);
    return p;
  }
  const dep = deployments[0];
  const ns = dep.metadata.namespace;
  const pod = dep.spec.template;
  const podLabels = pod.metadata?.labels as Record<string, string>;
  if (!matches(dep.spec.selector?.matchLabels, podLabels))
    err('the Deployment selector does not match its pod template labels');
  const c = pod.spec.containers.find((x: Obj) => x.name === 'taskmoe');
  if (c === undefined) {
    err('no container named taskmoe');
    return p;
  }
  if (typeof c.image !== 'string' || !c.image.includes('/') || !c.image.includes(':'))
    err(`image "${c.image}" is not a registry reference with a tag (overlay images: missing?)`);
  if (variant.gpu !== /gpu/.test(c.image))
    err(`image ${c.image} does not match a ${variant.gpu ? 'gpu' : 'cpu'} variant`);

  // Settings: every key known, every value accepted by the server's own parser.
  const env: Record<string, string> = {};
  for (const ef of c.envFrom ?? []) {
    const name = ef.configMapRef?.name;
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === name && o.metadata.namespace === ns);
    if (cm === undefined) err(`envFrom ConfigMap ${name} is not in the variant`);
    else Object.assign(env, cm.data);
  }
  for (const e of c.env ?? []) if (typeof e.value === 'string') env[e.name] = e.value;
  for (const k of Object.keys(env))
    if (!KNOWN_ENV.has(k)) err(`setting ${k} is not one the server reads (taskmoe --help lists them)`);
  let settings: ReturnType<typeof resolveSettings> | undefined;
  try {
    settings = resolveSettings({}, env);
  } catch (e) {
    err(`settings rejected by the server: ${(e as Error).message}`);
  }
  if (settings === undefined) return p;

  // Port and probes.
  const port = (c.ports ?? []).find((x: Obj) => x.name === 'http');
  if (port?.containerPort !== settings.port)
    err(`container port http (${port?.containerPort}) is not the server's port ${settings.port}`);
  for (const [probe, route] of Object.entries(PROBE_ROUTES)) {
    const pr = c[`${probe}Probe`];
    if (pr?.httpGet === undefined) {
      err(`no ${probe}Probe with httpGet`);
      continue;
    }
    if (pr.httpGet.path !== route) err(`${probe}Probe checks ${pr.httpGet.path}, expected ${route}`);
    if (pr.httpGet.port !== 'http' && pr.httpGet.port !== settings.port)
      err(`${probe}Probe port ${pr.httpGet.port} is not the http port`);
  }
  const startupBudget = (c.startupProbe?.periodSeconds ?? 10) * (c.startupProbe?.failureThreshold ?? 3);
  if (startupBudget < 120) err(`startupProbe allows ${startupBudget} s for warm-up; at least 120 s expected`);
  if (variant.gpu && startupBudget < 300)
    err(`gpu startupProbe allows ${startupBudget} s; CUDA start-up and loading need at least 300 s`);
  if (settings.warm === 'none')
    err('TASKMOE_WARM=none: pods turn ready cold and the first requests of every pair pay the load');

  // Shutdown: preStop pause, then SIGTERM and the drain grace, inside the termination grace period.
  const pre = c.lifecycle?.preStop;
  const preStopSeconds =
    pre?.sleep?.seconds ?? (pre?.exec?.command?.[0] === 'sleep' ? Number(pre.exec.command[1]) : NaN);
  if (!(preStopSeconds > 0)) err('no preStop pause (exec sleep N or sleep action)');
  const tgps = pod.spec.terminationGracePeriodSeconds ?? 30;
  const needed = (preStopSeconds || 0) + settings.drainGraceMs / 1000;
  if (!(tgps >= needed + 5))
    err(
      `terminationGracePeriodSeconds ${tgps} must exceed preStop ${preStopSeconds} s + TASKMOE_DRAIN_GRACE_MS ${settings.drainGraceMs} ms by at least 5 s`,
    );

  // Resources.
  const req = c.resources?.requests ?? {};
  const lim = c.resources?.limits ?? {};
  if (req.cpu === undefined || req.memory === undefined) err('CPU and memory requests are required');
  if (lim.memory === undefined) err('a memory limit is required');
  const gpus = Number(lim['nvidia.com/gpu'] ?? 0);
  if (variant.gpu && !(gpus >= 1)) err('gpu variant without nvidia.com/gpu in limits');
  if (!variant.gpu && gpus > 0) err('cpu variant requests nvidia.com/gpu');
  if (variant.gpu && env.TASKMOE_WORKERS !== undefined && settings.workers > gpus)
    err(`TASKMOE_WORKERS=${settings.workers} engine workers share ${gpus} GPU(s)`);
  if (!variant.gpu) {
    if (req.cpu !== undefined && settings.workers > Math.ceil(quantity(req.cpu)))
      err(`TASKMOE_WORKERS=${settings.workers} is more than the ${req.cpu} CPU requested`);
    if (env.TASKMOE_WORKERS === undefined)
      err('TASKMOE_WORKERS unset: the default (one per host core) ignores the CPU request');
    // On the wasm backend the caches live in process memory: workers x budget + model + runtime.
    if (lim.memory !== undefined && quantity(lim.memory) < settings.workers * settings.cacheBytes + 1024 ** 3) {
      err(
        `memory limit ${lim.memory} is under ${settings.workers} workers x ${settings.cacheBytes / 1024 ** 2} MiB cache + 1 GiB`,
      );
    }
  }

  // Volumes.
  const mounts = new Map((c.volumeMounts ?? []).map((m: Obj) => [m.mountPath, m]));
  const models = mounts.get('/models') as Obj | undefined;
  if (models === undefined) err('no volume mounted at /models');
  else if (!(pod.spec.volumes ?? []).some((v: Obj) => v.name === models.name))
    err(`volume ${models.name} is not defined`);
  if (c.securityContext?.readOnlyRootFilesystem === true && !mounts.has('/tmp'))
    err('read-only root filesystem without a writable /tmp');
  if (pod.spec.securityContext?.runAsNonRoot !== true) err('pods must run as non-root (runAsNonRoot)');

  // Services, ServiceMonitor, PDB, HPA, Ingress.
  const services = of('Service');
  for (const s of services) {
    if (!matches(s.spec.selector, podLabels)) err(`Service ${s.metadata.name} does not select the pods`);
    for (const sp of s.spec.ports ?? [])
      if (sp.targetPort !== 'http' && sp.targetPort !== settings.port)
        err(`Service ${s.metadata.name} targets port ${sp.targetPort}`);
  }
  for (const sm of of('ServiceMonitor')) {
    const selected = services.filter((s) => matches(sm.spec.selector?.matchLabels, s.metadata.labels));
    if (selected.length !== 1)
      err(
        `ServiceMonitor ${sm.metadata.name} selects ${selected.length} Services; exactly one, or pods are scraped twice`,
      );
    for (const ep of sm.spec.endpoints ?? []) {
      if (ep.path !== undefined && ep.path !== '/metrics') err(`ServiceMonitor scrapes ${ep.path}`);
      if (selected[0] && !(selected[0].spec.ports ?? []).some((sp: Obj) => sp.name === ep.port))
        err(`ServiceMonitor port ${ep.port} is not a port of Service ${selected[0].metadata.name}`);
    }
  }
  if (of('ServiceMonitor').length !== 1) err('expected one ServiceMonitor');
  const pdbs = of('PodDisruptionBudget');
  if (pdbs.length !== 1 || !matches(pdbs[0].spec.selector?.matchLabels, podLabels))
    err('expected one PodDisruptionBudget selecting the pods');
  const hpas = of('HorizontalPodAutoscaler');
  const adapterNames = new Set(adapterRules().map((r) => r.name.as));
  if (hpas.length !== 1) err('expected one HorizontalPodAutoscaler');
  for (const h of hpas) {
    if (h.apiVersion !== 'autoscaling/v2') err(`HPA apiVersion ${h.apiVersion}`);
    if (h.spec.scaleTargetRef?.kind !== 'Deployment' || h.spec.scaleTargetRef?.name !== dep.metadata.name)
      err('HPA does not target the Deployment');
    const podMetrics = (h.spec.metrics ?? []).filter((m: Obj) => m.type === 'Pods');
    if (podMetrics.length === 0) err('HPA has no per-pod (type: Pods) metric');
    for (const m of podMetrics) {
      if (!adapterNames.has(m.pods.metric.name))
        err(
          `HPA metric ${m.pods.metric.name} has no prometheus-adapter rule (deploy/k8s/prometheus-adapter/values.yaml)`,
        );
    }
    if (h.spec.minReplicas > h.spec.maxReplicas) err('HPA minReplicas > maxReplicas');
  }
  const ingresses = of('Ingress');
  const hashed = ingresses.filter(
    (i) => i.metadata.annotations?.['nginx.ingress.kubernetes.io/upstream-hash-by'] !== undefined,
  );
  if (hashed.length !== 1) err(`expected one Ingress with upstream-hash-by, found ${hashed.length}`);
  const backendsOf = (i: Obj) =>
    (i.spec.rules ?? []).flatMap((r: Obj) =>
      (r.http?.paths ?? []).map((pp: Obj) => ({
        path: pp.path,
        type: pp.pathType,
        service: pp.backend.service?.name,
        port: pp.backend.service?.port,
      })),
    );
  for (const i of ingresses) {
    for (const b of backendsOf(i)) {
      const s = services.find((x) => x.metadata.name === b.service);
      if (s === undefined) err(`Ingress ${i.metadata.name} routes ${b.path} to missing Service ${b.service}`);
      else if (!(s.spec.ports ?? []).some((sp: Obj) => sp.name === b.port?.name || sp.port === b.port?.number))
        err(`Ingress ${i.metadata.name}: Service ${b.service} has no port ${JSON.stringify(b.port)}`);
    }
  }
  for (const h of hashed) {
    if (!h.metadata.annotations['nginx.ingress.kubernetes.io/upstream-hash-by'].includes('$uri'))
      err('upstream-hash-by does not hash the URI');
    const hb = backendsOf(h);
    if (!hb.some((b: Obj) => b.path === '/translate/' && b.type === 'Prefix'))
      err('the hashed Ingress does not route the prefix /translate/');
    const hashedServices = new Set(hb.map((b: Obj) => b.service));
    for (const other of ingresses.filter((i) => i !== h)) {
      for (const b of backendsOf(other)) {
        if (hashedServices.has(b.service))
          err(
            `Service ${b.service} is behind both a hashed and an unhashed Ingress: ingress-nginx keeps one balancing setting per Service`,
          );
      }
      const exact = backendsOf(other).find((b: Obj) => b.path === '/translate' && b.type === 'Exact');
      if (exact === undefined)
        err(
          'POST /translate (pair in the body) needs an Exact rule to the round-robin Service, or the /translate/ prefix takes it',
        );
    }
  }
  return p;
}

/** The Dockerfile's stages, instructions and the facts issue 5 asks for. */
export function dockerfileProblems(text: string): string[] {
  const p: string[] = [];
  const stages = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const raw of text.replace(/\\\n/g, ' ').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      cur = [];
      stages.set(from[2] ?? `#${stages.size}`, cur);
      cur.push(line);
      continue;
    }
    cur?.push(line);
  }
  for (const target of ['cpu', 'gpu']) {
    const s = stages.get(target);
    if (s === undefined) {
      p.push(`no ${target} target`);
      continue;
    }
    const user = s.find((l) => /^USER\s/i.test(l));
    if (user === undefined || /^USER\s+(root|0)(:|$)/i.test(user)) p.push(`${target}: no non-root USER`);
    if (!s.some((l) => /^(ENTRYPOINT|CMD)\s/i.test(l))) p.push(`${target}: no ENTRYPOINT/CMD`);
    if (!s.some((l) => /mkdir -p \/models/.test(l))) p.push(`${target}: no /models directory to mount models on`);
    if (!s.some((l) => /^ENV\s.*TASKMOE_MODEL=\/app\/models\/demo/i.test(l)))
      p.push(`${target}: the demo model is not the default TASKMOE_MODEL`);
  }
  const gpu = stages.get('gpu') ?? [];
  if (!gpu.some((l) => /TF_FORCE_GPU_ALLOW_GROWTH=true/.test(l))) p.push('gpu: TF_FORCE_GPU_ALLOW_GROWTH=true not set');
  if (!gpu.some((l) => /TASKMOE_BACKEND=gpu/.test(l))) p.push('gpu: TASKMOE_BACKEND=gpu not set');
  if (!/ARG CUDA_IMAGE=nvidia\/cuda:11\.2\.\d+-cudnn8-runtime/.test(text))
    p.push('the CUDA base is not CUDA 11.2 with cuDNN 8');
  if (!(stages.get('cpu') ?? []).some((l) => /TASKMOE_BACKEND=wasm/.test(l)))
    p.push('cpu: TASKMOE_BACKEND=wasm not set');
  if (!/ARG NODE_IMAGE=node:20[-.]/.test(text)) p.push('the Node image is not Node 20');
  if (stages.size < 3) p.push('not multi-stage');
  if (!/npm ci --omit=dev/.test(text)) p.push('production dependencies are not installed with npm ci --omit=dev');
  if (!text.includes('COPY models/demo')) p.push('the demo model is not copied into the image');
  return p;
}

/** .dockerignore patterns (Docker's rules: later lines win, ! re-includes, a match covers the subtree). */
export function dockerignoreMatcher(text: string): (relPath: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = path.posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, ''));
      let re = '';
      for (let i = 0; i < pat.length; i++) {
        const ch = pat[i];
        if (ch === '*' && pat[i + 1] === '*') {
          re += '.*';
          i++;
          if (pat[i + 1] === '/') i++;
        } else if (ch === '*') re += '[^/]*';
        else if (ch === '?') re += '[^/]';
        else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { negate, re: new RegExp(`^${re}(/.*)?$`) };
    });
  /** Whether the path is excluded from the build context. */
  return (relPath: string) => {
    let excluded = false;
    for (const r of rules) if (r.re.test(relPath)) excluded = !r.negate;
    return excluded;
  };
}
