import './metadata.js';
import type { Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { describe, resolveSerializer } from '../io/serializers.js';
import { KeyedState } from '../state/keyed.js';
import { type AggregationResult, type AggregationSpec, type Aggregator, normalizeAggregations } from '../windows/aggregators.js';
import { type CountWindowOptions, type TimeWindowOptions, type WindowSpec, windowSpecs } from '../windows/spec.js';
import type { KeyedStateSpec, LateRecord, Manifest, RecordContext, Scorer, ScoreStep, SourceSpec, Step, StepKind } from './manifest.js';
import type { OutputOptions, SourceOptions } from './metadata.js';
import { SOURCE_OPTIONS, sourceSpec } from './source.js';

/**
 * A window result: bounds plus `value` (one aggregator) or one field per named aggregator.
 *
 * @example
 * stream<Reading>('readings')
 *   .tumblingWindow('10s')
 *   .aggregate({ avg: mean('speed'), n: count() })
 *   .map((w) => `${w.start}..${w.end}: ${w.avg} over ${w.n}`); // w: { start, end, avg, n }
 */
export type WindowResult<A> = A extends { readonly initialize: unknown }
  ? { start: number; end: number; value: AggregationResult<A> }
  : { start: number; end: number } & AggregationResult<A>;

interface StepOptions {
  /** Step name in the manifest and in messages; defaults to the function's name. */
  readonly name?: string;
}

/**
 * The function-first form: a typed chain where each step infers the type that flows next.
 * Produces the same manifest as the decorator form.
 *
 * @example
 * export const handler = sluice(
 *   stream<Reading>('sensor-readings')
 *     .tumblingWindow('10s', { grace: '2s' })
 *     .aggregate(sum('value'), { name: 'total' })
 *     .to('sensor-sums'),
 * );
 */
export class Stream<T> {
  /** @internal */
  constructor(
    readonly name: string,
    /** @internal */ readonly source: SourceSpec,
    /** @internal */ readonly steps: readonly Step[],
    /** @internal */ readonly state: readonly KeyedStateSpec[],
    /** @internal */ readonly lateTopic: string | undefined,
  ) {}

  #with<R>(step: Step): Stream<R> {
    return new Stream<R>(this.name, this.source, [...this.steps, step], this.state, this.lateTopic);
  }

  #fn<R>(kind: StepKind, fn: unknown, opts: StepOptions | undefined): Stream<R> {
    if (typeof fn !== 'function') throw new ConfigError(`${kind}() of stream "${this.name}" needs a function; received ${describe(fn)}.`);
    rejectAsync(fn, `${kind}() of stream "${this.name}"`);
    const name = opts?.name ?? (fn.name || `${kind}${this.steps.length + 1}`);
    return this.#with<R>({ kind, name, fn: fn as (v: any, c: RecordContext) => any });
  }

  /** Transforms each value. @example .map((r) => ({ ...r, kmh: r.speed * 3.6 })) */
  map<R>(fn: (value: T, ctx: RecordContext) => R, opts?: StepOptions): Stream<R> {
    return this.#fn<R>('map', fn, opts);
  }

  /** Keeps values for which `fn` returns true; a type guard narrows the type. @example .filter((r) => r.kmh > 100) */
  filter<S extends T>(fn: (value: T, ctx: RecordContext) => value is S, opts?: StepOptions): Stream<S>;
  filter(fn: (value: T, ctx: RecordContext) => boolean, opts?: StepOptions): Stream<T>;
  filter(fn: (value: T, ctx: RecordContext) => boolean, opts?: StepOptions): Stream<T> {
    return this.#fn<T>('filter', fn, opts);
  }

  /** Turns one value into many. @example .expand((order) => order.items) */
  expand<R>(fn: (value: T, ctx: RecordContext) => Iterable<R>, opts?: StepOptions): Stream<R> {
    return this.#fn<R>('expand', fn, opts);
  }

  /** Runs a side effect; the value passes on unchanged. @example .update((r) => metrics.add(r)) */
  update(fn: (value: T, ctx: RecordContext) => unknown, opts?: StepOptions): Stream<T> {
    return this.#fn<T>('update', fn, opts);
  }

  /** Sets the record key; windows and keyed state are scoped by it. @example .key((r) => r.deviceId) */
  key(fn: (value: T, ctx: RecordContext) => string | null, opts?: StepOptions): Stream<T> {
    return this.#fn<T>('key', fn, opts);
  }

  /** Sets the event time in epoch ms (default: the Kafka timestamp). @example .timestamp((r) => r.ts) */
  timestamp(fn: (value: T, ctx: RecordContext) => number, opts?: StepOptions): Stream<T> {
    return this.#fn<T>('timestamp', fn, opts);
  }

  /**
   * Scores each value with a model (see `onnxModel()`): `features` turns a value into the model's
   * input row, all rows of the batch (or all windows closing in it) go through one model run, and
   * `output` maps the model's outputs and the value to what flows next. A row the model cannot take
   * (wrong length, a non-finite number) goes to the dead-letter path with the reason.
   *
   * @example
   * .tumblingWindow('10s').aggregate({ mean: mean('speed'), max: max('speed') })
   * .score(transportMode, {
   *   features: (w) => [w.mean ?? 0, w.max ?? 0],
   *   output: (o, w) => ({ ...w, mode: o.label }),
   * })
   */
  score<O, R>(model: Scorer<O>, opts: ScoreOptions<T, O, R>): Stream<R> {
    const name = opts?.name ?? (typeof model?.name === 'string' ? model.name : `score${this.steps.length + 1}`);
    return this.#with<R>(
      scoreStep(model, opts?.features, opts?.output, name, `score() of stream "${this.name}"`, ['features', 'output', 'name'], opts),
    );
  }

  /** Sends the current values to a topic; the stream continues. @example .to('fast-vehicles') */
  to(topic: string, opts: OutputOptions = {}): Stream<T> {
    if (typeof topic !== 'string' || topic.length === 0)
      throw new ConfigError(`to() of stream "${this.name}" needs a topic name; received ${describe(topic)}.`);
    checkOutputOptions(opts, `to('${topic}')`);
    return this.#with<T>({
      kind: 'to',
      name: topic,
      topic,
      key: resolveSerializer(opts.key, 'string', `key serializer of output "${topic}"`),
      value: resolveSerializer(opts.value, 'json', `value serializer of output "${topic}"`),
    });
  }

  /** Tumbling windows of `size`. @example .tumblingWindow('10s', { grace: '2s' }).aggregate(sum('value')) */
  tumblingWindow(size: Duration, opts?: TimeWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'tumblingWindow', (w) => windowSpecs.tumbling(size, opts, w));
  }

  /** Hopping windows of `size` every `step`. @example .hoppingWindow('1m', '10s').aggregate(mean('speed')) */
  hoppingWindow(size: Duration, step: Duration, opts?: TimeWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'hoppingWindow', (w) => windowSpecs.hopping(size, step, opts, w));
  }

  /** Sliding windows: one per record, covering the `size` before it. @example .slidingWindow('30s').aggregate(max('speed')) */
  slidingWindow(size: Duration, opts?: TimeWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'slidingWindow', (w) => windowSpecs.sliding(size, opts, w));
  }

  /** Session windows separated by `gap` of inactivity. @example .sessionWindow('30s').aggregate(count()) */
  sessionWindow(gap: Duration, opts?: TimeWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'sessionWindow', (w) => windowSpecs.session(gap, opts, w));
  }

  /** Tumbling windows of `count` records. @example .tumblingCountWindow(100).aggregate(mean('value')) */
  tumblingCountWindow(count: number, opts?: CountWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'tumblingCountWindow', (w) => windowSpecs.tumblingCount(count, opts, w));
  }

  /** Hopping windows of `count` records every `step`. @example .hoppingCountWindow(10, 5).aggregate(sum('value')) */
  hoppingCountWindow(count: number, step: number, opts?: CountWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'hoppingCountWindow', (w) => windowSpecs.hoppingCount(count, step, opts, w));
  }

  /** The last `count` records, one window per record. @example .slidingCountWindow(5).aggregate(mean('value')) */
  slidingCountWindow(count: number, opts?: CountWindowOptions): WindowBuilder<T> {
    return new WindowBuilder(this, 'slidingCountWindow', (w) => windowSpecs.slidingCount(count, opts, w));
  }

  /** The manifest this chain describes. */
  manifest(): Manifest {
    return {
      name: this.name,
      source: this.source,
      steps: this.steps,
      state: this.state,
      ...(this.lateTopic ? { lateTopic: this.lateTopic } : {}),
    };
  }

  /** @internal */
  withWindow<R>(step: Step): Stream<R> {
    return this.#with<R>(step);
  }
}

/**
 * A window waiting for its aggregation: what the window methods of {@link Stream} return.
 *
 * @example
 * const sums = stream<Reading>('sensor-readings').tumblingWindow('10s').aggregate(sum('value')).to('sensor-sums');
 */
export class WindowBuilder<T> {
  /** @internal */
  constructor(
    readonly stream: Stream<T>,
    readonly label: string,
    readonly build: (where: string) => WindowSpec,
  ) {}

  /**
   * Aggregates each window: one aggregator gives `{ start, end, value }`, named ones give
   * `{ start, end, ...names }`.
   *
   * @example
   * .aggregate({ avg: mean('speed'), n: count() }, { name: 'speedStats' })
   */
  aggregate<A extends AggregationSpec<T>>(
    aggregations: A | Aggregator<T, any, any>,
    opts: { name?: string; onLate?: (late: LateRecord) => void } = {},
  ): Stream<WindowResult<A>> {
    const name = opts.name ?? this.label;
    const where = `${this.label} "${name}"`;
    const window = this.build(where);
    if (opts.onLate !== undefined && typeof opts.onLate !== 'function')
      throw new ConfigError(`onLate of ${where} must be a function; received ${describe(opts.onLate)}.`);
    return this.stream.withWindow({
      kind: 'window',
      name,
      window,
      aggregations: normalizeAggregations(aggregations, where),
      ...(opts.onLate ? { onLate: opts.onLate } : {}),
    });
  }
}

/**
 * Options of {@link stream}: serializers, validation, keyed state, late-record topic.
 *
 * @example
 * const lastSeen = keyedState<number>('lastSeen', { ttl: '1d' });
 * stream<Reading>('readings', { key: 'string', value: 'json', state: [lastSeen], lateTopic: 'late-readings' });
 */
export interface StreamOptions<T> extends SourceOptions<T> {
  readonly state?: readonly KeyedState<any>[];
}

/**
 * Starts a function-first pipeline from a source topic.
 *
 * @example
 * const s = stream<Reading>('sensor-readings', { value: 'json' });
 */
export function stream<T = unknown>(topic: string, opts: StreamOptions<T> = {}): Stream<T> {
  if (typeof topic !== 'string' || topic.length === 0)
    throw new ConfigError(`stream() needs a source topic name; received ${describe(topic)}.`);
  const known = [...SOURCE_OPTIONS, 'state'];
  for (const k of Object.keys(opts)) {
    if (!known.includes(k)) throw new ConfigError(`unknown option "${k}" for stream("${topic}"); allowed: ${known.join(', ')}.`);
  }
  const name = opts.name ?? topic;
  if (opts.state !== undefined && !Array.isArray(opts.state)) {
    throw new ConfigError(`state of stream("${topic}") must be an array of keyedState(...) handles; received ${describe(opts.state)}.`);
  }
  const state = (opts.state ?? []).map((h, i) => {
    if (!(h instanceof KeyedState)) {
      throw new ConfigError(
        `state[${i}] of stream("${topic}") is not a keyed state handle (received ${describe(h)}); create one with keyedState<T>('name').`,
      );
    }
    return { name: h.name, ...(h.ttlMs !== undefined ? { ttlMs: h.ttlMs } : {}) };
  });
  return new Stream<T>(name, sourceSpec(topic, opts, `stream "${name}"`), [], state, opts.lateTopic);
}

/**
 * Options of `.score()`: how a value becomes a row, and how the model's outputs become the value
 * that flows next.
 *
 * @example
 * const opts: ScoreOptions<Stats, { label: string }, Stats & { mode: string }> = {
 *   features: (w) => [w.mean, w.max], output: (o, w) => ({ ...w, mode: o.label }),
 * };
 */
export interface ScoreOptions<T, O, R> {
  readonly features: (value: T, ctx: RecordContext) => unknown;
  readonly output: (outputs: O, value: T, ctx: RecordContext) => R;
  /** Step name in the manifest and in dead-letter reasons; defaults to the model's name. */
  readonly name?: string;
}

/** @internal Validates a score step of either form, at load time. */
export function scoreStep(
  model: unknown,
  features: unknown,
  output: unknown,
  name: string,
  where: string,
  known: readonly string[],
  opts: unknown,
): ScoreStep {
  if (opts === null || typeof opts !== 'object') {
    throw new ConfigError(`${where} needs options { features, output }; received ${describe(opts)}.`);
  }
  for (const k of Object.keys(opts)) {
    if (!known.includes(k)) throw new ConfigError(`unknown option "${k}" in ${where}; allowed: ${known.join(', ')}.`);
  }
  const m = model as Scorer | undefined;
  if (!m || typeof m !== 'object' || typeof m.score !== 'function' || typeof m.name !== 'string') {
    throw new ConfigError(
      `${where} needs a model such as onnxModel(new URL('./model.onnx', import.meta.url)); received ${describe(model)}.`,
    );
  }
  if (typeof features !== 'function') {
    throw new ConfigError(
      `${where} needs features: a function from the value to the model's input row, e.g. (w) => [w.mean, w.max]; received ${describe(features)}.`,
    );
  }
  if (typeof output !== 'function') {
    throw new ConfigError(`${where} needs output: a function (outputs, value) => the value to emit; received ${describe(output)}.`);
  }
  rejectAsync(features, `features of ${where}`);
  rejectAsync(output, `output of ${where}`);
  return { kind: 'score', name, model: m, features: features as ScoreStep['features'], output: output as ScoreStep['output'] };
}

/** Steps run synchronously inside a batch; an async function would emit Promises. */
export function rejectAsync(fn: Function, where: string): void {
  if (fn.constructor?.name === 'AsyncFunction' || fn.constructor?.name === 'AsyncGeneratorFunction') {
    throw new ConfigError(
      `${where} is an async function; steps must be synchronous so a batch's state stays consistent. Do I/O in middy middleware, or fetch what you need before the batch.`,
    );
  }
}

/** Checks the options of an output at load time. */
export function checkOutputOptions(opts: unknown, where: string): void {
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new ConfigError(`options of ${where} must be an object such as { key: 'string', value: 'json' }; received ${describe(opts)}.`);
  }
  for (const k of Object.keys(opts)) {
    if (k !== 'key' && k !== 'value') throw new ConfigError(`unknown option "${k}" for ${where}; allowed: key, value (serializers).`);
  }
}
