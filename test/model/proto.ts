/**
 * Writes minimal ONNX ModelProto bytes for tests of model checks (shapes and types Python's
 * exporters would not produce on purpose). Field numbers from onnx.proto.
 */

interface ValueSpec {
  readonly name: string;
  readonly elemType?: number;
  readonly dims?: readonly (number | string)[];
  /** A sequence output, as scikit-learn's ZipMap produces. */
  readonly sequence?: boolean;
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

const field = (no: number, payload: number[]): number[] => [...varint(no * 8 + 2), ...varint(payload.length), ...payload];
const intField = (no: number, v: number): number[] => [...varint(no * 8), ...varint(v)];
const str = (s: string): number[] => [...Buffer.from(s, 'utf8')];

function valueInfo(v: ValueSpec): number[] {
  let type: number[];
  if (v.sequence) type = field(4, []);
  else {
    const dims = (v.dims ?? []).flatMap((d) => field(1, typeof d === 'number' ? intField(1, d) : field(2, str(d))));
    type = field(1, [...intField(1, v.elemType ?? 1), ...field(2, dims)]);
  }
  return [...field(1, str(v.name)), ...field(2, type)];
}

/**
 * A model with one node (`Identity` unless `op` says otherwise) and the given inputs and outputs.
 *
 * @example
 * writeFileSync('zipmap.onnx', protoModel({ inputs: [{ name: 'x', elemType: 1, dims: ['N', 2] }], outputs: [{ name: 'p', sequence: true }] }));
 */
export function protoModel(spec: { inputs: ValueSpec[]; outputs: ValueSpec[]; op?: string }): Uint8Array {
  const node = field(1, [
    ...field(1, str(spec.inputs[0].name)),
    ...field(2, str(spec.outputs[0].name)),
    ...field(4, str(spec.op ?? 'Identity')),
  ]);
  const graph = [
    ...node,
    ...field(2, str('g')),
    ...spec.inputs.flatMap((i) => field(11, valueInfo(i))),
    ...spec.outputs.flatMap((o) => field(12, valueInfo(o))),
  ];
  return Uint8Array.from([...intField(1, 8), ...field(7, graph), ...field(8, [...field(1, []), ...intField(2, 17)])]);
}
