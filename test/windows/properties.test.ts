/**
 * Property tests of the window engine against the brute-force reference in `reference.ts`:
 * random keyed streams with out-of-order timestamps, run through the real handler with
 * `runFunction`, compared as multisets of window results and of late records. Then replays:
 * batch sizes, a failed batch retried, and already-applied records fed again; and message ids.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { collect, count, earliest, first, last, latest, max, mean, min, stream, sum } from 'sluice';
import { MemoryStore } from 'sluice/state';
import type { StateStore } from 'sluice/state';
import { CaptureLogger, type InputRecord, type Logger, runFunction, type TestRun } from 'sluice/testing';
import { type CloseBy, type Emit, type Rec, reference, type RefLate, type RefResult, type RefSpec } from './reference.js';

const RUNS = Number(process.env.WINDOW_RUNS ?? 300);
const KEYS = ['a', 'b', 'c', 'd'] as const;

interface Value {
  readonly v: number;
  readonly id: number;
}

function definition(spec: RefSpec, withCollect = false) {
  const s = stream<Value>('in');
  const aggs = {
    sum: sum('v'),
    n: count(),
    lo: min('v'),
    hi: max('v'),
    mean: mean('v'),
    first: first('id'),
    last: last('id'),
    earliest: earliest('id'),
    latest: latest('id'),
    ...(withCollect ? { items: collect((r: Value) => r.v) } : {}),
  };
  const w = (() => {
    switch (spec.kind) {
      case 'tumbling':
        return s.tumblingWindow(spec.size, { grace: spec.grace, closeBy: spec.closeBy, emit: spec.emit });
      case 'hopping':
        return s.hoppingWindow(spec.size, spec.step, { grace: spec.grace, closeBy: spec.closeBy, emit: spec.emit });
      case 'sliding':
        return s.slidingWindow(spec.size, { grace: spec.grace, emit: spec.emit });
      case 'session':
        return s.sessionWindow(spec.gap, { grace: spec.grace, closeBy: spec.closeBy, emit: spec.emit });
      case 'tumblingCount':
        return s.tumblingCountWindow(spec.count, { emit: spec.emit });
      case 'hoppingCount':
        return s.hoppingCountWindow(spec.count, spec.step, { emit: spec.emit });
      case 'slidingCount':
        return s.slidingCountWindow(spec.count, { emit: spec.emit });
    }
  })();
  return w.aggregate(aggs, { name: 'w' }).to('out');
}

interface RunOpts {
  readonly batchSize: number;
  readonly flush?: boolean;
  readonly collect?: boolean;
  readonly store?: StateStore;
  readonly startOffset?: number;
  readonly logger?: Logger;
}

function inputs(records: readonly Rec[]): InputRecord[] {
  return records.map((r) => ({ key: r.key, value: { v: r.v, id: r.id }, timestamp: r.ts, partition: r.partition }));
}

async function runEngine(spec: RefSpec, records: readonly Rec[], o: RunOpts): Promise<TestRun> {
  return runFunction(definition(spec, o.collect), inputs(records), {
    batchSize: o.batchSize,
    flush: o.flush ?? false,
    store: o.store,
    startOffset: o.startOffset ?? 0,
    ...(o.logger ? { logger: o.logger } : {}),
  });
}

function healthy(run: TestRun): void {
  assert.deepEqual(run.deadLetters, []);
  assert.deepEqual(
    run.responses.flatMap((r) => r.batchItemFailures),
    [],
  );
}

function results(run: TestRun): RefResult[] {
  return run.outputs
    .filter((m) => m.topic === 'out')
    .map((m) => {
      const { start, end, ...value } = m.value as { start: number; end: number } & Record<string, unknown>;
      assert.equal(m.timestamp, start, 'a window result is stamped with its start');
      return { key: m.key!, start, end, value };
    });
}

function lates(run: TestRun): RefLate[] {
  return run.late.map((l) => ({
    key: l.key,
    offset: l.offset,
    ts: l.timestamp,
    windows: l.windows.map(([s, e]) => [s, e] as [number, number]),
    clock: l.clock,
  }));
}

/** JSON with sorted object keys, so equal values print equally. */
function canon(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canon).join(',')}]`;
  if (x && typeof x === 'object')
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${k}:${canon((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(x);
}

const showResults = (rs: readonly RefResult[]) => rs.map((r) => `${r.key} [${r.start},${r.end}) ${canon(r.value)}`).sort();
const showLate = (ls: readonly RefLate[]) =>
  ls.map((l) => `${l.key}@${l.offset} ts=${l.ts} clock=${l.clock} missed=${canon(l.windows)}`).sort();

function sameResults(actual: readonly RefResult[], expected: readonly RefResult[], what = 'window results'): void {
  assert.deepEqual(showResults(actual), showResults(expected), what);
}

function sameLate(actual: readonly RefLate[], expected: readonly RefLate[], what = 'late records'): void {
  assert.deepEqual(showLate(actual), showLate(expected), what);
}

// ---------- arbitraries ----------

/**
 * Keyed streams: a cursor that drifts forward, with some records pulled back in time (out of
 * order, often late). Each key lives in one partition, as with Kafka's key partitioner.
 */
function recordsArb(partitions: number): fc.Arbitrary<Rec[]> {
  const step = fc.record({
    k: fc.integer({ min: 0, max: KEYS.length - 1 }),
    v: fc.integer({ min: -5, max: 9 }),
    d: fc.integer({ min: 0, max: 6 }),
    back: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) }),
  });
  return fc
    .record({
      partitionOf: fc.array(fc.integer({ min: 0, max: partitions - 1 }), { minLength: KEYS.length, maxLength: KEYS.length }),
      origin: fc.integer({ min: 0, max: 20 }),
      epoch: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant(1_700_000_000_000) }),
      steps: fc.array(step, { maxLength: 40, size: 'max' }),
    })
    .map(({ partitionOf, origin, epoch, steps }) => {
      let cursor = origin;
      return steps.map((s, id) => {
        cursor += s.d;
        return { key: KEYS[s.k], v: s.v, id, ts: epoch + Math.max(0, cursor - s.back), partition: partitionOf[s.k] };
      });
    });
}

const batchSizeArb = fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(100));
const closeByArb = fc.constantFrom<CloseBy>('key', 'partition');

const tumblingArb = (emit: Emit) =>
  fc
    .record({ size: fc.integer({ min: 1, max: 12 }), grace: fc.integer({ min: 0, max: 12 }), closeBy: closeByArb })
    .map(({ size, grace, closeBy }): RefSpec => ({ kind: 'tumbling', size, grace: Math.min(grace, size), closeBy, emit }));

const hoppingArb = (emit: Emit) =>
  fc
    .record({
      step: fc.integer({ min: 1, max: 5 }),
      times: fc.integer({ min: 2, max: 4 }),
      grace: fc.integer({ min: 0, max: 20 }),
      closeBy: closeByArb,
    })
    .map(
      ({ step, times, grace, closeBy }): RefSpec => ({
        kind: 'hopping',
        size: step * times,
        step,
        grace: Math.min(grace, step * times),
        closeBy,
        emit,
      }),
    );

const slidingArb = (emit: Emit) =>
  fc
    .record({ size: fc.integer({ min: 1, max: 12 }), grace: fc.integer({ min: 0, max: 12 }) })
    .map(({ size, grace }): RefSpec => ({ kind: 'sliding', size, grace: Math.min(grace, size), emit }));

const sessionArb = (closeBy: CloseBy, emit: Emit) =>
  fc
    .record({ gap: fc.integer({ min: 1, max: 10 }), grace: fc.integer({ min: 0, max: 10 }) })
    .map(({ gap, grace }): RefSpec => ({ kind: 'session', gap, grace, closeBy, emit }));

const tumblingCountArb = (emit: Emit) => fc.integer({ min: 1, max: 5 }).map((n): RefSpec => ({ kind: 'tumblingCount', count: n, emit }));
const hoppingCountArb = (emit: Emit) =>
  fc
    .record({ count: fc.integer({ min: 2, max: 5 }), step: fc.integer({ min: 1, max: 4 }) })
    .map(({ count: n, step }): RefSpec => ({ kind: 'hoppingCount', count: n, step: 1 + ((step - 1) % (n - 1)), emit }));
const slidingCountArb = (emit: Emit) => fc.integer({ min: 2, max: 5 }).map((n): RefSpec => ({ kind: 'slidingCount', count: n, emit }));
const anyCountArb = (emit: Emit) => fc.oneof(tumblingCountArb(emit), hoppingCountArb(emit), slidingCountArb(emit));

/** Every window kind, final results; sessions closed by partition are tested on their own, below. */
const anyFinalArb = fc.oneof(
  tumblingArb('final'),
  hoppingArb('final'),
  slidingArb('final'),
  sessionArb('key', 'final'),
  anyCountArb('final'),
);

// ---------- against the reference ----------

/** Runs one spec family: engine output must equal the reference, results and late records. */
function againstReference(name: string, specArb: fc.Arbitrary<RefSpec>, o: { partitions: number; collect?: boolean }) {
  test(name, async () => {
    await fc.assert(
      fc.asyncProperty(specArb, recordsArb(o.partitions), batchSizeArb, fc.boolean(), async (spec, records, batchSize, flush) => {
        const run = await runEngine(spec, records, { batchSize, flush, collect: o.collect });
        healthy(run);
        const expected = reference(spec, records, { flush, collect: o.collect });
        sameResults(results(run), expected.results);
        sameLate(lates(run), expected.late);
      }),
      { numRuns: RUNS, includeErrorInReport: true },
    );
  });
}

againstReference('tumbling, final, key and partition clocks, with collect', tumblingArb('final'), { partitions: 3, collect: true });
againstReference('tumbling, current: one update per accepted record and window', tumblingArb('current'), { partitions: 3, collect: true });
againstReference('hopping, final, key and partition clocks', hoppingArb('final'), { partitions: 3 });
againstReference('hopping, current', hoppingArb('current'), { partitions: 2 });
againstReference('sliding, final', slidingArb('final'), { partitions: 2 });
againstReference('sliding, current', slidingArb('current'), { partitions: 2 });
againstReference('session, final, key clock', sessionArb('key', 'final'), { partitions: 3 });
againstReference('session, current, key clock', sessionArb('key', 'current'), { partitions: 2 });
againstReference('tumbling count windows, final', tumblingCountArb('final'), { partitions: 2 });
againstReference('hopping count windows, final', hoppingCountArb('final'), { partitions: 2 });
againstReference('sliding count windows, final', slidingCountArb('final'), { partitions: 2 });
againstReference('count windows, current: one update per record and window, nothing more at flush', anyCountArb('current'), {
  partitions: 2,
  collect: true,
});

// ---------- replays ----------

/** The same stream cut into other batches gives the same messages (ids and values) and late records. */
function batchSizesProperty(name: string, specArb: fc.Arbitrary<RefSpec>) {
  test(name, async () => {
    await fc.assert(
      fc.asyncProperty(specArb, recordsArb(3), batchSizeArb, batchSizeArb, async (spec, records, b1, b2) => {
        const one = await runEngine(spec, records, { batchSize: b1 });
        const two = await runEngine(spec, records, { batchSize: b2 });
        healthy(one);
        healthy(two);
        const sent = (run: TestRun) => run.outputs.map((m) => `${m.id} ${canon(m.value)}`).sort();
        assert.deepEqual(sent(one), sent(two), 'messages');
        sameLate(lates(one), lates(two));
      }),
      { numRuns: RUNS, includeErrorInReport: true },
    );
  });
}

/**
 * One partition, as Lambda's event source mapping drives it: [0, k) commits; the batch [k, m)
 * runs and crashes after c of its state item writes; the retry starts back at k, batched
 * differently, and runs to the end. Committed runs must give the reference exactly once, the
 * crashed attempt's messages must come again identically, and a redelivery of the last batch
 * (its offset commit lost) must send the same messages again and leave state as it was.
 */
function replayProperty(name: string, specArb: fc.Arbitrary<RefSpec>) {
  test(name, async () => {
    await fc.assert(
      fc.asyncProperty(
        specArb,
        recordsArb(1),
        batchSizeArb,
        batchSizeArb,
        fc.nat(),
        fc.nat(),
        fc.nat(),
        async (spec, records, b1, b2, kDraw, mDraw, cDraw) => {
          const n = records.length;
          const k = kDraw % (n + 1);
          const m = k + (mDraw % (n - k + 1));
          const store = new MemoryStore();

          const first = await runEngine(spec, records.slice(0, k), { batchSize: b1, store });
          healthy(first);
          let writes = 0;
          const crashAfter = cDraw % 8;
          store.beforeItemWrite = () => {
            if (++writes > crashAfter) throw new Error('crash mid-write');
          };
          const crashed = await runEngine(spec, records.slice(k, m), {
            batchSize: 1_000,
            store,
            startOffset: k,
            logger: new CaptureLogger(),
          });
          store.beforeItemWrite = undefined;
          for (const f of crashed.responses.flatMap((r) => r.batchItemFailures)) assert.equal(f.itemIdentifier.offset, k);
          const retry = await runEngine(spec, records.slice(k), { batchSize: b2, store, startOffset: k });
          healthy(retry);

          const expected = reference(spec, records);
          sameResults([...results(first), ...results(retry)], expected.results, 'committed runs give each window once');
          sameLate([...lates(first), ...lates(retry)], expected.late, 'each late record is reported once');

          // What the crashed attempt sent (at-least-once) is sent again, identically, by the retry.
          const sent = (run: TestRun) => run.outputs.map((o) => `${o.id} ${canon(o.value)}`);
          const again = sent(retry);
          for (const msg of sent(crashed)) {
            const at = again.indexOf(msg);
            assert.ok(at >= 0, `the crashed attempt sent ${msg}, which the retry did not send`);
            again.splice(at, 1);
          }

          // The last batch delivered again sends only what it sent the first time, and stores the same.
          if (n > k) {
            const last = n - ((n - k) % b2 || b2);
            const before = store.dump();
            const redelivered = await runEngine(spec, records.slice(last), { batchSize: b2, store, startOffset: last });
            healthy(redelivered);
            const firstTime = sent(retry);
            for (const msg of sent(redelivered))
              assert.ok(firstTime.includes(msg), `the redelivered batch sent ${msg}, which differs from what it sent the first time`);
            assert.deepEqual(
              redelivered.late.map((l) => l.offset),
              retry.late.filter((l) => l.offset >= last).map((l) => l.offset),
            );
            assert.deepEqual(store.dump(), before, 'a redelivered batch leaves state as it was');
          }
        },
      ),
      { numRuns: RUNS, includeErrorInReport: true },
    );
  });
}

batchSizesProperty(
  'batch sizes do not change messages or late records',
  fc.oneof(anyFinalArb, tumblingArb('current'), hoppingArb('current'), slidingArb('current'), anyCountArb('current')),
);
replayProperty(
  'a batch that crashed mid-write, retried re-batched, gives the reference once; a redelivered batch sends the same again',
  anyFinalArb,
);
replayProperty(
  'count windows, current: a batch that crashed mid-write, retried re-batched, gives the reference once',
  anyCountArb('current'),
);

// ---------- message ids ----------

/** Final results are told apart downstream by their `sluice-id`: two different results must not share one. */
function distinctIdsProperty(name: string, specArb: fc.Arbitrary<RefSpec>) {
  test(name, async () => {
    await fc.assert(
      fc.asyncProperty(specArb, recordsArb(3), batchSizeArb, fc.boolean(), async (spec, records, batchSize, flush) => {
        const run = await runEngine(spec, records, { batchSize, flush });
        healthy(run);
        const ids = run.outputs.map((m) => m.id);
        const repeated = ids.filter((id, i) => ids.indexOf(id) !== i);
        assert.deepEqual(repeated, [], 'ids of more than one final result');
      }),
      { numRuns: RUNS, includeErrorInReport: true },
    );
  });
}

distinctIdsProperty(
  'time windows: distinct final results have distinct ids',
  fc.oneof(tumblingArb('final'), hoppingArb('final'), slidingArb('final'), sessionArb('key', 'final'), sessionArb('partition', 'final')),
);
// A count window's id is the index of its first record: (key, min ts, max ts) would not do, two
// windows of one key can share those.
distinctIdsProperty('count windows: distinct final results have distinct ids', anyCountArb('final'));

test('count windows: two windows with the same timestamps get different ids', async () => {
  const spec: RefSpec = { kind: 'tumblingCount', count: 1, emit: 'final' };
  const records: Rec[] = [
    { key: 'a', v: 1, id: 0, ts: 0, partition: 0 },
    { key: 'a', v: 2, id: 1, ts: 0, partition: 0 },
  ];
  const run = await runEngine(spec, records, { batchSize: 100 });
  sameResults(results(run), reference(spec, records).results);
  const ids = run.outputs.map((m) => m.id);
  assert.equal(new Set(ids).size, 2, `two results, ids ${ids.join(', ')}`);
});

// ---------- sessions closed by the partition clock ----------
// A session the partition clock has closed must not take records of its key, even when other keys'
// records closed it earlier in the same batch: otherwise results depend on where batches are cut.

againstReference(
  'session, partition clock, final and current',
  fc.oneof(sessionArb('partition', 'final'), sessionArb('partition', 'current')),
  { partitions: 3 },
);
batchSizesProperty('session, partition clock: batch sizes do not change messages or late records', sessionArb('partition', 'final'));
replayProperty(
  'session, partition clock: a batch that crashed mid-write, retried re-batched, gives the reference once',
  sessionArb('partition', 'final'),
);

test('session, partition clock: a record cannot join a session the partition clock has closed', async () => {
  const spec: RefSpec = { kind: 'session', gap: 1, grace: 0, closeBy: 'partition', emit: 'final' };
  // b@0 opens [0,1); a@1 moves the partition clock to 1, closing it; b@0 again is late.
  const records: Rec[] = [
    { key: 'b', v: 1, id: 0, ts: 0, partition: 0 },
    { key: 'a', v: 1, id: 1, ts: 1, partition: 0 },
    { key: 'b', v: 1, id: 2, ts: 0, partition: 0 },
  ];
  const expected = reference(spec, records);
  assert.deepEqual(showResults(expected.results), ['b [0,1) {earliest:0,first:0,hi:1,last:0,latest:0,lo:1,mean:1,n:1,sum:1}']);
  assert.deepEqual(showLate(expected.late), ['b@2 ts=0 clock=1 missed=[[0,1]]']);
  for (const batchSize of [1, 3]) {
    const run = await runEngine(spec, records, { batchSize });
    sameResults(results(run), expected.results, `results with batches of ${batchSize}`);
    sameLate(lates(run), expected.late, `late records with batches of ${batchSize}`);
  }
});
