/** `sluice new`: a function from templates/ that runs at once on its sample. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');
const bin = path.join(root, 'framework/bin/sluice.js');
// Inside the repository, so the new handler's `import 'sluice'` resolves.
const dir = path.join(root, 'test/fixtures', `.tmp-new-${process.pid}`);
const sluice = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });

describe('sluice new', () => {
  mkdirSync(dir, { recursive: true });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('creates a handler and a sample from templates/ that sluice dev runs', () => {
    const made = sluice('new', 'payment-totals', '--topic', 'payments');
    assert.equal(made.status, 0, made.stderr);
    const handler = readFileSync(path.join(dir, 'functions/payment-totals/handler.ts'), 'utf8');
    assert.match(handler, /@source\('payments'/);
    assert.match(handler, /export class PaymentTotals/);
    assert.ok(!handler.includes('__'), 'no placeholder left');
    assert.match(made.stdout, /handler: functions\/payment-totals\/handler\.handler/);
    assert.match(made.stdout, /topic: payments/);

    const out = path.join(dir, 'out.jsonl');
    const run = sluice('dev', 'functions/payment-totals/handler.ts', '--output', out, '--flush');
    assert.equal(run.status, 0, run.stderr);
    const results = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      results.map((r) => [r.topic, r.key, r.value.total, r.value.events]),
      [
        ['payments-totals', 'a', 12, 2],
        ['payments-totals', 'b', 2, 1],
        ['payments-totals', 'a', 1, 1],
        ['payments-totals', 'b', 4, 1],
      ],
    );
    assert.match(run.stdout + run.stderr, /1 poison/);
  });

  test('refuses a bad name and an existing function', () => {
    const bad = sluice('new', 'Payment_Totals');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /kebab-case .* received "Payment_Totals"/);
    const again = sluice('new', 'payment-totals');
    assert.equal(again.status, 2);
    assert.match(again.stderr, /functions\/payment-totals already exists/);
    assert.ok(existsSync(path.join(dir, 'functions/payment-totals/handler.ts')));
  });
});
