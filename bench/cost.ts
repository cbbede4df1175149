/**
 * `npm run bench:cost -- --json`: what a million records cost deployed, per example function and
 * batch size. Each function is packaged with `sls package` (the plugin's esbuild bundle, as the
 * packaging tests build it), unzipped into an empty folder and run under the Lambda Runtime
 * Interface Emulator (scripts/rie: the official one when it can be had, else the stand-in, said in
 * every line), with its template's environment, its configured memory (or --memory) and state in a
 * fresh DynamoDB Local table per run. It is fed MSK events of `--batch-sizes` records of its topic
 * (bench/cost-workloads.ts: --records records over --keys keys, one partition), one invocation at a
 * time, as Lambda feeds one partition.
 *
 * Measured per invocation, from the function's own output: handler wall and CPU time, memory (the
 * bootstrap's `rie-metrics` line), DynamoDB requests and consumed capacity as DynamoDB Local reports
 * it (the runtime's `state-metrics` line), outputs (logged rather than produced: SLUICE_OUTPUTS=log;
 * bytes = key + JSON value + the sluice-id header, what the Kafka record would carry). Dollars come
 * from bench/prices.json (--prices), with a Quix Streams container beside them (the assumption is in
 * that file). One JSON line per function and batch size, then a summary line; `--write-docs`
 * replaces the generated table in docs/benchmarks.md.
 *
 * Usage: npm run bench:cost -- [--json] [--records 100000] [--keys 1000] [--batch-sizes 100,1000,10000]
 *          [--functions sensor-sums,…] [--memory MB] [--prices bench/prices.json] [--write-docs]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DeleteTableCommand, DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { unzipTo } from '../framework/src/build/zip.js';
import { toKafkaEvents } from '../framework/src/runtime/msk-event.js';
import { DynamoDBStore } from '../framework/src/state/dynamodb-store.js';
import { type RieHandle, selectRie, startRie } from '../scripts/rie/rie.js';
import { WORKLOADS } from './cost-workloads.js';
import { type CostRow, docsTable, type Prices, priced, readPrices } from './cost-report.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    records: { type: 'string', default: '100000' },
    keys: { type: 'string', default: '1000' },
    'batch-sizes': { type: 'string', default: '100,1000,10000' },
    functions: { type: 'string', default: Object.keys(WORKLOADS).join(',') },
    memory: { type: 'string' },
    prices: { type: 'string', default: path.join(import.meta.dirname, 'prices.json') },
    'write-docs': { type: 'boolean', default: false },
    endpoint: {
      type: 'string',
      default: process.env.SLUICE_DYNAMODB_ENDPOINT ?? `http://127.0.0.1:${process.env.SLUICE_DYNAMODB_PORT ?? 8000}`,
    },
  },
});
const RECORDS = Number(values.records);
const KEYS = Number(values.keys);
const BATCH_SIZES = values['batch-sizes'].split(',').map(Number);
const FUNCTIONS = values.functions.split(',');
for (const f of FUNCTIONS)
  if (!WORKLOADS[f]) throw new Error(`--functions: no workload for "${f}"; known: ${Object.keys(WORKLOADS).join(', ')}`);
const prices: Prices = readPrices(values.prices);
const root = path.resolve(import.meta.dirname, '..');
const say = (m: string) => (values.json ? process.stderr.write(`${m}\n`) : console.log(m));

// ---- package, as the packaging tests do ------------------------------------------------------
const slsEnv: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SDK_LOAD_CONFIG']) delete slsEnv[k];
say('bench:cost: sls package …');
const pkg = spawnSync(process.execPath, [path.join(root, 'node_modules/serverless/bin/serverless.js'), 'package'], {
  cwd: root,
  env: slsEnv,
  encoding: 'utf8',
});
if (pkg.status !== 0) throw new Error(`sls package failed:\n${pkg.stdout}\n${pkg.stderr}`);
type Resource = { Type: string; Properties: Record<string, any> };
const resources: Record<string, Resource> = JSON.parse(
  readFileSync(path.join(root, '.serverless/cloudformation-template-update-stack.json'), 'utf8'),
).Resources;
function deployed(fn: string): { memoryMb: number; env: Record<string, unknown> } {
  const found = Object.values(resources).find(
    (r) => r.Type === 'AWS::Lambda::Function' && r.Properties.Handler === `functions/${fn}/handler.handler`,
  );
  if (!found) throw new Error(`the packaged template has no function with handler functions/${fn}/handler.handler`);
  return { memoryMb: found.Properties.MemorySize ?? 1024, env: found.Properties.Environment?.Variables ?? {} };
}

const emulator = await selectRie();
say(`bench:cost: ${emulator.note}`);
const dynamo = new DynamoDBClient({
  endpoint: values.endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
});

// ---- one function at one batch size ----------------------------------------------------------
interface Tally {
  invocations: number;
  handlerMs: number[];
  cpuMs: number;
  billedMs: number;
  peakRss: number;
  lastRss: number;
  peakHeapUsed: number;
  outputs: number;
  outputBytes: number;
  deadLetters: number;
  state: {
    lines: number;
    readRequests: number;
    writeRequests: number;
    consumedReadUnits: number;
    consumedWriteUnits: number;
    retries: number;
    conflicts: number;
  };
}

/** Reads the lines appended to `file` since the last call. */
function lineReader(file: string): () => string[] {
  let offset = 0;
  let pending = '';
  const buf = Buffer.alloc(1 << 20);
  return () => {
    const fd = openSync(file, 'r');
    try {
      for (let n = readSync(fd, buf, 0, buf.length, offset); n > 0; n = readSync(fd, buf, 0, buf.length, offset)) {
        offset += n;
        pending += buf.toString('utf8', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    return lines;
  };
}

function tally(): { t: Tally; onLine: (line: string) => void } {
  const t: Tally = {
    invocations: 0,
    handlerMs: [],
    cpuMs: 0,
    billedMs: 0,
    peakRss: 0,
    lastRss: 0,
    peakHeapUsed: 0,
    outputs: 0,
    outputBytes: 0,
    deadLetters: 0,
    state: { lines: 0, readRequests: 0, writeRequests: 0, consumedReadUnits: 0, consumedWriteUnits: 0, retries: 0, conflicts: 0 },
  };
  const line = (l: string) => {
    if (l.startsWith('{"sluice":"output"')) {
      const o = JSON.parse(l) as { key: string | null; value: unknown; id: string };
      t.outputs++;
      t.outputBytes +=
        Buffer.byteLength(o.key ?? '') + Buffer.byteLength(JSON.stringify(o.value)) + 'sluice-id'.length + Buffer.byteLength(o.id);
    } else if (l.startsWith('{"sluice":"rie-metrics"')) {
      const m = JSON.parse(l) as {
        handlerMs: number;
        cpuUserMs: number;
        cpuSystemMs: number;
        rss: number;
        maxRss: number;
        heapUsed: number;
      };
      t.handlerMs.push(m.handlerMs);
      t.cpuMs += m.cpuUserMs + m.cpuSystemMs;
      t.billedMs += Math.ceil(m.handlerMs);
      t.peakRss = Math.max(t.peakRss, m.maxRss);
      t.lastRss = m.rss;
      t.peakHeapUsed = Math.max(t.peakHeapUsed, m.heapUsed);
    } else if (l.startsWith('{"sluice":"state-metrics"')) {
      const s = JSON.parse(l) as Record<string, number>;
      t.state.lines++;
      t.state.readRequests += s.readRequests ?? 0;
      t.state.writeRequests += s.writeRequests ?? 0;
      t.state.consumedReadUnits += s.consumedReadUnits ?? 0;
      t.state.consumedWriteUnits += s.consumedWriteUnits ?? 0;
      t.state.retries += s.retries ?? 0;
      t.state.conflicts += s.conditionalCheckFailures ?? 0;
    } else if (l.startsWith('{"sluice":"dead-letter"')) t.deadLetters++;
  };
  return { t, onLine: (l) => line(l.trimEnd()) };
}

/** Reads the function's lines of invocation `n`: all there once it answered (the capture file is written synchronously). */
function caughtUp(rie: RieHandle, t: Tally, n: number, stateful: boolean, read: () => string[], onLine: (l: string) => void): void {
  for (const l of read()) onLine(l);
  if (t.handlerMs.length !== n || (stateful && t.state.lines !== n))
    throw new Error(
      `after invocation ${n}: ${t.handlerMs.length} rie-metrics and ${t.state.lines} state-metrics lines\n${rie.logs().slice(-4000)}`,
    );
}

async function measure(fn: string, taskDir: string, batchSize: number): Promise<CostRow> {
  const { memoryMb: configured, env: templateEnv } = deployed(fn);
  const memoryMb = values.memory ? Number(values.memory) : configured;
  const stateful = 'SLUICE_STATE_TABLE' in templateEnv;
  const table = `sluice-bench-cost-${fn}-${batchSize}-${Date.now()}`;
  if (stateful) await new DynamoDBStore({ table, endpoint: values.endpoint }).ensureTable();
  const env: Record<string, string> = {
    // Outputs and dead letters as log lines (counted here) rather than on a broker.
    ...Object.fromEntries(
      Object.entries(templateEnv).filter((e): e is [string, string] => typeof e[1] === 'string' && e[0] !== 'SLUICE_DEAD_LETTER_TOPIC'),
    ),
    SLUICE_OUTPUTS: 'log',
    ...(stateful ? { SLUICE_STATE_TABLE: table, SLUICE_DYNAMODB_ENDPOINT: values.endpoint } : {}),
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    SLUICE_RIE_METRICS: '1',
    SLUICE_RIE_CAPTURE: path.join(taskDir, `capture-${batchSize}.log`),
  };
  writeFileSync(env.SLUICE_RIE_CAPTURE, '');
  const read = lineReader(env.SLUICE_RIE_CAPTURE);
  const { t, onLine } = tally();
  const rie = await startRie({
    taskDir,
    handler: `functions/${fn}/handler.handler`,
    functionName: fn,
    env,
    memorySizeMb: memoryMb,
    timeoutSeconds: 300,
    binary: emulator.binary,
  });
  const started = performance.now();
  let records = 0;
  try {
    const { topic, records: stream } = WORKLOADS[fn];
    for (const event of toKafkaEvents(stream(RECORDS, KEYS), { topic, batchSize })) {
      records += Object.values(event.records)[0].length;
      const response = (await rie.invoke(event)) as { batchItemFailures: unknown[] };
      t.invocations++;
      if (response.batchItemFailures.length > 0) throw new Error(`${fn}: invocation ${t.invocations} failed: ${JSON.stringify(response)}`);
      caughtUp(rie, t, t.invocations, stateful, read, onLine);
    }
  } finally {
    await rie.stop();
    if (stateful) await dynamo.send(new DeleteTableCommand({ TableName: table })).catch(() => {});
  }
  const wallS = (performance.now() - started) / 1000;
  const perM = (x: number) => Math.round((x / records) * 1e6 * 100) / 100;
  const sorted = [...t.handlerMs].sort((a, b) => a - b);
  const handlerMs = t.handlerMs.reduce((a, b) => a + b, 0);
  // Lambda's CPU share at this memory: CPU-bound time stretches by vcpuAtMb / memory, waiting does not.
  const cpuShare = Math.min(1, memoryMb / prices.lambda.vcpuAtMb);
  const scaledMs = t.handlerMs.length ? t.cpuMs / cpuShare + Math.max(0, handlerMs - t.cpuMs) : 0;
  return priced(prices, {
    function: fn,
    batchSize,
    records,
    keys: KEYS,
    memoryMb,
    emulator: emulator.official ? 'aws-lambda-rie' : 'stand-in',
    wallSeconds: Math.round(wallS * 10) / 10,
    perMillion: {
      invocations: perM(t.invocations),
      handlerMs: perM(handlerMs),
      billedMs: perM(t.billedMs),
      cpuMs: perM(t.cpuMs),
      lambdaScaledMs: perM(scaledMs),
      readRequests: perM(t.state.readRequests),
      writeRequests: perM(t.state.writeRequests),
      readUnits: perM(t.state.consumedReadUnits),
      writeUnits: perM(t.state.consumedWriteUnits),
      outputs: perM(t.outputs),
      outputBytes: perM(t.outputBytes),
      deadLetters: perM(t.deadLetters),
    },
    handlerMsP50: sorted[Math.floor(sorted.length / 2)] ?? 0,
    handlerMsMax: sorted[sorted.length - 1] ?? 0,
    peakRssMb: Math.round((t.peakRss / 2 ** 20) * 10) / 10,
    lastRssMb: Math.round((t.lastRss / 2 ** 20) * 10) / 10,
    peakHeapUsedMb: Math.round((t.peakHeapUsed / 2 ** 20) * 10) / 10,
    stateRetries: t.state.retries,
    stateConflicts: t.state.conflicts,
  });
}

// ---- run --------------------------------------------------------------------------------------
setTimeout(() => {
  console.error('bench:cost: gave up after 60 minutes');
  process.exit(3);
}, 60 * 60_000).unref();

try {
  await dynamo.send(new ListTablesCommand({ Limit: 1 }));
} catch (e) {
  console.error(`bench:cost needs DynamoDB Local at ${values.endpoint} (npm run infra:up): ${(e as Error).message}`);
  process.exit(2);
}

// Unzipped up front: a later `sls package` (a test, another run) rewrites the zips.
const taskDirs = new Map<string, string>();
for (const fn of FUNCTIONS) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `sluice-bench-cost-${fn}-`));
  taskDirs.set(fn, dir);
  await unzipTo(path.join(root, `.serverless/sluice-${fn}.zip`), dir);
}
const rows: CostRow[] = [];
try {
  for (const fn of FUNCTIONS) {
    for (const batchSize of BATCH_SIZES) {
      const row = await measure(fn, taskDirs.get(fn)!, batchSize);
      rows.push(row);
      if (values.json) console.log(JSON.stringify(row));
      say(
        `${fn} @ ${batchSize}: ${row.perMillion.writeUnits} WRU, ${row.perMillion.readUnits} RRU, ${row.perMillion.handlerMs} handler ms per M records; ` +
          `$${row.dollarsPerMillion.total.x86_64} (x86) per M; peak RSS ${row.peakRssMb} MB at ${row.memoryMb} MB; ${row.wallSeconds} s`,
      );
    }
  }
} finally {
  for (const dir of taskDirs.values()) rmSync(dir, { recursive: true, force: true });
}

const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GB, ${os.platform()} ${os.arch()}, Node ${process.version}`;
const summary = {
  summary: true,
  date: new Date().toISOString(),
  machine,
  emulator: emulator.note,
  recordsPerRun: RECORDS,
  keys: KEYS,
  prices: path.relative(root, path.resolve(values.prices)),
  rows: rows.map((r) => ({
    function: r.function,
    batchSize: r.batchSize,
    memoryMb: r.memoryMb,
    writeUnitsPerRecord: Math.round(r.perMillion.writeUnits / 1e4) / 100,
    readUnitsPerRecord: Math.round(r.perMillion.readUnits / 1e4) / 100,
    handlerMsPerMillion: r.perMillion.handlerMs,
    dollarsPerMillionX86: r.dollarsPerMillion.total.x86_64,
    dollarsPerMillionArm64: r.dollarsPerMillion.total.arm64,
    breakEvenRecordsPerSecond: r.container.breakEvenRecordsPerSecond.x86_64,
    peakRssMb: r.peakRssMb,
  })),
};
if (values.json) console.log(JSON.stringify(summary));
else console.log(summary);
if (values['write-docs']) {
  const file = path.join(root, 'docs/benchmarks.md');
  const doc = readFileSync(file, 'utf8');
  const [begin, end] = ['<!-- bench:cost:begin -->', '<!-- bench:cost:end -->'];
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`--write-docs: ${file} has no ${begin} … ${end} section to replace`);
  const cmd = `npm run bench:cost -- --json --records ${RECORDS} --keys ${KEYS} --batch-sizes ${BATCH_SIZES.join(',')}${values.memory ? ` --memory ${values.memory}` : ''} --write-docs`;
  writeFileSync(
    file,
    `${doc.slice(0, a + begin.length)}\n${docsTable(rows, prices, {
      cmd,
      machine,
      date: summary.date,
      emulator: emulator.official ? 'the official Lambda Runtime Interface Emulator' : emulator.note,
    })}\n${doc.slice(b)}`,
  );
  say(`bench:cost: wrote the table into ${path.relative(root, file)}`);
}
