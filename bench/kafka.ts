/**
 * bench:kafka — sensor-sums through the event source mapping emulator on the local Kafka broker.
 *
 * Produces the seeded dataset (1,000,000 records, 1,000 sensor keys, 4 partitions) to a fresh
 * topic, then starts the emulator for `sensor-sums` (its serverless.yml settings, or
 * --batch-size) and times it until every window result the reference computes is on a fresh
 * output topic, read with isolation level read_committed (kafkajs' default). Needs the broker:
 * npm run infra:up. Its topics are named for the run (`bench-sensor-counts-<run>`,
 * `bench-sensor-sums-<run>`, their dead-letter topic) and deleted at the end, so runs of several
 * people on one broker do not collide.
 *
 * Peak RSS is sampled every 50 ms while the emulator runs (`peakRssMb`), beside the heap, external
 * and array-buffer memory at that peak; producing the dataset happens before and is not counted.
 *
 * With --guarantee (at-least-once, exactly-once or both) it compares delivery guarantees: one
 * emulator run per guarantee and batch size (--batch-size takes a list; `both` defaults to
 * 100,1000), all on the same input in one process, the order of the guarantees alternating from
 * one batch size to the next. Each run has its own consumer group, output topic, function name
 * (so its own transactional ids and published group) and in-memory state, and is timed from its
 * first invocation to its last result (start-up and the group join, the same in both modes, are
 * left out), CPU over the same span. Its results must match the reference exactly: every window
 * once (no more, a second after the last), the same total. With `both`, one line per batch size
 * gives exactly-once's throughput as a share of at-least-once's.
 *
 * Usage: npm run bench:kafka -- [--json] [--records N] [--keys K] [--batch-size B[,B…]] [--guarantee at-least-once|exactly-once|both]
 * Last line (with --json): {"records": …, "seconds": …, "recordsPerSec": …, "peakRssMb": …, "cpuUsPerRecord": …}
 * With --guarantee, a line per run: {"guarantee": …, "batchSize": …, "recordsPerSec": …, "cpuUsPerRecord": …, …}
 * and with `both` then one per batch size: {"batchSize": 1000, "exactlyOnceRatio": 0.9, "cpuRatio": 1.2}
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { esmConfig } from '../framework/src/config/event-source-mapping.js';
import { readServerless } from '../framework/src/config/serverless-yml.js';
import { GUARANTEES, type Guarantee } from '../framework/src/define/guarantee.js';
import { emulateFunction } from '../framework/src/local/emulator/index.js';
import { loadHandler } from '../framework/src/local/functions.js';
import type { SluiceHandler } from '../framework/src/runtime/handler.js';
import { MemoryStore } from '../framework/src/state/memory-store.js';
import { referenceSums, sensorStream } from './data.js';
import { freshTopics } from './kafka-data.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    'batch-size': { type: 'string' },
    guarantee: { type: 'string' },
    brokers: { type: 'string', default: `127.0.0.1:${process.env.SLUICE_KAFKA_PORT ?? 9092}` },
  },
});
const N = Number(values.records);
const KEYS = Number(values.keys);
const RUN = `${Date.now().toString(36)}-${process.pid}`;
const INPUT = `bench-sensor-counts-${RUN}`;
const root = path.resolve(import.meta.dirname, '..');
const log = (m: string) => process.stderr.write(`bench:kafka: ${m}\n`);

if (values.guarantee !== undefined && values.guarantee !== 'both' && !(GUARANTEES as readonly string[]).includes(values.guarantee)) {
  console.error(`bench:kafka: --guarantee must be at-least-once, exactly-once or both; received ${values.guarantee}`);
  process.exit(2);
}
const compare = values.guarantee !== undefined;
const guarantees: Guarantee[] = values.guarantee === 'both' ? [...GUARANTEES] : compare ? [values.guarantee as Guarantee] : [];
const batchSizes = (values['batch-size'] ?? (values.guarantee === 'both' ? '100,1000' : '')).split(',').filter(Boolean).map(Number);
if (batchSizes.some((b) => !Number.isInteger(b) || b < 1 || b > 10_000) || (batchSizes.length > 1 && !compare)) {
  console.error(
    `bench:kafka: --batch-size must be whole numbers from 1 to 10000 (a list only with --guarantee); received ${values['batch-size']}`,
  );
  process.exit(2);
}

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
// The handler's output step is redirected to each run's own topic (the runner reads the step's
// topic when it emits), so runs never count each other's results.
const toStep = handler.sluice.manifest.steps.find((s) => s.kind === 'to') as { topic: string };
const base = esmConfig(entry, service.service, service);
const deadLetterTopic = `${INPUT}-dlq`;
const outputs: string[] = [];

await freshTopics(admin, [INPUT, deadLetterTopic], [INPUT]);
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

/** What one emulator run measured. */
interface Measured {
  readonly seconds: number;
  /** From the first invocation to the last result. */
  readonly steadySeconds: number;
  readonly cpuUs: number;
  readonly steadyCpuUs: number;
  readonly peak: NodeJS.MemoryUsage;
  readonly startRss: number;
  readonly windowResults: number;
  readonly invocations: number;
  readonly lost: number;
  readonly transactions: { committed: number; aborted: number };
  readonly batchSize: number;
  readonly maximumBatchingWindowMs: number;
}

/** One emulator run over the whole input: its own group, output topic, function name and state. */
async function measure(name: string, guarantee: Guarantee | undefined, batchSize: number | undefined): Promise<Measured> {
  const output = `bench-sensor-sums-${RUN}-${outputs.length}`;
  outputs.push(output);
  toStep.topic = output;
  await freshTopics(admin, [output], [output]);
  const config = {
    ...base,
    functionName: `${base.functionName}-${name}`,
    topic: INPUT,
    consumerGroupId: `sluice-bench-${RUN}-${name}`,
    deadLetterTopic,
    ...(base.onFailureTopic ? { onFailureTopic: deadLetterTopic } : {}),
    ...(batchSize ? { batchSize } : {}),
  };
  log(
    `${name}: expecting ${expected.windows.toLocaleString()} window results; starting the emulator (${guarantee ?? handler.sluice.guarantee}, batch size ${config.batchSize}, window ${config.maximumBatchingWindowMs} ms)…`,
  );

  // Count results on the output topic as they arrive, as a read_committed consumer sees them.
  const reader = kafka.consumer({ groupId: `sluice-bench-reader-${RUN}-${name}`, readUncommitted: false });
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

  let peak = process.memoryUsage();
  const startRss = peak.rss;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    if (m.rss > peak.rss) peak = m;
  }, 50);
  let first: { at: number; cpu: NodeJS.CpuUsage } | undefined;
  const timed = Object.assign(
    (event: never, context: never) => {
      first ??= { at: performance.now(), cpu: process.cpuUsage() };
      return handler(event, context);
    },
    { sluice: handler.sluice },
  ) as unknown as SluiceHandler;
  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const fn = await emulateFunction({
    kafka,
    handler: timed,
    config,
    store: new MemoryStore(),
    notice: (m) => log(m),
    ...(guarantee ? { guarantee } : {}),
  });
  const progress = setInterval(() => {
    log(`${name}: ${fn.stats.records.toLocaleString()} records in, ${seen.toLocaleString()} results out`);
    // Lost input can never give every result: stop at once, rather than wait for the time limit.
    if (fn.stats.lost > 0) {
      console.error(
        `bench:kafka: ${fn.stats.lost.toLocaleString()} input records were lost (see the notices above); the results cannot match`,
      );
      process.exit(1);
    }
  }, 5000);
  await finished;
  const ended = performance.now();
  const cpu = process.cpuUsage(cpuStart);
  clearInterval(progress);
  clearInterval(sampler);
  await fn.stop();
  // A result published twice would arrive after the last one expected: give it a second.
  await new Promise((r) => setTimeout(r, 1_000));
  await reader.disconnect();
  if (seen !== expected.windows || total !== expected.total) {
    console.error(
      `bench:kafka: ${name}: results differ from the reference: ${seen} results totalling ${total}, expected ${expected.windows} totalling ${expected.total}`,
    );
    process.exit(1);
  }
  const steadyCpu = first ? process.cpuUsage(first.cpu) : cpu;
  return {
    seconds: (ended - started) / 1000,
    steadySeconds: (ended - (first?.at ?? started)) / 1000,
    cpuUs: cpu.user + cpu.system,
    // Up to the last result (the second of waiting for duplicates is idle).
    steadyCpuUs: Math.min(steadyCpu.user + steadyCpu.system, cpu.user + cpu.system),
    peak,
    startRss,
    windowResults: seen,
    invocations: fn.stats.batches,
    lost: fn.stats.lost,
    transactions: { ...fn.stats.transactions },
    batchSize: config.batchSize,
    maximumBatchingWindowMs: config.maximumBatchingWindowMs,
  };
}

const mb = (n: number) => Math.round(n / 1048576);
const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits;
const lines: Record<string, unknown>[] = [];

if (!compare) {
  const m = await measure('run', undefined, batchSizes[0]);
  lines.push(
    {
      keys: KEYS,
      partitions: 4,
      batchSize: m.batchSize,
      maximumBatchingWindowMs: m.maximumBatchingWindowMs,
      invocations: m.invocations,
      windowResults: m.windowResults,
      lost: m.lost,
      startRssMb: mb(m.startRss),
      // Share of the run one core was busy (this process: the emulator, the handler, the result reader).
      cpuBusy: round(m.cpuUs / 1e6 / m.seconds, 2),
      atPeakMb: {
        heapUsed: mb(m.peak.heapUsed),
        heapTotal: mb(m.peak.heapTotal),
        external: mb(m.peak.external),
        arrayBuffers: mb(m.peak.arrayBuffers),
      },
    },
    {
      records: N,
      seconds: round(m.seconds, 2),
      recordsPerSec: Math.round(N / m.seconds),
      peakRssMb: mb(m.peak.rss),
      cpuUsPerRecord: round(m.cpuUs / N, 1),
    },
  );
} else {
  const sizes = batchSizes.length > 0 ? batchSizes : [base.batchSize];
  const runs: { guarantee: Guarantee; batchSize: number; recordsPerSec: number; cpuUsPerRecord: number }[] = [];
  for (const [i, batchSize] of sizes.entries()) {
    // Alternating which guarantee runs first: a later run profits from a warmer process.
    const order = i % 2 === 0 ? guarantees : [...guarantees].reverse();
    for (const guarantee of order) {
      const m = await measure(`${guarantee}-${batchSize}`, guarantee, batchSize);
      const run = {
        guarantee,
        batchSize,
        records: N,
        recordsPerSec: Math.round(N / m.steadySeconds),
        cpuUsPerRecord: round(m.steadyCpuUs / N, 1),
        seconds: round(m.steadySeconds, 2),
        startupSeconds: round(m.seconds - m.steadySeconds, 2),
        invocations: m.invocations,
        windowResults: m.windowResults,
        ...(guarantee === 'exactly-once' ? { transactions: m.transactions } : {}),
        peakRssMb: mb(m.peak.rss),
      };
      runs.push(run);
      lines.push(run);
      log(JSON.stringify(run));
    }
  }
  if (guarantees.length === 2) {
    for (const batchSize of sizes) {
      const [alo, eos] = GUARANTEES.map((g) => runs.find((r) => r.guarantee === g && r.batchSize === batchSize)!);
      lines.push({
        batchSize,
        exactlyOnceRatio: round(eos.recordsPerSec / alo.recordsPerSec, 2),
        cpuRatio: round(eos.cpuUsPerRecord / alo.cpuUsPerRecord, 2),
      });
    }
  }
}

await admin.deleteTopics({ topics: [INPUT, deadLetterTopic, ...outputs], timeout: 30_000 }).catch(() => undefined);
await admin.disconnect();
for (const l of lines) {
  if (values.json) console.log(JSON.stringify(l));
  else console.log(l);
}
