// Replays an image build of the Dockerfile without Docker, in a clean temporary copy of the
// repository, and starts the result the way the image's ENTRYPOINT/CMD does.
//
//  1. The build context: the repository's files (git ls-files: tracked and untracked, not
//     ignored) less what .dockerignore excludes, copied to a temporary directory. Without a
//     models/demo in the repository, a small random checkpoint stands in for it (said so).
//  2. Each stage the target needs, in order, as a directory standing for the image's root: FROM
//     copies the parent stage's root (a base image is the host itself, whose Node major version
//     must be the image's); WORKDIR, COPY (from the context or --from a stage) and ENV as Docker
//     does them; RUN lines that are npm or node commands are run as written (npm ci, npm run
//     build, npm rebuild ...); other RUN lines (apt-get, useradd, mkdir) are system set-up and are
//     listed as skipped.
//  3. Checks of the runtime tree: no dev dependencies (typescript, tsx), dist/ compiled, the demo
//     model present.
//  4. ENTRYPOINT + CMD run with the stage's ENV, absolute paths mapped into the stage directory, as
//     the image's non-root USER, on 127.0.0.1 and a free port; /readyz must turn 200, a
//     translation must succeed, and SIGTERM must drain and exit 0.
//
// With --dry-run it only plans: every stage and instruction the target needs, and every COPY
// source looked up in the context (for the gpu target, whose base is CUDA and whose npm rebuild
// downloads libtensorflow, this is all that can run here).
//
//   node --import tsx scripts/image-check.ts [--target cpu|gpu] [--dry-run] [--keep]
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dockerignoreMatcher } from './lib/deploy-checks.ts';
import { type Stage, parseCommand, parseDockerfile, parseEnv, stagesFor, substitute } from './lib/dockerfile.ts';
import { freePort, httpOk, start, tail, tempDir, waitFor } from './lib/proc.ts';
import { ROOT, makeCheckpoint } from './lib/taskmoe.ts';

interface StageState {
  root: string;
  workdir: string;
  env: Record<string, string>;
  user?: string;
  entrypoint: string[];
  cmd: string[];
}

function log(msg: string): void {
  console.log(`[image-check] ${msg}`);
}

function copyInto(src: string, dest: string, destIsDir: boolean): void {
  const st = fs.statSync(src);
  if (st.isDirectory()) {
    fs.mkdirSync(dest, { recursive: true });
    fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
  } else {
    const target = destIsDir ? path.join(dest, path.basename(src)) : dest;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.cpSync(src, target);
  }
}

/** Files of the build context: the repository's files less what .dockerignore excludes. */
function buildContext(dir: string): { files: number; syntheticDemo: boolean } {
  const excluded = dockerignoreMatcher(fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'));
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\0')
    .filter(Boolean);
  // models/demo may be untracked-and-ignored or large: take it from disk as Docker would.
  const demo = path.join(ROOT, 'models/demo');
  const fromDisk = fs.existsSync(demo)
    ? (fs.readdirSync(demo, { recursive: true }) as string[]).map((f) => path.join('models/demo', f))
    : [];
  let files = 0;
  for (const rel of new Set([...listed, ...fromDisk])) {
    const src = path.join(ROOT, rel);
    if (excluded(rel) || !fs.existsSync(src) || fs.statSync(src).isDirectory()) continue;
    copyInto(src, path.join(dir, rel), false);
    files++;
  }
  let syntheticDemo = false;
  if (!fs.existsSync(path.join(dir, 'models/demo/config.json'))) {
    log('models/demo is not in the repository yet: a small random checkpoint stands in for it');
    const made = makeCheckpoint(path.join(dir, '.demo-build'), {
      dModel: 32,
      dFF: 64,
      layers: 2,
      experts: 4,
      routing: { encoder: 'token', decoder: 'target' },
      languages: ['en', 'de', 'fr'],
      pairs: ['en-de', 'de-en', 'en-fr', 'fr-en'],
      maxLength: 48,
    });
    fs.mkdirSync(path.join(dir, 'models'), { recursive: true });
    fs.renameSync(made, path.join(dir, 'models/demo'));
    fs.rmSync(path.join(dir, '.demo-build'), { recursive: true, force: true });
    syntheticDemo = true;
  }
  return { files, syntheticDemo };
}

/** An absolute path inside the image, as a path under the stage's root directory. */
const inRoot = (st: StageState, p: string) =>
  path.join(st.root, path.posix.isAbsolute(p) ? p : path.posix.join(st.workdir, p));

async function main(argv: string[]): Promise<number> {
  const target = argv.includes('--target') ? argv[argv.indexOf('--target') + 1] : 'cpu';
  const dryRun = argv.includes('--dry-run');
  const keep = argv.includes('--keep');
  const df = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  const stages = stagesFor(df, target);
  const work = tempDir(`taskmoe-image-${target}-`);
  fs.chmodSync(work, 0o755); // the image's user must be able to reach the stage directories
  const context = path.join(work, 'context');
  const problems: string[] = [];
  const skipped: string[] = [];
  const states = new Map<string, StageState>();
  log(`target ${target}: stages ${stages.map((s) => s.name).join(' -> ')}; work dir ${work}`);
  try {
    const ctx = buildContext(context);
    log(`build context: ${ctx.files} files after .dockerignore`);
    for (const stage of stages) {
      const st = newStage(stage, states, work, df.args, problems);
      states.set(stage.name, st);
      for (const ins of stage.instructions) {
        const args = substitute(ins.args, { ...df.args, ...st.env });
        const at = `${stage.name}: Dockerfile:${ins.line} ${ins.op}`;
        switch (ins.op) {
          case 'WORKDIR':
            st.workdir = path.posix.resolve(st.workdir, args.trim());
            fs.mkdirSync(inRoot(st, st.workdir), { recursive: true });
            break;
          case 'ENV':
            Object.assign(st.env, parseEnv(args));
            break;
          case 'ARG':
            break;
          case 'USER':
            st.user = args.trim();
            break;
          case 'ENTRYPOINT':
            st.entrypoint = parseCommand(args);
            st.cmd = [];
            break;
          case 'CMD':
            st.cmd = parseCommand(args);
            break;
          case 'EXPOSE':
          case 'HEALTHCHECK':
          case 'LABEL':
          case 'STOPSIGNAL':
            break;
          case 'COPY': {
            const parts = args.trim().split(/\s+/);
            const dest = parts.pop()!;
            const from = ins.flags.from;
            const srcRoot = from === undefined ? context : states.get(from)?.root;
            if (srcRoot === undefined) {
              // COPY --from an image, not a stage (the gpu target's Node runtime).
              if (!dryRun) problems.push(`${at}: copies from the image ${from}, which cannot be replayed here`);
              else skipped.push(`${at} --from=${from} (an image)`);
              break;
            }
            const destIsDir = dest.endsWith('/') || parts.length > 1 || dest === '.';
            for (const src of parts) {
              const s = from === undefined ? path.join(context, src) : path.join(srcRoot, src);
              // A dry run has run no RUN step, so only the context's files can be looked up.
              if (dryRun && from !== undefined) continue;
              if (!fs.existsSync(s)) {
                problems.push(
                  `${at}: source ${src} does not exist${from === undefined ? ' in the build context (.dockerignore?)' : ` in stage ${from}`}`,
                );
                continue;
              }
              copyInto(s, inRoot(st, dest), destIsDir);
            }
            break;
          }
          case 'RUN': {
            const cmd = args.trim();
            if (!/^(npm|node)\s/.test(cmd)) {
              skipped.push(`${at} ${cmd.slice(0, 90)}${cmd.length > 90 ? '...' : ''}`);
              break;
            }
            if (dryRun) {
              skipped.push(`${at} ${cmd} (dry run)`);
              break;
            }
            const cwd = inRoot(st, st.workdir);
            log(`${at} ${cmd}`);
            const t0 = Date.now();
            const r = spawnSync('bash', ['-c', cmd], {
              cwd,
              env: {
                ...process.env,
                ...st.env,
                npm_config_prefer_offline: 'true',
                npm_config_update_notifier: 'false',
                npm_config_fund: 'false',
                npm_config_audit: 'false',
              },
              encoding: 'utf8',
              maxBuffer: 64 * 1024 * 1024,
            });
            log(`  exit ${r.status} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
            if (r.status !== 0) {
              problems.push(
                `${at} ${cmd} failed (${r.status}):\n${(r.stdout + r.stderr).split('\n').slice(-25).join('\n')}`,
              );
              throw new Error('build step failed');
            }
            break;
          }
          default:
            problems.push(`${at}: instruction not understood by the replay`);
        }
      }
    }
    for (const s of skipped) log(`skipped: ${s}`);
    const final = states.get(target)!;
    if (dryRun) {
      log(`dry run: ${problems.length} problem(s)`);
      return report(problems);
    }
    runtimeTreeChecks(final, problems);
    if (problems.length === 0) await startAndProbe(final, work, problems, ctx.syntheticDemo);
  } catch (err) {
    if ((err as Error).message !== 'build step failed') problems.push(`replay failed: ${(err as Error).stack}`);
  } finally {
    if (keep) log(`kept ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
  }
  return report(problems);
}

function report(problems: string[]): number {
  for (const p of problems) console.log(`[image-check] FAIL ${p}`);
  console.log(`image-check: ${problems.length === 0 ? 'passed' : `${problems.length} problem(s)`}`);
  return problems.length === 0 ? 0 : 1;
}

function newStage(
  stage: Stage,
  states: Map<string, StageState>,
  work: string,
  args: Record<string, string>,
  problems: string[],
): StageState {
  const root = path.join(work, 'stages', stage.name);
  const parent = states.get(stage.from);
  if (parent !== undefined) {
    fs.cpSync(parent.root, root, { recursive: true, verbatimSymlinks: true });
    return { ...structuredClone(parent), root };
  }
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  const nodeTag = /^node:(\d+)/.exec(stage.from);
  if (nodeTag !== null) {
    const hostMajor = process.versions.node.split('.')[0];
    if (nodeTag[1] !== hostMajor)
      problems.push(`${stage.name}: the image is ${stage.from} but this host runs Node ${process.versions.node}`);
  } else {
    log(`${stage.name}: base image ${stage.from} stands for itself (not Node); only its npm/node steps are replayed`);
  }
  void args;
  return { root, workdir: '/', env: {}, entrypoint: [], cmd: [] };
}

function runtimeTreeChecks(st: StageState, problems: string[]): void {
  const app = inRoot(st, st.workdir);
  for (const dev of ['typescript', 'tsx', 'esbuild', 'yaml', 'kubernetes-models']) {
    if (fs.existsSync(path.join(app, 'node_modules', dev))) problems.push(`runtime has the dev dependency ${dev}`);
  }
  for (const opt of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
    if (st.env.TASKMOE_BACKEND === 'wasm' && fs.existsSync(path.join(app, 'node_modules', opt)))
      problems.push(`the wasm image carries ${opt}`);
  }
  for (const need of [
    'dist/cli/main.js',
    'dist/server/engine-worker.js',
    'bin/taskmoe.js',
    'node_modules/fastify',
    'node_modules/@tensorflow/tfjs-backend-wasm',
    'models/demo/config.json',
  ]) {
    if (!fs.existsSync(path.join(app, need))) problems.push(`runtime lacks ${need}`);
  }
  if (fs.existsSync(path.join(app, 'src'))) problems.push('runtime carries the TypeScript sources');
  const mb = Number(execFileSync('du', ['-sm', app], { encoding: 'utf8' }).split('\t')[0]);
  log(
    `runtime /app: ${mb} MiB (node_modules ${execFileSync('du', ['-sm', path.join(app, 'node_modules')], { encoding: 'utf8' }).split('\t')[0]} MiB)`,
  );
}

async function startAndProbe(st: StageState, work: string, problems: string[], syntheticDemo: boolean): Promise<void> {
  const argv = [...st.entrypoint, ...st.cmd];
  if (argv.length === 0) {
    problems.push('no ENTRYPOINT/CMD');
    return;
  }
  const mapAbs = (v: string) => (v.startsWith('/') && fs.existsSync(path.join(st.root, v)) ? path.join(st.root, v) : v);
  const port = await freePort();
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: inRoot(st, st.workdir) };
  for (const [k, v] of Object.entries(st.env)) env[k] = mapAbs(v);
  // Loopback only here; the image listens on 0.0.0.0.
  env.TASKMOE_HOST = '127.0.0.1';
  env.PORT = String(port);
  env.TASKMOE_DRAIN_GRACE_MS = '3000';
  const [cmd, ...args] = argv.map(mapAbs);
  const uid = st.user !== undefined ? Number(st.user.split(':')[0]) : undefined;
  const gid = st.user !== undefined ? Number(st.user.split(':')[1] ?? st.user.split(':')[0]) : undefined;
  if (uid === undefined || !Number.isInteger(uid) || uid === 0)
    problems.push(`USER ${st.user} is not a numeric non-root user`);
  const asUser = process.getuid?.() === 0 && uid !== undefined && Number.isInteger(uid);
  log(
    `start: ${[cmd, ...args].join(' ')} as ${asUser ? `uid ${uid}` : 'this user'}, TASKMOE_BACKEND=${env.TASKMOE_BACKEND}, TASKMOE_MODEL=${env.TASKMOE_MODEL}`,
  );
  const logFile = path.join(work, 'taskmoe.log');
  const proc = start('taskmoe (image)', cmd === 'node' ? process.execPath : cmd, args, {
    log: logFile,
    lifetimeS: 300,
    env,
    cwd: inRoot(st, st.workdir),
    ...(asUser ? { uid, gid } : {}),
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    const t0 = Date.now();
    await waitFor('/healthz', () => httpOk(`${base}/healthz`), 60000, proc);
    await waitFor('/readyz', () => httpOk(`${base}/readyz`), 240000, proc);
    log(`/readyz 200 after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const info = (await (await fetch(`${base}/info`)).json()) as { pairs: string[]; model: string };
    const [source, target] = info.pairs[0].split('-');
    const r = await fetch(`${base}/translate/${source}/${target}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ q: 'Hello world.', max_length: 8 }),
    });
    const body = await r.text();
    if (r.status !== 200) problems.push(`POST /translate/${source}/${target}: ${r.status} ${body}`);
    else
      log(
        `POST /translate/${source}/${target}: 200 ${body.slice(0, 80)}${syntheticDemo ? ' (random stand-in model)' : ''}`,
      );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    if (!metrics.includes('taskmoe_requests_total')) problems.push('/metrics lacks taskmoe_requests_total');
    const backend = /tfjs backend (\S+)/.exec(fs.readFileSync(logFile, 'utf8'));
    log(`backend: ${backend?.[1] ?? 'unknown'}`);
    if (st.env.TASKMOE_BACKEND && backend?.[1] !== st.env.TASKMOE_BACKEND)
      problems.push(`the server runs the ${backend?.[1]} backend, not ${st.env.TASKMOE_BACKEND}`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    const code = await proc.stop(15000);
    log(`SIGTERM: exit ${code}`);
    if (code !== 0) problems.push(`the server exited ${code} on SIGTERM, not 0:\n${tail(logFile)}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
