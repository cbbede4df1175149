/**
 * The idle tick protocol against the store (pipeline/idle.ts): propose, check the end offset
 * again, confirm; a batch vetoes a proposal it reads. Each test interleaves a tick and batches at
 * the points where a race could make a batch's outputs disagree with the floors that end up
 * confirmed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sluice, stream, sum } from 'sluice';
import type { KafkaEvent } from 'sluice/runtime';
import { CaptureSink, type EndOffsets, toEventRecord } from 'sluice/testing';
import { MemoryStore } from '../../framework/src/state/memory-store.js';

const T0 = 1_700_000_000_000;
const TOPIC = 'readings';

function define() {
  return stream<{ v: number }>(TOPIC, { idle: '10s' })
    .tumblingWindow('10s', { grace: '0s' })
    .aggregate({ total: sum('v') }, { name: 'total' })
    .to('totals');
}

/** A handler with captured outputs, an in-memory store and a settable wall clock. */
function harness() {
  const handler = sluice(define());
  const sink = new CaptureSink();
  const store = new MemoryStore();
  const clock = { now: T0 };
  handler.sluice.configure({ store, sink, deadLetters: sink, clock: () => clock.now });
  let next = 0;
  /** Delivers records at the next offsets of partition 0, as one invocation. */
  const deliver = async (records: { key: string; v: number; ts: number }[]) => {
    const event: KafkaEvent = {
      eventSource: 'aws:kafka',
      records: {
        [`${TOPIC}-0`]: records.map((r) => toEventRecord({ key: r.key, value: { v: r.v }, timestamp: r.ts }, TOPIC, 0, next++)),
      },
    };
    return handler(event, {} as never);
  };
  const results = () => sink.messages.filter((m) => m.topic === 'totals').map((m) => ({ id: m.id, value: m.value }));
  return { handler, store, clock, deliver, results, end: () => next };
}

function offsets(end: () => Promise<number> | number): EndOffsets {
  return { endOffsets: async () => new Map([[0, await end()]]) };
}

test('a quiet, caught-up partition closes its open window at the tick the floor reaches its end', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  // Floor = 1 s (newest) + quiet - 10 s: the window [0, 10 s) of T0 closes once quiet >= 19 s.
  h.clock.now = T0 + 18_000;
  let report = await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.equal(report.windowsClosed, 0);
  assert.deepEqual(h.results(), []);
  h.clock.now = T0 + 19_000;
  report = await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.equal(report.windowsClosed, 1);
  assert.deepEqual(
    h.results().map((r) => r.value),
    [{ start: T0, end: T0 + 10_000, total: 2 }],
  );
});

test('a tick while records wait (end offset past what state applied) confirms nothing', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  h.clock.now = T0 + 60_000;
  const report = await h.handler.sluice.tick({ offsets: offsets(() => h.end() + 1) });
  assert.deepEqual(report.partitions[0].decision, { action: 'skip', reason: 'lagging' });
  assert.equal(report.windowsClosed, 0);
  // The record that was waiting lands in the still-open window.
  await h.deliver([{ key: 'a', v: 3, ts: T0 + 2_000 }]);
  h.clock.now = T0 + 120_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.deepEqual(
    h.results().map((r) => r.value),
    [{ start: T0, end: T0 + 10_000, total: 5 }],
  );
});

test('a record that arrives between the proposal and the re-check stops the tick; its batch runs without the floor', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  h.clock.now = T0 + 60_000;
  let calls = 0;
  const report = await h.handler.sluice.tick({
    offsets: offsets(async () => {
      // Call 1 lists the partitions, 2 is the first check, 3 the re-check: a record for the open window arrived, and its batch ran (and vetoed).
      if (++calls === 3) await h.deliver([{ key: 'a', v: 5, ts: T0 + 3_000 }]);
      return h.end();
    }),
  });
  assert.deepEqual(report.partitions[0].decision, { action: 'skip', reason: 'moved' });
  // The late-looking record was taken: no floor was confirmed before it.
  h.clock.now = T0 + 200_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.deepEqual(
    h.results().map((r) => r.value),
    [{ start: T0, end: T0 + 10_000, total: 7 }],
  );
});

test('a batch that reads a proposal vetoes it: the tick cannot confirm behind the batch', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  h.clock.now = T0 + 60_000;
  let calls = 0;
  const report = await h.handler.sluice.tick({
    offsets: offsets(async () => {
      // The record arrives after the re-check (call 3); its batch reads the proposal before the confirm.
      if (++calls === 3) {
        const end = h.end();
        await h.deliver([{ key: 'a', v: 5, ts: T0 + 3_000 }]);
        return end;
      }
      return h.end();
    }),
  });
  assert.deepEqual(report.partitions[0].decision, { action: 'skip', reason: 'raced' });
  h.clock.now = T0 + 200_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.deepEqual(
    h.results().map((r) => r.value),
    [{ start: T0, end: T0 + 10_000, total: 7 }],
  );
});

test('after a confirmed floor, a record for a closed window is late and the result keeps its id', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  h.clock.now = T0 + 60_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  const [closed] = h.results();
  assert.equal(closed.id, `${define().manifest().name}:total:a:${T0}:${T0 + 10_000}`);
  const response = await h.deliver([{ key: 'a', v: 9, ts: T0 + 4_000 }]);
  assert.deepEqual(response.batchItemFailures, []);
  assert.equal(h.results().length, 1, 'the closed window is not reopened');
  const idle = h.store.dump()[`${h.handler.sluice.manifest.name}/${TOPIC}/0/idle#partition`]?.idle;
  assert.equal((idle?.value as { l: number } | undefined)?.l, 1, 'the late record was applied as a record');
});

test('a tick confirmed after a committed batch survives that batch being retried', async () => {
  const h = harness();
  const batch = [{ key: 'a', v: 2, ts: T0 + 1_000 }];
  await h.deliver(batch);
  h.clock.now = T0 + 60_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.equal(h.results().length, 1);
  // Lambda redelivers the committed batch (its response was lost): same offsets again.
  const event: KafkaEvent = {
    eventSource: 'aws:kafka',
    records: { [`${TOPIC}-0`]: [toEventRecord({ key: 'a', value: { v: 2 }, timestamp: T0 + 1_000 }, TOPIC, 0, 0)] },
  };
  await h.handler(event, {} as never);
  // The next record for the closed window is still late: the tick's floor was not lost.
  await h.deliver([{ key: 'a', v: 9, ts: T0 + 4_000 }]);
  h.clock.now = T0 + 120_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  const values = h.results().map((r) => r.value);
  assert.deepEqual(values, [{ start: T0, end: T0 + 10_000, total: 2 }]);
});

test('two ticks at once: one confirms, the other stops; each window is emitted with one value', async () => {
  const h = harness();
  await h.deliver([
    { key: 'a', v: 2, ts: T0 + 1_000 },
    { key: 'b', v: 4, ts: T0 + 1_500 },
  ]);
  h.clock.now = T0 + 60_000;
  const [r1, r2] = await Promise.all([
    h.handler.sluice.tick({ offsets: offsets(h.end) }),
    h.handler.sluice.tick({ offsets: offsets(h.end), now: T0 + 61_000 }),
  ]);
  const decisions = [r1.partitions[0].decision, r2.partitions[0].decision];
  assert.ok(
    decisions.some((d) => d.action === 'close'),
    JSON.stringify(decisions),
  );
  const byId = new Map<string, unknown>();
  for (const r of h.results()) {
    if (byId.has(r.id)) assert.deepEqual(r.value, byId.get(r.id), `same id, same value: ${r.id}`);
    byId.set(r.id, r.value);
  }
  assert.equal(byId.size, 2);
});

test('a tick with nothing due writes nothing', async () => {
  const h = harness();
  await h.deliver([{ key: 'a', v: 2, ts: T0 + 1_000 }]);
  h.clock.now = T0 + 60_000;
  await h.handler.sluice.tick({ offsets: offsets(h.end) });
  const before = JSON.stringify(h.store.dump());
  h.clock.now = T0 + 120_000;
  const report = await h.handler.sluice.tick({ offsets: offsets(h.end) });
  assert.deepEqual(report.partitions[0].decision, { action: 'skip', reason: 'nothing due' });
  assert.equal(JSON.stringify(h.store.dump()), before);
});
