/**
 * `npm run bench:package -- --json`: packages the example service with `sls package` (offline),
 * then for each function reports its zip and unzipped sizes and its cold start: a fresh Node
 * process, in an empty directory with only the unzipped artifact, importing the bundle and
 * handling one MSK event (median of --runs, default 5). Last line:
 * `{"functions": {"<name>": {"zipBytes": …, "unzippedBytes": …, "initMs": …, "processMs": …}}, "maxUnzippedBytes": …, "maxInitMs": …}`.
 * `initMs` is import + first event inside the process; `processMs` adds Node's own start-up.
 * For transport-mode the event closes a window, so `initMs` includes ONNX Runtime and its session.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { unzipTo } from '../framework/src/build/zip.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);
const root = path.resolve(import.meta.dirname, '..');
const say = (m: string) => {
  if (!values.json) console.log(m);
  else console.error(m);
};

const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SDK_LOAD_CONFIG']) delete env[k];
const pkg = spawnSync(process.execPath, [path.join(root, 'node_modules/serverless/bin/serverless.js'), 'package'], {
  cwd: root,
  env,
  encoding: 'utf8',
});
if (pkg.status !== 0) throw new Error(`sls package failed:\n${pkg.stdout}\n${pkg.stderr}`);

// transport-mode gets a second reading 20 s later, so a window closes and the model scores it:
// its cold start includes loading ONNX Runtime and creating the session.
const topics: Record<string, { topic: string; value: unknown; later?: unknown }> = {
  'sensor-sums': { topic: 'sensor-counts', value: { value: 3 } },
  'speed-average': { topic: 'vehicle-speeds', value: { vehicle: 'v1', speed: 30 } },
  'fast-vehicles': { topic: 'vehicle-speeds', value: { vehicle: 'v1', speed: 40 } },
  sessions: { topic: 'clicks', value: { page: '/home' } },
  'transport-mode': { topic: 'gps-speeds', value: { device: 'd1', speed: 1.4 }, later: { device: 'd1', speed: 1.5 } },
};
const sample = JSON.parse(readFileSync(path.join(root, 'test/fixtures/events/msk-event.json'), 'utf8'));
const [first] = Object.values(sample.records as Record<string, any[]>)[0];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const functions: Record<string, { zipBytes: number; unzippedBytes: number; initMs: number; processMs: number }> = {};
for (const [name, { topic, value, later }] of Object.entries(topics)) {
  const zip = path.join(root, `.serverless/sluice-${name}.zip`);
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-bench-package-'));
  try {
    const files = await unzipTo(zip, dir);
    const unzippedBytes = files.reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
    const record = (offset: number, timestamp: number, v: unknown) => ({
      ...first,
      topic,
      partition: 0,
      offset,
      timestamp,
      key: Buffer.from('k1').toString('base64'),
      value: Buffer.from(JSON.stringify(v)).toString('base64'),
    });
    const records = [record(1, 1_767_225_600_000, value), ...(later ? [record(2, 1_767_225_620_000, later)] : [])];
    const event = { ...sample, records: { [`${topic}-0`]: records } };
    writeFileSync(path.join(dir, 'event.json'), JSON.stringify(event));
    writeFileSync(
      path.join(dir, 'cold.mjs'),
      [
        `import { readFileSync } from 'node:fs';`,
        `const event = JSON.parse(readFileSync('event.json', 'utf8'));`,
        `const t0 = performance.now();`,
        `const { handler } = await import('./functions/${name}/handler.mjs');`,
        `const response = await handler(event, { functionName: '${name}', awsRequestId: 'r', getRemainingTimeInMillis: () => 30000 });`,
        `const initMs = performance.now() - t0;`,
        `if (response.batchItemFailures.length) throw new Error('the event failed: ' + JSON.stringify(response));`,
        `process.stderr.write(JSON.stringify({ initMs }) + '\\n');`,
      ].join('\n'),
    );
    const init: number[] = [];
    const proc: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      const r = spawnSync(process.execPath, ['cold.mjs'], { cwd: dir, encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
      proc.push(performance.now() - t);
      if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
      init.push(JSON.parse(r.stderr.trim().split('\n').at(-1)!).initMs);
    }
    functions[name] = {
      zipBytes: statSync(zip).size,
      unzippedBytes,
      initMs: Math.round(median(init) * 10) / 10,
      processMs: Math.round(median(proc) * 10) / 10,
    };
    say(
      `${name}: zip ${(functions[name].zipBytes / 1024).toFixed(0)} KB, unzipped ${(unzippedBytes / 1024).toFixed(0)} KB, init ${functions[name].initMs} ms (process ${functions[name].processMs} ms)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const all = Object.values(functions);
console.log(
  JSON.stringify({
    functions,
    maxUnzippedBytes: Math.max(...all.map((f) => f.unzippedBytes)),
    maxInitMs: Math.max(...all.map((f) => f.initMs)),
  }),
);
