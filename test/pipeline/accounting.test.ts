// Every input record is accounted for: applied, filtered, late or dead-lettered, and the counts
// add up to the records in, for every batch (see framework/src/pipeline/stats.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { poison, type Stream, sluice, stream, sum } from 'sluice';
import type { BatchReport } from 'sluice/runtime';
import { type InputRecord, runFunction, type TestRun } from 'sluice/testing';
import { handler as fastVehicles } from '../../functions/fast-vehicles/handler.js';
import { handler as sensorSums } from '../../functions/sensor-sums/handler.js';
import { handler as sessions } from '../../functions/sessions/handler.js';
import { handler as speedAverage } from '../../functions/speed-average/handler.js';
import { handler as transportMode } from '../../functions/transport-mode/handler.js';
import { readInputFile } from '../../framework/src/local/input.js';
import { type BatchStats, sumStats, unaccounted } from '../../framework/src/pipeline/stats.js';

type Outcomes = Pick<BatchStats, 'recordsIn' | 'applied' | 'filtered' | 'late' | 'deadLettered'>;

/** Asserts the invariant for every batch of a run (and every partition of it); returns the total. */
function accounted(run: TestRun): Outcomes {
  assert.ok(run.reports.length > 0, 'the run made at least one invocation');
  for (const r of run.reports) {
    assert.equal(unaccounted(r.stats), 0, `batch ${JSON.stringify(r.stats)} adds up`);
    for (const p of r.partitions) assert.equal(unaccounted(p.stats), 0, `partition ${p.topic}-${p.partition} adds up`);
  }
  return outcomes(run.reports);
}

function outcomes(reports: readonly BatchReport[]): Outcomes {
  const { recordsIn, applied, filtered, late, deadLettered } = sumStats(reports.map((r) => r.stats));
  return { recordsIn, applied, filtered, late, deadLettered };
}

describe('accounting over the example functions and their sample files', () => {
  const functions = [
    ['sensor-sums', sensorSums],
    ['fast-vehicles', fastVehicles],
    ['sessions', sessions],
    ['speed-average', speedAverage],
    ['transport-mode', transportMode],
  ] as const;
  for (const [name, handler] of functions) {
    for (const batchSize of [1, 7, 100]) {
      test(`${name}, batch size ${batchSize}: recordsIn === applied + filtered + late + deadLettered for every batch`, async () => {
        const { records, problems } = await readInputFile(new URL(`../../functions/${name}/sample.jsonl`, import.meta.url).pathname);
        assert.deepEqual(problems, []);
        const run = await runFunction(handler, records, { batchSize });
        const total = accounted(run);
        assert.equal(total.recordsIn, records.length, 'every record was processed once');
        assert.equal(total.deadLettered, new Set(run.deadLetters.filter((d) => !d.result).map((d) => d.record.offset)).size);
      });
    }
  }

  test('the counts of sensor-sums are the ones its summary shows', async () => {
    const { records } = await readInputFile(new URL('../../functions/sensor-sums/sample.jsonl', import.meta.url).pathname);
    const total = accounted(await runFunction(sensorSums, records));
    assert.deepEqual(total, { recordsIn: 182, applied: 180, filtered: 0, late: 1, deadLettered: 1 });
  });
});

describe('what counts as what', () => {
  const t = (offsetSeconds: number) => offsetSeconds * 1_000;

  test('a stateless function: applied, filtered, dead-lettered at decode and in a step', async () => {
    const fn = stream<{ n: number }>('in', { name: 'stateless', validate: (v) => typeof v?.n === 'number' || 'n must be a number' })
      .map((v) => (v.n < 0 ? poison('negative') : v))
      .filter((v) => v.n % 2 === 0)
      .to('out');
    const input: InputRecord[] = [0, 1, -2, 'x', 4].map((n, i) => ({ key: 'k', value: { n }, timestamp: t(i) }));
    const run = await runFunction(fn, input);
    assert.deepEqual(accounted(run), { recordsIn: 5, applied: 2, filtered: 1, late: 0, deadLettered: 2 });
  });

  test('expand: the strongest outcome of its children counts, once per input record', async () => {
    // Children of one record: some dropped by the filter, some poisoned, some applied.
    const fn = stream<{ xs: number[] }>('in', { name: 'expanded' })
      .expand((v) => v.xs)
      .map((x) => (x < 0 ? poison('negative child') : x))
      .filter((x) => x > 0)
      .to('out');
    const input: InputRecord[] = [
      { key: 'k', value: { xs: [] }, timestamp: 0 }, // nothing to go on with: filtered
      { key: 'k', value: { xs: [0, 0] }, timestamp: 0 }, // every child filtered: filtered
      { key: 'k', value: { xs: [0, 1] }, timestamp: 0 }, // one child applied: applied
      { key: 'k', value: { xs: [1, -1, 0] }, timestamp: 0 }, // one child poisoned: dead-lettered
    ];
    const run = await runFunction(fn, input);
    assert.deepEqual(accounted(run), { recordsIn: 4, applied: 1, filtered: 2, late: 0, deadLettered: 1 });
    assert.equal(run.deadLetters.length, 1);
  });

  test('late only when late for every window it reached: a hopping record still in one open window is applied', async () => {
    const fn = stream<{ v: number }>('in', { name: 'hops' }).hoppingWindow('10s', '5s').aggregate(sum('v'), { name: 'total' }).to('out');
    const input: InputRecord[] = [
      { key: 'k', value: { v: 1 }, timestamp: t(1) },
      { key: 'k', value: { v: 1 }, timestamp: t(12) }, // clock 12 s: [0, 10) closed, [5, 15) open
      { key: 'k', value: { v: 1 }, timestamp: t(7) }, // late for [0, 10), taken by [5, 15): applied
      { key: 'k', value: { v: 1 }, timestamp: t(3) }, // [0, 10) only, closed: late
    ];
    const run = await runFunction(fn, input);
    assert.deepEqual(accounted(run), { recordsIn: 4, applied: 3, filtered: 0, late: 1, deadLettered: 0 });
    assert.deepEqual(
      run.late.map((l) => l.offset),
      [2, 3],
      'both are still reported late, with the windows they missed',
    );
  });

  test('every window kind: records late for their one window count as late, the rest as applied', async () => {
    const kinds = {
      tumbling: (x: Stream<{ v: number }>) => x.tumblingWindow('10s'),
      sliding: (x: Stream<{ v: number }>) => x.slidingWindow('10s'),
      session: (x: Stream<{ v: number }>) => x.sessionWindow('5s'),
      tumblingByPartition: (x: Stream<{ v: number }>) => x.tumblingWindow('10s', { closeBy: 'partition' }),
      count: (x: Stream<{ v: number }>) => x.tumblingCountWindow(3),
    };
    const times = [1, 30, 2, 31, 60, 3, 45, 61, 0, 90];
    const input: InputRecord[] = times.map((s, i) => ({ key: i % 3 === 0 ? 'a' : 'b', value: { v: 1 }, timestamp: t(s) }));
    for (const [kind, window] of Object.entries(kinds)) {
      const run = await runFunction(
        window(stream<{ v: number }>('in', { name: kind }))
          .aggregate(sum('v'), { name: 'w' })
          .to('out'),
        input,
        { batchSize: 4 },
      );
      const total = accounted(run);
      assert.equal(total.late, run.late.length, `${kind}: one window per record, so one late report per late record`);
      assert.equal(total.applied + total.late, input.length, kind);
      if (kind === 'count') assert.equal(total.late, 0, 'count windows have no lateness');
      else assert.ok(total.late > 0, `${kind}: the input has late records`);
    }
  });

  test('a batch that stops at a failing record counts the records before it; the retry counts the rest', async () => {
    let failures = 1;
    const fn = stream<{ v: number }>('in', { name: 'flaky' })
      .map((v) => {
        if (v.v === 2 && failures-- > 0) throw new Error('transient');
        return v;
      })
      .to('out');
    const handler = sluice(fn);
    const input: InputRecord[] = [1, 2, 3].map((v) => ({ key: 'k', value: { v }, timestamp: 0 }));
    const first = await runFunction(handler, input);
    assert.deepEqual(first.responses, [{ batchItemFailures: [{ itemIdentifier: { partition: 'in-0', offset: 1 } }] }]);
    assert.deepEqual(accounted(first), { recordsIn: 1, applied: 1, filtered: 0, late: 0, deadLettered: 0 });
    const retry = await runFunction(handler, input.slice(1), { store: first.store, startOffset: 1 });
    assert.deepEqual(accounted(retry), { recordsIn: 2, applied: 2, filtered: 0, late: 0, deadLettered: 0 });
  });
});

/** A small seeded generator (mulberry32), so a failure names a seed that reproduces it. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Kind = 'ok' | 'invalid' | 'poison' | 'drop' | 'none' | 'two' | 'no-time' | 'future';
interface Value {
  readonly kind: Kind;
  readonly v: number;
}

describe('randomized: poison, late, filtered, expanded, timeless and future records', () => {
  const SIZE = 10_000;
  const GRACE = 2_000;
  const fn = stream<Value>('in', { name: 'random', validate: (x) => x?.kind !== 'invalid' || 'invalid on purpose' })
    .map((x) => (x.kind === 'poison' ? poison('poison on purpose') : x))
    .filter((x) => x.kind !== 'drop')
    .expand((x) => (x.kind === 'none' ? [] : x.kind === 'two' ? [x, x] : [x]))
    .tumblingWindow(SIZE, { grace: GRACE })
    .aggregate(sum('v'), { name: 'total' })
    .to('out');

  /** The outcome each record should have, worked out without Sluice: clocks per partition and key. */
  function expected(input: readonly InputRecord[]): Outcomes {
    const clocks = new Map<string, number>();
    const out: Outcomes = { recordsIn: input.length, applied: 0, filtered: 0, late: 0, deadLettered: 0 };
    for (const r of input) {
      const { kind } = r.value as Value;
      if (kind === 'invalid' || kind === 'poison') out.deadLettered++;
      else if (kind === 'drop' || kind === 'none') out.filtered++;
      else if (kind === 'no-time' || kind === 'future') out.deadLettered++;
      else {
        const id = `${r.partition}:${r.key}`;
        const clock = Math.max(clocks.get(id) ?? -1, r.timestamp);
        clocks.set(id, clock);
        const end = r.timestamp - (r.timestamp % SIZE) + SIZE;
        if (end <= clock - GRACE) out.late++;
        else out.applied++;
      }
    }
    return out;
  }

  for (const seed of [1, 2, 3, 4, 5, 6]) {
    test(`seed ${seed}: every batch adds up, and the counts match a reference`, async () => {
      const random = rng(seed);
      const kinds: Kind[] = ['ok', 'ok', 'ok', 'ok', 'invalid', 'poison', 'drop', 'none', 'two', 'no-time', 'future'];
      const input: InputRecord[] = [];
      let time = 0;
      for (let i = 0; i < 400; i++) {
        const kind = kinds[Math.floor(random() * kinds.length)];
        time += Math.floor(random() * 1_500);
        // Out of order by up to 15 s, so some records are late.
        const at = Math.max(0, time - Math.floor(random() * 15_000));
        const timestamp = kind === 'no-time' ? (random() < 0.5 ? -1 : Number.NaN) : kind === 'future' ? Date.now() + 86_400_000 : at;
        input.push({ key: `k${Math.floor(random() * 3)}`, partition: Math.floor(random() * 2), value: { kind, v: 1 }, timestamp });
      }
      const run = await runFunction(fn, input, { batchSize: 1 + Math.floor(random() * 50) });
      assert.deepEqual(accounted(run), expected(input));
      assert.ok(
        run.responses.every((r) => r.batchItemFailures.length === 0),
        'no partition blocked',
      );
    });
  }
});
