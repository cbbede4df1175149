import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from 'sluice';
import { esmConfig } from '../../framework/src/local/esm-config.js';
import { type FunctionEntry, readServerless } from '../../framework/src/local/functions.js';

const entry = (event: Record<string, unknown> | undefined, sluice?: Record<string, unknown>): FunctionEntry => ({
  name: 'fn', file: '/x/handler.ts', exportName: 'handler', ...(event ? { event } : {}), ...(sluice ? { sluice } : {}),
});

test('fills in the event source mapping defaults Lambda uses', () => {
  assert.deepEqual(esmConfig(entry({ topic: 'in' }), 'svc'), {
    functionName: 'fn', topic: 'in', batchSize: 100, maximumBatchingWindowMs: 500, startingPosition: 'TRIM_HORIZON',
    consumerGroupId: 'sluice-svc-fn', maximumRetryAttempts: 2, deadLetterTopic: 'in.fn.dlq', timeoutMs: 60_000,
  });
});

test('reads batch size, window, starting position, group, retries, destination and timeout', () => {
  const c = esmConfig(
    { ...entry({ topic: 'in', batchSize: 500, maximumBatchingWindow: 2, startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: 1_700_000_000, consumerGroupId: 'g1' }, { maximumRetryAttempts: 0, deadLetterTopic: 'dead' }), timeout: 30 },
    'svc',
  );
  assert.equal(c.batchSize, 500);
  assert.equal(c.maximumBatchingWindowMs, 2000);
  assert.equal(c.startingPosition, 'AT_TIMESTAMP');
  assert.equal(c.startingPositionTimestamp, 1_700_000_000_000);
  assert.equal(c.consumerGroupId, 'g1');
  assert.equal(c.maximumRetryAttempts, 0);
  assert.equal(c.deadLetterTopic, 'dead');
  assert.equal(c.timeoutMs, 30_000);
});

test('bad entries fail with a ConfigError naming the function, the option and the value', () => {
  const cases: [FunctionEntry, RegExp][] = [
    [entry(undefined), /functions\.fn in serverless\.yml has no msk or kafka event/],
    [entry({}), /functions\.fn\.events\[\]\.msk\.topic must be a topic name; received undefined/],
    [entry({ topic: 'in', batchSize: 20_000 }), /functions\.fn event batchSize must be a whole number from 1 to 10000; received 20000/],
    [entry({ topic: 'in', maximumBatchingWindow: 301 }), /maximumBatchingWindow must be seconds from 0 to 300; received 301/],
    [entry({ topic: 'in', startingPosition: 'EARLIEST' }), /startingPosition must be one of LATEST, TRIM_HORIZON, AT_TIMESTAMP; received "EARLIEST"/],
    [entry({ topic: 'in', startingPosition: 'AT_TIMESTAMP' }), /startingPositionTimestamp \(epoch seconds\) is required with AT_TIMESTAMP/],
    [entry({ topic: 'in', consumerGroupId: 'has space' }), /consumerGroupId must be 1-200 letters/],
    [entry({ topic: 'in' }, { retries: 3 }), /unknown option functions\.fn\.sluice\.retries in serverless\.yml; allowed: maximumRetryAttempts, deadLetterTopic/],
    [entry({ topic: 'in' }, { maximumRetryAttempts: -2 }), /maximumRetryAttempts must be a whole number from -1 \(forever\) to 10000; received -2/],
  ];
  for (const [e, message] of cases) assert.throws(() => esmConfig(e, 'svc'), (err: unknown) => err instanceof ConfigError && message.test(err.message), String(message));
});

test('readServerless reads the service, provider timeout, events and sluice blocks, and names a bad handler', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-yml-'));
  mkdirSync(path.join(dir, 'functions/a'), { recursive: true });
  writeFileSync(path.join(dir, 'functions/a/handler.ts'), 'export const handler = 1;');
  writeFileSync(path.join(dir, 'serverless.yml'), [
    'service: shop', 'provider:', '  timeout: 20', 'functions:', '  a:', '    handler: functions/a/handler.handler',
    '    sluice:', '      maximumRetryAttempts: 5', '    events:', '      - msk:', '          topic: orders', '          batchSize: 50',
  ].join('\n'));
  const s = readServerless(path.join(dir, 'serverless.yml'));
  assert.equal(s.service, 'shop');
  assert.equal(s.timeoutSeconds, 20);
  assert.deepEqual(s.functions.map((f) => [f.name, f.event, f.sluice]), [['a', { topic: 'orders', batchSize: 50 }, { maximumRetryAttempts: 5 }]]);
  assert.equal(esmConfig(s.functions[0], s.service, s).timeoutMs, 20_000);
  writeFileSync(path.join(dir, 'serverless.yml'), 'service: shop\nfunctions:\n  b:\n    handler: functions/b/nothing.handler\n');
  assert.throws(() => readServerless(path.join(dir, 'serverless.yml')), /functions\.b\.handler in .*serverless\.yml points to functions\/b\/nothing, but no \.ts\/\.mts\/\.js\/\.mjs file exists there/);
});
