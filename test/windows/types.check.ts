/**
 * Type assertions for aggregations, checked by `tsc --noEmit` (scripts/test.sh) and by
 * types.test.ts here. Nothing here runs: each `expectType` fails to compile when an inferred type
 * drifts, and each `@ts-expect-error` fails to compile when a wrong use stops being rejected.
 */
import { type Aggregator, collect, count, earliest, first, last, latest, reduce, stream, type Stream } from 'sluice';

/** Exact type equality: distinguishes `any`, `unknown`, optional and readonly members. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** Compiles only when the value's type is exactly `Expected` (after flattening intersections). */
function expectType<Expected>() {
  return <Actual>(_value: Actual, ..._mismatch: Equal<Flat<Actual>, Flat<Expected>> extends true ? [] : [expected: Expected, actual: Actual]) => {};
}

type Carried<S> = S extends Stream<infer T> ? T : never;
const carried = <S>(s: S) => s as unknown as Carried<S>;

interface Order {
  id: string;
  status: 'open' | 'paid';
  total: number;
  note?: string;
  coupon: string | null;
}

// first/last/earliest/latest('field') take the field's type from the stream (missing and null
// values are skipped, so neither is in the result; null means no value at all).
const orders = stream<Order>('orders')
  .sessionWindow('30m')
  .aggregate({ opened: first('status'), closed: last('status'), from: earliest('total'), to: latest('note'), coupon: first('coupon'), n: count() });
expectType<{
  start: number; end: number; opened: 'open' | 'paid' | null; closed: 'open' | 'paid' | null; from: number | null; to: string | null; coupon: string | null; n: number;
}>()(carried(orders));

// A selector gives the same type, also as a single aggregator.
expectType<{ start: number; end: number; value: string | null }>()(carried(stream<Order>('orders').tumblingWindow('1m').aggregate(first((o: Order) => o.id))));

// collect and reduce keep their element and accumulator types.
const lists = stream<Order>('orders').tumblingWindow('1m').aggregate({
  ids: collect((o: Order) => o.id),
  total: reduce((acc: number, o: Order) => acc + o.total, (o) => o.total, { merge: (a, b) => a + b }),
});
expectType<{ start: number; end: number; ids: string[]; total: number | null }>()(carried(lists));

// A custom aggregator's add receives the event time and the arrival position.
const arrivals: Aggregator<Order, string[], [number, string][]> = {
  kind: 'custom', signature: 'arrivals(id)',
  initialize: () => [],
  add: (acc, o, timestamp, position) => {
    expectType<number>()(timestamp);
    expectType<number>()(position);
    return [...acc, [position, o.id]];
  },
  result: (acc) => [...acc].sort((a, b) => a[0] - b[0]).map(([, id]) => id),
  merge: (a, b) => a.concat(b),
};
expectType<{ start: number; end: number; value: string[] }>()(carried(stream<Order>('orders').sessionWindow('1m').aggregate(arrivals)));

// ---- Wrong uses the types must reject ----

// @ts-expect-error TS2322: Order has no field "nope".
stream<Order>('orders').tumblingWindow('1m').aggregate({ x: first('nope') });

stream<Order>('orders').tumblingWindow('1m').aggregate({ s: last('status') }).map((w) => {
  // @ts-expect-error TS2322: last('status') gives 'open' | 'paid' | null, not a number.
  const n: number | null = w.s;
  return n;
});

// @ts-expect-error TS2322: a stream of numbers has no field "total".
stream<number>('n').tumblingWindow('1m').aggregate({ e: earliest('total') });
