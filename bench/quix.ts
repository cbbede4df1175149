/**
 * `npm run bench:quix -- --json`: the published benchmark against Quix Streams (docs/benchmarks.md).
 *
 * One broker on loopback, the same seeded stream for both sides (bench/data.ts: 1,000,000 records,
 * 1,000 keys, 4 partitions, timestamps a little out of order), the same function: per key, 10 s
 * tumbling windows summing `value`, 2 s grace, every final result to an output topic.
 *
 * - Quix Streams 3.28.1 (bench/quix/sensor_sums.py) runs in its own virtualenv under the cache,
 *   once per processing guarantee; it times itself from its first record to its last and reads its
 *   own CPU time and peak RSS (getrusage).
 * - Sluice runs through `bench:kafka` (the event source mapping emulator, the same handler as
 *   deployed) at each batch size of `--sluice` (default 100,1000,10000), which reports the same
 *   figures for its consuming phase.
 * - Every window result of the Quix run is compared with the reference (bench/data.ts), one by
 *   one: key, start, end and sum. bench:kafka checks Sluice's against the same reference.
 *
 * One JSON line per run, then a summary line. Runs one after another: this machine has 2 cores.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { sensorStream } from './data.js';
import { freshTopics, produceSensorStream } from './kafka-data.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    guarantee: { type: 'string', default: 'both' },
    sluice: { type: 'string', default: '100,1000,10000' },
    brokers: { type: 'string', default: `127.0.0.1:${process.env.SLUICE_KAFKA_PORT ?? 9092}` },
  },
});
const N = Number(values.records);
const KEYS = Number(values.keys);
const root = path.resolve(import.meta.dirname, '..');
const log = (m: string) => process.stderr.write(`bench:quix: ${m}\n`);
const guarantees = values.guarantee === 'both' ? ['at-least-once', 'exactly-once'] : [values.guarantee];
const batchSizes = values.sluice === 'none' ? [] : values.sluice.split(',').map(Number);

const limitMs = Number(process.env.SLUICE_BENCH_TIMEOUT_MS ?? 60 * 60_000);
setTimeout(() => {
  console.error(`bench:quix: gave up after ${limitMs / 1000} s (SLUICE_BENCH_TIMEOUT_MS)`);
  process.exit(3);
}, limitMs).unref();

/** The Quix Streams virtualenv, created once per requirements file. */
function quixPython(): string {
  const cache = process.env.SLUICE_CACHE ?? path.join(os.homedir(), '.cache', 'sluice');
  const venv = path.join(cache, 'venv-quix');
  const requirements = path.join(root, 'bench/quix/requirements.txt');
  const stamp = path.join(venv, `.requirements-${createHash('sha256').update(readFileSync(requirements)).digest('hex').slice(0, 16)}`);
  if (!existsSync(stamp)) {
    log(`creating ${venv} (Quix Streams from PyPI)…`);
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(path.join(venv, 'bin/pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', requirements], {
      stdio: 'inherit',
    });
    writeFileSync(stamp, '');
  }
  return path.join(venv, 'bin/python');
}

/** Every closed window of the stream, as `key start end` → sum (the per-key clock of Quix Streams). */
function referenceWindows(): Map<string, number> {
  const SIZE = 10_000;
  const GRACE = 2_000;
  const perKey = new Map<string, { latest: number; open: Map<number, number> }>();
  const closed = new Map<string, number>();
  for (const r of sensorStream(N, KEYS, 4)) {
    const v = (r.value as { value: number }).value;
    let st = perKey.get(r.key!);
    if (!st) perKey.set(r.key!, (st = { latest: -1, open: new Map() }));
    if (r.timestamp > st.latest) st.latest = r.timestamp;
    const threshold = st.latest - GRACE;
    const start = r.timestamp - (r.timestamp % SIZE);
    if (start + SIZE <= threshold) continue;
    st.open.set(start, (st.open.get(start) ?? 0) + v);
    for (const [s, sum] of st.open) {
      if (s + SIZE <= threshold) {
        closed.set(`${r.key} ${s} ${s + SIZE}`, sum);
        st.open.delete(s);
      }
    }
  }
  return closed;
}

const kafka = new Kafka({ clientId: 'sluice-bench-quix', brokers: values.brokers.split(','), logLevel: logLevel.NOTHING });
const admin = kafka.admin();
try {
  await admin.connect();
} catch (e) {
  console.error(`bench:quix needs a Kafka broker at ${values.brokers} (npm run infra:up): ${(e as Error).message}`);
  process.exit(2);
}
const python = quixPython();
const expected = referenceWindows();
const lines: Record<string, unknown>[] = [];
const emit = (line: Record<string, unknown>) => {
  lines.push(line);
  if (values.json) console.log(JSON.stringify(line));
  else console.log(line);
};

for (const guarantee of guarantees) {
  const run = `${Date.now()}`;
  const [input, output] = [`bench-quix-in-${run}`, `bench-quix-out-${run}`];
  await freshTopics(admin, [], [input, output]);
  log(`producing ${N.toLocaleString()} records to ${input}…`);
  await produceSensorStream(kafka, input, N, KEYS);
  log(`Quix Streams (${guarantee}) consuming…`);
  const measured = await runQuix(python, [
    '--brokers',
    values.brokers,
    '--input',
    input,
    '--output',
    output,
    '--records',
    String(N),
    '--guarantee',
    guarantee,
  ]);
  const results = await readResults(output, expected.size);
  let wrong = 0;
  for (const [id, sum] of expected) if (results.get(id) !== sum) wrong++;
  emit({
    engine: 'quix-streams 3.28.1',
    guarantee,
    records: measured.records,
    recordsPerSec: Math.round(measured.records / measured.seconds),
    cpuUsPerRecord: Math.round((measured.cpuSeconds / measured.records) * 1e7) / 10,
    peakRssMB: measured.peakRssMB,
    windowResults: results.size,
    expectedWindowResults: expected.size,
    wrongOrMissing: wrong,
  });
}
await admin.disconnect();

for (const batchSize of batchSizes) {
  log(`Sluice (bench:kafka, batch size ${batchSize})…`);
  const out = execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(root, 'bench/kafka.ts'),
      '--json',
      '--records',
      String(N),
      '--keys',
      String(KEYS),
      '--batch-size',
      String(batchSize),
      '--brokers',
      values.brokers,
    ],
    { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 },
  );
  const parsed = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const merged = Object.assign({}, ...parsed) as Record<string, unknown>;
  emit({ engine: 'sluice emulator', guarantee: 'at-least-once outputs, exactly-once state', batchSize, ...merged });
}
emit({
  summary: 'bench:quix',
  records: N,
  keys: KEYS,
  partitions: 4,
  machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.cpus()[0]?.model ?? 'unknown CPU'}`,
  node: process.version,
});

/** Runs the Quix app to the end of the input and returns the JSON line it prints. */
function runQuix(python: string, args: string[]): Promise<{ records: number; seconds: number; cpuSeconds: number; peakRssMB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, [path.join(root, 'bench/quix/sensor_sums.py'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop();
      if (code !== 0 || !line) reject(new Error(`the Quix Streams app exited with ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(line));
    });
  });
}

/** Reads the output topic until `count` results arrived (or 30 s pass without one). */
async function readResults(topic: string, count: number): Promise<Map<string, number>> {
  const results = new Map<string, number>();
  const reader = kafka.consumer({ groupId: `bench-quix-reader-${Date.now()}` });
  await reader.connect();
  await reader.subscribe({ topic, fromBeginning: true });
  let last = Date.now();
  await reader.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const v = JSON.parse(m.value!.toString()) as { start: number; end: number; value: number };
        results.set(`${m.key?.toString()} ${v.start} ${v.end}`, v.value);
      }
      last = Date.now();
    },
  });
  while (results.size < count && Date.now() - last < 30_000) await new Promise((r) => setTimeout(r, 200));
  await reader.disconnect();
  return results;
}
