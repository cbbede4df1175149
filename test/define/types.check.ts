/**
 * Type assertions for the function-first form, checked by `tsc --noEmit` (scripts/test.sh) and by
 * types.test.ts. Nothing here runs: each `expectType` fails to compile when an inferred type drifts,
 * and each `@ts-expect-error` fails to compile when a wrong use stops being rejected.
 */
import { collect, count, first, type KeyedState, keyedState, max, mean, sluice, type SluiceHandler, stream, type Stream, sum } from 'sluice';

/** Exact type equality: distinguishes `any`, `unknown`, optional and readonly members. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Flattens intersections so `{ a } & { b }` compares equal to `{ a; b }`. */
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** Compiles only when the value's type is exactly `Expected` (after flattening intersections). */
export function expectType<Expected>() {
  return <Actual>(_value: Actual, ..._mismatch: Equal<Flat<Actual>, Flat<Expected>> extends true ? [] : [expected: Expected, actual: Actual]) => {};
}

/** The type a stream carries. */
type Carried<S> = S extends Stream<infer T> ? T : never;
const carried = <S>(s: S) => s as unknown as Carried<S>;

interface Reading {
  speed: number;
  id: string;
}

// map → filter → window → map, with no annotation after the source type.
const kmh = stream<Reading>('t').map((r) => ({ kmh: r.speed * 3.6 }));
expectType<{ kmh: number }>()(carried(kmh));

const fast = kmh.filter((r) => r.kmh > 1);
expectType<{ kmh: number }>()(carried(fast));

const stats = fast.tumblingWindow('10s').aggregate({ avg: mean('kmh'), n: count() });
expectType<{ start: number; end: number; avg: number | null; n: number }>()(carried(stats));

const averages = stats.map((w) => w.avg);
expectType<number | null>()(carried(averages));

// One aggregator: the result is `value`.
const totals = stream<Reading>('t').tumblingWindow('1m').aggregate(sum('speed'));
expectType<{ start: number; end: number; value: number }>()(carried(totals));

const peaks = stream<Reading>('t').hoppingWindow('1m', '10s').aggregate(max('speed'));
expectType<{ start: number; end: number; value: number | null }>()(carried(peaks));

// A single positional aggregator takes its field's type from the stream.
const firstIds = stream<Reading>('t').tumblingWindow('1m').aggregate(first('id'));
expectType<{ start: number; end: number; value: string | null }>()(carried(firstIds));

// Every window kind types its result the same way.
const pages = stream<{ page: string }>('clicks')
  .sessionWindow('30s')
  .aggregate({ clicks: count(), pages: collect((c: { page: string }) => c.page) });
expectType<{ start: number; end: number; clicks: number; pages: string[] }>()(carried(pages));
expectType<{ start: number; end: number; value: number }>()(carried(stream<number>('n').slidingCountWindow(5).aggregate(sum())));

// Step callbacks see the carried type and the record context.
stream<Reading>('t').map((r, ctx) => {
  expectType<Reading>()(r);
  expectType<string | null>()(ctx.key);
  expectType<Readonly<Record<string, string>>>()(ctx.headers);
  return r;
});

// A type guard narrows (declared, or inferred by TypeScript from the body); a plain boolean filter keeps the type.
type Event = { kind: 'click'; page: string } | { kind: 'scroll'; depth: number };
const clicksOnly = stream<Event>('events').filter((e): e is Extract<Event, { kind: 'click' }> => e.kind === 'click');
expectType<{ kind: 'click'; page: string }>()(carried(clicksOnly));
expectType<{ kind: 'click'; page: string }>()(carried(stream<Event>('events').filter((e) => e.kind === 'click')));
expectType<Event>()(carried(stream<Event>('events').filter((e) => e.kind.length > 0)));

// expand flattens, update / key / timestamp / to keep the type.
const items = stream<{ items: { sku: string; qty: number }[] }>('orders').expand((o) => o.items);
expectType<{ sku: string; qty: number }>()(carried(items));
const kept = items.update(() => undefined).key((i) => i.sku).timestamp(() => 0).to('items');
expectType<{ sku: string; qty: number }>()(carried(kept));

// Keyed state is typed by its handle.
const seen: KeyedState<number> = keyedState<number>('seen');
expectType<number | undefined>()(seen.get());

// sluice() returns a Lambda handler that also carries the manifest.
const handler: SluiceHandler = sluice(averages);
expectType<string>()(handler.sluice.manifest.name);

// ---- Wrong uses the types must reject ----
// Each directive names the error it expects; types.test.ts checks that the error is that one.

// @ts-expect-error TS2339: named aggregations have no `value`.
stats.map((w) => w.value);

// @ts-expect-error TS2339: a single aggregation has `value`, not the aggregator's name.
totals.map((w) => w.total);

// @ts-expect-error TS2345: sum('nope') needs a numeric field "nope" on the carried type.
fast.tumblingWindow('10s').aggregate(sum('nope'));

// @ts-expect-error TS2322: mean over a string field.
stream<Reading>('t').tumblingWindow('10s').aggregate({ m: mean('id') });

// @ts-expect-error TS2339: after a map to string, `kmh` is gone.
stream<Reading>('t').map((r) => `${r.id}: ${r.speed}`).filter((r) => r.kmh);

// @ts-expect-error TS2769: a filter must return a boolean.
fast.filter((r) => r.kmh);

// @ts-expect-error TS2322: a key must be a string or null.
stream<Reading>('t').key((r) => r.speed);

// @ts-expect-error TS2322: event time is a number.
stream<Reading>('t').timestamp((r) => r.id);

// @ts-expect-error TS2322: expand needs an iterable.
stream<Reading>('t').expand((r) => r.speed);

// @ts-expect-error TS2339: the narrowed stream no longer has scroll events.
clicksOnly.map((e) => e.depth);

// @ts-expect-error TS2345: a window needs an aggregator, not a field name.
stream<Reading>('t').tumblingWindow('10s').aggregate('speed');

// @ts-expect-error TS2345: durations carry a unit.
stream<Reading>('t').tumblingWindow('10 seconds');

// @ts-expect-error TS2345: keyed state holds one type.
seen.set('ten');
