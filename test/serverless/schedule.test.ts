// The tick schedule the plugin adds (serverless/schedule.ts) and the `tick` option it reads
// (config/tick-period.ts), on compiled templates built in memory: no Serverless, no network.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from 'sluice';
import { functionConfig } from '../../framework/src/config/function-config.js';
import { rateExpression, readTickPeriod } from '../../framework/src/config/tick-period.js';
import { applySluice, type Template } from '../../framework/src/serverless/template.js';
import { handler as sessions } from '../../functions/sessions/handler.js';
import { handler as sums } from '../../functions/sensor-sums/handler.js';

const ctx = { service: 'svc', stage: 'dev' };
const cluster = 'arn:aws:kafka:us-east-1:123456789012:cluster/demo/00000000-0000-0000-0000-000000000000-1';
const msk = (topic: string) => [{ msk: { arn: cluster, topic } }];

test('tick periods: whole minutes written as durations or rates; anything else names the option, the value and the fix', () => {
  const accepted: [unknown, number][] = [
    ['1 minute', 60_000],
    ['5 minutes', 300_000],
    ['2 hours', 7_200_000],
    ['1 day', 86_400_000],
    ['1m', 60_000],
    ['120s', 120_000],
    ['1h', 3_600_000],
  ];
  for (const [value, ms] of accepted) assert.equal(readTickPeriod(value, 'functions.f.sluice.tick'), ms, String(value));
  assert.equal(readTickPeriod(false, 'functions.f.sluice.tick'), false);
  for (const value of ['10s', '90s', '0m', '1.5m', 'soon', '', 60_000, true, null]) {
    assert.throws(
      () => readTickPeriod(value, 'functions.f.sluice.tick'),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith(
          `functions.f.sluice.tick must be a tick period; received ${JSON.stringify(value)}; give a whole number of minutes`,
        ) &&
        e.message.includes('or false to run no schedule'),
      String(value),
    );
  }
  assert.deepEqual([60_000, 300_000, 3_600_000, 5_400_000, 86_400_000, 172_800_000].map(rateExpression), [
    'rate(1 minute)',
    'rate(5 minutes)',
    'rate(1 hour)',
    'rate(90 minutes)',
    'rate(1 day)',
    'rate(2 days)',
  ]);
});

test("a function's tick: its own, else the service's (custom.sluice), else one minute", () => {
  const tickOf = (sluice: Record<string, unknown> | undefined, defaults?: Record<string, unknown>) =>
    functionConfig('f', { events: msk('clicks'), ...(sluice ? { sluice } : {}) }, { ...ctx, ...(defaults ? { defaults } : {}) })!.tickMs;
  assert.equal(tickOf(undefined), 60_000);
  assert.equal(tickOf(undefined, { tick: '5 minutes' }), 300_000);
  assert.equal(tickOf({ tick: '2m' }, { tick: '5 minutes' }), 120_000);
  assert.equal(tickOf({ tick: false }, { tick: '5 minutes' }), false);
  assert.equal(tickOf(undefined, { tick: false }), false);
  assert.throws(() => tickOf(undefined, { tick: '30s' }), /^ConfigError: custom\.sluice\.tick must be a tick period; received "30s"/);
  assert.throws(
    () => tickOf(undefined, { deadLetterTopic: 'x' }),
    /unknown option custom\.sluice\.deadLetterTopic in serverless\.yml; allowed: tick/,
  );
});

/** A compiled template with one AWS::Lambda::Function per function, as Serverless leaves it. */
function compiled(ids: string[], extra: Template['Resources'] = {}): Template {
  const r: Template['Resources'] = { ...extra };
  for (const id of ids) r[id] = { Type: 'AWS::Lambda::Function', Properties: { Handler: 'h.handler' } };
  return { Resources: r };
}

const fn = (name: string, events: unknown[], handler: typeof sessions, sluice?: Record<string, unknown>) => ({
  options: functionConfig(name, { events, ...(sluice ? { sluice } : {}) }, ctx)!,
  manifest: handler.sluice.manifest,
  stateful: true,
  lambdaLogicalId: `${name[0].toUpperCase()}${name.slice(1)}LambdaFunction`,
  deployedName: `svc-dev-${name}`,
});

test('a function with idle windows gets a rule with the tick input, a permission for that rule only and no retries; others get none', () => {
  const t = compiled(['SessionsLambdaFunction', 'SumsLambdaFunction']);
  applySluice(t, [fn('sessions', msk('clicks'), sessions, { tick: '3 minutes' }), fn('sums', msk('sensor-counts'), sums)]);
  const r = t.Resources;
  assert.deepEqual(
    Object.keys(r).filter((k) => k.includes('Tick')),
    ['SessionsSluiceTickRule', 'SessionsSluiceTickPermission', 'SessionsSluiceTickInvokeConfig'],
  );
  const rule = r.SessionsSluiceTickRule.Properties!;
  assert.equal(rule.ScheduleExpression, 'rate(3 minutes)');
  assert.equal(rule.State, 'ENABLED');
  assert.deepEqual(rule.Targets, [
    {
      Id: 'sluice-tick',
      Arn: { 'Fn::GetAtt': ['SessionsLambdaFunction', 'Arn'] },
      Input: '{"sluice":"tick"}',
      RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
    },
  ]);
  assert.deepEqual(r.SessionsSluiceTickPermission, {
    Type: 'AWS::Lambda::Permission',
    Properties: {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': ['SessionsLambdaFunction', 'Arn'] },
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': ['SessionsSluiceTickRule', 'Arn'] },
    },
  });
  assert.deepEqual(r.SessionsSluiceTickInvokeConfig.Properties, {
    FunctionName: { Ref: 'SessionsLambdaFunction' },
    Qualifier: '$LATEST',
    MaximumRetryAttempts: 0,
    MaximumEventAgeInSeconds: 60,
  });
  // A container that only got ticks asks the cluster for its brokers; a function that never ticks does not need to.
  const env = (id: string) => r[id].Properties!.Environment.Variables;
  assert.equal(env('SessionsLambdaFunction').SLUICE_KAFKA_CLUSTER_ARN, cluster);
  assert.equal(env('SumsLambdaFunction').SLUICE_KAFKA_CLUSTER_ARN, undefined);
  const statements = r.SessionsSluiceRole.Properties!.Policies[0].PolicyDocument.Statement as { Action: string[]; Resource: unknown }[];
  const granted = (action: string) => statements.filter((s) => s.Action.includes(action)).map((s) => s.Resource);
  assert.deepEqual(granted('kafka:GetBootstrapBrokers'), [cluster]);
  assert.deepEqual(granted('kafka-cluster:Connect'), [cluster]);
  // ListOffsets and Metadata are DESCRIBE on the topic: kafka-cluster:DescribeTopic on the source topic.
  assert.ok(granted('kafka-cluster:DescribeTopic').includes(cluster.replace(':cluster/', ':topic/') + '/clicks'));
});

test('tick: false adds no schedule but keeps the brokers reachable; serverless.yml async settings are kept, not duplicated', () => {
  const off = compiled(['SessionsLambdaFunction']);
  applySluice(off, [fn('sessions', msk('clicks'), sessions, { tick: false })]);
  assert.deepEqual(
    Object.keys(off.Resources).filter((k) => k.includes('Tick')),
    [],
  );
  assert.equal(off.Resources.SessionsLambdaFunction.Properties!.Environment.Variables.SLUICE_KAFKA_CLUSTER_ARN, cluster);

  const own = compiled(['SessionsLambdaFunction'], {
    SessionsLambdaEvConf: {
      Type: 'AWS::Lambda::EventInvokeConfig',
      Properties: { FunctionName: { Ref: 'SessionsLambdaFunction' }, Qualifier: '$LATEST', MaximumRetryAttempts: 1 },
    },
  });
  applySluice(own, [fn('sessions', msk('clicks'), sessions)]);
  assert.deepEqual(
    Object.keys(own.Resources).filter((k) => k.includes('Tick')),
    ['SessionsSluiceTickRule', 'SessionsSluiceTickPermission'],
  );
  assert.equal(own.Resources.SessionsLambdaEvConf.Properties!.MaximumRetryAttempts, 1);
});

test("a self-managed event's bootstrap servers become SLUICE_KAFKA_BROKERS (joined at deploy time when one is an intrinsic)", () => {
  const t = compiled(['SessionsLambdaFunction', 'SumsLambdaFunction']);
  const kafka = (topic: string, bootstrapServers: unknown[]) => [{ kafka: { topic, bootstrapServers } }];
  applySluice(t, [
    fn('sessions', kafka('clicks', ['b1:9092', 'b2:9092']), sessions),
    fn('sums', kafka('sensor-counts', ['b1:9092', { 'Fn::ImportValue': 'broker2' }]), sums),
  ]);
  const env = (id: string) => t.Resources[id].Properties!.Environment.Variables;
  assert.equal(env('SessionsLambdaFunction').SLUICE_KAFKA_BROKERS, 'b1:9092,b2:9092');
  assert.deepEqual(env('SumsLambdaFunction').SLUICE_KAFKA_BROKERS, { 'Fn::Join': [',', ['b1:9092', { 'Fn::ImportValue': 'broker2' }]] });
  assert.equal(env('SessionsLambdaFunction').SLUICE_KAFKA_CLUSTER_ARN, undefined);
});

test('a tick event with a "now" that is not epoch milliseconds is refused, naming the field', async () => {
  await assert.rejects(
    () => sessions({ sluice: 'tick', now: '2026-12-05' } as never, undefined as never),
    /the tick event's "now" must be epoch milliseconds \(a whole number\), or absent for the clock; received "2026-12-05"/,
  );
});

test('a tick event with a "now" further ahead of the wall clock than maxClockSkew is refused: floors never move back', async () => {
  await assert.rejects(
    () => sessions({ sluice: 'tick', now: Date.now() + 2 * 3_600_000 } as never, undefined as never),
    /the tick event's "now" \(.*\) is further ahead of the wall clock than maxClockSkew allows event times/,
  );
});
