// Renders kustomizations offline: the subset of kustomize (v5) that deploy/k8s uses, so that the
// checks need neither kubectl nor a cluster. Any field or feature outside the subset is an error,
// never silently ignored. Where kubectl is installed, the checks compare this renderer's output
// with `kubectl kustomize` object by object.
//
// Supported: resources (files and directories), components, namespace, labels (pairs,
// includeTemplates), configMapGenerator (envs, literals; behavior create/merge/replace; the
// content-hash name suffix and the references to it), generatorOptions.disableNameSuffixHash,
// images (newName, newTag, digest), and patches holding JSON 6902 operations (add, remove, replace,
// test) selected by kind/name/namespace/group/version.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

export type Obj = Record<string, any>;

export class KustomizeError extends Error {}

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];
const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'components', 'namespace', 'labels', 'configMapGenerator', 'generatorOptions', 'images', 'patches']);

/** Kinds that have no namespace (the subset kustomize's namespace transformer must skip). */
const CLUSTER_SCOPED = new Set([
  'Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass',
  'PriorityClass', 'IngressClass', 'APIService', 'ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration', 'RuntimeClass', 'Node',
]);
/** Kinds whose spec.template is a pod template. */
const TEMPLATED = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicationController']);

/** A generated ConfigMap: its name before the hash suffix, and whether it gets one. */
interface Generated {
  baseName: string;
  hash: boolean;
}

interface Resource {
  obj: Obj;
  generated?: Generated;
  /** The file or kustomization it came from, for messages. */
  origin: string;
}

function kustomizationFile(dir: string): string | undefined {
  for (const name of KUSTOMIZATION_FILES) {
    const f = path.join(dir, name);
    if (fs.existsSync(f)) return f;
  }
  return undefined;
}

function readDocs(file: string): Obj[] {
  const docs = parseAllDocuments(fs.readFileSync(file, 'utf8'));
  const out: Obj[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new KustomizeError(`${file}: ${d.errors[0].message}`);
    const v = d.toJS();
    if (v === null || v === undefined) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new KustomizeError(`${file}: a document is not a mapping`);
    out.push(v as Obj);
  }
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);

/**
 * kustomize's ConfigMap name suffix: sha256 of the JSON of {data, kind, name} (keys sorted), its
 * first ten hex digits with 0,1,3,a,e mapped to g,h,k,m,t. kustomize v5 looks the name up with
 * yaml.Lookup("metadata/name"), a single field that never exists, so the name it hashes is always
 * empty; this does the same to match its output.
 */
export function configMapHash(data: Record<string, string>): string {
  const sorted = Object.fromEntries(Object.keys(data).sort().map((k) => [k, data[k]]));
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' });
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  const map: Record<string, string> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return [...hex].map((c) => map[c] ?? c).join('');
}

/** KEY=VALUE lines; blank lines and # comments skipped (kustomize's env file format). */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new KustomizeError(`${file}:${i + 1}: expected KEY=VALUE, got "${line}"`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  });
  return out;
}

function literalPairs(literals: string[], where: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of literals) {
    const eq = l.indexOf('=');
    if (eq <= 0) throw new KustomizeError(`${where}: literal "${l}" is not KEY=VALUE`);
    let v = l.slice(eq + 1);
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")))) v = v.slice(1, -1);
    out[l.slice(0, eq)] = v;
  }
  return out;
}

// ---- JSON 6902 patches

function decodePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw new KustomizeError(`JSON pointer "${p}" must start with /`);
  return p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function walk(doc: Obj, tokens: string[], op: string, pointer: string): { parent: any; key: string } {
  let cur: any = doc;
  for (const t of tokens.slice(0, -1)) {
    const next = Array.isArray(cur) ? cur[Number(t)] : cur?.[t];
    if (next === undefined || next === null || typeof next !== 'object') throw new KustomizeError(`${op} ${pointer}: no such path`);
    cur = next;
  }
  return { parent: cur, key: tokens[tokens.length - 1] };
}

export function applyJsonPatch(doc: Obj, ops: Obj[], where: string): void {
  for (const o of ops) {
    const op = o.op as string;
    const pointer = o.path as string;
    if (typeof pointer !== 'string') throw new KustomizeError(`${where}: an operation has no path`);
    const tokens = decodePointer(pointer);
    if (tokens.length === 0) throw new KustomizeError(`${where}: ${op} on the document root is not supported`);
    const { parent, key } = walk(doc, tokens, op, `${where}: ${pointer}`);
    const isArr = Array.isArray(parent);
    const idx = isArr ? (key === '-' ? parent.length : Number(key)) : -1;
    if (isArr && (!Number.isInteger(idx) || idx < 0 || idx > parent.length)) throw new KustomizeError(`${where}: ${op} ${pointer}: bad array index`);
    const exists = isArr ? idx < parent.length : Object.prototype.hasOwnProperty.call(parent, key);
    switch (op) {
      case 'add':
        if (isArr) parent.splice(idx, 0, clone(o.value));
        else parent[key] = clone(o.value);
        break;
      case 'replace':
        if (!exists) throw new KustomizeError(`${where}: replace ${pointer}: no such path`);
        if (isArr) parent[idx] = clone(o.value);
        else parent[key] = clone(o.value);
        break;
      case 'remove':
        if (!exists) throw new KustomizeError(`${where}: remove ${pointer}: no such path`);
        if (isArr) parent.splice(idx, 1);
        else delete parent[key];
        break;
      case 'test': {
        const actual = isArr ? parent[idx] : parent[key];
        if (JSON.stringify(actual) !== JSON.stringify(o.value)) throw new KustomizeError(`${where}: test ${pointer} failed: ${JSON.stringify(actual)} != ${JSON.stringify(o.value)}`);
        break;
      }
      default:
        throw new KustomizeError(`${where}: JSON patch operation "${op}" is not supported by this renderer`);
    }
  }
}

function groupVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

function matchesTarget(r: Resource, target: Obj, where: string): boolean {
  for (const k of Object.keys(target)) {
    if (!['kind', 'name', 'namespace', 'group', 'version'].includes(k)) throw new KustomizeError(`${where}: patch target field "${k}" is not supported`);
  }
  const gv = groupVersion(r.obj.apiVersion ?? '');
  const name = r.generated?.baseName ?? r.obj.metadata?.name;
  const re = (p: string) => new RegExp(`^(?:${p})$`);
  if (target.kind !== undefined && !re(target.kind).test(r.obj.kind)) return false;
  if (target.name !== undefined && !re(target.name).test(name)) return false;
  if (target.namespace !== undefined && !re(target.namespace).test(r.obj.metadata?.namespace ?? '')) return false;
  if (target.group !== undefined && target.group !== gv.group) return false;
  if (target.version !== undefined && target.version !== gv.version) return false;
  return true;
}

// ---- transformers

function podSpecs(obj: Obj): Obj[] {
  if (TEMPLATED.has(obj.kind)) return obj.spec?.template?.spec ? [obj.spec.template.spec] : [];
  if (obj.kind === 'CronJob') return obj.spec?.jobTemplate?.spec?.template?.spec ? [obj.spec.jobTemplate.spec.template.spec] : [];
  if (obj.kind === 'Pod') return obj.spec ? [obj.spec] : [];
  return [];
}

function podTemplateMetas(obj: Obj): Obj[] {
  if (TEMPLATED.has(obj.kind) && obj.spec?.template) return [(obj.spec.template.metadata ??= {})];
  if (obj.kind === 'CronJob' && obj.spec?.jobTemplate?.spec?.template) return [(obj.spec.jobTemplate.spec.template.metadata ??= {})];
  return [];
}

function containersOf(spec: Obj): Obj[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  return { name: rest, digest };
}

function applyImages(resources: Resource[], images: Obj[], where: string): void {
  for (const img of images) {
    for (const k of Object.keys(img)) {
      if (!['name', 'newName', 'newTag', 'digest'].includes(k)) throw new KustomizeError(`${where}: images field "${k}" is not supported`);
    }
    for (const r of resources) {
      for (const spec of podSpecs(r.obj)) {
        for (const c of containersOf(spec)) {
          if (typeof c.image !== 'string') continue;
          const cur = splitImage(c.image);
          if (cur.name !== img.name) continue;
          const name = img.newName ?? cur.name;
          if (img.digest !== undefined) c.image = `${name}@${img.digest}`;
          else if (img.newTag !== undefined) c.image = `${name}:${img.newTag}`;
          else c.image = `${name}${cur.tag !== undefined ? `:${cur.tag}` : ''}${cur.digest !== undefined ? `@${cur.digest}` : ''}`;
        }
      }
    }
  }
}

function applyLabels(resources: Resource[], labels: Obj[], where: string): void {
  for (const l of labels) {
    for (const k of Object.keys(l)) {
      if (!['pairs', 'includeTemplates', 'includeSelectors'].includes(k)) throw new KustomizeError(`${where}: labels field "${k}" is not supported`);
    }
    if (l.includeSelectors === true) throw new KustomizeError(`${where}: labels.includeSelectors is not supported by this renderer`);
    const pairs = l.pairs as Record<string, string>;
    for (const r of resources) {
      const meta = (r.obj.metadata ??= {});
      meta.labels = { ...(meta.labels ?? {}), ...pairs };
      if (l.includeTemplates === true) {
        for (const tm of podTemplateMetas(r.obj)) tm.labels = { ...(tm.labels ?? {}), ...pairs };
      }
    }
  }
}

function applyNamespace(resources: Resource[], namespace: string): void {
  for (const r of resources) {
    if (CLUSTER_SCOPED.has(r.obj.kind)) continue;
    (r.obj.metadata ??= {}).namespace = namespace;
  }
}

// ---- the build

interface Options {
  disableNameSuffixHash: boolean;
}

function loadKustomization(dir: string, expectKind: 'Kustomization' | 'Component'): { k: Obj; file: string } {
  const file = kustomizationFile(dir);
  if (file === undefined) throw new KustomizeError(`${dir}: no kustomization.yaml`);
  const k = parseYaml(fs.readFileSync(file, 'utf8')) as Obj;
  const kind = k.kind ?? 'Kustomization';
  if (kind !== expectKind) throw new KustomizeError(`${file}: kind is ${kind}, expected ${expectKind}`);
  for (const f of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(f)) throw new KustomizeError(`${file}: field "${f}" is not supported by this renderer`);
  }
  return { k, file };
}

function accumulate(dir: string, input: Resource[], kind: 'Kustomization' | 'Component'): Resource[] {
  const { k, file } = loadKustomization(dir, kind);
  const where = path.relative(process.cwd(), file);
  let resources = input;
  for (const entry of (k.resources ?? []) as string[]) {
    const p = path.resolve(dir, entry);
    if (!fs.existsSync(p)) throw new KustomizeError(`${where}: resource ${entry} does not exist`);
    if (fs.statSync(p).isDirectory()) {
      resources = [...resources, ...accumulate(p, [], 'Kustomization')];
    } else {
      resources = [...resources, ...readDocs(p).map((obj) => ({ obj, origin: path.relative(process.cwd(), p) }))];
    }
  }
  for (const entry of (k.components ?? []) as string[]) {
    resources = accumulate(path.resolve(dir, entry), resources, 'Component');
  }
  const opts: Options = { disableNameSuffixHash: k.generatorOptions?.disableNameSuffixHash === true };
  if (k.generatorOptions !== undefined) {
    for (const f of Object.keys(k.generatorOptions)) {
      if (f !== 'disableNameSuffixHash') throw new KustomizeError(`${where}: generatorOptions.${f} is not supported`);
    }
  }
  for (const g of (k.configMapGenerator ?? []) as Obj[]) {
    for (const f of Object.keys(g)) {
      if (!['name', 'envs', 'literals', 'behavior', 'namespace'].includes(f)) throw new KustomizeError(`${where}: configMapGenerator field "${f}" is not supported`);
    }
    const data: Record<string, string> = {};
    for (const env of (g.envs ?? []) as string[]) {
      const f = path.resolve(dir, env);
      Object.assign(data, parseEnvFile(fs.readFileSync(f, 'utf8'), path.relative(process.cwd(), f)));
    }
    Object.assign(data, literalPairs((g.literals ?? []) as string[], where));
    const behavior = (g.behavior ?? 'create') as string;
    const existing = resources.find((r) => r.obj.kind === 'ConfigMap' && r.generated?.baseName === g.name && (g.namespace === undefined || r.obj.metadata?.namespace === g.namespace));
    if (behavior === 'create') {
      if (existing !== undefined) throw new KustomizeError(`${where}: configMapGenerator ${g.name} already exists (use behavior: merge or replace)`);
      const obj: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name, ...(g.namespace !== undefined ? { namespace: g.namespace } : {}) }, data };
      resources = [...resources, { obj, generated: { baseName: g.name, hash: !opts.disableNameSuffixHash }, origin: where }];
    } else if (behavior === 'merge' || behavior === 'replace') {
      if (existing === undefined) throw new KustomizeError(`${where}: configMapGenerator ${g.name} (behavior ${behavior}) has no ConfigMap to ${behavior}`);
      existing.obj.data = behavior === 'merge' ? { ...(existing.obj.data ?? {}), ...data } : data;
    } else {
      throw new KustomizeError(`${where}: configMapGenerator behavior "${behavior}" is unknown`);
    }
  }
  for (const p of (k.patches ?? []) as Obj[]) {
    for (const f of Object.keys(p)) {
      if (!['patch', 'path', 'target'].includes(f)) throw new KustomizeError(`${where}: patches field "${f}" is not supported`);
    }
    const text = p.patch ?? (p.path !== undefined ? fs.readFileSync(path.resolve(dir, p.path), 'utf8') : undefined);
    if (typeof text !== 'string') throw new KustomizeError(`${where}: a patch has neither patch nor path`);
    const ops = parseYaml(text);
    if (!Array.isArray(ops)) throw new KustomizeError(`${where}: only JSON 6902 patches (a list of operations) are supported`);
    if (p.target === undefined) throw new KustomizeError(`${where}: a JSON 6902 patch needs a target`);
    const targets = resources.filter((r) => matchesTarget(r, p.target, where));
    if (targets.length === 0) throw new KustomizeError(`${where}: patch target ${JSON.stringify(p.target)} matches no resource`);
    for (const r of targets) applyJsonPatch(r.obj, ops as Obj[], `${where} (${r.obj.kind}/${r.obj.metadata?.name})`);
  }
  if (k.namespace !== undefined) applyNamespace(resources, k.namespace);
  applyLabels(resources, (k.labels ?? []) as Obj[], where);
  applyImages(resources, (k.images ?? []) as Obj[], where);
  return resources;
}

/** Points references to generated ConfigMaps at their final (hashed) names. */
function fixConfigMapRefs(resources: Resource[], renamed: Map<string, string>): void {
  const key = (ns: string | undefined, name: string) => `${ns ?? ''}/${name}`;
  const rename = (ns: string | undefined, name: string) => renamed.get(key(ns, name)) ?? name;
  for (const r of resources) {
    const ns = r.obj.metadata?.namespace;
    for (const spec of podSpecs(r.obj)) {
      for (const c of containersOf(spec)) {
        for (const ef of c.envFrom ?? []) if (ef.configMapRef?.name) ef.configMapRef.name = rename(ns, ef.configMapRef.name);
        for (const e of c.env ?? []) if (e.valueFrom?.configMapKeyRef?.name) e.valueFrom.configMapKeyRef.name = rename(ns, e.valueFrom.configMapKeyRef.name);
      }
      for (const v of spec.volumes ?? []) {
        if (v.configMap?.name) v.configMap.name = rename(ns, v.configMap.name);
        for (const s of v.projected?.sources ?? []) if (s.configMap?.name) s.configMap.name = rename(ns, s.configMap.name);
      }
    }
  }
}

/** Renders the kustomization in `dir` to a list of objects, as `kubectl kustomize dir` would. */
export function render(dir: string): Obj[] {
  const resources = accumulate(path.resolve(dir), [], 'Kustomization');
  const renamed = new Map<string, string>();
  for (const r of resources) {
    if (r.generated?.hash) {
      const finalName = `${r.generated.baseName}-${configMapHash(r.obj.data ?? {})}`;
      renamed.set(`${r.obj.metadata?.namespace ?? ''}/${r.generated.baseName}`, finalName);
      r.obj.metadata.name = finalName;
    }
  }
  fixConfigMapRefs(resources, renamed);
  const seen = new Set<string>();
  for (const r of resources) {
    const id = objectId(r.obj);
    if (seen.has(id)) throw new KustomizeError(`${dir}: ${id} is defined twice`);
    seen.add(id);
  }
  return resources.map((r) => r.obj);
}

export function objectId(o: Obj): string {
  return `${o.apiVersion}/${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}

/** Every directory under `root` that holds a kustomization file (kustomizations and components). */
export function findKustomizations(root: string): { dir: string; kind: 'Kustomization' | 'Component' }[] {
  const out: { dir: string; kind: 'Kustomization' | 'Component' }[] = [];
  const visit = (d: string) => {
    const f = kustomizationFile(d);
    if (f !== undefined) {
      const k = parseYaml(fs.readFileSync(f, 'utf8')) as Obj;
      out.push({ dir: d, kind: k.kind === 'Component' ? 'Component' : 'Kustomization' });
    }
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) visit(path.join(d, e.name));
  };
  visit(root);
  return out.sort((a, b) => a.dir.localeCompare(b.dir));
}
