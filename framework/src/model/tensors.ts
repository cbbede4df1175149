/**
 * Tensor element values: which JavaScript values each ONNX element type accepts, the typed
 * arrays rows are packed into, and the conversions on the way in and out of ONNX Runtime.
 *
 * @example
 * badValue('int32', 1.5);   // '1.5, not an integer'
 * allocate('float32', 4);   // Float32Array(4)
 */
import { describe } from '../io/serializers.js';
import type { ElementType, ValueSignature } from './onnx-file.js';

/** Tensor element types Sluice can feed; the others fail at load with the list. */
export const FEEDABLE: readonly ElementType[] = ['float32', 'float64', 'int32', 'int64', 'string', 'bool'];

/** How one input's rows are shaped: values per row, and the tensor dims after the batch. */
export interface InputPlan {
  readonly sig: ValueSignature;
  readonly type: ElementType;
  /** Values per row, or undefined when the model does not fix it (the first row sets it). */
  readonly width: number | undefined;
  /** Dims after the batch dimension; `undefined` entries are taken from the row width. */
  readonly rest: readonly (number | undefined)[];
}

/** A tensor shape for messages: `[N, 4]` (the batch dimension is N). */
export function shapeText(dims: readonly (number | null)[]): string {
  return `[${dims.map((d, i) => (d === null ? (i === 0 ? 'N' : '?') : String(d))).join(', ')}]`;
}

/** Why a value cannot go into a tensor of `type`, or undefined if it can. */
export function badValue(type: ElementType, v: unknown): string | undefined {
  switch (type) {
    case 'string':
      return typeof v === 'string' ? undefined : `${describe(v)}, not a string`;
    case 'bool':
      return typeof v === 'boolean' || v === 0 || v === 1 ? undefined : `${describe(v)}, not a boolean`;
    case 'int32':
    case 'int64':
      if (typeof v === 'bigint') return type === 'int32' && (v > 2147483647n || v < -2147483648n) ? `${v}, out of int32 range` : undefined;
      if (typeof v !== 'number') return `${describe(v)}, not a number`;
      if (!Number.isFinite(v)) return `${v} (not finite)`;
      if (!Number.isInteger(v)) return `${v}, not an integer`;
      return type === 'int32' && (v > 2147483647 || v < -2147483648) ? `${v}, out of int32 range` : undefined;
    default:
      if (typeof v !== 'number') return `${describe(v)}, not a number`;
      return Number.isFinite(v) ? undefined : `${v} (not finite)`;
  }
}

/** The typed array (or string array) that holds `n` values of `type` for one input tensor. */
export function allocate(type: ElementType, n: number): ArrayLike<unknown> {
  switch (type) {
    case 'float32':
      return new Float32Array(n);
    case 'float64':
      return new Float64Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'bool':
      return new Uint8Array(n);
    default:
      return new Array<string>(n);
  }
}

/** A checked value as the tensor stores it (int64 as bigint, bool as 0/1). */
export function convert(type: ElementType, v: unknown): unknown {
  if (type === 'int64') return typeof v === 'bigint' ? v : BigInt(v as number);
  if (type === 'bool') return v === true || v === 1 ? 1 : 0;
  return v;
}

/** A value read from an output tensor as plain JavaScript (int64 bigints become numbers). */
export function fromTensor(v: unknown): unknown {
  return typeof v === 'bigint' ? Number(v) : v;
}
