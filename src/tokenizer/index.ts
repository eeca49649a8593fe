import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

/** The parts of @agnai/sentencepiece-js used here; the package ships no type declarations. */
interface SentencePieceJs {
  load(modelPath: string): Promise<void>;
  encodeIds(text: string): number[];
  decodeIds(ids: number[]): string;
  processor: { status(): { ToString(): string; delete(): void } };
}

// A CommonJS package without types: require() gives it a type here and works in workers too.
const require = createRequire(import.meta.url);
const { SentencePieceProcessor } = require('@agnai/sentencepiece-js') as {
  SentencePieceProcessor: new () => SentencePieceJs;
};

export class Tokenizer {
  private readonly pieceIds: Map<string, number>;

  private constructor(
    private readonly processor: SentencePieceJs,
    private readonly model: ModelInfo,
  ) {
    this.pieceIds = new Map(model.pieces.map((piece, id) => [piece, id]));
  }

  /** `mapped`: the model's ids come from a vocabulary mapping (imported models), so the special pieces may be absent. */
  static async load(modelPath: string, mapped = false): Promise<Tokenizer> {
    const bytes = await readModelFile(modelPath);
    const processor = new SentencePieceProcessor();
    // The library's load() ignores the status of the underlying Load(); ask for it afterwards.
    await processor.load(modelPath);
    const status = processor.processor.status();
    const statusText = status.ToString();
    status.delete();
    if (statusText !== 'OK') {
      throw new Error(`invalid sentencepiece model ${modelPath}: ${statusText}`);
    }
    return new Tokenizer(processor, readModelInfo(bytes, modelPath, mapped));
  }

  get vocabSize(): number {
    return this.model.pieces.length;
  }
  /** The SentencePiece pieces, by id. */
  get pieces(): readonly string[] {
    return this.model.pieces;
  }
  /** The id of a piece, undefined when it is not in the model. */
  pieceId(piece: string): number | undefined {
    return this.pieceIds.get(piece);
  }
  get padId(): number {
    return this.model.padId;
  }
  get unkId(): number {
    return this.model.unkId;
  }
  get bosId(): number {
    return this.model.bosId;
  }
  get eosId(): number {
    return this.model.eosId;
  }

  /** Piece ids of `text`, without BOS/EOS. */
  encode(text: string): number[] {
    return this.processor.encodeIds(text);
  }

  /**
   * Text of `ids`. Sentencepiece itself drops control pieces (pad/bos/eos) and reassembles
   * byte-fallback pieces into UTF-8, but silently returns '' for out-of-range ids, hence the check.
   */
  decode(ids: number[]): string {
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
    if (bad !== undefined) {
      throw new RangeError(`token id ${bad} is outside the vocabulary (size ${this.vocabSize})`);
    }
    return this.processor.decodeIds(ids);
  }

  /** Id of the target-language tag `<2xx>`. */
  languageTagId(lang: string): number {
    const id = this.pieceIds.get(`<2${lang}>`);
    if (id === undefined) {
      const known = this.model.pieces.filter((piece) => /^<2[^>]+>$/.test(piece));
      throw new Error(
        `language tag <2${lang}> is not in the tokenizer vocabulary (tags: ${known.join(' ') || 'none'})`,
      );
    }
    return id;
  }

  /** Model input for translating `text` into `targetLang`: [<2xx>, ...pieces, EOS]. */
  encodeSource(text: string, targetLang: string, _sourceLang?: string): number[] {
    return [this.languageTagId(targetLang), ...this.encode(text), this.eosId];
  }
}

async function readModelFile(modelPath: string): Promise<Uint8Array> {
  try {
    return await readFile(modelPath);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (err as Error).message;
    throw new Error(`cannot read sentencepiece model ${modelPath}: ${reason}`);
  }
}

interface ModelInfo {
  pieces: string[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
}

// Field numbers from sentencepiece_model.proto. The library exposes neither the vocabulary size
// nor the special ids, so they are read from the ModelProto directly.
const MODEL_PIECES = 1;
const MODEL_TRAINER_SPEC = 2;
const PIECE_TEXT = 1;
const TRAINER_SPECIAL_IDS: Record<number, keyof Omit<ModelInfo, 'pieces'>> = {
  40: 'unkId',
  41: 'bosId',
  42: 'eosId',
  43: 'padId',
};

function readModelInfo(bytes: Uint8Array, modelPath: string, mapped: boolean): ModelInfo {
  // proto2 defaults, used when the trainer spec leaves a field out.
  const info: ModelInfo = { pieces: [], unkId: 0, bosId: 1, eosId: 2, padId: -1 };
  try {
    for (const field of readFields(bytes)) {
      if (field.number === MODEL_PIECES) info.pieces.push(readPieceText(field.bytes()));
      if (field.number === MODEL_TRAINER_SPEC) readSpecialIds(field.bytes(), info);
    }
  } catch (err) {
    throw new Error(`invalid sentencepiece model ${modelPath}: ${(err as Error).message}`);
  }
  for (const key of mapped ? [] : (['padId', 'unkId', 'bosId', 'eosId'] as const)) {
    if (info[key] < 0 || info[key] >= info.pieces.length) {
      throw new Error(`sentencepiece model ${modelPath} has no ${key} (taskmoe needs pad, unk, bos and eos pieces)`);
    }
  }
  return info;
}

function readPieceText(pieceMessage: Uint8Array): string {
  for (const field of readFields(pieceMessage)) {
    if (field.number === PIECE_TEXT) return new TextDecoder().decode(field.bytes());
  }
  throw new Error('vocabulary entry without a piece');
}

function readSpecialIds(trainerSpec: Uint8Array, info: ModelInfo): void {
  for (const field of readFields(trainerSpec)) {
    const key = TRAINER_SPECIAL_IDS[field.number];
    if (key !== undefined) info[key] = field.int32();
  }
}

interface ProtoField {
  number: number;
  bytes(): Uint8Array;
  int32(): number;
}

/** Minimal protobuf wire-format reader: just enough to walk a ModelProto. */
function* readFields(buf: Uint8Array): Generator<ProtoField> {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= buf.length) throw new Error('truncated protobuf varint');
      const byte = buf[pos++]!;
      // int32 values are sign-extended to 10 bytes; only the low 32 bits matter.
      if (shift < 32) value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return value;
      if (shift >= 63) throw new Error('protobuf varint too long');
    }
  };
  const skip = (count: number): number => {
    if (count < 0 || pos + count > buf.length) throw new Error('truncated protobuf field');
    pos += count;
    return pos - count;
  };
  while (pos < buf.length) {
    const key = varint() >>> 0;
    const number = key >>> 3;
    const wireType = key & 7;
    if (wireType === 0) {
      const value = varint();
      yield { number, bytes: () => wrongType(number), int32: () => value };
    } else if (wireType === 2) {
      const length = varint();
      const start = skip(length);
      yield { number, bytes: () => buf.subarray(start, start + length), int32: () => wrongType(number) };
    } else if (wireType === 1 || wireType === 5) {
      skip(wireType === 1 ? 8 : 4);
    } else {
      throw new Error(`unsupported protobuf wire type ${wireType} (field ${number})`);
    }
  }
}

function wrongType(fieldNumber: number): never {
  throw new Error(`protobuf field ${fieldNumber} has an unexpected wire type`);
}
