// The live view of `sluice dev --brokers`: its plain (non-TTY) lines and their fields.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { emptyStats } from '../../framework/src/local/emulator/stats.js';
import { countOpenWindows, guaranteeText, startView, statusLine, transactionsText } from '../../framework/src/local/view.js';
import { MemoryStore } from '../../framework/src/state/memory-store.js';

function stats() {
  const s = emptyStats('sensor-sums');
  Object.assign(s, { records: 1_234, batches: 17, retries: 3, windowsEmitted: 15, late: 2, poison: 1, failedToDeadLetter: 1 });
  s.highWatermarks.set(1, 900).set(0, 1_500);
  s.committed.set(0, 1_000).set(1, 900);
  return s;
}

test('a status line has records/s, records in, lag per partition, batches, retries, windows open and emitted, late, poison and dead letters', () => {
  const line = statusLine(stats(), 36.4, 3);
  assert.equal(
    line,
    'sensor-sums              36 rec/s  in 1,234  lag p0:500 p1:0  batches 17  retries 3  windows open 3 emitted 15  late 2  poison 1  dlq 2',
  );
  assert.match(statusLine(stats(), 0, undefined), /windows open \? emitted 15/, 'unknown when the store cannot count them');
});

test('a partition held at a failing batch shows as BLOCKED with its offset and attempts', () => {
  const s = stats();
  s.blocked.set(1, { offset: 900, attempts: 6 });
  assert.match(
    statusLine(s, 0, 0),
    / {2}BLOCKED p1@900 \(6 attempts\): retried until it succeeds, as Lambda does without provisioned pollers$/,
  );
});

test('records lost (gone from the broker before they were processed) show as LOST once there are any', () => {
  const s = stats();
  assert.doesNotMatch(statusLine(s, 0, 0), /LOST/);
  s.lost = 960_000;
  assert.match(statusLine(s, 0, 0), / {2}dlq 2 {2}LOST 960,000: gone from the broker before they were processed$/);
});

test('off a TTY the view prints plain timestamped lines, without cursor movement, and a last one when stopped', async () => {
  let out = '';
  const sink = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        out += chunk;
        cb();
      },
    }),
    { isTTY: false },
  ) as unknown as NodeJS.WriteStream;
  const s = stats();
  const view = startView([{ stats: s, store: new MemoryStore() }], sink, { intervalMs: 30 });
  s.records += 500;
  await new Promise((r) => setTimeout(r, 100));
  view.note('sensor-sums: a notice');
  view.stop();
  const lines = out.trimEnd().split('\n');
  assert.ok(lines.length >= 3, out);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looks for the ESC of an ANSI sequence
  assert.doesNotMatch(out, /\x1b\[/, 'no escape sequences off a TTY');
  assert.ok(lines.includes('sensor-sums: a notice'));
  const status = lines.filter((l) => l !== 'sensor-sums: a notice');
  for (const l of status) {
    assert.match(
      l,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z sensor-sums\s+[\d,]+ rec\/s {2}in [\d,]+ {2}lag p0:500 p1:0 {2}batches 17 {2}retries 3 {2}windows open 0 emitted 15 {2}late 2 {2}poison 1 {2}dlq 2$/,
    );
  }
  assert.match(status[0], / [1-9][\d,]* rec\/s {2}in 1,734/, 'the first line counts the 500 new records as a rate');
});

test('open windows are counted in the window items of a memory store, not in partition-level or keyed items; other stores are unknown', async () => {
  const store = new MemoryStore();
  const scope = { functionName: 'sensor-sums', topic: 'readings', partition: 0 };
  assert.equal(countOpenWindows(store), 0);
  await store.write(
    scope,
    [
      {
        namespace: 'window:sum:tumbling(10000)',
        key: 's1',
        value: {
          c: 0,
          w: [
            [0, 10_000, {}],
            [10_000, 20_000, {}],
          ],
        },
        offset: 1,
      },
      { namespace: 'window:sum:tumbling(10000)', key: 's2', value: { c: 0, w: [[0, 10_000, {}]] }, offset: 2 },
      { namespace: 'window:sum:tumbling(10000)#partition', key: 'index', value: { w: [1, 2, 3, 4] }, offset: 2 },
      { namespace: 'keyed:seen', key: 's1', value: { w: [1] }, offset: 2 },
    ],
    { firstOffset: 1, lastOffset: 2 },
  );
  assert.equal(countOpenWindows(store), 3);
  assert.equal(
    countOpenWindows({ kind: 'other', durable: true, read: async () => new Map(), write: async () => ({ writeRequests: 0 }) }),
    undefined,
  );
});

test('a function that runs idle ticks shows how many, the windows they closed and when the last started; skipped and failed once there are any', () => {
  const s = stats();
  assert.doesNotMatch(statusLine(s, 0, 0), /ticks/, 'no ticks, no tick field');
  Object.assign(s.ticks, { periodMs: 1_000, runs: 45, windowsClosed: 2, lastAt: Date.parse('2026-01-01T10:00:45.500Z') });
  assert.match(statusLine(s, 0, 0), / {2}dlq 2 {2}ticks 45 closed 2 last 10:00:45$/);
  Object.assign(s.ticks, { skipped: 3, failed: 1 });
  assert.match(statusLine(s, 0, 0), / {2}ticks 45 closed 2 last 10:00:45 skipped 3 failed 1$/);
  s.ticks.lastAt = undefined;
  assert.match(statusLine(s, 0, 0), /ticks 45 closed 2 last -/);
});

test('an exactly-once function shows its transactions committed and aborted; the start-up line and summary name the guarantee', () => {
  const s = stats();
  assert.doesNotMatch(statusLine(s, 0, 0), /exactly-once|txns/, 'at-least-once, the default, goes unsaid in the live line');
  assert.equal(transactionsText(s), '');
  assert.equal(guaranteeText(s.guarantee), 'at-least-once');
  s.guarantee = 'exactly-once';
  Object.assign(s.transactions, { committed: 1_204, aborted: 1 });
  assert.match(statusLine(s, 0, 0), / {2}dlq 2 {2}exactly-once txns 1,204 aborted 1$/);
  assert.equal(guaranteeText(s.guarantee), 'exactly-once (Kafka transactions)');
  assert.equal(transactionsText(s), ': 1,204 transactions committed, 1 aborted');
});
