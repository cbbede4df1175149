import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError } from 'sluice';
import { esmConfig } from '../../framework/src/config/event-source-mapping.js';
import { LOCAL_CLUSTER_ARN } from '../../framework/src/runtime/msk-event.js';
import { functionConfig as deployOptions } from '../../framework/src/config/function-config.js';
import { type FunctionEntry, readServerless } from '../../framework/src/config/serverless-yml.js';

const entry = (
  event: Record<string, unknown> | undefined,
  sluice?: Record<string, unknown>,
  eventKind: 'msk' | 'kafka' = 'kafka',
): FunctionEntry => ({
  name: 'fn',
  file: '/x/handler.ts',
  exportName: 'handler',
  ...(event ? { event, eventKind } : {}),
  ...(sluice ? { sluice } : {}),
});
const ARN = 'arn:aws:kafka:eu-west-1:111122223333:cluster/orders/5a7c0d0e-1111-2222-3333-444455556666-2';
const pollers = { provisionedPollers: { minimum: 1, maximum: 2 } };

test('fills in the defaults Lambda and the plugin deploy: batching, group sluice-<service>-<stage>-<function>, 6 s timeout, retries until success', () => {
  assert.deepEqual(esmConfig(entry({ topic: 'in' }), 'svc'), {
    functionName: 'fn',
    topic: 'in',
    batchSize: 100,
    maximumBatchingWindowMs: 500,
    startingPosition: 'TRIM_HORIZON',
    consumerGroupId: 'sluice-svc-dev-fn',
    eventSource: 'SelfManagedKafka',
    provisionedPollers: false,
    deadLetterTopic: 'in.fn.dlq',
    timeoutMs: 6_000,
    tickMs: 60_000,
  });
  assert.equal(esmConfig(entry({ topic: 'in' }), 'svc', { stage: 'prod' }).consumerGroupId, 'sluice-svc-prod-fn');
  assert.equal(esmConfig(entry({ topic: 'in' }), 'svc', { timeoutSeconds: 20 }).timeoutMs, 20_000, 'provider.timeout');
});

test('the consumer group is the one the plugin deploys', () => {
  const fn = { events: [{ kafka: { topic: 'in' } }] };
  assert.equal(
    esmConfig(entry({ topic: 'in' }), 'svc', { stage: 'qa' }).consumerGroupId,
    deployOptions('fn', fn, { service: 'svc', stage: 'qa' })!.consumerGroupId,
  );
});

test('reads batch size, window, starting position, group, retries, destination and timeout', () => {
  const c = esmConfig(
    {
      ...entry(
        {
          topic: 'in',
          batchSize: 500,
          maximumBatchingWindow: 2,
          startingPosition: 'AT_TIMESTAMP',
          startingPositionTimestamp: 1_700_000_000,
          consumerGroupId: 'g1',
        },
        { ...pollers, maximumRetryAttempts: 0, deadLetterTopic: 'dead' },
      ),
      timeout: 30,
    },
    'svc',
  );
  assert.equal(c.batchSize, 500);
  assert.equal(c.maximumBatchingWindowMs, 2000);
  assert.equal(c.startingPosition, 'AT_TIMESTAMP');
  assert.equal(c.startingPositionTimestamp, 1_700_000_000_000);
  assert.equal(c.consumerGroupId, 'g1');
  assert.equal(c.provisionedPollers, true);
  assert.equal(c.maximumRetryAttempts, 0);
  assert.equal(c.deadLetterTopic, 'dead');
  assert.equal(c.onFailureTopic, 'dead', 'the on-failure destination defaults to the dead-letter topic, as deployed');
  assert.equal(c.timeoutMs, 30_000);
});

test('an msk event is aws:kafka with its cluster ARN; a kafka event is SelfManagedKafka without one', () => {
  const msk = esmConfig(entry({ topic: 'in', arn: ARN }, undefined, 'msk'), 'svc');
  assert.equal(msk.eventSource, 'aws:kafka');
  assert.equal(msk.eventSourceArn, ARN);
  assert.equal(msk.notices, undefined);
  const smk = esmConfig(entry({ topic: 'in', bootstrapServers: ['b:9092'] }), 'svc');
  assert.equal(smk.eventSource, 'SelfManagedKafka');
  assert.equal(smk.eventSourceArn, undefined);
});

test('an msk arn known only at deploy time (an intrinsic, a Serverless variable) becomes a placeholder ARN, and says so', () => {
  for (const arn of [{ 'Fn::ImportValue': 'shared-cluster-arn' }, { Ref: 'Cluster' }, '${cf:infra.ClusterArn}']) {
    const c = esmConfig(entry({ topic: 'in', arn }, undefined, 'msk'), 'svc');
    assert.equal(c.eventSourceArn, LOCAL_CLUSTER_ARN);
    assert.equal(c.notices?.length, 1);
    assert.match(
      c.notices![0],
      /fn: the msk event's arn \(.*\) is resolved only at deploy time .*placeholder eventSourceArn arn:aws:kafka:us-east-1:123456789012:cluster\/sluice-local\//,
    );
  }
});

test('without provisioned pollers a failing batch is retried until it succeeds and partial batch responses are off, as deployed', () => {
  const c = esmConfig(entry({ topic: 'in' }, { deadLetterTopic: 'poison' }), 'svc');
  assert.equal(c.provisionedPollers, false);
  assert.equal(c.maximumRetryAttempts, undefined);
  assert.equal(c.onFailureTopic, undefined);
  assert.equal(c.deadLetterTopic, 'poison', 'poison records still have their topic');
});

test('with provisioned pollers: Lambda caps infinite retries at 10 when there is a destination; onFailure kafka:// is honoured', () => {
  assert.equal(esmConfig(entry({ topic: 'in' }, pollers), 'svc').maximumRetryAttempts, 10);
  assert.equal(esmConfig(entry({ topic: 'in' }, { ...pollers, maximumRetryAttempts: -1 }), 'svc').maximumRetryAttempts, 10);
  const c = esmConfig(
    entry({ topic: 'in' }, { ...pollers, maximumRetryAttempts: 3, onFailure: 'kafka://failed-records', deadLetterTopic: 'poison' }),
    'svc',
  );
  assert.equal(c.maximumRetryAttempts, 3);
  assert.equal(c.onFailureTopic, 'failed-records');
  assert.equal(c.deadLetterTopic, 'poison');
});

test('an SQS, SNS or S3 on-failure destination is not emulated: the dead-letter topic stands in, and it says so', () => {
  const c = esmConfig(entry({ topic: 'in' }, { ...pollers, onFailure: 'arn:aws:sqs:us-east-1:123456789012:failed' }), 'svc');
  assert.equal(c.onFailureTopic, 'in.fn.dlq');
  assert.match(
    c.notices![0],
    /on-failure destination arn:aws:sqs:us-east-1:123456789012:failed \(SQS\) is not emulated; locally, records that fail every retry go to the Kafka topic in\.fn\.dlq instead/,
  );
});

test('bad entries fail with a ConfigError naming the function, the option and the value', () => {
  const cases: [FunctionEntry, RegExp][] = [
    [entry(undefined), /functions\.fn in serverless\.yml has no msk or kafka event/],
    [entry({}), /functions\.fn\.events\[\]\.kafka\.topic must be a topic name; received undefined/],
    [entry({ topic: 'in', batchSize: 20_000 }), /functions\.fn event batchSize must be a whole number from 1 to 10000; received 20000/],
    [entry({ topic: 'in', maximumBatchingWindow: 301 }), /maximumBatchingWindow must be seconds from 0 to 300; received 301/],
    [
      entry({ topic: 'in', startingPosition: 'EARLIEST' }),
      /startingPosition must be one of LATEST, TRIM_HORIZON, AT_TIMESTAMP; received "EARLIEST"/,
    ],
    [entry({ topic: 'in', startingPosition: 'AT_TIMESTAMP' }), /startingPositionTimestamp \(epoch seconds\) is required with AT_TIMESTAMP/],
    [entry({ topic: 'in', consumerGroupId: 'has space' }), /consumerGroupId must be 1-200 letters/],
    [
      entry({ topic: 'in' }, { retries: 3 }),
      /unknown option functions\.fn\.sluice\.retries in serverless\.yml; allowed: maximumRetryAttempts, deadLetterTopic/,
    ],
    [
      entry({ topic: 'in' }, { ...pollers, maximumRetryAttempts: -2 }),
      /maximumRetryAttempts must be a whole number from -1 \(forever\) to 10000; received -2/,
    ],
    // What `sls package` refuses, the emulator refuses too.
    [
      entry({ topic: 'in' }, { maximumRetryAttempts: 2 }),
      /functions\.fn\.sluice\.maximumRetryAttempts needs functions\.fn\.sluice\.provisionedPollers/,
    ],
    [
      entry({ topic: 'in' }, { onFailure: 'kafka://x' }),
      /functions\.fn\.sluice\.onFailure needs functions\.fn\.sluice\.provisionedPollers/,
    ],
  ];
  for (const [e, message] of cases)
    assert.throws(
      () => esmConfig(e, 'svc'),
      (err: unknown) => err instanceof ConfigError && message.test(err.message),
      String(message),
    );
});

test('readServerless reads the service, provider stage and timeout, events (with ${self:} references) and sluice blocks, and names a bad handler', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-yml-'));
  mkdirSync(path.join(dir, 'functions/a'), { recursive: true });
  writeFileSync(path.join(dir, 'functions/a/handler.ts'), 'export const handler = 1;');
  writeFileSync(
    path.join(dir, 'serverless.yml'),
    [
      'service: shop',
      'provider:',
      '  timeout: 20',
      "  stage: ${opt:stage, 'qa'}",
      'custom:',
      `  cluster: ${ARN}`,
      'functions:',
      '  a:',
      '    handler: functions/a/handler.handler',
      '    sluice:',
      '      provisionedPollers: { minimum: 1, maximum: 1 }',
      '      maximumRetryAttempts: 5',
      '    events:',
      '      - msk:',
      '          arn: ${self:custom.cluster}',
      '          topic: orders',
      '          batchSize: 50',
    ].join('\n'),
  );
  const s = readServerless(path.join(dir, 'serverless.yml'));
  assert.equal(s.service, 'shop');
  assert.equal(s.timeoutSeconds, 20);
  assert.equal(s.stage, 'qa');
  assert.deepEqual(
    s.functions.map((f) => [f.name, f.eventKind, f.event, f.sluice]),
    [
      [
        'a',
        'msk',
        { arn: ARN, topic: 'orders', batchSize: 50 },
        { provisionedPollers: { minimum: 1, maximum: 1 }, maximumRetryAttempts: 5 },
      ],
    ],
  );
  const c = esmConfig(s.functions[0], s.service, s);
  assert.equal(c.timeoutMs, 20_000);
  assert.equal(c.consumerGroupId, 'sluice-shop-qa-a');
  assert.equal(c.eventSourceArn, ARN);
  assert.equal(c.maximumRetryAttempts, 5);
  writeFileSync(path.join(dir, 'serverless.yml'), 'service: shop\nfunctions:\n  b:\n    handler: functions/b/nothing.handler\n');
  assert.throws(
    () => readServerless(path.join(dir, 'serverless.yml')),
    /functions\.b\.handler in .*serverless\.yml points to functions\/b\/nothing, but no \.ts\/\.mts\/\.js\/\.mjs file exists there/,
  );
});

test('a missing serverless.yml says where it looked and what to do, not a YAML error', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-yml-'));
  const file = path.join(dir, 'serverless.yml');
  assert.throws(
    () => readServerless(file),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === `serverless.yml not found at ${file}; run from the service directory or pass --config <path/to/serverless.yml>.`,
  );
});
