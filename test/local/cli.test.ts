import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'framework/bin/sluice.js');

function sluice(...args: string[]) {
  return sluiceWith({}, ...args);
}

function sluiceWith(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test(
  'sluice dev --state dynamodb keeps state in the table; running the same input again is refused with what to do',
  await dynamodbAvailability(),
  () => {
    const env = { SLUICE_STATE_TABLE: `sluice-cli-test-${process.pid}-${Date.now()}`, SLUICE_DYNAMODB_ENDPOINT: dynamodbEndpoint };
    const first = sluiceWith(env, 'dev', 'sensor-sums', '--state', 'dynamodb', '--quiet');
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`state in DynamoDB table ${env.SLUICE_STATE_TABLE}`));
    assert.match(first.stderr, /182 records in, 15 messages out/);
    const again = sluiceWith(env, 'dev', 'sensor-sums', '--state', 'dynamodb', '--quiet');
    assert.equal(again.code, 2, again.stderr);
    assert.match(
      again.stderr,
      new RegExp(
        `table ${env.SLUICE_STATE_TABLE} already holds state of SensorSums past sensor-counts-\\d@0, from an earlier run of this input; set SLUICE_STATE_TABLE to a new table to start over`,
      ),
    );
    assert.doesNotMatch(again.stderr, /dead letter|retry /, 'it stops at once, without retrying or dead-lettering anything');
  },
);

test('sluice dev runs a serverless.yml function on its bundled sample', () => {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-')), 'out.jsonl');
  const r = sluice('dev', 'sensor-sums', '--output', out);
  assert.equal(r.code, 0, r.stderr);
  const lines = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // 3 sensors x 60 s of data in 10 s windows: 5 closed windows per sensor, the 6th still open.
  assert.equal(lines.length, 15);
  for (const l of lines) {
    assert.equal(l.topic, 'sensor-sums');
    assert.equal(l.value.end - l.value.start, 10_000);
    assert.equal(l.timestamp, l.value.start);
  }
  assert.match(r.stderr, /182 records in, 15 messages out \(15 window results\)/);
  assert.match(r.stderr, /1 late, 1 poison/);
  assert.match(r.stderr, /\naccounted: 182 records in = 180 applied \+ 0 filtered \+ 1 late \+ 1 dead-lettered\n/);
  assert.match(r.stderr, /3 windows still open/);
  assert.match(r.stderr, /dead letter\s+sensor-counts-0@\d+\s+\[validate\] value must be a number/);
});

test('sluice dev --flush closes the windows still open at the end', () => {
  const out = path.join(mkdtempSync(path.join(tmpdir(), 'sluice-')), 'out.jsonl');
  const r = sluice('dev', 'sensor-sums', '--flush', '--quiet', '--output', out);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, 18);
  assert.doesNotMatch(r.stderr, /still open/);
});

test('sluice dev accepts a handler file path and reports bad input lines by file and line, running the rest', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-'));
  const input = path.join(dir, 'in.jsonl');
  writeFileSync(
    input,
    [
      JSON.stringify({ key: 'v1', value: { vehicle: 'v1', speed: 40 }, timestamp: 1000 }),
      '{not json',
      JSON.stringify({ key: 'v1', value: { vehicle: 'v1', speed: 10 }, timestamp: 'soon' }),
      JSON.stringify({ key: 'v2', value: { vehicle: 'v2', speed: 30 }, timestamp: 2000 }),
    ].join('\n'),
  );
  const out = path.join(dir, 'out.jsonl');
  const r = sluice('dev', 'functions/fast-vehicles/handler.ts', '--input', input, '--output', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /in\.jsonl:2: not JSON/);
  assert.match(r.stderr, /in\.jsonl:3: "timestamp" must be epoch milliseconds/);
  const lines = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.value),
    [
      { vehicle: 'v1', kmh: 144 },
      { vehicle: 'v2', kmh: 108 },
    ],
  );
});

test('sluice dev with an unknown function fails, listing the functions it knows', () => {
  const r = sluice('dev', 'no-such-function');
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    /function "no-such-function" is not in .*serverless\.yml; functions there: sensor-sums, speed-average, fast-vehicles, sessions/,
  );
});

test('sluice dev rejects a batch size outside Lambda range', () => {
  const r = sluice('dev', 'sensor-sums', '--batch-size', '20000');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--batch-size must be a whole number from 1 to 10000/);
});

test('sluice invoke runs one MSK event and prints outputs and the response', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-'));
  const event = path.join(dir, 'event.json');
  const rec = (offset: number, speed: number) => ({
    topic: 'vehicle-speeds',
    partition: 0,
    offset,
    timestamp: 1_700_000_000_000 + offset,
    timestampType: 'CREATE_TIME',
    key: Buffer.from('car').toString('base64'),
    value: Buffer.from(JSON.stringify({ vehicle: 'car', speed })).toString('base64'),
    headers: [],
  });
  writeFileSync(
    event,
    JSON.stringify({ eventSource: 'aws:kafka', bootstrapServers: 'b-1:9092', records: { 'vehicle-speeds-0': [rec(5, 20), rec(6, 35)] } }),
  );
  const r = sluice('invoke', 'fast-vehicles', '--event', event);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /fast-vehicles\s+car\s+.*\{"vehicle":"car","kmh":126\}/);
  assert.doesNotMatch(r.stdout, /"kmh":72/);
  assert.match(r.stdout, /response: \{"batchItemFailures":\[\]\}/);
});

test('sluice dev retries a failing record, dead-letters it, and still processes the records after it', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-'));
  const input = path.join(dir, 'in.jsonl');
  writeFileSync(input, [1, 2, 3, 4].map((n) => JSON.stringify({ key: 'k', value: { n, fail: n === 2 }, timestamp: n })).join('\n'));
  const out = path.join(dir, 'out.jsonl');
  const r = sluice('dev', 'test/fixtures/functions/flaky/handler.ts', '--input', input, '--output', out, '--retries', '1');
  // Non-zero: a record was given up on, which a script running sluice dev should notice.
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /retry\s+flaky-in-0@1: attempt 2 of 2/);
  assert.match(r.stderr, /dead letter\s+flaky-in-0@1\s+\[invoke\] failed after 2 attempts/);
  assert.match(r.stderr, /1 records dead-lettered after failing every retry/);
  const values = readFileSync(out, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).value.n);
  // 1 is produced once (the attempt stops at the failure and keeps what came before it);
  // 3 and 4 after the failing record is set aside.
  assert.deepEqual(values, [10, 30, 40]);
});

test('sluice dev --brokers without a serverless.yml says where it looked and what to do (exit 2)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-'));
  const r = spawnSync(process.execPath, [bin, 'dev', '--brokers', '127.0.0.1:9092'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `serverless\\.yml not found at ${path.join(dir, 'serverless.yml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}; run from the service directory or pass --config`,
    ),
  );
  assert.doesNotMatch(r.stderr, /not valid YAML|ENOENT/);
  const other = spawnSync(process.execPath, [bin, 'dev', '--brokers', '127.0.0.1:9092', '--config', 'elsewhere/serverless.yml'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.match(other.stderr, /serverless\.yml not found at .*elsewhere\/serverless\.yml/);
});

/** The output file of a run, one object per line. */
function outputOf(file: string): { key: string; value: { start: number; end: number; clicks: number } }[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

test('sluice dev --wall-clock --tick-at: idle ticks after the input close the last sessions when due, the same on every run', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-'));
  // The sample's last click (ana) is at 00:03:38.629; bo's at 00:03:18.746. Read at 00:10:00, a
  // tick closes a session once newest click + quiet - idle 10 s - grace 5 s >= last click + gap 30 s:
  // bo's after 25.117 s of quiet, ana's after 45 s.
  const args = ['dev', 'sessions', '--wall-clock', '2026-01-01T00:10:00Z', '--tick-at', '25s,25117ms', '--tick-at', '44999ms,45s'];
  const runs = [1, 2].map((n) => {
    const out = path.join(dir, `out-${n}.jsonl`);
    const r = sluice(...args, '--output', out);
    assert.equal(r.code, 0, r.stderr);
    return { r, out: readFileSync(out, 'utf8') };
  });
  assert.equal(runs[0].out, runs[1].out, 'deterministic output');
  const { stderr } = runs[0].r;
  assert.deepEqual(
    [...stderr.matchAll(/^tick {9}(\S+) {2}closed (\d+) windows$/gm)].map((m) => [m[1], Number(m[2])]),
    [
      ['2026-01-01T00:10:25Z', 0],
      ['2026-01-01T00:10:25.117Z', 1],
      ['2026-01-01T00:10:44.999Z', 0],
      ['2026-01-01T00:10:45Z', 1],
    ],
  );
  assert.match(stderr, /20 records in, 6 messages out \(6 window results\)/);
  assert.match(stderr, /\n4 idle ticks closed 2 windows\n/);
  assert.doesNotMatch(stderr, /still open/);
  const lines = outputOf(path.join(dir, 'out-1.jsonl'));
  assert.deepEqual(
    lines.slice(4).map((l) => [l.key, l.value.clicks]),
    [
      ['bo', 3],
      ['ana', 3],
    ],
  );
  // What the ticks closed is what the end of the input would flush: same windows, same values.
  const flushed = path.join(dir, 'flushed.jsonl');
  assert.equal(sluice('dev', 'sessions', '--flush', '--quiet', '--output', flushed).code, 0);
  assert.deepEqual(
    lines.map((l) => l.value).sort((a, b) => a.start - b.start),
    outputOf(flushed)
      .map((l) => l.value)
      .sort((a, b) => a.start - b.start),
  );
});

test('sluice dev without --tick-at leaves the idle sessions open and says how to close them', () => {
  const r = sluice('dev', 'sessions', '--wall-clock', '2026-01-01T00:10:00Z', '--quiet');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /4 messages out/);
  assert.match(
    r.stderr,
    /2 windows still open at the end of the input .*add --flush to close them, or --tick-at to let idle ticks close the due ones/,
  );
  const noIdle = sluice('dev', 'sensor-sums', '--tick-at', '1m', '--quiet');
  assert.equal(noIdle.code, 0, noIdle.stderr);
  assert.match(noIdle.stderr, /note: SensorSums has no idle windows \(the window option idle\), so --tick-at closes nothing/);
  assert.match(noIdle.stderr, /1 idle ticks closed 0 windows/);
});

test('the time options fail with exit 2 naming the option, the value and the fix, in the mode they belong to', () => {
  const cases: [string[], RegExp][] = [
    [
      ['dev', 'sessions', '--tick', '1s'],
      /--tick sets the tick period of sluice dev --brokers; on a file, run ticks .* with --tick-at .*; received --tick 1s\./,
    ],
    [
      ['dev', 'sessions', '--brokers', '127.0.0.1:9092', '--tick', 'often'],
      /--tick must be the period of idle ticks, .* or off to run none; received "often"\./,
    ],
    [
      ['dev', 'sessions', '--brokers', '127.0.0.1:9092', '--wall-clock', '2026-01-01T00:00:00Z'],
      /--wall-clock is for file mode .* ticks run every --tick period/,
    ],
    [['dev', 'sessions', '--brokers', '127.0.0.1:9092', '--tick-at', '45s'], /--tick-at is for file mode/],
    [['dev', 'sessions', '--wall-clock', 'noon'], /--wall-clock must be an ISO time .*; received "noon"\./],
    [
      ['dev', 'sessions', '--wall-clock', '2026-01-01T00:10:00Z', '--tick-at', '2026-01-01T00:00:00Z'],
      /--tick-at 2026-01-01T00:00:00Z is .* before the wall clock 2026-01-01T00:10:00Z/,
    ],
    [['dev', 'sessions', '--tick-at', '45s,10s'], /--tick-at 10s .* comes before the tick before it/],
  ];
  for (const [args, message] of cases) {
    const r = sluice(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('--guarantee is checked, and only for sluice dev --brokers (exit 2, naming the values)', () => {
  const bad = sluice('dev', 'sums', '--brokers', '127.0.0.1:9092', '--guarantee', 'once');
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /--guarantee must be one of 'at-least-once' or 'exactly-once'; received "once"\./);
  const file = sluice('dev', 'sensor-sums', '--guarantee', 'exactly-once');
  assert.equal(file.code, 2, file.stderr);
  assert.match(file.stderr, /--guarantee is for sluice dev --brokers .*; received --guarantee exactly-once\./);
});
