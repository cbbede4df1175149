/**
 * The aggregator vocabulary: the contract every aggregation implements and the built-in ones
 * (count, sum, mean, min, max, first, last, earliest, latest, collect, reduce), each a few lines
 * with its signature. One file over 350 lines on purpose: a reader compares them side by side.
 */
import { ConfigError } from '../errors.js';
import { describe } from '../io/serializers.js';
import { cloneJson } from '../state/json.js';

/**
 * An aggregation over the records of one window: `initialize` makes the empty accumulator,
 * `add` folds in one value with its event time and its arrival position, `result` reads it out,
 * and `merge` combines two accumulators (needed by session windows). Accumulators must be
 * JSON-serializable: they are stored as window state. `signature` is part of the stored state
 * key, so changing an aggregation never reads state written by another one.
 *
 * The arrival position is the input record's Kafka offset: it grows with arrival within a
 * partition, and a key's records all come from one partition. Records that one `expand` step made
 * from the same input share it. Use it when the result depends on arrival order across a `merge`:
 * when a record bridges two sessions, the accumulators are merged in the sessions' time order,
 * which need not be the order their records arrived in.
 *
 * @example
 * const range: Aggregator<{ speed: number }, number, [number, number]> = {
 *   kind: 'custom', signature: 'range(speed)',
 *   initialize: () => [Infinity, -Infinity],
 *   add: ([lo, hi], r) => [Math.min(lo, r.speed), Math.max(hi, r.speed)],
 *   result: ([lo, hi]) => hi - lo,
 *   merge: (a, b) => [Math.min(a[0], b[0]), Math.max(a[1], b[1])],
 * };
 */
export interface Aggregator<In, Out, Acc = any> {
  readonly kind: string;
  readonly signature: string;
  readonly initialize: () => Acc;
  /** `position`: the input record's offset, larger for later arrivals (see above). */
  readonly add: (acc: Acc, value: In, timestamp: number, position: number) => Acc;
  readonly result: (acc: Acc) => Out;
  readonly merge?: (a: Acc, b: Acc) => Acc;
}

/**
 * A single aggregator, or several named ones (the result then carries one field per name).
 *
 * @example
 * const one: AggregationSpec<Reading> = sum('value');
 * const named: AggregationSpec<Reading> = { total: sum('value'), n: count() };
 */
export type AggregationSpec<In> = Aggregator<In, any, any> | { readonly [name: string]: Aggregator<In, any, any> };

/**
 * The output type of an {@link AggregationSpec}.
 *
 * @example
 * const spec = { avg: mean('speed'), n: count() };
 * type Stats = AggregationResult<typeof spec>; // { avg: number | null; n: number }
 */
export type AggregationResult<A> =
  A extends Aggregator<any, infer O, any> ? O : { [K in keyof A]: A[K] extends Aggregator<any, infer O, any> ? O : never };

function selector(kind: string, select: unknown): { get: (v: any) => any; sig: string } {
  if (select === undefined) return { get: (v) => v, sig: `${kind}()` };
  if (typeof select === 'string' && select.length > 0) return { get: (v) => v?.[select], sig: `${kind}(${select})` };
  if (typeof select === 'function') return { get: select as (v: any) => any, sig: `${kind}(fn:${hash(select.toString())})` };
  throw new ConfigError(
    `${kind}() takes a field name or a selector function; received ${describe(select)}. Example: ${kind}('speed') or ${kind}((r) => r.speed).`,
  );
}

/** A short stable hash (FNV-1a) for aggregation signatures. */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(36);
}

/** Counts records, or with a field the records where it is present (not null). @example count() */
export function count<In = unknown>(field?: string | ((value: In) => unknown)): Aggregator<In, number, number> {
  const { get, sig } = selector('count', field);
  const all = field === undefined;
  return {
    kind: 'count',
    signature: sig,
    initialize: () => 0,
    add: (acc, v) => (all || get(v) != null ? acc + 1 : acc),
    result: (acc) => acc,
    merge: (a, b) => a + b,
  };
}

/** Sums a numeric field. @example sum('value') or sum((r: Reading) => r.value) */
export function sum<K extends string>(field: K): Aggregator<{ readonly [P in K]: number }, number, number>;
export function sum<In>(select: (value: In) => number): Aggregator<In, number, number>;
export function sum(): Aggregator<number, number, number>;
export function sum(select?: unknown): Aggregator<any, number, number> {
  const { get, sig } = selector('sum', select);
  return {
    kind: 'sum',
    signature: sig,
    initialize: () => 0,
    add: (acc, v) => {
      const x = get(v);
      return x == null ? acc : acc + x;
    },
    result: (acc) => acc,
    merge: (a, b) => a + b,
  };
}

/** Arithmetic mean of a numeric field (null for an empty window). @example mean('speed') */
export function mean<K extends string>(field: K): Aggregator<{ readonly [P in K]: number }, number | null, [number, number]>;
export function mean<In>(select: (value: In) => number): Aggregator<In, number | null, [number, number]>;
export function mean(): Aggregator<number, number | null, [number, number]>;
export function mean(select?: unknown): Aggregator<any, number | null, [number, number]> {
  const { get, sig } = selector('mean', select);
  return {
    kind: 'mean',
    signature: sig,
    initialize: () => [0, 0],
    add: (acc, v) => {
      const x = get(v);
      if (x == null) return acc;
      acc[0] += x;
      acc[1] += 1;
      return acc;
    },
    result: ([total, n]) => (n === 0 ? null : total / n),
    merge: (a, b) => [a[0] + b[0], a[1] + b[1]],
  };
}

function extreme(kind: 'min' | 'max', select: unknown): Aggregator<any, number | null, number | null> {
  const { get, sig } = selector(kind, select);
  const better = kind === 'min' ? (a: number, b: number) => a < b : (a: number, b: number) => a > b;
  const pick = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : better(b, a) ? b : a);
  return {
    kind,
    signature: sig,
    initialize: () => null,
    add: (acc, v) => pick(acc, get(v) ?? null),
    result: (acc) => acc,
    merge: pick,
  };
}

/** Smallest value of a numeric field. @example min('temperature') */
export function min<K extends string>(field: K): Aggregator<{ readonly [P in K]: number }, number | null, number | null>;
export function min<In>(select: (value: In) => number): Aggregator<In, number | null, number | null>;
export function min(): Aggregator<number, number | null, number | null>;
export function min(select?: unknown) {
  return extreme('min', select);
}

/** Largest value of a numeric field. @example max('speed') */
export function max<K extends string>(field: K): Aggregator<{ readonly [P in K]: number }, number | null, number | null>;
export function max<In>(select: (value: In) => number): Aggregator<In, number | null, number | null>;
export function max(): Aggregator<number, number | null, number | null>;
export function max(select?: unknown) {
  return extreme('max', select);
}

/**
 * The accumulator of first/last/earliest/latest: the picked value, its event time and its arrival
 * position. `o` is absent in state written before positions were stored; read as -1, because
 * those records arrived before any record that carries one.
 */
type Picked<V> = { v: V; t: number; o?: number } | null;

/** The type of field `K` of `In` as an aggregation sees it: missing and null values are skipped. */
type FieldOf<In, K extends string> = In extends HasField<K> ? Exclude<In[K], undefined | null> : unknown;

/** What `first('field')` and its kin accept: any record that may have the field. */
type HasField<K extends string> = { readonly [P in K]?: unknown };

type PickKind = 'first' | 'last' | 'earliest' | 'latest';

const positionOf = (p: NonNullable<Picked<unknown>>) => p.o ?? -1;

/**
 * Whether `b` should replace `a`: first/last follow arrival order, earliest/latest event time with
 * ties broken by arrival. Records of one `expand` share a position: `add` sees them in the order
 * they arrived (so for last/latest the newer one wins), a merge cannot tell them apart and keeps `a`.
 */
function beats(kind: PickKind, a: NonNullable<Picked<unknown>>, b: NonNullable<Picked<unknown>>, adding: boolean): boolean {
  const ao = positionOf(a);
  const bo = positionOf(b);
  const later = bo > ao || (adding && bo === ao);
  switch (kind) {
    case 'first':
      return bo < ao;
    case 'last':
      return later;
    case 'earliest':
      return b.t < a.t || (b.t === a.t && bo < ao);
    case 'latest':
      return b.t > a.t || (b.t === a.t && later);
  }
}

function positional(kind: PickKind, select: unknown): Aggregator<any, unknown, Picked<unknown>> {
  const { get, sig } = selector(kind, select);
  return {
    kind,
    signature: sig,
    initialize: () => null,
    add: (acc, value, t, o) => {
      const x = get(value);
      if (x == null) return acc;
      const picked = { v: x, t, o };
      return acc === null || beats(kind, acc, picked, true) ? picked : acc;
    },
    result: (acc) => (acc === null ? null : cloneJson(acc.v)),
    // A session merge hands over accumulators in the sessions' time order, not arrival order.
    merge: (a, b) => (a === null ? b : b === null ? a : beats(kind, a, b, false) ? b : a),
  };
}

/**
 * The first value to arrive in the window (by arrival order, also across session merges).
 * With a field name the result has the field's type when the stream's type is known, e.g. in
 * named aggregations; a single aggregator may need a selector for that.
 *
 * @example
 * stream<Order>('orders').sessionWindow('30m').aggregate({ opened: first('status'), n: count() }); // opened: string | null
 */
export function first<K extends string, In extends HasField<K> = HasField<K>>(
  field: K,
): Aggregator<In, FieldOf<In, K> | null, Picked<FieldOf<In, K>>>;
export function first<In, V>(select: (value: In) => V): Aggregator<In, V | null, Picked<V>>;
export function first<In = unknown>(): Aggregator<In, In | null, Picked<In>>;
export function first(select?: unknown) {
  return positional('first', select);
}

/**
 * The last value to arrive in the window (by arrival order, also across session merges).
 *
 * @example
 * stream<Order>('orders').tumblingWindow('1m').aggregate({ status: last('status') }); // status: string | null
 */
export function last<K extends string, In extends HasField<K> = HasField<K>>(
  field: K,
): Aggregator<In, FieldOf<In, K> | null, Picked<FieldOf<In, K>>>;
export function last<In, V>(select: (value: In) => V): Aggregator<In, V | null, Picked<V>>;
export function last<In = unknown>(): Aggregator<In, In | null, Picked<In>>;
export function last(select?: unknown) {
  return positional('last', select);
}

/**
 * The value with the smallest event time (ties: the earlier arrival).
 *
 * @example
 * stream<Fix>('gps').tumblingWindow('1m').aggregate({ from: earliest('position') });
 */
export function earliest<K extends string, In extends HasField<K> = HasField<K>>(
  field: K,
): Aggregator<In, FieldOf<In, K> | null, Picked<FieldOf<In, K>>>;
export function earliest<In, V>(select: (value: In) => V): Aggregator<In, V | null, Picked<V>>;
export function earliest<In = unknown>(): Aggregator<In, In | null, Picked<In>>;
export function earliest(select?: unknown) {
  return positional('earliest', select);
}

/**
 * The value with the largest event time (ties: the later arrival).
 *
 * @example
 * stream<Fix>('gps').tumblingWindow('1m').aggregate({ to: latest('position') });
 */
export function latest<K extends string, In extends HasField<K> = HasField<K>>(
  field: K,
): Aggregator<In, FieldOf<In, K> | null, Picked<FieldOf<In, K>>>;
export function latest<In, V>(select: (value: In) => V): Aggregator<In, V | null, Picked<V>>;
export function latest<In = unknown>(): Aggregator<In, In | null, Picked<In>>;
export function latest(select?: unknown) {
  return positional('latest', select);
}

/**
 * Every value of the window, ordered by event time (ties in arrival order), as Quix Streams does
 * for time windows. The state grows with the window: mind busy keys.
 *
 * @example collect() or collect((r: Reading) => r.speed)
 */
export function collect<In = unknown>(): Aggregator<In, In[], [number, In][]>;
export function collect<In, V>(select: (value: In) => V): Aggregator<In, V[], [number, V][]>;
export function collect(select?: unknown): Aggregator<any, unknown[], [number, unknown][]> {
  const { get, sig } = selector('collect', select);
  const byTime = (a: [number, unknown][]) =>
    a
      .map((x, i) => [x, i] as const)
      .sort((p, q) => p[0][0] - q[0][0] || p[1] - q[1])
      .map(([x]) => x[1]);
  return {
    kind: 'collect',
    signature: sig,
    initialize: () => [],
    add: (acc, v, t) => {
      acc.push([t, get(v)]);
      return acc;
    },
    result: byTime,
    merge: (a, b) => a.concat(b),
  };
}

/**
 * Folds values with your reducer; `initializer` turns the first value into the accumulator.
 * Give `merge` to use it in session windows.
 *
 * @example
 * reduce((acc: number, r: Reading) => acc + r.value, (r) => r.value)
 */
export function reduce<In, Acc>(
  reducer: (acc: Acc, value: In) => Acc,
  initializer: (value: In) => Acc,
  opts: { merge?: (a: Acc, b: Acc) => Acc; name?: string } = {},
): Aggregator<In, Acc | null, { a: Acc } | null> {
  if (typeof reducer !== 'function' || typeof initializer !== 'function') {
    throw new ConfigError(`reduce(reducer, initializer) takes two functions; received ${describe(reducer)} and ${describe(initializer)}.`);
  }
  const mergeFn = opts.merge;
  return {
    kind: 'reduce',
    signature: `reduce(${opts.name ?? hash(reducer.toString() + initializer.toString())})`,
    initialize: () => null,
    add: (acc, v) => (acc === null ? { a: initializer(v) } : { a: reducer(acc.a, v) }),
    result: (acc) => (acc === null ? null : (cloneJson(acc.a) as Acc)),
    ...(mergeFn
      ? { merge: (x: { a: Acc } | null, y: { a: Acc } | null) => (x === null ? y : y === null ? x : { a: mergeFn(x.a, y.a) }) }
      : {}),
  };
}

/**
 * Checks a window's aggregation spec at load time and normalizes it to named entries.
 *
 * @example
 * normalizeAggregations(sum('value'), 'tumblingWindow "total"');        // { single: true, entries: [['value', sum('value')]] }
 * normalizeAggregations({ n: count() }, 'tumblingWindow "total"').single; // false
 */
export function normalizeAggregations(spec: unknown, where: string): { single: boolean; entries: [string, Aggregator<any, any>][] } {
  if (isAggregator(spec)) return { single: true, entries: [['value', spec]] };
  if (spec && typeof spec === 'object' && !Array.isArray(spec)) {
    const entries = Object.entries(spec as Record<string, unknown>);
    if (entries.length === 0)
      throw new ConfigError(`${where} has no aggregations; give one, e.g. sum('value'), or several: { total: sum('value'), n: count() }.`);
    for (const [name, agg] of entries) {
      if (!isAggregator(agg)) {
        throw new ConfigError(
          `aggregation "${name}" of ${where} is not an aggregator (received ${describe(agg)}); use count(), sum('field'), mean(...), or an object with initialize/add/result.`,
        );
      }
      if (name === 'start' || name === 'end') {
        throw new ConfigError(`aggregation name "${name}" of ${where} collides with the window bounds in the result; rename it.`);
      }
    }
    return { single: false, entries: entries as [string, Aggregator<any, any>][] };
  }
  throw new ConfigError(
    `${where} needs an aggregation: an aggregator such as sum('value') or an object of named aggregators; received ${describe(spec)}.`,
  );
}

function isAggregator(x: unknown): x is Aggregator<any, any> {
  const a = x as Aggregator<any, any>;
  return (
    !!a && typeof a === 'object' && typeof a.initialize === 'function' && typeof a.add === 'function' && typeof a.result === 'function'
  );
}
