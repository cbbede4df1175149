/**
 * bench:state — the sensor-sums handler with DynamoDB state against DynamoDB Local: MSK events of
 * 10,000 records over 1,000 distinct keys (one partition), state read and written once per batch.
 * Reports requests per batch from the store's own counters, the read and write units DynamoDB
 * Local reports as consumed (per batch and per record), and the time per batch.
 *
 * Usage: npm run bench:state -- [--json] [--batches N] [--batch-size B] [--keys K] [--touched T] [--layout pages|items]
 * `--touched T`: the sparse case: every key gets state first (not measured), then each batch's
 * records fall on T keys picked at random among the K. `--layout items`: one item per key (before pages).
 * Last line (with --json): {"batches": …, "writeRequestsPerBatch": …, "readRequestsPerBatch": …, "msPerBatch": …,
 *   "writeUnitsPerRecord": …, "readUnitsPerRecord": …}
 */
import { parseArgs } from 'node:util';
import { handler } from '../functions/sensor-sums/handler.js';
import { lambdaContext } from '../framework/src/runtime/lambda-context.js';
import { toKafkaEvents } from '../framework/src/runtime/msk-event.js';
import { DynamoDBStore } from '../framework/src/state/dynamodb-store.js';
import { rng, sensorStream, T0 } from './data.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    batches: { type: 'string', default: '20' },
    'batch-size': { type: 'string', default: '10000' },
    keys: { type: 'string', default: '1000' },
    touched: { type: 'string' },
    layout: { type: 'string', default: 'pages' },
    endpoint: {
      type: 'string',
      default: process.env.SLUICE_DYNAMODB_ENDPOINT ?? `http://127.0.0.1:${process.env.SLUICE_DYNAMODB_PORT ?? 8000}`,
    },
  },
});
const BATCHES = Number(values.batches);
const SIZE = Number(values['batch-size']);
const KEYS = Number(values.keys);
const TOUCHED = values.touched === undefined ? undefined : Number(values.touched);
const LAYOUT = values.layout === 'items' ? 'items' : 'pages';

setTimeout(() => {
  console.error('bench:state: gave up after 10 minutes');
  process.exit(3);
}, 10 * 60_000).unref();

const store = new DynamoDBStore({ table: `sluice-bench-state-${Date.now()}`, endpoint: values.endpoint, layout: LAYOUT });
try {
  await store.ensureTable();
} catch (e) {
  console.error(`bench:state needs DynamoDB Local at ${values.endpoint} (npm run infra:up): ${(e as Error).message}`);
  process.exit(2);
}

const perBatch: { ms: number; reads: number; writes: number; keys: number; conflicts: number; wcu: number; rcu: number }[] = [];
let last: { reads: number; writes: number; conflicts: number; wcu: number; rcu: number } | undefined;
handler.sluice.configure({
  store,
  sink: { async send() {} },
  onBatch: (r) => {
    last = {
      reads: r.state?.readRequests ?? 0,
      writes: r.state?.writeRequests ?? 0,
      conflicts: r.state?.conditionalCheckFailures ?? 0,
      wcu: r.state?.consumedWriteUnits ?? 0,
      rcu: r.state?.consumedReadUnits ?? 0,
    };
  },
});
const ctx = lambdaContext('sensor-sums', 900_000) as never;
// All records on one partition, so each event is one partition batch of SIZE records.
const stream = (function* () {
  if (TOUCHED === undefined) {
    for (const r of sensorStream(BATCHES * SIZE, KEYS, 1)) yield { ...r, partition: 0 };
    return;
  }
  // Sparse: one record per key first (the warm-up, not measured), then batches over TOUCHED random keys each.
  const rand = rng(7);
  for (let i = 0; i < KEYS; i++) yield { key: `sensor-${i}`, value: { value: 1 }, timestamp: T0, partition: 0 };
  for (let b = 0; b < BATCHES; b++) {
    const picked = Array.from({ length: TOUCHED }, () => `sensor-${Math.floor(rand() * KEYS)}`);
    for (let i = 0; i < SIZE; i++) yield { key: picked[i % TOUCHED], value: { value: 1 }, timestamp: T0 + (b + 1) * 1_000, partition: 0 };
  }
})();
const warmup = TOUCHED === undefined ? 0 : KEYS;
let seen = 0;
const events = (function* () {
  const list = [...stream];
  // The warm-up in events of at most 10,000 records (Lambda's largest batch), then the measured ones.
  if (warmup > 0) yield* toKafkaEvents(list.slice(0, warmup), { topic: 'sensor-counts', batchSize: Math.min(warmup, 10_000) });
  yield* toKafkaEvents(list.slice(warmup), { topic: 'sensor-counts', batchSize: SIZE, startOffset: warmup });
})();
for (const event of events) {
  const records = Object.values(event.records)[0];
  const keys = new Set(records.map((r) => r.key)).size;
  const t = performance.now();
  const res = await handler(event, ctx);
  const ms = performance.now() - t;
  if (res.batchItemFailures.length > 0) throw new Error(`batch failed: ${JSON.stringify(res)}`);
  seen += records.length;
  if (seen <= warmup) continue;
  perBatch.push({ ms, keys, ...last! });
  process.stderr.write(
    `batch ${perBatch.length}: ${records.length} records, ${keys} keys, ${last!.reads} reads (${last!.rcu} units), ${last!.writes} writes (${last!.wcu} units), ${ms.toFixed(0)} ms\n`,
  );
}

const avg = (f: (b: (typeof perBatch)[number]) => number) =>
  Math.round((perBatch.reduce((n, b) => n + f(b), 0) / perBatch.length) * 100) / 100;
const detail = {
  layout: LAYOUT,
  recordsPerBatch: SIZE,
  keys: KEYS,
  ...(TOUCHED === undefined ? {} : { touchedKeysPerBatch: TOUCHED }),
  distinctKeysPerBatch: avg((b) => b.keys),
  maxWritesOverKeys: Math.max(...perBatch.map((b) => b.writes - b.keys)),
  conditionalCheckFailures: perBatch.reduce((n, b) => n + b.conflicts, 0),
  consumedWriteUnitsPerBatch: avg((b) => b.wcu),
  consumedReadUnitsPerBatch: avg((b) => b.rcu),
};
const result = {
  batches: perBatch.length,
  writeRequestsPerBatch: avg((b) => b.writes),
  readRequestsPerBatch: avg((b) => b.reads),
  msPerBatch: avg((b) => b.ms),
  writeUnitsPerRecord: Math.round((avg((b) => b.wcu) / SIZE) * 10_000) / 10_000,
  readUnitsPerRecord: Math.round((avg((b) => b.rcu) / SIZE) * 10_000) / 10_000,
};
if (values.json) {
  console.log(JSON.stringify(detail));
  console.log(JSON.stringify(result));
} else {
  console.log(detail, result);
}
