// A small builder for ONNX graphs, encoded with protobufjs from ONNX's published onnx.proto
// (vendored next to this file), so a model can be turned into an ONNX graph in memory, no Python.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** The opset the graphs are written against (LayerNormalization needs 17). */
export const OPSET = 17;
const IR_VERSION = 8;

// TensorProto.DataType
export const FLOAT = 1;
export const INT64 = 7;
type DataType = typeof FLOAT | typeof INT64;

let types: { model: protobuf.Type; graph: protobuf.Type; tensor: protobuf.Type } | undefined;

/** onnx.proto sits beside this module (the build copies it into dist/onnx/). */
function protoPath(): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), 'onnx.proto');
}

function onnxTypes(): NonNullable<typeof types> {
  if (types === undefined) {
    const root = protobuf.loadSync(protoPath());
    types = {
      model: root.lookupType('onnx.ModelProto'),
      graph: root.lookupType('onnx.GraphProto'),
      tensor: root.lookupType('onnx.TensorProto'),
    };
  }
  return types;
}

type AttrValue = number | number[] | string;
type Attrs = Record<string, AttrValue | { float: number }>;

interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  rawData: Uint8Array;
}

/** A dimension of a graph input or output: a fixed size or a named, dynamic one. */
export type Dim = number | string;

/**
 * Nodes, initializers, inputs and outputs of one graph. Each node gets fresh output names, so a
 * graph reads as a chain of calls: `const y = g.op('Relu', [x])`.
 */
export class GraphBuilder {
  private readonly nodes: object[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly constants = new Map<string, string>();
  private counter = 0;

  constructor(readonly name: string) {}

  /** Adds a node; returns its output names (`outputs` of them). */
  ops(opType: string, inputs: string[], outputs: number, attrs: Attrs = {}): string[] {
    const names = Array.from({ length: outputs }, () => `${opType}_${this.counter++}`);
    const attribute = Object.entries(attrs).map(([name, v]) => attribute_(name, v));
    this.nodes.push({ opType, input: inputs, output: names, attribute, name: names[0] });
    return names;
  }

  /** Adds a node with one output. */
  op(opType: string, inputs: string[], attrs: Attrs = {}): string {
    return this.ops(opType, inputs, 1, attrs)[0];
  }

  /** Renames a value to a graph output name (Identity), declaring it as an output. */
  output(value: string, name: string, dataType: DataType, dims: Dim[]): void {
    this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `out_${name}` });
    this.outputs.push(valueInfo(name, dataType, dims));
  }

  input(name: string, dataType: DataType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, dataType, dims));
    return name;
  }

  /** A float32 weight, stored in the graph. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    this.initializers.push({
      name,
      dims,
      dataType: FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** A small int64 constant (shapes, axes), shared between nodes. */
  ints(values: number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = `const_${this.constants.size}`;
      const data = BigInt64Array.from(values.map(BigInt));
      this.initializers.push({ name, dims: [values.length], dataType: INT64, rawData: new Uint8Array(data.buffer) });
      this.constants.set(key, name);
    }
    return name;
  }

  /** A float32 scalar constant. */
  scalar(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (name === undefined) {
      name = `const_${this.constants.size}`;
      this.initializers.push({
        name,
        dims: [],
        dataType: FLOAT,
        rawData: new Uint8Array(Float32Array.of(value).buffer),
      });
      this.constants.set(key, name);
    }
    return name;
  }

  /**
   * The serialized ModelProto. protobufjs writes large byte fields at ~50 MB/s, so the weights'
   * raw bytes are appended as fields by hand: a message is the concatenation of its fields, so
   * GraphProto = (its small fields) + one `initializer` field per tensor, and TensorProto =
   * (name, dims, type) + its `raw_data` field.
   */
  toBytes(docString = ''): Uint8Array {
    const types = onnxTypes();
    const tensors = this.initializers.map(({ rawData, ...header }) =>
      concat([types.tensor.encode(header).finish(), fieldHeader(TENSOR_RAW_DATA, rawData.byteLength), rawData]),
    );
    const graphFields = types.graph
      .encode({ name: this.name, node: this.nodes, input: this.inputs, output: this.outputs })
      .finish();
    const graph = concat([graphFields, ...tensors.flatMap((t) => [fieldHeader(GRAPH_INITIALIZER, t.byteLength), t])]);
    const model = types.model
      .encode({
        irVersion: IR_VERSION,
        producerName: 'taskmoe',
        opsetImport: [{ domain: '', version: OPSET }],
        docString,
      })
      .finish();
    return concat([model, fieldHeader(MODEL_GRAPH, graph.byteLength), graph]);
  }
}

// Field numbers in onnx.proto.
const TENSOR_RAW_DATA = 9;
const GRAPH_INITIALIZER = 5;
const MODEL_GRAPH = 7;

// The key (field number, wire type 2: length-delimited) and length of a field, as protobuf varints.
function fieldHeader(field: number, length: number): Uint8Array {
  const bytes = [(field << 3) | 2];
  for (let n = length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      bytes.push(n);
      break;
    }
    bytes.push((n % 128) | 128);
  }
  return Uint8Array.from(bytes);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

function attribute_(name: string, v: AttrValue | { float: number }): object {
  if (typeof v === 'string') return { name, type: ATTR_STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: ATTR_INTS, ints: v };
  if (typeof v === 'object') return { name, type: ATTR_FLOAT, f: v.float };
  return { name, type: ATTR_INT, i: v };
}

function valueInfo(name: string, elemType: DataType, dims: Dim[]): object {
  const dim = dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d }));
  return { name, type: { tensorType: { elemType, shape: { dim } } } };
}
