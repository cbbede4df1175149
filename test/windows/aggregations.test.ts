/**
 * The result of every aggregation, through the real handler (`runFunction`): values, skipped
 * nulls, arrival versus event-time order, ties, session merges, and what count windows emit at
 * the end of a finite input.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Aggregator,
  collect,
  ConfigError,
  count,
  earliest,
  first,
  last,
  latest,
  max,
  mean,
  min,
  reduce,
  slidingWindow,
  sluice,
  source,
  stream,
  sum,
  to,
} from 'sluice';
import { manifestOf } from 'sluice/runtime';
import type { Definition } from 'sluice';
import { type InputRecord, runFunction, type TestRun } from 'sluice/testing';

/**
 * What the streams below declare. Inputs are JSON, and some records lack `v` or `tag`: those are
 * the values aggregations skip.
 */
interface Reading {
  readonly v: number;
  readonly tag: string | null;
}

/** Records of key `k`, in the order given (offsets 0, 1, …), at the given event times. */
const keyed = (rows: readonly [ts: number, value: unknown][], key = 'k'): InputRecord[] =>
  rows.map(([timestamp, value]) => ({ key, value, timestamp }));

function healthy(run: TestRun): TestRun {
  assert.deepEqual(run.deadLetters, []);
  assert.deepEqual(
    run.responses.flatMap((r) => r.batchItemFailures),
    [],
  );
  return run;
}

/** Runs with one batch and with one record per batch; both must give the same values. */
async function values(def: Definition, records: readonly InputRecord[], flush = true): Promise<unknown[]> {
  const whole = healthy(await runFunction(def, records, { flush }));
  const single = healthy(await runFunction(def, records, { flush, batchSize: 1 }));
  assert.deepEqual(single.values('out'), whole.values('out'), 'one record per batch gives the same results');
  return whole.values('out');
}

// Arrival order 0..5; event times out of order, with two ties (100 and 900).
const mixed = keyed([
  [500, { v: 4, tag: 'a' }],
  [100, { v: -2, tag: null }],
  [900, { v: 7, tag: 'c' }],
  [300, { tag: 'd' }],
  [100, { v: 1, tag: 'e' }],
  [900, { v: 3 }],
]);

describe('aggregation results in one tumbling window', () => {
  test('every built-in aggregation, with missing and null values and out-of-order times', async () => {
    const def = stream<Reading>('in')
      .tumblingWindow('1s')
      .aggregate({
        n: count(),
        withV: count('v'),
        withTag: count('tag'),
        sum: sum('v'),
        sumFn: sum((r: Reading) => r.v ?? 0),
        mean: mean('v'),
        lo: min('v'),
        hi: max('v'),
        first: first('v'),
        last: last('v'),
        firstTag: first('tag'),
        lastTag: last('tag'),
        earliest: earliest('v'),
        latest: latest('v'),
        earliestTag: earliest('tag'),
        latestTag: latest('tag'),
        whole: first(),
        items: collect((r: Reading) => r.v ?? null),
        folded: reduce(
          (acc: number, r: Reading) => acc + (r.v ?? 0),
          (r) => r.v ?? 0,
        ),
      })
      .to('out');
    assert.deepEqual(await values(def, mixed), [
      {
        start: 0,
        end: 1_000,
        n: 6,
        withV: 5, // the record without v
        withTag: 4, // without tag, and with tag null
        sum: 13,
        sumFn: 13,
        mean: 2.6,
        lo: -2,
        hi: 7,
        first: 4, // arrival order, not event time
        last: 3,
        firstTag: 'a',
        lastTag: 'e', // the last record has no tag: skipped
        earliest: -2, // ts 100: -2 and 1 tie; the earlier arrival wins
        latest: 3, // ts 900: 7 and 3 tie; the later arrival wins
        earliestTag: 'e', // the null tag at ts 100 is skipped
        latestTag: 'c',
        whole: { v: 4, tag: 'a' },
        items: [-2, 1, null, 4, 7, 3], // by event time, ties in arrival order
        folded: 13,
      },
    ]);
  });

  test('mean, min, max, first and the rest are null when no record has the field; sum and count(field) are 0', async () => {
    const def = stream<Reading>('in')
      .tumblingWindow('1s')
      .aggregate({
        n: count(),
        withV: count('v'),
        sum: sum('v'),
        mean: mean('v'),
        lo: min('v'),
        hi: max('v'),
        first: first('v'),
        last: last('v'),
        earliest: earliest('v'),
        latest: latest('v'),
        folded: reduce(
          (acc: number, _r: Reading) => acc + 1,
          () => 1,
        ),
      })
      .to('out');
    assert.deepEqual(
      await values(
        def,
        keyed([
          [10, { tag: 'x' }],
          [20, { v: null }],
        ]),
      ),
      [
        {
          start: 0,
          end: 1_000,
          n: 2,
          withV: 0,
          sum: 0,
          mean: null,
          lo: null,
          hi: null,
          first: null,
          last: null,
          earliest: null,
          latest: null,
          folded: 2,
        },
      ],
    );
  });

  test('an empty accumulator reads as the documented empty result', () => {
    const empty = <Out>(a: Aggregator<never, Out>) => a.result(a.initialize());
    assert.deepEqual(
      [
        empty(count()),
        empty(sum('v')),
        empty(mean('v')),
        empty(min('v')),
        empty(max('v')),
        empty(first('v')),
        empty(last('v')),
        empty(earliest('v')),
        empty(latest('v')),
        empty(collect()),
        empty(
          reduce(
            (a: number) => a,
            () => 0,
          ),
        ),
      ],
      [0, 0, null, null, null, null, null, null, null, [], null],
    );
  });

  test('records one expand made from one input share its offset: they count in the order expand gave them', async () => {
    const def = stream<{ xs: number[] }>('in')
      .expand((o) => o.xs.map((x) => ({ x })))
      .tumblingWindow('1s')
      .aggregate({
        first: first('x'),
        last: last('x'),
        earliest: earliest('x'),
        latest: latest('x'),
        items: collect((r: { x: number }) => r.x),
      })
      .to('out');
    assert.deepEqual(
      await values(
        def,
        keyed([
          [10, { xs: [1, 2, 3] }],
          [5, { xs: [4] }],
          [10, { xs: [5, 6] }],
        ]),
      ),
      [
        {
          start: 0,
          end: 1_000,
          first: 1,
          last: 6,
          earliest: 4,
          latest: 6, // ts 10: 1, 2, 3, 5, 6 tie; the last to arrive wins
          items: [4, 1, 2, 3, 5, 6],
        },
      ],
    );
  });
});

describe('session windows that merge', () => {
  // Gap 60 ms, grace long enough that nothing is late. Arrival order is the array order: the
  // sessions [100] and [0] form apart, then the bridge joins them into one.
  const opts = { grace: '1s' } as const;
  const aggs = () => ({
    n: count(),
    first: first('v'),
    last: last('v'),
    earliest: earliest('v'),
    latest: latest('v'),
    mean: mean('v'),
    items: collect((r: Reading) => r.v ?? null),
  });

  const cases: { name: string; rows: [number, Partial<Reading>][]; expected: Record<string, unknown> }[] = [
    {
      name: 'the bridge has a value',
      rows: [
        [100, { v: 1 }],
        [0, { v: 2 }],
        [50, { v: 3 }],
      ],
      expected: { n: 3, first: 1, last: 3, earliest: 2, latest: 1, mean: 2, items: [2, 3, 1] },
    },
    {
      name: 'the bridge has none: last is the second record, not the later session',
      rows: [
        [100, { v: 1 }],
        [0, { v: 2 }],
        [50, {}],
      ],
      expected: { n: 3, first: 1, last: 2, earliest: 2, latest: 1, mean: 1.5, items: [2, null, 1] },
    },
    {
      name: 'three sessions merged by two bridges',
      rows: [
        [200, { v: 1 }],
        [0, { v: 2 }],
        [100, { v: 3 }],
        [50, {}],
        [150, {}],
      ],
      expected: { n: 5, first: 1, last: 3, earliest: 2, latest: 1, mean: 2, items: [2, null, 3, null, 1] },
    },
  ];

  for (const c of cases) {
    test(`first/last follow arrival, earliest/latest event time (${c.name})`, async () => {
      const records = keyed(c.rows);
      const session = await values(stream<Reading>('in').sessionWindow(60, opts).aggregate(aggs()).to('out'), records);
      const last = Math.max(...c.rows.map(([ts]) => ts));
      assert.deepEqual(session, [{ start: 0, end: last + 60, ...c.expected }]);
      // A tumbling window over the same records never merges: it must agree.
      const tumbling = await values(stream<Reading>('in').tumblingWindow('1s').aggregate(aggs()).to('out'), records);
      assert.deepEqual(tumbling, [{ start: 0, end: 1_000, ...c.expected }]);
    });
  }

  test("with emit: 'current', the update after the bridge already has the merged values", async () => {
    const def = stream<Reading>('in')
      .sessionWindow(60, { ...opts, emit: 'current' })
      .aggregate(aggs())
      .to('out');
    const out = await values(def, keyed(cases[1].rows));
    assert.deepEqual(out, [
      { start: 100, end: 160, n: 1, first: 1, last: 1, earliest: 1, latest: 1, mean: 1, items: [1] },
      { start: 0, end: 60, n: 1, first: 2, last: 2, earliest: 2, latest: 2, mean: 2, items: [2] },
      { start: 0, end: 160, ...cases[1].expected },
    ]);
  });

  test('reduce with merge folds across the merge', async () => {
    const total = reduce(
      (acc: number, r: Reading) => acc + (r.v ?? 0),
      (r) => r.v ?? 0,
      { merge: (a, b) => a + b },
    );
    const def = stream<Reading>('in').sessionWindow(60, opts).aggregate({ total, n: count() }).to('out');
    assert.deepEqual(await values(def, keyed(cases[2].rows)), [{ start: 0, end: 260, total: 6, n: 5 }]);
  });

  test('reduce without merge is rejected when the function loads, naming the aggregation and the fix', () => {
    const define = () =>
      stream<Reading>('in')
        .sessionWindow(60)
        .aggregate(
          {
            n: reduce(
              (acc: number) => acc + 1,
              () => 1,
            ),
          },
          { name: 'visits' },
        )
        .to('out');
    for (const load of [() => sluice(define()), () => manifestOf(define())]) {
      assert.throws(load, (e: unknown) => {
        assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
        assert.match(e.message, /aggregation "n" of sessionWindow "visits" has no merge\(a, b\)/);
        assert.match(e.message, /Add merge to the aggregator or use a time window/);
        return true;
      });
    }
  });

  test('a custom aggregator sees event time and arrival position, and its merge runs', async () => {
    let merges = 0;
    // Values in arrival order, and the span of event times: neither is the sessions' time order.
    const arrivals: Aggregator<
      Reading,
      { order: (number | null)[]; span: number },
      { p: [number, number | null][]; lo: number; hi: number }
    > = {
      kind: 'custom',
      signature: 'arrivals(v)',
      initialize: () => ({ p: [], lo: Infinity, hi: -Infinity }),
      add: (acc, r, ts, position) => ({ p: [...acc.p, [position, r.v ?? null]], lo: Math.min(acc.lo, ts), hi: Math.max(acc.hi, ts) }),
      result: (acc) => ({ order: [...acc.p].sort((a, b) => a[0] - b[0]).map(([, v]) => v), span: acc.hi - acc.lo }),
      merge: (a, b) => {
        merges++;
        return { p: [...a.p, ...b.p], lo: Math.min(a.lo, b.lo), hi: Math.max(a.hi, b.hi) };
      },
    };
    const def = stream<Reading>('in').sessionWindow(60, opts).aggregate(arrivals).to('out');
    const run = healthy(await runFunction(def, keyed(cases[2].rows), { flush: true }));
    assert.deepEqual(run.values('out'), [{ start: 0, end: 260, value: { order: [1, 2, 3, null, null], span: 200 } }]);
    assert.equal(merges, 2, 'two bridges, two merges');
  });
});

describe('aggregators read as the merge rules say', () => {
  const picked = (v: number, t: number, o?: number) => ({ v, t, ...(o === undefined ? {} : { o }) });

  test('merge decides first/last by position and earliest/latest by time, then position, whatever the argument order', () => {
    const early = picked(1, 50, 7); // arrived later, earlier event time
    const late = picked(2, 90, 3); // arrived first
    for (const [a, b] of [
      [early, late],
      [late, early],
    ]) {
      assert.equal(first('v').result(first('v').merge!(a, b)), 2);
      assert.equal(last('v').result(last('v').merge!(a, b)), 1);
      assert.equal(earliest('v').result(earliest('v').merge!(a, b)), 1);
      assert.equal(latest('v').result(latest('v').merge!(a, b)), 2);
    }
    const tieA = picked(1, 50, 3);
    const tieB = picked(2, 50, 7);
    for (const [a, b] of [
      [tieA, tieB],
      [tieB, tieA],
    ]) {
      assert.equal(earliest('v').result(earliest('v').merge!(a, b)), 1, 'equal times: the earlier arrival');
      assert.equal(latest('v').result(latest('v').merge!(a, b)), 2, 'equal times: the later arrival');
    }
  });

  test('an accumulator stored before positions were kept counts as arriving before any new record', () => {
    const old = picked(1, 500); // no `o`
    const fresh = picked(2, 500, 0);
    assert.equal(first('v').result(first('v').merge!(fresh, old)), 1);
    assert.equal(last('v').result(last('v').merge!(old, fresh)), 2);
    assert.equal(earliest('v').result(earliest('v').merge!(fresh, old)), 1);
    assert.equal(latest('v').result(latest('v').merge!(fresh, old)), 2);
    assert.equal(first('v').result(first('v').add(old, { v: 3 }, 400, 9)), 1);
    assert.equal(last('v').result(last('v').add(old, { v: 3 }, 600, 9)), 3);
  });
});

describe("count windows with emit: 'current'", () => {
  const records = keyed([
    [10, { v: 1 }],
    [20, { v: 2 }],
    [30, { v: 3 }],
  ]);

  test('a flush closes them silently: every update was already sent', async () => {
    const def = stream<Reading>('in')
      .tumblingCountWindow(2, { emit: 'current' })
      .aggregate(collect((r: Reading) => r.v))
      .to('out');
    for (const flush of [false, true]) {
      assert.deepEqual(
        await values(def, records, flush),
        [
          { start: 10, end: 10, value: [1] },
          { start: 10, end: 20, value: [1, 2] },
          { start: 30, end: 30, value: [3] },
        ],
        `flush: ${flush}`,
      );
    }
  });

  test("with emit: 'final' the flush does send the partial window", async () => {
    const def = stream<Reading>('in')
      .tumblingCountWindow(2)
      .aggregate(collect((r: Reading) => r.v))
      .to('out');
    assert.deepEqual(await values(def, records, true), [
      { start: 10, end: 20, value: [1, 2] },
      { start: 30, end: 30, value: [3] },
    ]);
  });
});

describe('sliding windows close by key only', () => {
  const fix =
    /slidingWindow "peak" cannot close by partition \(received closeBy: 'partition'\): sliding windows support only closeBy: 'key'.*Use closeBy: 'key' \(the default\), or a hoppingWindow/;

  test("closeBy: 'partition' is a ConfigError that names the fix, in the function-first form", () => {
    assert.throws(
      () => sluice(stream<Reading>('in').slidingWindow('30s', { closeBy: 'partition' }).aggregate(max('v'), { name: 'peak' }).to('out')),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
        assert.match(e.message, fix);
        return true;
      },
    );
  });

  test('and with decorators', () => {
    assert.throws(
      () => {
        @source('in')
        class Peaks {
          @to('out') @slidingWindow('30s', { closeBy: 'partition' }) peak = max('v');
        }
        return sluice(Peaks);
      },
      (e: unknown) => e instanceof ConfigError && fix.test(e.message),
    );
  });

  test("closeBy: 'key' loads and runs", async () => {
    const def = stream<Reading>('in').slidingWindow(10, { closeBy: 'key' }).aggregate(sum('v'), { name: 'peak' }).to('out');
    assert.deepEqual(
      await values(
        def,
        keyed([
          [1, { v: 1 }],
          [5, { v: 2 }],
          [30, { v: 4 }],
        ]),
        false,
      ),
      [
        { start: 0, end: 1, value: 1 },
        { start: 0, end: 5, value: 3 },
      ],
    );
  });
});
