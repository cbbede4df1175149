/**
 * Reads the signature of an ONNX model (its graph inputs and outputs) straight from the file's
 * protobuf bytes, without ONNX Runtime: module load can then fail fast on a missing, truncated or
 * unsuitable model, and functions pay for ONNX Runtime only when they score.
 *
 * Only the few fields needed are decoded (onnx.proto: ModelProto.graph = 7; GraphProto.input = 11,
 * output = 12, initializer = 5; ValueInfoProto.name = 1, type = 2; TypeProto.tensor_type = 1;
 * Tensor.elem_type = 1, shape = 2; TensorShapeProto.dim = 1; Dimension.dim_value = 1,
 * dim_param = 2), see https://github.com/onnx/onnx/blob/main/onnx/onnx.proto. Everything else
 * is skipped by wire type, which also checks that the whole file is well-formed protobuf.
 */

import { OnnxFormatError } from '../errors.js';

/** Tensor element types by their onnx.proto `TensorProto.DataType` number. */
export const ELEMENT_TYPES = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
} as const;
export type ElementType = (typeof ELEMENT_TYPES)[keyof typeof ELEMENT_TYPES];

/**
 * One graph input or output. `dims` holds a number for a fixed dimension and `null` for a
 * symbolic or unknown one (such as a dynamic batch). `kind` is not `tensor` for sequences and
 * maps (scikit-learn's ZipMap output), which ONNX Runtime for Node cannot return.
 */
export interface ValueSignature {
  readonly name: string;
  readonly kind: 'tensor' | 'sequence' | 'map' | 'other';
  readonly type: ElementType | 'unknown';
  readonly dims: readonly (number | null)[] | undefined;
}

/** A model's graph inputs (initializers excluded) and outputs. */
export interface ModelSignature {
  readonly irVersion: number;
  readonly inputs: readonly ValueSignature[];
  readonly outputs: readonly ValueSignature[];
}

interface Field {
  readonly no: number;
  readonly wire: number;
  /** Varint value (wire 0). */
  readonly int: number;
  /** Payload bounds (wire 2). */
  readonly start: number;
  readonly end: number;
}

/** Iterates the fields of one protobuf message in `buf[start, end)`. */
function* fields(buf: Uint8Array, start: number, end: number): Generator<Field> {
  let p = start;
  const varint = (): number => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (p >= end) throw new OnnxFormatError('truncated varint');
      const b = buf[p++];
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new OnnxFormatError('varint longer than 10 bytes');
  };
  while (p < end) {
    const tag = varint();
    const no = Math.floor(tag / 8);
    const wire = tag % 8;
    if (no === 0) throw new OnnxFormatError('field number 0');
    switch (wire) {
      case 0:
        yield { no, wire, int: varint(), start: 0, end: 0 };
        break;
      case 1:
        p += 8;
        break;
      case 2: {
        const len = varint();
        const s = p;
        p += len;
        if (p > end) throw new OnnxFormatError(`field ${no} runs past the end of its message`);
        yield { no, wire, int: 0, start: s, end: p };
        break;
      }
      case 5:
        p += 4;
        break;
      default:
        throw new OnnxFormatError(`unsupported wire type ${wire}`);
    }
    if (p > end) throw new OnnxFormatError('truncated field');
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(buf: Uint8Array, f: Field): string {
  return utf8.decode(buf.subarray(f.start, f.end));
}

function valueInfo(buf: Uint8Array, start: number, end: number): ValueSignature {
  let name = '';
  let kind: ValueSignature['kind'] = 'other';
  let type: ValueSignature['type'] = 'unknown';
  let dims: (number | null)[] | undefined;
  for (const f of fields(buf, start, end)) {
    if (f.no === 1 && f.wire === 2) name = text(buf, f);
    if (f.no !== 2 || f.wire !== 2) continue;
    for (const t of fields(buf, f.start, f.end)) {
      if (t.wire !== 2) continue;
      if (t.no === 4) kind = 'sequence';
      else if (t.no === 5) kind = 'map';
      else if (t.no === 1) {
        kind = 'tensor';
        for (const tf of fields(buf, t.start, t.end)) {
          if (tf.no === 1 && tf.wire === 0) type = ELEMENT_TYPES[tf.int as keyof typeof ELEMENT_TYPES] ?? 'unknown';
          if (tf.no === 2 && tf.wire === 2) {
            dims = [];
            for (const d of fields(buf, tf.start, tf.end)) {
              if (d.no !== 1 || d.wire !== 2) continue;
              let size: number | null = null;
              for (const df of fields(buf, d.start, d.end)) if (df.no === 1 && df.wire === 0 && df.int > 0) size = df.int;
              dims.push(size);
            }
          }
        }
      }
    }
  }
  return { name, kind, type, dims };
}

/**
 * The signature of the ONNX model in `bytes`. Throws {@link OnnxFormatError} for anything that is
 * not a well-formed model with a graph, inputs and outputs.
 *
 * @example
 * const sig = readModelSignature(readFileSync('model.onnx'));
 * sig.inputs[0]; // { name: 'features', kind: 'tensor', type: 'float32', dims: [null, 4] }
 */
export function readModelSignature(bytes: Uint8Array): ModelSignature {
  if (bytes.length === 0) throw new OnnxFormatError('the file is empty');
  let irVersion = 0;
  let graph: Field | undefined;
  for (const f of fields(bytes, 0, bytes.length)) {
    if (f.no === 1 && f.wire === 0) irVersion = f.int;
    if (f.no === 7 && f.wire === 2) graph = f;
  }
  if (irVersion <= 0) throw new OnnxFormatError('no ir_version: not an ONNX ModelProto');
  if (!graph) throw new OnnxFormatError('no graph');
  const inputs: ValueSignature[] = [];
  const outputs: ValueSignature[] = [];
  const initializers = new Set<string>();
  let nodes = 0;
  for (const f of fields(bytes, graph.start, graph.end)) {
    if (f.wire !== 2) continue;
    if (f.no === 1) nodes++;
    else if (f.no === 11) inputs.push(valueInfo(bytes, f.start, f.end));
    else if (f.no === 12) outputs.push(valueInfo(bytes, f.start, f.end));
    else if (f.no === 5) {
      for (const t of fields(bytes, f.start, f.end)) if (t.no === 8 && t.wire === 2) initializers.add(text(bytes, t));
    }
  }
  if (nodes === 0) throw new OnnxFormatError('the graph has no nodes');
  // Older exporters list initializers among the inputs; they are weights, not features.
  const real = inputs.filter((i) => !initializers.has(i.name));
  if (real.length === 0) throw new OnnxFormatError('the graph has no inputs');
  if (outputs.length === 0) throw new OnnxFormatError('the graph has no outputs');
  return { irVersion, inputs: real, outputs };
}
