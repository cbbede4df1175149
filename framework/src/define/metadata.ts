// Standard decorator metadata needs Symbol.metadata; Node 20 and 22 do not define it yet.
(Symbol as { metadata?: symbol }).metadata ??= Symbol.for('Symbol.metadata');

import type { Duration } from '../duration.js';
import type { SerializerName, Serializer } from '../io/serializers.js';
import type { StepKind } from './manifest.js';
import type { Guarantee } from './guarantee.js';

/** One thing a member decorator recorded. `seq` is the decorator's evaluation order (source order). */
export type Binding =
  | { readonly seq: number; readonly member: string; readonly role: 'step'; readonly kind: StepKind }
  | {
      readonly seq: number;
      readonly member: string;
      readonly role: 'window';
      readonly build: (name: string) => unknown;
      readonly options: WindowExtras;
    }
  | { readonly seq: number; readonly member: string; readonly role: 'to'; readonly topic: string; readonly options: OutputOptions }
  | { readonly seq: number; readonly member: string; readonly role: 'keyed'; readonly options: { ttl?: unknown } }
  | {
      readonly seq: number;
      readonly member: string;
      readonly role: 'score';
      readonly model: unknown;
      readonly options: { features?: unknown; name?: string };
    };

export interface WindowExtras {
  readonly onLate?: (late: any) => void;
}

/**
 * Serializers of an output (`@to()` or `.to()`): `key` defaults to `'string'`, `value` to `'json'`.
 *
 * @example
 * @to('raw-frames', { key: 'string', value: 'bytes' }) @map() frame(r: Upload) { return Buffer.from(r.data, 'base64'); }
 */
export interface OutputOptions {
  readonly key?: SerializerName | Serializer<any>;
  readonly value?: SerializerName | Serializer<any>;
}

/**
 * Options of `@source()` (and, with `state`, of `stream()`): how to read the source topic.
 *
 * @example
 * @source('vehicle-speeds', {
 *   value: 'json',
 *   validate: (v: SpeedReading) => Number.isFinite(v?.speed) || 'speed must be a finite number',
 *   lateTopic: 'late-speeds',
 *   maxClockSkew: '15m',
 * })
 * class SpeedAverage {}
 */
export interface SourceOptions<T = unknown> {
  /** Key serializer; default `'string'`. */
  readonly key?: SerializerName | Serializer<any>;
  /** Value serializer; default `'json'`. */
  readonly value?: SerializerName | Serializer<T>;
  /** Returns true, or false or a reason for a value that must not be processed (it becomes poison). */
  readonly validate?: (value: T) => boolean | string;
  /** Topic for late records (besides onLate hooks). */
  readonly lateTopic?: string;
  /** Name of the function in messages and state; defaults to the class name. */
  readonly name?: string;
  /**
   * The clock guard: a record whose event time is more than this ahead of the wall clock is
   * dead-lettered by the window it reaches, and moves no window clock. Default `'1h'`; `false`
   * turns the guard off (e.g. to replay data stamped in the future on purpose).
   */
  readonly maxClockSkew?: Duration | false;
  /**
   * The idle allowance of every window that sets none (see the windows' `idle`): once a partition
   * is caught up and quiet this long, its open windows close. Off by default.
   */
  readonly idle?: Duration | false;
  /**
   * How outputs, late records and dead letters are delivered: `'at-least-once'` (the default; a
   * retry may publish an output again, with the same `sluice-id`) or `'exactly-once'` (each
   * partition batch's in one Kafka transaction, committed with its state; downstream consumers read
   * with `isolation.level=read_committed`). See docs/guarantees.md.
   */
  readonly guarantee?: Guarantee;
}

export interface ClassRecord {
  bindings: Binding[];
  source?: { topic: string; options: SourceOptions<any> };
}

const KEY = Symbol.for('sluice.definition');
let seq = 0;

/** @internal The next decorator sequence number: decorator expressions evaluate in source order. */
export function nextSeq(): number {
  return ++seq;
}

/** @internal The record a class's decorators write into its metadata. */
export function recordOf(metadata: DecoratorMetadataObject): ClassRecord {
  const m = metadata as Record<symbol, ClassRecord | undefined>;
  // Each class gets its own record; a subclass's metadata inherits its parent's via the prototype chain.
  if (!Object.hasOwn(m, KEY)) {
    const parent = m[KEY];
    m[KEY] = { bindings: parent ? [...parent.bindings] : [], ...(parent?.source ? { source: parent.source } : {}) };
  }
  return m[KEY]!;
}

/** @internal The record of a decorated class, if any. */
export function classRecord(cls: Function): ClassRecord | undefined {
  const meta = (cls as { [Symbol.metadata]?: DecoratorMetadataObject })[Symbol.metadata];
  return meta ? (meta as Record<symbol, ClassRecord | undefined>)[KEY] : undefined;
}
