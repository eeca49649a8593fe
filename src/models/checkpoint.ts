// The checkpoint directory: config.json, the SentencePiece model, and the weights in TensorFlow.js's
// weights-manifest format (weights_manifest.json plus .bin shards). Every tensor, each expert's
// included, is its own manifest entry, so a reader can fetch any subset by byte range.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type ModelConfig, type TensorShapes, parseConfig, tensorShapes } from './config.ts';

export const CONFIG_FILE = 'config.json';
export const MANIFEST_FILE = 'weights_manifest.json';
const SHARD_BYTES = 64 * 1024 * 1024;

export type StorageDtype = 'float32' | 'float16';

export class CheckpointError extends Error {}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'float16' };
}

interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
  /** SHA-256 of each shard, hex, in the order of `paths` (absent in checkpoints written before taskmoe recorded it). */
  sha256?: string[];
}

/** One shard file of a checkpoint and the checksum its manifest records for it. */
export interface ShardFile {
  path: string;
  sha256?: string;
}

/** Where one tensor's bytes lie in its group's shards (seen as one concatenated buffer). */
interface Located {
  entry: ManifestEntry;
  group: number;
  offset: number;
  bytes: number;
}

function entryBytes(e: ManifestEntry): number {
  const n = e.shape.reduce((a, b) => a * b, 1);
  return n * (e.quantization?.dtype === 'float16' ? 2 : 4);
}

/** Float32 -> IEEE half precision bits, rounding to nearest even. */
export function toFloat16(values: Float32Array): Uint16Array {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
    } else if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
    } else {
      let half = (e << 10) | (mant >>> 13);
      const rem = mant & 0x1fff;
      if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
      out[i] = sign | half;
    }
  }
  return out;
}

/**
 * Writes a checkpoint atomically: everything goes to a temporary sibling directory that then
 * replaces `dir`, so a crash never leaves a half-written checkpoint behind.
 */
export async function writeCheckpoint(
  dir: string,
  cfg: ModelConfig,
  weights: Map<string, tf.Tensor>,
  tokenizerFile: string,
  dtype: StorageDtype = 'float32',
  /** More files to place in the checkpoint, [name in it, path now] (an imported model's vocabularies). */
  extraFiles: [string, string][] = [],
): Promise<void> {
  const expected = tensorShapes(cfg);
  for (const [name, shape] of expected) {
    const t = weights.get(name);
    if (t === undefined) throw new CheckpointError(`cannot write checkpoint: tensor "${name}" is missing`);
    if (!sameShape(t.shape, shape)) throw new CheckpointError(`cannot write checkpoint: tensor "${name}" has shape [${t.shape}], expected [${shape}]`);
  }
  const parent = path.dirname(path.resolve(dir));
  await fsp.mkdir(parent, { recursive: true });
  const tmp = await fsp.mkdtemp(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    const entries: ManifestEntry[] = [];
    const paths: string[] = [];
    const sha256: string[] = [];
    let shard: Buffer[] = [];
    let shardBytes = 0;
    const flush = async () => {
      if (shardBytes === 0) return;
      const name = `group1-shard${paths.length + 1}.bin`;
      const bytes = Buffer.concat(shard);
      await fsp.writeFile(path.join(tmp, name), bytes);
      paths.push(name);
      sha256.push(createHash('sha256').update(bytes).digest('hex'));
      shard = [];
      shardBytes = 0;
    };
    for (const name of expected.keys()) {
      const t = weights.get(name)!;
      const values = (await t.data()) as Float32Array;
      const bytes = dtype === 'float16' ? toFloat16(values) : Float32Array.from(values);
      let buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      entries.push({ name, shape: t.shape, dtype: 'float32', ...(dtype === 'float16' ? { quantization: { dtype: 'float16' as const } } : {}) });
      // Tensors may span shards, as in TensorFlow.js's own writer.
      while (buf.length > 0) {
        const take = Math.min(buf.length, SHARD_BYTES - shardBytes);
        shard.push(buf.subarray(0, take));
        shardBytes += take;
        buf = buf.subarray(take);
        if (shardBytes === SHARD_BYTES) await flush();
      }
    }
    await flush();
    // Rename shards "of N" now that N is known.
    const finalPaths = paths.map((_, i) => `group1-shard${i + 1}of${paths.length}.bin`);
    for (let i = 0; i < paths.length; i++) await fsp.rename(path.join(tmp, paths[i]), path.join(tmp, finalPaths[i]));
    const manifest: ManifestGroup[] = [{ paths: finalPaths, weights: entries, sha256 }];
    await fsp.writeFile(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest));
    await fsp.writeFile(path.join(tmp, CONFIG_FILE), JSON.stringify(cfg, null, 2) + '\n');
    await fsp.copyFile(tokenizerFile, path.join(tmp, cfg.tokenizer));
    const vocab = tokenizerFile.replace(/\.model$/, '.vocab');
    if (vocab !== tokenizerFile && fs.existsSync(vocab)) await fsp.copyFile(vocab, path.join(tmp, cfg.tokenizer.replace(/\.model$/, '.vocab')));
    for (const [name, from] of extraFiles) await fsp.copyFile(from, path.join(tmp, name));
    await replaceDir(tmp, dir);
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

async function replaceDir(from: string, to: string): Promise<void> {
  const old = `${to}.old-${process.pid}`;
  const existed = fs.existsSync(to);
  if (existed) await fsp.rename(to, old);
  await fsp.rename(from, to);
  if (existed) await fsp.rm(old, { recursive: true, force: true });
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Where model tensors come from: a checkpoint on disk (CheckpointReader), or weights already in memory. */
export interface TensorSource {
  readonly config: ModelConfig;
  readonly shapes: TensorShapes;
  /** New tensors (the caller owns them) for the named entries. */
  read(names: Iterable<string>): Promise<Map<string, tf.Tensor>>;
}

/** An opened checkpoint: config and manifest checked, tensors read on demand. */
export class CheckpointReader implements TensorSource {
  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    private readonly groups: ManifestGroup[],
    private readonly shardSizes: number[][],
    private readonly located: Map<string, Located>,
  ) {}

  get tokenizerPath(): string {
    return path.join(this.dir, this.config.tokenizer);
  }

  /** The tokenizer files besides config.tokenizer (an imported model's target model and vocabularies), [name, path]. */
  get extraFiles(): [string, string][] {
    const { targetTokenizer, vocab, targetVocab } = this.config;
    return [targetTokenizer, vocab, targetVocab].flatMap((f) => (f === undefined ? [] : [[f, path.join(this.dir, f)] as [string, string]]));
  }

  /** Storage dtype of the weights (float16 when any tensor is stored as float16). */
  get dtype(): StorageDtype {
    for (const l of this.located.values()) if (l.entry.quantization?.dtype === 'float16') return 'float16';
    return 'float32';
  }

  /** Every stored tensor's name and shape. */
  get shapes(): TensorShapes {
    return new Map([...this.located].map(([n, l]) => [n, l.entry.shape]));
  }

  /** Every shard file (a plain name in `dir`) with its recorded checksum. */
  get shardFiles(): ShardFile[] {
    return this.groups.flatMap((g) => g.paths.map((p, i) => ({ path: p, sha256: g.sha256?.[i] })));
  }

  /** Bytes one tensor takes on disk. */
  storedBytes(name: string): number {
    return this.located.get(name)?.bytes ?? 0;
  }

  static async open(dir: string): Promise<CheckpointReader> {
    const file = (f: string) => path.join(dir, f);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(`checkpoint ${dir}: not a directory`);
    const config = parseConfig(await readJson(file(CONFIG_FILE)), file(CONFIG_FILE));
    for (const f of [config.tokenizer, config.targetTokenizer, config.vocab, config.targetVocab]) {
      if (f !== undefined && !fs.existsSync(file(f))) throw new CheckpointError(`checkpoint ${dir}: missing file ${f} (named in ${CONFIG_FILE})`);
    }
    const groups = (await readJson(file(MANIFEST_FILE))) as ManifestGroup[];
    if (!Array.isArray(groups) || !groups.every((g) => Array.isArray(g?.paths) && Array.isArray(g?.weights))) {
      throw new CheckpointError(`${file(MANIFEST_FILE)}: not a weights manifest (an array of {paths, weights})`);
    }
    const located = new Map<string, Located>();
    const shardSizes: number[][] = [];
    for (const [gi, g] of groups.entries()) {
      let offset = 0;
      for (const entry of g.weights) {
        if (entry.dtype !== 'float32' || (entry.quantization !== undefined && entry.quantization.dtype !== 'float16')) {
          throw new CheckpointError(`${file(MANIFEST_FILE)}: tensor "${entry.name}" has unsupported dtype ${entry.dtype}${entry.quantization ? `/${entry.quantization.dtype}` : ''}`);
        }
        const bytes = entryBytes(entry);
        located.set(entry.name, { entry, group: gi, offset, bytes });
        offset += bytes;
      }
      const sizes = g.paths.map((p) => {
        if (path.basename(p) !== p) throw new CheckpointError(`${file(MANIFEST_FILE)}: shard path "${p}" must be a plain file name`);
        if (!fs.existsSync(file(p))) throw new CheckpointError(`checkpoint ${dir}: missing shard file ${p}`);
        return fs.statSync(file(p)).size;
      });
      if (g.sha256 !== undefined && !(Array.isArray(g.sha256) && g.sha256.length === g.paths.length && g.sha256.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h)))) {
        throw new CheckpointError(`${file(MANIFEST_FILE)}: "sha256" must list one hex SHA-256 per shard path`);
      }
      shardSizes.push(sizes);
      const onDisk = sizes.reduce((a, b) => a + b, 0);
      if (onDisk !== offset) {
        throw new CheckpointError(`checkpoint ${dir}: shards ${g.paths.join(', ')} hold ${onDisk} bytes but the manifest needs ${offset} (truncated or corrupt shard)`);
      }
    }
    for (const [name, shape] of tensorShapes(config)) {
      const l = located.get(name);
      if (l === undefined) throw new CheckpointError(`checkpoint ${dir}: tensor "${name}" is missing from ${MANIFEST_FILE}`);
      if (!sameShape(l.entry.shape, shape)) {
        throw new CheckpointError(`checkpoint ${dir}: tensor "${name}" has shape [${l.entry.shape}] in ${MANIFEST_FILE}, expected [${shape}] from ${CONFIG_FILE}`);
      }
    }
    return new CheckpointReader(dir, config, groups, shardSizes, located);
  }

  /** Reads just the named tensors, by byte range, as float32 tensors. */
  async read(names: Iterable<string>): Promise<Map<string, tf.Tensor>> {
    const wanted = [...names].map((n) => {
      const l = this.located.get(n);
      if (l === undefined) throw new CheckpointError(`checkpoint ${this.dir}: no tensor "${n}"`);
      return l;
    });
    const total = wanted.reduce((a, l) => a + l.bytes, 0);
    const buffer = Buffer.alloc(total);
    let at = 0;
    for (const l of wanted) {
      const bytes = buffer.subarray(at, at + l.bytes);
      await this.readRange(l.group, l.offset, bytes);
      this.checkStoredValues(l.entry, bytes);
      at += l.bytes;
    }
    const data = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
    const decoded = tf.io.decodeWeights(data, wanted.map((l) => l.entry));
    return new Map(wanted.map((l) => [l.entry.name, decoded[l.entry.name]]));
  }

  /** Reads one tensor's stored bytes and throws a CheckpointError naming it when they hold a NaN or an infinity. */
  async checkFinite(name: string): Promise<void> {
    const l = this.located.get(name);
    if (l === undefined) throw new CheckpointError(`checkpoint ${this.dir}: no tensor "${name}"`);
    const bytes = Buffer.alloc(l.bytes);
    await this.readRange(l.group, l.offset, bytes);
    this.checkStoredValues(l.entry, bytes);
  }

  private checkStoredValues(entry: ManifestEntry, bytes: Buffer): void {
    const bad = firstNonFinite(bytes, entry.quantization?.dtype === 'float16' ? 'float16' : 'float32');
    if (bad !== undefined) {
      throw new CheckpointError(`checkpoint ${this.dir}: tensor "${entry.name}" holds ${bad.value} at index ${bad.index} (corrupt weights)`);
    }
  }

  private async readRange(group: number, offset: number, into: Buffer): Promise<void> {
    let shardStart = 0;
    let filled = 0;
    for (const [i, p] of this.groups[group].paths.entries()) {
      if (filled === into.length) break;
      const shardEnd = shardStart + this.shardSizes[group][i];
      const from = offset + filled;
      if (from < shardEnd) {
        const n = Math.min(into.length - filled, shardEnd - from);
        const fh = await fsp.open(path.join(this.dir, p), 'r');
        try {
          const { bytesRead } = await fh.read(into, filled, n, from - shardStart);
          if (bytesRead !== n) throw new CheckpointError(`checkpoint ${this.dir}: shard ${p} is truncated`);
        } finally {
          await fh.close();
        }
        filled += n;
      }
      shardStart = shardEnd;
    }
  }
}

/** The first NaN or infinity among stored values, if any. */
function firstNonFinite(stored: Buffer, dtype: StorageDtype): { index: number; value: string } | undefined {
  // Typed arrays need an aligned offset; copy the rare unaligned slice.
  const bytes = stored.byteOffset % 4 === 0 ? stored : Buffer.from(stored);
  if (dtype === 'float16') {
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1);
    for (let i = 0; i < halves.length; i++) {
      const h = halves[i];
      // All exponent bits set: an infinity (zero mantissa) or a NaN.
      if ((h & 0x7c00) === 0x7c00) return { index: i, value: h & 0x3ff ? 'NaN' : h & 0x8000 ? '-Infinity' : 'Infinity' };
    }
    return undefined;
  }
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
  for (let i = 0; i < floats.length; i++) {
    if (!Number.isFinite(floats[i])) return { index: i, value: String(floats[i]) };
  }
  return undefined;
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch {
    throw new CheckpointError(`missing file ${file}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${file}: invalid JSON (${(err as Error).message})`);
  }
}
