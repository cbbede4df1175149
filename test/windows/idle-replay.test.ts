/**
 * Replays must not change with idle closing (issue 12): reprocessing a topic's whole history, as
 * from TRIM_HORIZON, with the schedule's ticks landing between the batches and a wall clock days
 * after the records' times, gives exactly the results it gives with idle closing off (same ids,
 * values, order and late records). The stream is seeded: 100,000 records over 4 partitions, out of
 * order, some late, and sparse keys whose records lie thousands of offsets apart (where a per-key
 * wall clock would close their windows mid-replay). A tick between batches finds records waiting
 * (the end offset is past what state applied) and must do nothing. Once the input is applied, a
 * tick far in the future closes every open window: exactly what a flush of the idle-off run emits.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { count, type Definition, type SluiceHandler, sluice, stream, sum } from 'sluice';
import type { OutputMessage } from 'sluice/runtime';
import type { InputRecord } from 'sluice/testing';
import { type Replay, replay } from '../support/ticks.js';

const PARTITIONS = 4;
const RECORDS = 100_000;
/** Event times of the history: mid-November 2023. */
const T0 = 1_700_000_000_000;
/** The replay runs ten days later, one second of wall clock per invocation. */
const WALL = T0 + 10 * 86_400_000;
const IDLE = '30s' as const;

/** mulberry32: a small seeded PRNG, so every run replays the same stream. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The history: partitions interleaved record by record (so every batch of the replay holds all
 * partitions, and none is caught up before the last one), each partition's event time advancing
 * 20 ms per record. Dense keys appear every few records; sparse keys about once every 2,500
 * offsets of their partition. About 3% of records are out of order by up to 3 s, 1% are a minute
 * or two late.
 */
function history(seed: number): InputRecord[] {
  const rnd = prng(seed);
  const out: InputRecord[] = [];
  const perPartition = RECORDS / PARTITIONS;
  for (let i = 0; i < perPartition; i++) {
    for (let p = 0; p < PARTITIONS; p++) {
      const base = T0 + i * 20;
      const sparse = rnd() < 0.0004 * 8;
      const key = sparse ? `s${p}-${Math.floor(rnd() * 8)}` : `d${p}-${Math.floor(rnd() * 40)}`;
      const r = rnd();
      const ts = r < 0.01 ? base - 60_000 - Math.floor(rnd() * 60_000) : r < 0.04 ? base - Math.floor(rnd() * 3_000) : base;
      out.push({ key, value: { v: Math.floor(rnd() * 100) }, timestamp: ts, partition: p });
    }
  }
  return out;
}

type Kind = 'tumbling' | 'hopping' | 'sliding' | 'session' | 'sessionByPartition' | 'count';

/** One window of each kind, idle closing on ('30s') or off; each its own function (a window after an idle window is refused). */
function definition(kind: Kind, idle: boolean): Definition {
  const opts = idle ? { idle: IDLE } : {};
  const s = stream<{ v: number }>('history', { name: `replay-${kind}` });
  const aggs = { n: count(), total: sum('v') };
  const name = { name: 'w' };
  switch (kind) {
    case 'tumbling':
      return s
        .tumblingWindow('10s', { grace: '2s', ...opts })
        .aggregate(aggs, name)
        .to('out');
    case 'hopping':
      return s
        .hoppingWindow('20s', '5s', { grace: '1s', closeBy: 'partition', ...opts })
        .aggregate(aggs, name)
        .to('out');
    case 'sliding':
      return s
        .slidingWindow('2s', { grace: '500ms', ...opts })
        .aggregate(aggs, name)
        .to('out');
    case 'session':
      return s
        .sessionWindow('1s', { grace: '500ms', ...opts })
        .aggregate(aggs, name)
        .to('out');
    case 'sessionByPartition':
      return s
        .sessionWindow('1s', { grace: '500ms', closeBy: 'partition', ...opts })
        .aggregate(aggs, name)
        .to('out');
    case 'count':
      return s.tumblingCountWindow(7, opts).aggregate(aggs, name).to('out');
  }
}

const records = history(12);
/** Ticks after every invocation, each a minute after its wall clock: far past the 30 s allowance. */
const between = (i: number) => [WALL + i * 1_000 + 60_000];
const clock = (i: number) => WALL + i * 1_000;

const byId = (ms: readonly OutputMessage[]) => [...ms].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));

async function both(kind: Kind, batchSize: number): Promise<{ on: Replay; off: Replay; ms: number }> {
  const started = performance.now();
  const on = await replay(sluice(definition(kind, true)) as SluiceHandler, records, {
    batchSize,
    clock,
    between,
    after: [WALL + 86_400_000],
  });
  const off = await replay(sluice(definition(kind, false)) as SluiceHandler, records, { batchSize, clock, flush: true });
  return { on, off, ms: Math.round(performance.now() - started) };
}

describe('a replay of 100,000 records gives the same results with idle closing on and off', () => {
  test('the history has what the test needs: out-of-order, late and sparse keys far apart', () => {
    assert.equal(records.length, RECORDS);
    let outOfOrder = 0;
    const gaps: number[] = [];
    const last = new Map<string, number>();
    const offsets = new Map<number, number>();
    for (const r of records) {
      const p = r.partition ?? 0;
      const offset = offsets.get(p) ?? 0;
      offsets.set(p, offset + 1);
      if (r.timestamp < T0 + offset * 20) outOfOrder++;
      if (r.key?.startsWith('s')) {
        const prev = last.get(r.key!);
        if (prev !== undefined) gaps.push(offset - prev);
        last.set(r.key!, offset);
      }
    }
    assert.ok(outOfOrder > 3_000, `out-of-order records: ${outOfOrder}`);
    gaps.sort((a, b) => a - b);
    assert.ok(gaps.length > 50, `sparse keys recur ${gaps.length} times`);
    assert.ok(gaps[Math.floor(gaps.length / 2)] > 1_000, `median offset gap of sparse keys: ${gaps[Math.floor(gaps.length / 2)]}`);
  });

  const kinds: [Kind, number][] = [
    ['tumbling', 500],
    ['hopping', 500],
    ['sliding', 500],
    ['session', 100],
    ['sessionByPartition', 500],
    ['count', 100],
  ];
  for (const [kind, batchSize] of kinds) {
    test(`${kind} window, batches of ${batchSize}`, async (t) => {
      const { on, off, ms } = await both(kind, batchSize);
      t.diagnostic(`${kind}: both replays in ${ms} ms, ${on.invocations} invocations, ${on.between.length} ticks between them`);
      // Ticks between batches found records waiting (end offset past what was applied) and did nothing.
      assert.ok(on.between.length >= on.invocations - 1);
      const decisions = on.between.flatMap((r) => r.partitions.map((p) => p.decision));
      for (const d of decisions) assert.equal(d.action, 'skip', JSON.stringify(d));
      assert.equal(
        on.between.reduce((n, r) => n + r.windowsClosed, 0),
        0,
      );
      // Quiet for longer than the allowance by the wall clock: only the end offset held them back.
      const lagging = decisions.filter((d) => d.action === 'skip' && d.reason === 'lagging').length;
      assert.ok(lagging > decisions.length / 2, `${lagging} of ${decisions.length} tick decisions were 'lagging'`);

      // The replay itself: identical, in order, with the same late records.
      assert.ok(off.replayed > 1_000, `results during the replay: ${off.replayed}`);
      assert.equal(on.replayed, off.replayed);
      assert.deepEqual(on.outputs.slice(0, on.replayed), off.outputs.slice(0, off.replayed));
      // Count windows have no event time, so nothing is late for them.
      if (kind !== 'count') assert.ok(on.late.length > 100, `late records: ${on.late.length}`);
      assert.deepEqual(on.late, off.late);

      // After the input, a tick a day later closes what a flush closes: same ids and values.
      const closedByTick = on.after.reduce((n, r) => n + r.windowsClosed, 0);
      assert.ok(closedByTick > 0, 'the tick after the input closed the open windows');
      assert.equal(on.outputs.length - on.replayed, closedByTick);
      assert.deepEqual(byId(on.outputs.slice(on.replayed)), byId(off.outputs.slice(off.replayed)));
      t.diagnostic(
        `${kind}: ${on.replayed} results during the replay, ${on.late.length} late, ${closedByTick} closed by the tick after it`,
      );
      assert.equal(new Set(on.outputs.map((m) => m.id)).size, on.outputs.length, 'final results have unique ids');
    });
  }
});
