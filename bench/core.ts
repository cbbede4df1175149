/**
 * bench:core — Sluice's sensor-sums handler vs a hand-written loop on the same MSK events.
 *
 * A seeded stream (1,000,000 records, 1,000 sensor keys, roughly in-order timestamps, one count
 * per sensor per second) is encoded as real MSK events up front (not timed). Both contenders then
 * decode base64 + JSON per record and sum `value` per sensor over 10 s tumbling windows with 2 s
 * grace, emitting each window once when it closes. Sluice runs the real Lambda handler (middy,
 * partial batch response) with in-memory state; outputs go to a sink that only counts them.
 *
 * Usage: npm run bench:core -- [--json] [--records N] [--keys K] [--batch-size B]
 * Last line (with --json): {"recordsPerSec": …, "baselineRecordsPerSec": …, "ratio": …}
 */
import { parseArgs } from 'node:util';
import { handler } from '../functions/sensor-sums/handler.js';
import { MemoryStore } from '../framework/src/state/memory-store.js';
import { lambdaContext } from '../framework/src/runtime/lambda-context.js';
import { toKafkaEvents } from '../framework/src/runtime/msk-event.js';
import { sensorStream } from './data.js';
import type { KafkaEvent } from '../framework/src/runtime/msk-event.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    'batch-size': { type: 'string', default: '1000' },
    runs: { type: 'string', default: '3' },
  },
});
const N = Number(values.records);
const KEYS = Number(values.keys);
const BATCH = Number(values['batch-size']);
const RUNS = Number(values.runs);

const events: KafkaEvent[] = [...toKafkaEvents(sensorStream(N, KEYS), { topic: 'sensor-counts', batchSize: BATCH })];

/** The hand-written baseline: what one would write in a Lambda without a framework. */
function baseline(evts: KafkaEvent[]): { windows: number; total: number } {
  const SIZE = 10_000;
  const GRACE = 2_000;
  const perKey = new Map<string, { latest: number; windows: Map<number, number> }>();
  let windows = 0;
  let total = 0;
  for (const e of evts) {
    for (const group in e.records) {
      for (const r of e.records[group]) {
        const key = Buffer.from(r.key!, 'base64').toString('utf8');
        const value = JSON.parse(Buffer.from(r.value!, 'base64').toString('utf8')) as { value: number };
        let st = perKey.get(key);
        if (!st) perKey.set(key, (st = { latest: -1, windows: new Map() }));
        if (r.timestamp > st.latest) st.latest = r.timestamp;
        const threshold = st.latest - GRACE;
        const start = r.timestamp - (r.timestamp % SIZE);
        if (start + SIZE <= threshold) continue; // late
        st.windows.set(start, (st.windows.get(start) ?? 0) + value.value);
        for (const [s, sum] of st.windows) {
          if (s + SIZE <= threshold) {
            windows++;
            total += sum;
            st.windows.delete(s);
          }
        }
      }
    }
  }
  return { windows, total };
}

async function sluiceRun(evts: KafkaEvent[]): Promise<{ windows: number; total: number }> {
  let windows = 0;
  let total = 0;
  handler.sluice.configure({
    store: new MemoryStore(),
    sink: {
      async send(messages) {
        for (const m of messages) {
          windows++;
          total += (m.value as { value: number }).value;
        }
      },
    },
  });
  const ctx = lambdaContext('sensor-sums') as never;
  for (const e of evts) {
    const res = await handler(e, ctx);
    if (res.batchItemFailures.length > 0) throw new Error(`unexpected failure: ${JSON.stringify(res)}`);
  }
  return { windows, total };
}

function best<T>(runs: { ms: number; result: T }[]) {
  return runs.reduce((a, b) => (b.ms < a.ms ? b : a));
}

const sluiceRuns: { ms: number; result: { windows: number; total: number } }[] = [];
const baseRuns: { ms: number; result: { windows: number; total: number } }[] = [];
for (let i = 0; i < RUNS; i++) {
  // Alternate so neither side always runs on a warmer or cooler machine.
  let t = performance.now();
  const b = baseline(events);
  baseRuns.push({ ms: performance.now() - t, result: b });
  t = performance.now();
  const s = await sluiceRun(events);
  sluiceRuns.push({ ms: performance.now() - t, result: s });
}
const s = best(sluiceRuns);
const b = best(baseRuns);
if (s.result.windows !== b.result.windows || s.result.total !== b.result.total) {
  throw new Error(`Sluice and the baseline disagree: sluice ${JSON.stringify(s.result)} vs baseline ${JSON.stringify(b.result)}`);
}
const recordsPerSec = Math.round(N / (s.ms / 1000));
const baselineRecordsPerSec = Math.round(N / (b.ms / 1000));
const summary = {
  records: N,
  keys: KEYS,
  batchSize: BATCH,
  events: events.length,
  runs: RUNS,
  windowsEmitted: s.result.windows,
  sluiceMs: Math.round(s.ms),
  baselineMs: Math.round(b.ms),
};
const result = { recordsPerSec, baselineRecordsPerSec, ratio: Math.round((recordsPerSec / baselineRecordsPerSec) * 1000) / 1000 };
if (values.json) {
  console.log(JSON.stringify(summary));
  console.log(JSON.stringify(result));
} else {
  console.log(summary);
  console.log(
    `Sluice ${recordsPerSec.toLocaleString()} records/s, baseline ${baselineRecordsPerSec.toLocaleString()} records/s, ratio ${result.ratio}`,
  );
}
