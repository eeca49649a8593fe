// Kustomizations rendered by the real tool: `kubectl kustomize` (kubectl has kustomize v5 built in),
// so the checks validate exactly what `kubectl apply -k` would send.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

/** A Kubernetes object as parsed from YAML; checks walk it freely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are untyped until validated
export type Obj = Record<string, any>;

const KUSTOMIZATION_FILES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

/** Renders the kustomization in `dir` with `kubectl kustomize`; throws with kubectl's message if it fails. */
export function kustomize(dir: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error !== undefined) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? 'kubectl is not on PATH: the deployment checks render deploy/k8s with `kubectl kustomize` ' +
            '(install kubectl, which has kustomize v5 built in: https://kubernetes.io/docs/tasks/tools/)'
        : `kubectl kustomize ${dir}: ${r.error.message}`,
    );
  }
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed (exit ${r.status}): ${r.stderr.trim()}`);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** Every directory under `root` that holds a kustomization file (kustomizations and components). */
export function findKustomizations(root: string): { dir: string; kind: 'Kustomization' | 'Component' }[] {
  const out: { dir: string; kind: 'Kustomization' | 'Component' }[] = [];
  const visit = (d: string) => {
    const f = KUSTOMIZATION_FILES.map((n) => path.join(d, n)).find((p) => fs.existsSync(p));
    if (f !== undefined) {
      const k = parseYaml(fs.readFileSync(f, 'utf8')) as Obj;
      out.push({ dir: d, kind: k.kind === 'Component' ? 'Component' : 'Kustomization' });
    }
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) visit(path.join(d, e.name));
  };
  visit(root);
  return out.sort((a, b) => a.dir.localeCompare(b.dir));
}
