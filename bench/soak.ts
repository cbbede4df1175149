/**
 * bench:soak — sensor-sums through the event source mapping emulator while a server dies.
 *
 * The bench:kafka run (the seeded dataset to a fresh topic, the emulator for `sensor-sums`), with
 * state in memory or in a fresh DynamoDB Local table (`--state dynamodb`), and with `--kill`, the
 * broker or DynamoDB Local SIGKILLed once a third of the records are in, then started again
 * (same command line, same data) after `--down` seconds. When every input record is committed,
 * the output topic is read whole and checked against the reference, window by window: each result
 * out, with the reference's value (a record applied twice, or lost, changes a sum). The output is
 * at-least-once, so a result sent again with the same id and value is a duplicate emit, not an
 * error.
 *
 * The servers are the ones `npm run infra:up` started from this checkout (pid files in
 * .cache/infra); `--kill dynamodb` needs DynamoDB Local to keep its tables in files
 * (SLUICE_DYNAMODB_PERSIST=1 npm run infra:up), since an in-memory one loses them when killed.
 *
 * Usage: npm run bench:soak -- [--json] [--records N] [--keys K] [--batch-size B]
 *          [--state memory|dynamodb] [--kill broker|dynamodb] [--down SECONDS]
 * Last line (with --json): {"records", "seconds", "windowResults", "missing", "wrongValues",
 * "duplicateEmits", "lost", …}; exit code 1 when a result is missing or wrong, or records were lost.
 */
import { spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { esmConfig } from '../framework/src/config/event-source-mapping.js';
import { readServerless } from '../framework/src/config/serverless-yml.js';
import { SLUICE_ENV } from '../framework/src/env.js';
import { emulateFunction } from '../framework/src/local/emulator/index.js';
import { loadHandler } from '../framework/src/local/functions.js';
import { devStateStore } from '../framework/src/local/state-option.js';
import { SLUICE_ID_HEADER } from '../framework/src/pipeline/messages.js';
import { portOpen } from '../scripts/infra/port.js';
import { referenceSums, sensorStream } from './data.js';
import { freshTopics, produceSensorStream } from './kafka-data.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    'batch-size': { type: 'string' },
    state: { type: 'string', default: 'memory' },
    kill: { type: 'string' },
    down: { type: 'string', default: '5' },
  },
});
const N = Number(values.records);
const KEYS = Number(values.keys);
const INPUT = 'bench-sensor-counts';
const root = path.resolve(import.meta.dirname, '..');
const infraDir = path.join(root, '.cache', 'infra');
const kafkaPort = Number(process.env.SLUICE_KAFKA_PORT ?? 9092);
const dynamodbPort = Number(process.env.SLUICE_DYNAMODB_PORT ?? 8000);
const brokers = `127.0.0.1:${kafkaPort}`;
const log = (m: string) => process.stderr.write(`bench:soak: ${new Date().toISOString().slice(11, 19)} ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fail = (m: string, code = 2): never => {
  console.error(`bench:soak: ${m}`);
  process.exit(code);
};
if (values.kill !== undefined && values.kill !== 'broker' && values.kill !== 'dynamodb')
  fail(`--kill must be broker or dynamodb; received ${JSON.stringify(values.kill)}.`);
if (values.kill === 'dynamodb' && values.state !== 'dynamodb') fail('--kill dynamodb needs --state dynamodb.');

// Bounded: whatever happens, the soak stops by itself.
const limitMs = Number(process.env.SLUICE_BENCH_TIMEOUT_MS ?? 30 * 60_000);
setTimeout(() => fail(`gave up after ${limitMs / 1000} s (SLUICE_BENCH_TIMEOUT_MS)`, 3), limitMs).unref();

/** A server `infra:up` started from this checkout: its pid, command line and folder, from /proc. */
function infraProcess(service: 'kafka' | 'dynamodb') {
  const pidFile = path.join(infraDir, `${service}.pid`);
  const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : Number.NaN;
  if (!existsSync(`/proc/${pid}/cmdline`))
    fail(`--kill needs ${service} started by npm run infra:up from this checkout (no live pid in ${pidFile}); Linux only (/proc).`);
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  return { pid, pidFile, argv, cwd: realpathSync(`/proc/${pid}/cwd`) };
}

/**
 * SIGKILLs `service`, waits `downMs`, and starts it again with the same command line and data (not
 * `infra:up`, which formats a fresh broker), writing the new pid where infra:down finds it.
 */
async function killAndRestart(service: 'kafka' | 'dynamodb', downMs: number): Promise<void> {
  const p = infraProcess(service);
  const port = service === 'kafka' ? kafkaPort : dynamodbPort;
  process.kill(p.pid, 'SIGKILL');
  for (let i = 0; i < 100 && (await portOpen('127.0.0.1', port, 200)); i++) await sleep(100);
  log(`${service} (pid ${p.pid}) killed; restarting it in ${downMs / 1000} s`);
  await sleep(downMs);
  const out = openSync(path.join(infraDir, `${service}.out`), 'a');
  const child = spawn(p.argv[0], p.argv.slice(1), { cwd: p.cwd, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  writeFileSync(p.pidFile, String(child.pid));
  const started = Date.now();
  while (!(await portOpen('127.0.0.1', port, 500))) {
    if (Date.now() - started > 120_000) fail(`${service} did not come back within 120 s; see ${infraDir}/${service}.out`);
    await sleep(250);
  }
  log(`${service} restarted (pid ${child.pid}), listening after ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

const kafka = new Kafka({ clientId: 'sluice-soak', brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 8 } });
const admin = kafka.admin();
await admin.connect().catch((e) => fail(`needs a Kafka broker at ${brokers} (npm run infra:up): ${(e as Error).message}`));
if (values.kill === 'dynamodb' && !infraProcess('dynamodb').argv.at(-1)!.includes(path.sep))
  fail(
    '--kill dynamodb needs DynamoDB Local to keep its tables in files: npm run infra:down dynamodb, then SLUICE_DYNAMODB_PERSIST=1 npm run infra:up.',
  );

const service = readServerless(path.join(root, 'serverless.yml'));
const entry = service.functions.find((f) => f.name === 'sensor-sums')!;
const handler = await loadHandler(entry);
const output = handler.sluice.manifest.steps.find((s) => s.kind === 'to')!.name;
const config = {
  ...esmConfig(entry, service.service, service),
  topic: INPUT,
  consumerGroupId: `sluice-soak-${Date.now()}`,
  ...(values['batch-size'] ? { batchSize: Number(values['batch-size']) } : {}),
};
process.env[SLUICE_ENV.stateTable] = `sluice-soak-${Date.now()}`;
const store = await devStateStore(
  values.state,
  values.state === 'dynamodb' ? `http://127.0.0.1:${dynamodbPort}` : undefined,
  service.service,
);

await freshTopics(admin, [INPUT, output, config.deadLetterTopic, config.onFailureTopic], [INPUT, output]);
log(`producing ${N.toLocaleString()} records (${KEYS} keys, 4 partitions) to ${INPUT}…`);
await produceSensorStream(kafka, INPUT, N, KEYS);
const ends = new Map((await admin.fetchTopicOffsets(INPUT)).map((o) => [o.partition, Number(o.high)]));

// The reference, window by window: `key|start` → sum (bench/data.ts's referenceSums, kept per window).
const expected = new Map<string, number>();
{
  const perKey = new Map<string, { latest: number; open: Map<number, number> }>();
  for (const r of sensorStream(N, KEYS, 4)) {
    let st = perKey.get(r.key!);
    if (!st) perKey.set(r.key!, (st = { latest: -1, open: new Map() }));
    st.latest = Math.max(st.latest, r.timestamp);
    const threshold = st.latest - 2_000;
    const start = r.timestamp - (r.timestamp % 10_000);
    if (start + 10_000 <= threshold) continue;
    st.open.set(start, (st.open.get(start) ?? 0) + (r.value as { value: number }).value);
    for (const [s, sum] of st.open) {
      if (s + 10_000 > threshold) continue;
      expected.set(`${r.key}|${s}`, sum);
      st.open.delete(s);
    }
  }
  const ref = referenceSums(sensorStream(N, KEYS, 4));
  const total = [...expected.values()].reduce((a, b) => a + b, 0);
  if (ref.windows !== expected.size || ref.total !== total) fail('the per-window reference disagrees with referenceSums', 1);
}
log(
  `expecting ${expected.size.toLocaleString()} window results; emulator: batch size ${config.batchSize}, ${values.state} state${values.kill ? `, ${values.kill} killed at ${Math.round(N / 3).toLocaleString()} records in` : ''}`,
);

const started = performance.now();
const fn = await emulateFunction({ kafka, brokers, handler, config, store, notice: (m) => log(m) });
let killed: Promise<void> | undefined;
let lastLog = 0;
for (;;) {
  const done = [...ends].every(([p, end]) => (fn.stats.committed.get(p) ?? 0) >= end);
  if (done) break;
  if (values.kill && !killed && fn.stats.records >= N / 3)
    killed = killAndRestart(values.kill === 'broker' ? 'kafka' : 'dynamodb', Number(values.down) * 1000);
  if (fn.stats.lost > 0) break;
  if (Date.now() - lastLog >= 10_000) {
    lastLog = Date.now();
    log(`${fn.stats.records.toLocaleString()} records in, ${fn.stats.windowsEmitted.toLocaleString()} window results emitted`);
  }
  await sleep(250);
}
const seconds = (performance.now() - started) / 1000;
await killed;
await fn.stop();
log(`every input record committed after ${seconds.toFixed(1)} s; reading ${output} whole…`);

// The output topic, whole: every result by its sluice-id.
const outEnds = new Map((await admin.fetchTopicOffsets(output)).map((o) => [o.partition, Number(o.high)]));
const byId = new Map<string, { window: string; value: number }>();
let messages = 0;
let duplicateEmits = 0;
let conflicting = 0;
const reader = kafka.consumer({ groupId: `sluice-soak-reader-${Date.now()}` });
await reader.connect();
await reader.subscribe({ topic: output, fromBeginning: true });
const position = new Map<number, number>();
const allRead = new Promise<void>((resolve) => {
  const check = () => [...outEnds].every(([p, end]) => (position.get(p) ?? 0) >= end) && resolve();
  check();
  reader.run({
    eachBatch: async ({ batch: b }) => {
      for (const m of b.messages) {
        messages++;
        const id = m.headers?.[SLUICE_ID_HEADER]?.toString() ?? `(no id) ${b.partition}@${m.offset}`;
        const v = JSON.parse(m.value!.toString()) as { start: number; value: number };
        const result = { window: `${m.key?.toString()}|${v.start}`, value: v.value };
        const prior = byId.get(id);
        if (prior === undefined) byId.set(id, result);
        else if (prior.value === result.value && prior.window === result.window) duplicateEmits++;
        else conflicting++;
        position.set(b.partition, Number(m.offset) + 1);
      }
      check();
    },
  });
});
await allRead;
await reader.disconnect();
await admin.disconnect();

const got = new Map<string, number>();
for (const r of byId.values()) got.set(r.window, r.value);
let missing = 0;
let wrongValues = conflicting;
for (const [w, v] of expected) {
  if (!got.has(w)) missing++;
  else if (got.get(w) !== v) wrongValues++;
}
const unexpected = [...got.keys()].filter((w) => !expected.has(w)).length;
const s = fn.stats;
const detail = {
  keys: KEYS,
  batchSize: config.batchSize,
  invocations: s.batches,
  retries: s.retries,
  consumerRestarts: s.consumerRestarts,
  late: s.late,
  poison: s.poison,
  deadLettered: s.failedToDeadLetter,
  recordsProcessed: s.records,
  outputMessages: messages,
  unexpected,
};
const result = {
  records: N,
  state: values.state,
  kill: values.kill ?? null,
  seconds: Math.round(seconds * 100) / 100,
  windowResults: byId.size,
  missing,
  wrongValues,
  duplicateEmits,
  lost: s.lost,
};
if (values.json) {
  console.log(JSON.stringify(detail));
  console.log(JSON.stringify(result));
} else console.log(detail, result);
process.exit(missing > 0 || wrongValues > 0 || unexpected > 0 || s.lost > 0 ? 1 : 0);
