/**
 * bench:kafka — sensor-sums through the event source mapping emulator on the local Kafka broker.
 *
 * Produces the seeded dataset (1,000,000 records, 1,000 sensor keys, 4 partitions) to a fresh
 * topic, then starts the emulator for `sensor-sums` (its serverless.yml settings, or
 * --batch-size) and times it until every window result the reference computes is on a fresh
 * output topic. Needs the broker: npm run infra:up. Its topics are named for the run
 * (`bench-sensor-counts-<run>`, `bench-sensor-sums-<run>`, their dead-letter topic) and deleted at
 * the end, so runs of several people on one broker do not collide.
 *
 * Peak RSS is sampled every 50 ms while the emulator runs (`peakRssMb`), beside the heap, external
 * and array-buffer memory at that peak; producing the dataset happens before and is not counted.
 *
 * Usage: npm run bench:kafka -- [--json] [--records N] [--keys K] [--batch-size B]
 * Last line (with --json): {"records": …, "seconds": …, "recordsPerSec": …, "peakRssMb": …, "cpuUsPerRecord": …}
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { emulateFunction } from '../framework/src/local/emulator/index.js';
import { esmConfig } from '../framework/src/config/event-source-mapping.js';
import { readServerless } from '../framework/src/config/serverless-yml.js';
import { loadHandler } from '../framework/src/local/functions.js';
import { referenceSums, sensorStream } from './data.js';
import { freshTopics } from './kafka-data.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    'batch-size': { type: 'string' },
    brokers: { type: 'string', default: `127.0.0.1:${process.env.SLUICE_KAFKA_PORT ?? 9092}` },
  },
});
const N = Number(values.records);
const KEYS = Number(values.keys);
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const INPUT = `bench-sensor-counts-${RUN}`;
const root = path.resolve(import.meta.dirname, '..');
const log = (m: string) => process.stderr.write(`bench:kafka: ${m}\n`);

// Bounded: whatever happens, the bench stops by itself.
const limitMs = Number(process.env.SLUICE_BENCH_TIMEOUT_MS ?? 15 * 60_000);
setTimeout(() => {
  console.error(`bench:kafka: gave up after ${limitMs / 1000} s (SLUICE_BENCH_TIMEOUT_MS)`);
  process.exit(3);
}, limitMs).unref();

const kafka = new Kafka({
  clientId: 'sluice-bench',
  brokers: values.brokers.split(','),
  logLevel: logLevel.NOTHING,
  retry: { retries: 5 },
});
const admin = kafka.admin();
try {
  await admin.connect();
} catch (e) {
  console.error(`bench:kafka needs a Kafka broker at ${values.brokers} (npm run infra:up): ${(e as Error).message}`);
  process.exit(2);
}

const service = readServerless(path.join(root, 'serverless.yml'));
const entry = service.functions.find((f) => f.name === 'sensor-sums')!;
const handler = await loadHandler(entry);
// The handler's output step is redirected to this run's own topic (the runner reads the step's
// topic when it emits), so concurrent runs never count each other's results.
const toStep = handler.sluice.manifest.steps.find((s) => s.kind === 'to') as { topic: string };
const output = `bench-sensor-sums-${RUN}`;
toStep.topic = output;
const base = esmConfig(entry, service.service, service);
const config = {
  ...base,
  topic: INPUT,
  consumerGroupId: `sluice-bench-${RUN}`,
  deadLetterTopic: `${INPUT}-dlq`,
  ...(base.onFailureTopic ? { onFailureTopic: `${INPUT}-dlq` } : {}),
  ...(values['batch-size'] ? { batchSize: Number(values['batch-size']) } : {}),
};

await freshTopics(admin, [INPUT, output, config.deadLetterTopic], [INPUT, output]);
log(`producing ${N.toLocaleString()} records (${KEYS} keys, 4 partitions) to ${INPUT}…`);
// In a child process: what producing allocates would otherwise stay in this one's RSS.
await promisify(execFile)(process.execPath, [
  '--import',
  'tsx',
  path.join(root, 'bench/kafka-data.ts'),
  values.brokers,
  INPUT,
  String(N),
  String(KEYS),
]);
log('produced');
const expected = referenceSums(sensorStream(N, KEYS, 4));
log(
  `expecting ${expected.windows.toLocaleString()} window results; starting the emulator (batch size ${config.batchSize}, window ${config.maximumBatchingWindowMs} ms)…`,
);

// Count results on the output topic as they arrive.
const reader = kafka.consumer({ groupId: `sluice-bench-reader-${Date.now()}` });
await reader.connect();
await reader.subscribe({ topic: output, fromBeginning: true });
let seen = 0;
let total = 0;
let finish!: () => void;
const finished = new Promise<void>((r) => (finish = r));
await reader.run({
  eachBatch: async ({ batch: b }) => {
    for (const m of b.messages) {
      seen++;
      total += JSON.parse(m.value!.toString()).value;
    }
    if (seen >= expected.windows) finish();
  },
});

const mb = (n: number) => Math.round(n / 1048576);
let peak = process.memoryUsage();
const startRss = peak.rss;
const sampler = setInterval(() => {
  const m = process.memoryUsage();
  if (m.rss > peak.rss) peak = m;
}, 50);
const started = performance.now();
const cpuStart = process.cpuUsage();
const fn = await emulateFunction({ kafka, handler, config, notice: (m) => log(m) });
const progress = setInterval(() => {
  log(`${fn.stats.records.toLocaleString()} records in, ${seen.toLocaleString()} results out`);
  // Lost input can never give every result: stop at once, rather than wait for the time limit.
  if (fn.stats.lost > 0) {
    console.error(
      `bench:kafka: ${fn.stats.lost.toLocaleString()} input records were lost (see the notices above); the results cannot match`,
    );
    process.exit(1);
  }
}, 5000);
await finished;
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpuStart);
clearInterval(progress);
clearInterval(sampler);
await fn.stop();
await reader.disconnect();
await admin.deleteTopics({ topics: [INPUT, output, config.deadLetterTopic], timeout: 30_000 }).catch(() => undefined);
await admin.disconnect();

if (seen !== expected.windows || total !== expected.total) {
  console.error(
    `results differ from the reference: ${seen} results totalling ${total}, expected ${expected.windows} totalling ${expected.total}`,
  );
  process.exit(1);
}
const result = {
  records: N,
  seconds: Math.round(seconds * 100) / 100,
  recordsPerSec: Math.round(N / seconds),
  peakRssMb: mb(peak.rss),
  cpuUsPerRecord: Math.round(((cpu.user + cpu.system) / N) * 10) / 10,
};
const detail = {
  keys: KEYS,
  partitions: 4,
  batchSize: config.batchSize,
  maximumBatchingWindowMs: config.maximumBatchingWindowMs,
  invocations: fn.stats.batches,
  windowResults: seen,
  lost: fn.stats.lost,
  startRssMb: mb(startRss),
  // Share of the run one core was busy (this process: the emulator, the handler, the result reader).
  cpuBusy: Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100,
  atPeakMb: {
    heapUsed: mb(peak.heapUsed),
    heapTotal: mb(peak.heapTotal),
    external: mb(peak.external),
    arrayBuffers: mb(peak.arrayBuffers),
  },
};
if (values.json) {
  console.log(JSON.stringify(detail));
  console.log(JSON.stringify(result));
} else {
  console.log(detail, result);
}
