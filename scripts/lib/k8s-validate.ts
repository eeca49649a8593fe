// Offline validation of Kubernetes manifests against the API schemas, in two passes:
//  1. the JSON-schema validators that `kubernetes-models` (core API) and
//     `@kubernetes-models/prometheus-operator` (ServiceMonitor, PrometheusRule) ship: required
//     fields, types, formats, enums, patterns;
//  2. a TypeScript type check of each object literal against the same packages' interfaces, which
//     catches what those validators let through: unknown or misspelt fields (the API server's
//     strict field validation rejects them; kubectl apply defaults to strict).
import * as path from 'node:path';
import ts from 'typescript';
import type { Obj } from './kubectl.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');

/** The npm module that holds the model of an apiVersion. */
function modelModule(apiVersion: string): string | undefined {
  if (apiVersion === 'monitoring.coreos.com/v1')
    return '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
  if (apiVersion.includes('.coreos.com')) return undefined;
  return `kubernetes-models/${apiVersion}`;
}

export interface Problem {
  where: string;
  message: string;
}

/** Pass 1: the packages' JSON-schema validators. */
export async function schemaProblems(objects: { where: string; obj: Obj }[]): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const { where, obj } of objects) {
    const mod = typeof obj.apiVersion === 'string' ? modelModule(obj.apiVersion) : undefined;
    if (mod === undefined) {
      problems.push({ where, message: `no schema for apiVersion ${obj.apiVersion}` });
      continue;
    }
    let Model: (new (data: Obj) => { validate(): void }) | undefined;
    try {
      const ns = (await import(mod)) as Record<string, unknown>;
      Model = ns[obj.kind] as typeof Model;
    } catch {
      Model = undefined;
    }
    if (Model === undefined) {
      problems.push({ where, message: `no schema for ${obj.apiVersion} ${obj.kind}` });
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (err) {
      problems.push({ where, message: `schema: ${(err as Error).message}` });
    }
  }
  return problems;
}

/** Pass 2: each object as a typed literal, compiled with the TypeScript compiler (no emit). */
export function strictFieldProblems(objects: { where: string; obj: Obj }[]): Problem[] {
  const lines: string[] = [];
  const lineOwner: string[] = [];
  const push = (text: string, owner: string) => {
    for (const l of text.split('\n')) {
      lines.push(l);
      lineOwner.push(owner);
    }
  };
  const problems: Problem[] = [];
  objects.forEach(({ where, obj }, i) => {
    const mod = typeof obj.apiVersion === 'string' ? modelModule(obj.apiVersion) : undefined;
    if (mod === undefined || typeof obj.kind !== 'string' || !/^[A-Za-z]+$/.test(obj.kind)) return; // pass 1 reports it
    push(`import type { I${obj.kind} as T${i} } from '${mod}/${obj.kind}';`, where);
    push(`export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`, where);
  });
  const file = path.join(ROOT, 'scripts', '.k8s-typecheck.ts');
  const text = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (path.resolve(name) === file ? text : readFile(name));
  const program = ts.createProgram([file], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    if (d.file === undefined || path.resolve(d.file.fileName) !== file) {
      problems.push({ where: 'typecheck', message: ts.flattenDiagnosticMessageText(d.messageText, '\n') });
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n').split('\n').slice(-1)[0];
    problems.push({
      where: lineOwner[line] ?? 'typecheck',
      message: `fields: ${message} (near: ${lines[line].trim().slice(0, 80)})`,
    });
  }
  return problems;
}

export async function validateObjects(objects: { where: string; obj: Obj }[]): Promise<Problem[]> {
  return [...(await schemaProblems(objects)), ...strictFieldProblems(objects)];
}
