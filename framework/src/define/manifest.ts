import type { Serializer } from '../io/serializers.js';
import type { Guarantee } from './guarantee.js';
import type { WindowAggregations } from '../windows/operators/index.js';
import type { WindowSpec } from '../windows/spec.js';

/**
 * What a step sees besides the value: where the record came from and its current key and time.
 *
 * @example
 * stream<Reading>('readings').map((r, ctx) => ({ ...r, sensor: ctx.key, at: ctx.timestamp, from: `${ctx.topic}-${ctx.partition}@${ctx.offset}` }));
 */
export interface RecordContext {
  readonly key: string | null;
  readonly timestamp: number;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** The stateless step kinds, in the vocabulary of both authoring forms. */
export const STEP_KINDS = ['map', 'filter', 'expand', 'update', 'key', 'timestamp'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export interface FunctionStep {
  readonly kind: StepKind;
  readonly name: string;
  readonly fn: (value: any, ctx: RecordContext) => any;
}

/**
 * A late record as `onLate` sees it.
 *
 * @example
 * @tumblingWindow('10s', { onLate: (l: LateRecord) => console.warn(`${l.key}@${l.offset} missed`, l.windows, 'clock', l.clock) })
 * total = sum('value');
 */
export interface LateRecord {
  readonly key: string;
  readonly value: unknown;
  readonly timestamp: number;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  /** The closed windows it missed, as [start, end). */
  readonly windows: ReadonlyArray<readonly [number, number]>;
  /** The clock that had closed them. */
  readonly clock: number;
  readonly window: string;
}

export interface WindowStep {
  readonly kind: 'window';
  readonly name: string;
  readonly window: WindowSpec;
  readonly aggregations: WindowAggregations;
  readonly onLate?: (late: LateRecord) => void;
}

export interface OutputStep {
  readonly kind: 'to';
  readonly name: string;
  readonly topic: string;
  readonly key: Serializer<any>;
  readonly value: Serializer<any>;
}

/** The outcome of scoring one row: outputs, or why the row could not be scored. */
export type ScoredRow<O> = { readonly ok: true; readonly outputs: O } | { readonly ok: false; readonly reason: string };

/**
 * A model a score step runs: rows of features in, one result per row out, in order. ONNX models
 * (`onnxModel()`) implement it; the core never imports ONNX Runtime.
 *
 * @example
 * const doubler: Scorer<{ y: number }> = { kind: 'custom', name: 'doubler', score: async (rows) => rows.map((r) => ({ ok: true, outputs: { y: 2 * (r as number) } })) };
 */
export interface Scorer<O = unknown> {
  readonly kind: string;
  readonly name: string;
  score(rows: readonly unknown[]): Promise<ScoredRow<O>[]>;
}

/**
 * Scores each value (a record, or a window result after a window) with a model: `features`
 * makes its row, one model run scores the whole batch, `output` maps the model's outputs and
 * the value to what flows next.
 *
 * @example
 * manifestOf(TransportMode).steps.map((s) => s.kind); // ['window', 'score', 'to']
 */
export interface ScoreStep {
  readonly kind: 'score';
  readonly name: string;
  readonly model: Scorer<any>;
  readonly features: (value: any, ctx: RecordContext) => unknown;
  readonly output: (outputs: any, value: any, ctx: RecordContext) => any;
}

/**
 * One step of a manifest, in order: a function step (`map`, `filter`, `expand`, `update`, `key`,
 * `timestamp`), a window, a model (`score`), or an output (`to`).
 *
 * @example
 * manifestOf(SensorSums).steps.map((s) => `${s.kind}:${s.name}`); // ['window:total', 'to:sensor-sums']
 */
export type Step = FunctionStep | WindowStep | ScoreStep | OutputStep;

/**
 * The source of a manifest: its topic, the resolved key and value serializers, validation and
 * the clock guard's margin.
 *
 * @example
 * const { topic, value, maxClockSkewMs } = manifestOf(SensorSums).source; // 'sensor-counts', the json serializer, 3600000
 */
export interface SourceSpec {
  readonly topic: string;
  readonly key: Serializer<any>;
  readonly value: Serializer<any>;
  /** Returns true, or a reason why the value is invalid (the record is then poison). */
  readonly validate?: (value: any) => true | string;
  /**
   * The clock guard: how far ahead of the wall clock a window takes an event time, in ms (one
   * hour unless set), or false for no guard. See docs/windows.md.
   */
  readonly maxClockSkewMs: number | false;
  /** The idle allowance of windows that set none, in ms (`idle` of the source); absent: off. */
  readonly idleMs?: number;
  /** How outputs are delivered (`guarantee` of the source), if it says: see docs/guarantees.md. */
  readonly guarantee?: Guarantee;
}

/**
 * A keyed state field of a function, as the manifest lists it (`ttlMs`: the ttl in milliseconds).
 *
 * @example
 * // with @keyed({ ttl: '1d' }) lastSeen!: KeyedState<number>;
 * manifest.state; // [{ name: 'lastSeen', ttlMs: 86_400_000 }]
 */
export interface KeyedStateSpec {
  readonly name: string;
  readonly ttlMs?: number;
}

/**
 * Everything Sluice needs to run a function, produced identically by the decorator form and the
 * function-first form. Adapters (Lambda, local emulator, packaging) only read manifests.
 *
 * @example
 * const m = manifestOf(SensorSums);
 * m.steps.map((s) => s.kind); // ['window', 'to']
 */
export interface Manifest {
  readonly name: string;
  readonly source: SourceSpec;
  readonly steps: readonly Step[];
  readonly state: readonly KeyedStateSpec[];
  /** Where late records go besides `onLate`, if anywhere. */
  readonly lateTopic?: string;
}

/**
 * Output topics a manifest writes to (its `to` topics and its late topic), for packaging and the
 * emulator.
 *
 * @example
 * outputTopics(manifestOf(SensorSums)); // ['sensor-sums']
 */
export function outputTopics(m: Manifest): string[] {
  const topics = m.steps.filter((s): s is OutputStep => s.kind === 'to').map((s) => s.topic);
  if (m.lateTopic) topics.push(m.lateTopic);
  return [...new Set(topics)];
}
