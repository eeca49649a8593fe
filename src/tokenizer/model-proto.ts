// SentencePiece's model file format: sentencepiece_model.proto as published with SentencePiece
// (recovered field for field from the descriptor compiled into the sentencepiece 0.2.2 Python
// package's sentencepiece_model_pb2.py; comments dropped; Apache-2.0, Google), decoded with
// protobufjs. The tokenizer library exposes neither the vocabulary nor the special ids, so they
// are read from the ModelProto here.
import protobuf from 'protobufjs';

const SENTENCEPIECE_MODEL_PROTO = `
syntax = "proto2";

package sentencepiece;

message TrainerSpec {
  enum ModelType {
    UNIGRAM = 1;
    BPE = 2;
    WORD = 3;
    CHAR = 4;
  }
  repeated string input = 1;
  optional string input_format = 7;
  optional string model_prefix = 2;
  optional TrainerSpec.ModelType model_type = 3 [default = UNIGRAM];
  optional int32 vocab_size = 4 [default = 8000];
  repeated string accept_language = 5;
  optional int32 self_test_sample_size = 6 [default = 0];
  optional bool enable_differential_privacy = 50 [default = false];
  optional float differential_privacy_noise_level = 51 [default = 0];
  optional uint64 differential_privacy_clipping_threshold = 52 [default = 0];
  optional float character_coverage = 10 [default = 0.9995];
  optional uint64 input_sentence_size = 11 [default = 0];
  optional bool shuffle_input_sentence = 19 [default = true];
  optional int32 mining_sentence_size = 12 [deprecated = true];
  optional int32 training_sentence_size = 13 [deprecated = true];
  optional int32 seed_sentencepiece_size = 14 [default = 1000000];
  optional float shrinking_factor = 15 [default = 0.75];
  optional int32 max_sentence_length = 18 [default = 4192];
  optional int32 num_threads = 16 [default = 16];
  optional int32 num_sub_iterations = 17 [default = 2];
  optional int32 max_sentencepiece_length = 20 [default = 16];
  optional bool split_by_unicode_script = 21 [default = true];
  optional bool split_by_number = 23 [default = true];
  optional bool split_by_whitespace = 22 [default = true];
  optional bool treat_whitespace_as_suffix = 24 [default = false];
  optional bool allow_whitespace_only_pieces = 26 [default = false];
  optional bool split_digits = 25 [default = false];
  optional string pretokenization_delimiter = 53;
  repeated string control_symbols = 30;
  repeated string user_defined_symbols = 31;
  optional string required_chars = 36;
  optional bool byte_fallback = 35 [default = false];
  optional bool vocabulary_output_piece_score = 32 [default = true];
  optional bool hard_vocab_limit = 33 [default = true];
  optional bool use_all_vocab = 34 [default = false];
  optional int32 unk_id = 40 [default = 0];
  optional int32 bos_id = 41 [default = 1];
  optional int32 eos_id = 42 [default = 2];
  optional int32 pad_id = 43 [default = -1];
  optional string unk_piece = 45 [default = "<unk>"];
  optional string bos_piece = 46 [default = "<s>"];
  optional string eos_piece = 47 [default = "</s>"];
  optional string pad_piece = 48 [default = "<pad>"];
  optional string unk_surface = 44 [default = " ⁇ "];
  optional bool train_extremely_large_corpus = 49 [default = false];
  extensions 200 to max;
}

message NormalizerSpec {
  optional string name = 1;
  optional bytes precompiled_charsmap = 2;
  optional bool add_dummy_prefix = 3 [default = true];
  optional bool remove_extra_whitespaces = 4 [default = true];
  optional bool escape_whitespaces = 5 [default = true];
  optional string normalization_rule_tsv = 6;
  extensions 200 to max;
}

message SelfTestData {
  message Sample {
    optional string input = 1;
    optional string expected = 2;
  }
  repeated SelfTestData.Sample samples = 1;
  extensions 200 to max;
}

message ModelProto {
  message SentencePiece {
    enum Type {
      NORMAL = 1;
      UNKNOWN = 2;
      CONTROL = 3;
      USER_DEFINED = 4;
      BYTE = 6;
      UNUSED = 5;
    }
    optional string piece = 1;
    optional float score = 2;
    optional ModelProto.SentencePiece.Type type = 3 [default = NORMAL];
    extensions 200 to max;
  }
  repeated ModelProto.SentencePiece pieces = 1;
  optional TrainerSpec trainer_spec = 2;
  optional NormalizerSpec normalizer_spec = 3;
  optional SelfTestData self_test_data = 4;
  optional NormalizerSpec denormalizer_spec = 5;
  extensions 200 to max;
}
`;

const ModelProto = protobuf
  .parse(SENTENCEPIECE_MODEL_PROTO, { keepCase: true })
  .root.lookupType('sentencepiece.ModelProto');

export interface ModelInfo {
  pieces: string[];
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
}

interface Piece {
  piece: string;
}
interface Model {
  pieces: Piece[];
  trainer_spec?: { unk_id: number; bos_id: number; eos_id: number; pad_id: number } | null;
}

/**
 * The vocabulary and special ids of a serialized ModelProto; throws naming `modelPath` when it is not
 * one taskmoe can use. `mapped`: ids come from a vocabulary mapping (imported models), so the
 * special pieces need not be in the model.
 */
export function readModelInfo(bytes: Uint8Array, modelPath: string, mapped = false): ModelInfo {
  let model: Model;
  try {
    model = ModelProto.decode(bytes) as unknown as Model;
  } catch (err) {
    throw new Error(`invalid sentencepiece model ${modelPath}: ${(err as Error).message}`);
  }
  // A field left out reads as its proto2 default (the message's prototype holds them): a trainer
  // spec without pad_id has none (-1). A piece must be present, if empty.
  const pieces = model.pieces.map((p, i) => {
    if (!Object.hasOwn(p, 'piece'))
      throw new Error(`invalid sentencepiece model ${modelPath}: vocabulary entry ${i} without a piece`);
    return p.piece;
  });
  const spec =
    model.trainer_spec ??
    (ModelProto.lookupType('sentencepiece.TrainerSpec').create() as unknown as NonNullable<Model['trainer_spec']>);
  const info: ModelInfo = { pieces, unkId: spec.unk_id, bosId: spec.bos_id, eosId: spec.eos_id, padId: spec.pad_id };
  for (const key of mapped ? [] : (['padId', 'unkId', 'bosId', 'eosId'] as const)) {
    if (info[key] < 0 || info[key] >= info.pieces.length) {
      throw new Error(`sentencepiece model ${modelPath} has no ${key} (taskmoe needs pad, unk, bos and eos pieces)`);
    }
  }
  return info;
}
