// Reads safetensors files by their documented format (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the tensors' bytes. A sharded checkpoint adds model.safetensors.index.json {weight_map}.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

export class ImportError extends Error {}

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

interface Entry {
  file: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };

/** The tensors of one checkpoint directory (model.safetensors or its shards), read one by one. */
export class SafetensorsDir {
  private constructor(private readonly entries: Map<string, Entry>) {}

  static async open(dir: string): Promise<SafetensorsDir> {
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    let files: string[];
    if (fs.existsSync(single)) files = [single];
    else if (fs.existsSync(index)) {
      const map = (JSON.parse(await fsp.readFile(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
      if (map === undefined) throw new ImportError(`${index}: no "weight_map"`);
      files = [...new Set(Object.values(map))].map((f) => path.join(dir, path.basename(f)));
    } else if (
      fs.existsSync(path.join(dir, 'pytorch_model.bin')) ||
      fs.existsSync(path.join(dir, 'pytorch_model.bin.index.json'))
    ) {
      throw new ImportError(
        `${dir} holds only pytorch_model.bin (a Python pickle), which taskmoe does not read: no small, maintained JavaScript reader exists. ` +
          'Download the model.safetensors variant (most hub models have one), or convert it once with Transformers: ' +
          'AutoModelForSeq2SeqLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)',
      );
    } else throw new ImportError(`${dir}: no model.safetensors or model.safetensors.index.json`);
    const entries = new Map<string, Entry>();
    for (const file of files) for (const e of await readHeader(file)) entries.set(e.name, e);
    return new SafetensorsDir(entries);
  }

  get names(): string[] {
    return [...this.entries.keys()];
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  shape(name: string): number[] | undefined {
    return this.entries.get(name)?.shape;
  }

  /** One tensor as float32 (F16 and BF16 widened). */
  async read(name: string): Promise<HostTensor> {
    const e = this.entries.get(name);
    if (e === undefined) throw new ImportError(`the checkpoint has no tensor "${name}"`);
    const bytes = Buffer.alloc(e.end - e.begin);
    const fh = await fsp.open(e.file, 'r');
    try {
      const { bytesRead } = await fh.read(bytes, 0, bytes.length, e.begin);
      if (bytesRead !== bytes.length) throw new ImportError(`${e.file}: tensor "${name}" is truncated`);
    } finally {
      await fh.close();
    }
    return { shape: e.shape, data: toFloat32(bytes, e.dtype) };
  }
}

async function readHeader(file: string): Promise<(Entry & { name: string })[]> {
  const fh = await fsp.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const lenBuf = Buffer.alloc(8);
    await fh.read(lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n <= 0 || 8 + n > size || n > 100 * 1024 * 1024)
      throw new ImportError(`${file}: not a safetensors file (header length ${n})`);
    const json = Buffer.alloc(n);
    await fh.read(json, 0, n, 8);
    let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
    try {
      header = JSON.parse(json.toString('utf8'));
    } catch (err) {
      throw new ImportError(`${file}: unreadable safetensors header (${(err as Error).message})`);
    }
    const out: (Entry & { name: string })[] = [];
    for (const [name, h] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (BYTES[h.dtype] === undefined)
        throw new ImportError(`${file}: tensor "${name}" has dtype ${h.dtype}; taskmoe imports F32, F16 and BF16`);
      const [begin, end] = h.data_offsets;
      const count = h.shape.reduce((a, b) => a * b, 1);
      if (end - begin !== count * BYTES[h.dtype] || 8 + n + end > size)
        throw new ImportError(`${file}: tensor "${name}" has inconsistent offsets`);
      out.push({ name, file, dtype: h.dtype, shape: h.shape, begin: 8 + n + begin, end: 8 + n + end });
    }
    return out;
  } finally {
    await fh.close();
  }
}

function toFloat32(bytes: Buffer, dtype: string): Float32Array {
  const aligned = new Uint8Array(bytes); // a copy, so typed views start aligned
  if (dtype === 'F32') return new Float32Array(aligned.buffer);
  const halves = new Uint16Array(aligned.buffer);
  const out = new Float32Array(halves.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < halves.length; i++) bits[i] = halves[i] << 16;
    return out;
  }
  for (let i = 0; i < halves.length; i++) out[i] = halfToFloat(halves[i]);
  return out;
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
