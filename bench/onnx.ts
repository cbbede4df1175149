/**
 * `npm run bench:onnx -- --json`: scores 1,000 and 10,000 rows of the transport-mode model
 * (functions/transport-mode/model.onnx) batched (one `session.run`) and row by row (one run per
 * row), through Sluice's model API, so both include feature checks and tensor building. Rows are
 * seeded and realistic (mean, max, std, count of 10 s of speeds). `initMs` is the cold start of the
 * model in this process: importing ONNX Runtime and creating the session. Times are the best of
 * --runs (default 5; row by row 3). Last line:
 * `{"rows1k": {"batchedMs": …, "perRowMs": …}, "rows10k": {…}, "initMs": …}`.
 */
import { parseArgs } from 'node:util';
import { transportModel } from '../functions/transport-mode/handler.js';
import { rng } from './data.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, runs: { type: 'string', default: '5' } } });
const runs = Number(values.runs);

function rows(n: number, seed: number): number[][] {
  const r = rng(seed);
  const typical = [1.4, 5, 13];
  return Array.from({ length: n }, () => {
    const m = typical[Math.floor(r() * 3)] * (0.6 + 0.8 * r());
    const sd = m * (0.05 + 0.4 * r());
    return [m, m + sd * (1 + r()), sd, 5 + Math.floor(r() * 6)];
  });
}

async function best(times: number, f: () => Promise<unknown>): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    await f();
    min = Math.min(min, performance.now() - t);
  }
  return Math.round(min * 1000) / 1000;
}

const t0 = performance.now();
await transportModel.session();
const initMs = Math.round((performance.now() - t0) * 10) / 10;

const result: Record<string, unknown> = {};
const detail: Record<string, unknown> = {};
for (const [label, n] of [
  ['rows1k', 1_000],
  ['rows10k', 10_000],
] as const) {
  const data = rows(n, n);
  // Warm both paths once, and check they agree, before timing.
  const [a, b] = [await transportModel.score(data), await transportModel.score(data, { batched: false })];
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${label}: batched and row-by-row scores differ`);
  if (a.some((x) => !x.ok)) throw new Error(`${label}: some rows were refused`);
  const batchedMs = await best(runs, () => transportModel.score(data));
  const perRowMs = await best(Math.min(runs, 3), () => transportModel.score(data, { batched: false }));
  result[label] = { batchedMs, perRowMs };
  detail[label] = { rows: n, speedup: Math.round((perRowMs / batchedMs) * 10) / 10, batchedRowsPerSec: Math.round(n / (batchedMs / 1000)) };
  if (!values.json) console.log(`${n} rows: batched ${batchedMs} ms, row by row ${perRowMs} ms (${(perRowMs / batchedMs).toFixed(1)}x)`);
}
result.initMs = initMs;
if (values.json) {
  console.log(JSON.stringify({ model: transportModel.name, threads: transportModel.threads, ...detail }));
  console.log(JSON.stringify(result));
} else console.log(`init (import ONNX Runtime + create session): ${initMs} ms`);
