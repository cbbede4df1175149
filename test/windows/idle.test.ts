/**
 * Idle closing, window kind by window kind, through the real handler (`runFunction` with a wall
 * clock and ticks): when a quiet partition's windows close (the tick the floor formula gives, not
 * one before), what a record arriving afterwards is (late), that a result closed by a tick is the
 * one a later record would have closed (same sluice-id, same value), what ticks do while records
 * wait or when nothing is due (nothing, not even a write), and the options and their errors.
 *
 * The floor of a window in a partition at wall time `now` is
 * `newest event time of the window in the partition + (now - arrival of its last batch) - idle`,
 * once `now - arrival >= idle`; a window closes when `floor - grace >= end` (sliding windows
 * include their end: `floor - grace > end`). {@link closesAt} solves that for `now`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, count, type Definition, keyedState, type LateRecord, type SluiceHandler, sluice, stream, sum } from 'sluice';
import type { OutputMessage } from 'sluice/runtime';
import { MemoryStore } from 'sluice/state';
import { type InputRecord, runFunction, type TestRun } from 'sluice/testing';
import { replay } from '../support/ticks.js';

/** The wall clock when the records arrive (any epoch ms after their event times). */
const T = 1_000_000_000;

/** The first wall time at which a tick closes a window ending at `end` (see the module comment). */
function closesAt(w: { arrival: number; newest: number; end: number; idle: number; grace?: number; inclusive?: boolean }): number {
  const reach = w.end + (w.grace ?? 0) + (w.inclusive ? 1 : 0) - w.newest;
  return w.arrival + w.idle + Math.max(0, reach);
}

const rec = (key: string, timestamp: number, v = 1, partition = 0): InputRecord => ({ key, value: { v }, timestamp, partition });
const aggs = { n: count(), total: sum('v') };
const finals = (run: TestRun) => run.outputs.filter((m) => m.topic === 'out');
const ids = (ms: readonly OutputMessage[]) => ms.map((m) => m.id);
const closedPerTick = (run: TestRun) => run.ticks.map((t) => t.windowsClosed);

function healthy(run: TestRun): TestRun {
  assert.deepEqual(run.deadLetters, []);
  assert.deepEqual(
    run.responses.flatMap((r) => r.batchItemFailures),
    [],
  );
  for (const t of run.ticks) for (const p of t.partitions) assert.equal(p.error, undefined, `tick at ${t.now}: ${p.error}`);
  return run;
}

/** Ticks one millisecond before and at each of the given times, in order. */
const around = (...times: number[]) => [...times].sort((a, b) => a - b).flatMap((t) => [t - 1, t]);

/** The idle item of a partition as stored (MemoryStore), with the offset it was written at. */
function idleItem(run: TestRun, fn: string, topic: string, partition = 0): { value: unknown; offset: number } | undefined {
  return run.state()[`${fn}/${topic}/${partition}/idle#partition`]?.idle;
}

describe('tumbling windows close when their partition is idle', () => {
  const lates: LateRecord[] = [];
  const def = (idle: boolean) =>
    stream<{ v: number }>('in', { name: 'f', lateTopic: 'late' })
      .tumblingWindow('10s', { grace: '2s', ...(idle ? { idle: '30s' as const } : {}) })
      .aggregate(aggs, { name: 'w', onLate: (l) => lates.push(l) })
      .to('out');
  // Partition 0 arrives at T, partition 1 twenty seconds later (one invocation each).
  const records = [rec('a', 1_000, 1), rec('a', 4_000, 2), rec('b', 12_000, 5), rec('c', 3_000, 7, 1), rec('c', 3_500, 1, 1)];
  let invocation = 0;
  const wallClock = () => T + 20_000 * invocation++;
  const due = {
    a: closesAt({ arrival: T, newest: 12_000, end: 10_000, grace: 2_000, idle: 30_000 }),
    b: closesAt({ arrival: T, newest: 12_000, end: 20_000, grace: 2_000, idle: 30_000 }),
    c: closesAt({ arrival: T + 20_000, newest: 3_500, end: 10_000, grace: 2_000, idle: 30_000 }),
  };

  test('each window closes at the tick the floor formula gives, not one before', async () => {
    invocation = 0;
    assert.deepEqual(due, { a: T + 30_000, b: T + 40_000, c: T + 20_000 + 38_500 });
    const run = healthy(await runFunction(def(true), records, { batchSize: 3, wallClock, ticks: around(due.a, due.b, due.c) }));
    assert.equal(invocation, 2, 'one invocation per partition');
    assert.deepEqual(
      run.reports.map((r) => r.stats.windowsEmitted),
      [0, 0],
      'no record closed anything',
    );
    assert.deepEqual(closedPerTick(run), [0, 1, 0, 1, 0, 1]);
    assert.deepEqual(
      run.ticks.map((t) => t.partitions.filter((p) => p.windowsClosed > 0).map((p) => p.partition)),
      [[], [0], [], [0], [], [1]],
    );
    assert.deepEqual(run.values('out'), [
      { start: 0, end: 10_000, n: 2, total: 3 },
      { start: 10_000, end: 20_000, n: 1, total: 5 },
      { start: 0, end: 10_000, n: 2, total: 8 },
    ]);
  });

  test('a result closed by a tick has the id and value a later record closing it would give', async () => {
    invocation = 0;
    const ticked = await runFunction(def(true), records, { batchSize: 3, wallClock, ticks: [due.a, due.b, due.c] });
    // Without idle closing, later records of each key close the same windows.
    const later = [...records, rec('a', 40_000, 0), rec('b', 40_000, 0), rec('c', 40_000, 0, 1)];
    const closedByRecords = await runFunction(def(false), later, { batchSize: 100, wallClock: () => T });
    const byId = (ms: OutputMessage[]) => new Map(ms.map((m) => [m.id, m.value]));
    assert.equal(finals(ticked).length, 3);
    assert.deepEqual(byId(finals(ticked)), byId(finals(closedByRecords)));
  });

  test('a record for a window a tick closed is late: counted, onLate, lateTopic', async () => {
    invocation = 0;
    lates.length = 0;
    const store = new MemoryStore();
    await runFunction(def(true), records, { batchSize: 3, store, wallClock, ticks: [due.a] });
    // Partition 0 continues at offset 3: key a's window [0, 10 s) closed at the tick.
    const next = healthy(await runFunction(def(true), [rec('a', 9_000, 4)], { store, startOffset: 3, wallClock: () => due.a + 1_000 }));
    assert.equal(next.reports[0].stats.late, 1);
    assert.deepEqual(
      next.late.map((l) => [l.key, l.offset, l.windows]),
      [['a', 3, [[0, 10_000]]]],
    );
    assert.deepEqual(
      lates.map((l) => [l.key, l.partition, l.offset]),
      [['a', 0, 3]],
    );
    assert.deepEqual(next.values('late'), [{ v: 4 }]);
    assert.deepEqual(next.values('out'), [], 'the emitted result is never changed');
  });
});

describe('hopping windows', () => {
  test('overlapping windows close one by one as the floor passes each end', async () => {
    const def = stream<{ v: number }>('in', { name: 'f' })
      .hoppingWindow('10s', '5s', { idle: '20s' })
      .aggregate(aggs, { name: 'w' })
      .to('out');
    const at = (end: number) => closesAt({ arrival: T, newest: 7_000, end, idle: 20_000 });
    const run = healthy(await runFunction(def, [rec('a', 7_000, 3)], { wallClock: () => T, ticks: around(at(10_000), at(15_000)) }));
    assert.deepEqual([at(10_000), at(15_000)], [T + 23_000, T + 28_000]);
    assert.deepEqual(closedPerTick(run), [0, 1, 0, 1]);
    assert.deepEqual(run.values('out'), [
      { start: 0, end: 10_000, n: 1, total: 3 },
      { start: 5_000, end: 15_000, n: 1, total: 3 },
    ]);
  });
});

describe('sliding windows include their end', () => {
  const def = (idle: boolean) =>
    stream<{ v: number }>('in', { name: 'f' })
      .slidingWindow('5s', { grace: '1s', ...(idle ? { idle: '10s' as const } : {}) })
      .aggregate(aggs, { name: 'w' })
      .to('out');
  // Windows [0, 2 s] and [0, 2.5 s]: neither closed by the key's own clock (2.5 s - grace).
  const records = [rec('a', 2_000, 1), rec('a', 2_500, 2)];
  const at = (end: number) => closesAt({ arrival: T, newest: 2_500, end, grace: 1_000, idle: 10_000, inclusive: true });

  test('a window closes once floor - grace passes its end, not when it reaches it', async () => {
    assert.deepEqual([at(2_000), at(2_500)], [T + 10_501, T + 11_001]);
    const run = healthy(await runFunction(def(true), records, { wallClock: () => T, ticks: around(at(2_000), at(2_500)) }));
    assert.deepEqual(closedPerTick(run), [0, 1, 0, 1]);
    assert.deepEqual(run.values('out'), [
      { start: 0, end: 2_000, n: 1, total: 1 },
      { start: 0, end: 2_500, n: 2, total: 3 },
    ]);
    const byRecord = await runFunction(def(false), [...records, rec('a', 10_000, 0)], { wallClock: () => T });
    assert.deepEqual(ids(finals(run)), ids(finals(byRecord)).slice(0, 2));
    assert.deepEqual(run.values('out'), byRecord.values('out').slice(0, 2));
  });
});

describe('session windows', () => {
  const def = (closeBy: 'key' | 'partition', idle = true) =>
    stream<{ v: number }>('in', { name: 'f' })
      .sessionWindow('5s', { grace: '1s', closeBy, ...(idle ? { idle: '10s' as const } : {}) })
      .aggregate(aggs, { name: 'w' })
      .to('out');
  // Key a's session [1 s, 8 s); key b's [20 s, 25 s). The partition's newest event time is 20 s.
  const records = [rec('a', 1_000, 1), rec('a', 3_000, 2), rec('b', 20_000, 4)];
  const a = closesAt({ arrival: T, newest: 20_000, end: 8_000, grace: 1_000, idle: 10_000 });
  const b = closesAt({ arrival: T, newest: 20_000, end: 25_000, grace: 1_000, idle: 10_000 });

  test("closeBy key: the partition's newest time closes a quiet key's session once idle", async () => {
    assert.deepEqual([a, b], [T + 10_000, T + 16_000]);
    const none = await runFunction(def('key'), records, { wallClock: () => T });
    assert.deepEqual(none.values('out'), [], "b's record does not close a's session by key clocks");
    const run = healthy(await runFunction(def('key'), records, { wallClock: () => T, ticks: around(a, b) }));
    assert.deepEqual(closedPerTick(run), [0, 1, 0, 1]);
    assert.deepEqual(run.values('out'), [
      { start: 1_000, end: 8_000, n: 2, total: 3 },
      { start: 20_000, end: 25_000, n: 1, total: 4 },
    ]);
    const byRecord = await runFunction(def('key', false), [...records, rec('a', 60_000, 0), rec('b', 60_000, 0)], { wallClock: () => T });
    assert.deepEqual(new Set(ids(finals(run))), new Set(ids(finals(byRecord))));
  });

  test("closeBy partition: b's record closes a's session, the tick closes b's", async () => {
    const run = healthy(await runFunction(def('partition'), records, { wallClock: () => T, ticks: around(b) }));
    assert.equal(run.reports[0].stats.windowsEmitted, 1, "a's session closed in the batch");
    assert.deepEqual(closedPerTick(run), [0, 1]);
    assert.deepEqual(run.values('out'), [
      { start: 1_000, end: 8_000, n: 2, total: 3 },
      { start: 20_000, end: 25_000, n: 1, total: 4 },
    ]);
  });

  test('after a tick, a record whose own session would already be closed is late', async () => {
    const store = new MemoryStore();
    await runFunction(def('key'), records, { store, wallClock: () => T, ticks: [b] });
    const next = healthy(await runFunction(def('key'), [rec('b', 19_000, 9)], { store, startOffset: 3, wallClock: () => b + 1 }));
    // The tick's floor is 26 s: [19 s, 24 s) ends before 26 s - grace.
    assert.deepEqual(
      next.late.map((l) => [l.key, l.windows, l.clock]),
      [['b', [[19_000, 24_000]], 26_000]],
    );
    assert.deepEqual(next.values('out'), []);
  });
});

describe('count windows: idle flush of partial windows', () => {
  const def = (idle: boolean) =>
    stream<{ v: number }>('in', { name: 'f' })
      .tumblingCountWindow(3, idle ? { idle: '10s' } : {})
      .aggregate(aggs, { name: 'w' })
      .to('out');
  // Key a: five records (window #0 full, #3 holds two); key b: one.
  const records = [rec('a', 1, 1), rec('a', 2, 1), rec('a', 3, 1), rec('b', 4, 5), rec('a', 5, 1), rec('a', 6, 2)];

  test('the quiet partition flushes partial windows; the next windows are numbered after them', async () => {
    const store = new MemoryStore();
    const run = healthy(await runFunction(def(true), records, { store, wallClock: () => T, ticks: around(T + 10_000) }));
    assert.deepEqual(closedPerTick(run), [0, 2]);
    assert.deepEqual(ids(finals(run)), ['f:w:a:#0', 'f:w:a:#3', 'f:w:b:#0']);
    assert.deepEqual(run.values('out'), [
      { start: 1, end: 3, n: 3, total: 3 },
      { start: 5, end: 6, n: 2, total: 3 },
      { start: 4, end: 4, n: 1, total: 5 },
    ]);
    // The same partial windows a flush at the end of a finite input emits.
    const flushed = await runFunction(def(false), records, { flush: true });
    assert.deepEqual(ids(finals(flushed)), ids(finals(run)));
    assert.deepEqual(flushed.values('out'), run.values('out'));

    const more = [rec('a', 7, 1), rec('a', 8, 1), rec('a', 9, 1), rec('b', 10, 1)];
    const next = healthy(await runFunction(def(true), more, { store, startOffset: 6, wallClock: () => T + 60_000, ticks: [T + 70_000] }));
    assert.deepEqual(ids(finals(next)), ['f:w:a:#5', 'f:w:b:#1']);
    const all = [...ids(finals(run)), ...ids(finals(next))];
    assert.equal(new Set(all).size, all.length, 'ids are unique across flushes');
  });
});

describe('hopping and sliding count windows: idle flush of every open window', () => {
  for (const kind of ['hoppingCount', 'slidingCount'] as const) {
    test(`${kind}: what a flush emits, then windows numbered after the flushed ones`, async () => {
      const s = stream<{ v: number }>('in', { name: 'f' });
      const def = (kind === 'slidingCount' ? s.slidingCountWindow(3, { idle: '10s' }) : s.hoppingCountWindow(4, 2, { idle: '10s' }))
        .aggregate(aggs, { name: 'w' })
        .to('out');
      const five = [1, 2, 3, 4, 5].map((t) => rec('a', t));
      const store = new MemoryStore();
      const first = healthy(await runFunction(def, five, { store, wallClock: () => T, ticks: around(T + 10_000) }));
      const flushed = await runFunction(def, five, { flush: true });
      assert.deepEqual(closedPerTick(first), [0, first.ticks[1].windowsClosed]);
      assert.ok(first.ticks[1].windowsClosed >= 2, 'more than one open window flushed');
      assert.deepEqual(ids(finals(first)), ids(finals(flushed)));
      assert.deepEqual(first.values('out'), flushed.values('out'));
      const next = healthy(await runFunction(def, five, { store, startOffset: 5, wallClock: () => T + 60_000, ticks: [T + 70_000] }));
      const seqs = ids(finals(next)).map((id) => Number(id.split('#')[1]));
      assert.ok(seqs.length > 0 && seqs.every((n) => n >= 5), `windows after the flush: ${seqs}`);
      const all = [...ids(finals(first)), ...ids(finals(next))];
      assert.equal(new Set(all).size, all.length, 'ids are unique across flushes');
    });
  }
});

describe('ticks that must do nothing', () => {
  const def = stream<{ v: number }>('in', { name: 'f' }).tumblingWindow('10s', { idle: '30s' }).aggregate(aggs, { name: 'w' }).to('out');

  test('a tick while records wait on the broker closes nothing, however late the wall clock', async () => {
    const records = [rec('a', 1_000), rec('a', 2_000), rec('b', 3_000), rec('b', 4_000)];
    const far = T + 86_400_000;
    const r = await replay(sluice(def) as SluiceHandler, records, { batchSize: 2, clock: () => T, between: () => [far], after: [far] });
    assert.equal(r.between.length, 1);
    assert.deepEqual(
      r.between[0].partitions.map((p) => [p.decision, p.windowsClosed]),
      [[{ action: 'skip', reason: 'lagging' }, 0]],
    );
    assert.equal(r.replayed, 0);
    // Caught up, the same wall time closes both keys' windows.
    assert.equal(r.after[0].windowsClosed, 2);
  });

  test('a caught-up partition closes while another, with records waiting, does not', async () => {
    // Events of two records per partition: partition 0 is applied whole by the first; partition 1
    // still has a batch waiting after the second.
    const records = [
      rec('a', 1_000),
      rec('a', 2_000),
      rec('c', 1_000, 1, 1),
      rec('c', 2_000, 1, 1),
      rec('c', 3_000, 1, 1),
      rec('c', 4_000, 1, 1),
    ];
    const far = T + 86_400_000;
    const r = await replay(sluice(def) as SluiceHandler, records, { batchSize: 2, clock: () => T, between: (i) => (i === 1 ? [far] : []) });
    assert.equal(r.invocations, 3);
    assert.deepEqual(
      r.between[0].partitions.map((p) => [p.partition, p.decision.action, p.windowsClosed]),
      [
        [0, 'close', 1],
        [1, 'skip', 0],
      ],
    );
    assert.deepEqual(
      r.outputs.map((m) => [m.key, m.value]),
      [['a', { start: 0, end: 10_000, n: 2, total: 2 }]],
    );
  });

  test('a tick that finds nothing due writes nothing', async () => {
    // A window of an hour: quiet for 30 s, nothing is due for about an hour.
    const hourly = stream<{ v: number }>('in', { name: 'f' })
      .tumblingWindow('1h', { idle: '30s' })
      .aggregate(aggs, { name: 'w' })
      .to('out');
    // MemoryStore counts its read and write calls.
    const store = new MemoryStore();
    const first = await runFunction(hourly, [rec('a', 1_000)], { store, wallClock: () => T });
    const before = idleItem(first, 'f', 'in');
    assert.equal(before?.offset, 0);
    const writes = store.writes;
    const reads = store.reads;
    // Driven directly: the handler asks these end offsets (caught up at offset 0).
    const offsets = { endOffsets: async () => new Map([[0, 1]]) };
    const handler = sluice(hourly) as SluiceHandler;
    handler.sluice.configure({ store });
    const reports = [];
    for (const now of [T + 1_000, T + 30_000, T + 600_000]) reports.push(await handler.sluice.tick({ now, offsets }));
    assert.deepEqual(
      reports.map((t) => t.partitions.map((p) => p.decision)),
      [[{ action: 'skip', reason: 'not quiet' }], [{ action: 'skip', reason: 'nothing due' }], [{ action: 'skip', reason: 'nothing due' }]],
    );
    assert.equal(store.writes, writes, 'no write call');
    assert.equal(store.reads - reads, 3, 'one read of the idle item per tick and partition');
    assert.deepEqual(idleItem(first, 'f', 'in'), before);
    // When the hour has passed, it closes.
    const due = closesAt({ arrival: T, newest: 1_000, end: 3_600_000, idle: 30_000 });
    const closing = await handler.sluice.tick({ now: due, offsets });
    assert.equal(closing.windowsClosed, 1);
    assert.ok(store.writes > writes);
  });
});

describe('options', () => {
  test("the source's idle is the default of every window; a window's idle: false opts out", async () => {
    const records = [rec('a', 1_000, 2)];
    const due = closesAt({ arrival: T, newest: 1_000, end: 10_000, idle: 10_000 });
    const byDefault = stream<{ v: number }>('in', { name: 'f', idle: '10s' })
      .tumblingWindow('10s')
      .aggregate(aggs, { name: 'w' })
      .to('out');
    const run = healthy(await runFunction(byDefault, records, { wallClock: () => T, ticks: around(due) }));
    assert.deepEqual(closedPerTick(run), [0, 1]);
    assert.deepEqual(run.values('out'), [{ start: 0, end: 10_000, n: 1, total: 2 }]);

    const optedOut = stream<{ v: number }>('in', { name: 'f', idle: '10s' })
      .tumblingWindow('10s', { idle: false })
      .aggregate(aggs, { name: 'w' })
      .to('out');
    const off = healthy(await runFunction(optedOut, records, { wallClock: () => T, ticks: [due, due + 86_400_000] }));
    assert.deepEqual(
      off.ticks.map((t) => t.partitions.length),
      [0, 0],
      'a function without idle windows does nothing on a tick',
    );
    assert.deepEqual(off.values('out'), []);

    // A window's own allowance wins over the source's.
    const own = stream<{ v: number }>('in', { name: 'f', idle: '10s' })
      .tumblingWindow('10s', { idle: '1m' })
      .aggregate(aggs, { name: 'w' })
      .to('out');
    const later = closesAt({ arrival: T, newest: 1_000, end: 10_000, idle: 60_000 });
    const ownRun = healthy(await runFunction(own, records, { wallClock: () => T, ticks: around(later) }));
    assert.deepEqual(closedPerTick(ownRun), [0, 1]);
  });

  const errors: [string, () => Definition, RegExp][] = [
    [
      'idle: 0',
      () =>
        stream('in')
          .tumblingWindow('10s', { idle: 0 as never })
          .aggregate(count()),
      /must be more than 0/,
    ],
    [
      'idle: "soon"',
      () =>
        stream('in')
          .tumblingWindow('10s', { idle: 'soon' as never })
          .aggregate(count()),
      /must be a duration or false; received/,
    ],
    [
      'source idle: 0',
      () =>
        stream('in', { idle: 0 as never })
          .tumblingWindow('10s')
          .aggregate(count()),
      /idle of stream "in" must be more than 0/,
    ],
    [
      'a window after an idle window',
      () =>
        stream<{ v: number }>('in')
          .tumblingWindow('10s', { idle: '30s' })
          .aggregate(count(), { name: 'first' })
          .tumblingWindow('1m')
          .aggregate(count(), { name: 'second' }),
      /window "first" of function "in" closes when idle, and window "second" follows it; a window after an idle window is not supported/,
    ],
    [
      'keyed state after an idle window',
      () => {
        const last = keyedState<number>('last');
        return stream<{ v: number }>('in', { state: [last] })
          .tumblingWindow('10s', { idle: '30s' })
          .aggregate(count(), { name: 'w' })
          .map((w) => {
            last.set(w.value);
            return w;
          });
      },
      /keyed state \("last"\).*keyed state after an idle window is not supported/,
    ],
  ];
  for (const [name, build, message] of errors) {
    test(`config error: ${name}`, () => {
      assert.throws(
        () => sluice(build()),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
      );
    });
  }

  test('keyed state before an idle window, and a window without idle after one with, are accepted', () => {
    const last = keyedState<number>('last');
    const before = stream<{ v: number }>('in', { state: [last] })
      .map((r) => {
        last.set(r.v);
        return r;
      })
      .tumblingWindow('10s', { idle: '30s' })
      .aggregate(count(), { name: 'w' })
      .to('out');
    assert.doesNotThrow(() => sluice(before));
    const plainFirst = stream<{ v: number }>('in')
      .tumblingWindow('10s')
      .aggregate(count(), { name: 'first' })
      .tumblingWindow('1m', { idle: '30s' })
      .aggregate(count(), { name: 'second' });
    assert.doesNotThrow(() => sluice(plainFirst));
  });
});
