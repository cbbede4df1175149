// The one model of a function's configuration: the `sluice:` schema the plugin registers with
// Serverless and the checks the plugin and the emulator run agree; the defaults are Sluice's.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import fc from 'fast-check';
import { ConfigError } from 'sluice';
import {
  defaultConsumerGroupId,
  defaultDeadLetterTopic,
  deployedGuarantee,
  type FunctionDeclaration,
  functionConfig,
  onFailureTopic,
} from '../../framework/src/config/function-config.js';
import { GUARANTEES } from '../../framework/src/define/guarantee.js';
import { esmConfig } from '../../framework/src/config/event-source-mapping.js';
import { declarationOf } from '../../framework/src/config/serverless-yml.js';
import { readSluiceOptions, SLUICE_FUNCTION_OPTIONS, SLUICE_OPTIONS_SCHEMA } from '../../framework/src/config/sluice-options.js';

const require = createRequire(import.meta.url);
// Serverless's own validator, compiled as Serverless compiles plugin schemas (strict mode).
const Ajv = require(require.resolve('ajv', { paths: [require.resolve('serverless/package.json')] })).default;
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
const schemaAccepts = ajv.compile(SLUICE_OPTIONS_SCHEMA) as (x: unknown) => boolean;

const ctx = { service: 'svc', stage: 'dev' };
const withBlock = (sluice: Record<string, unknown>): FunctionDeclaration => ({ events: [{ kafka: { topic: 'in' } }], sluice });
const tsAccepts = (sluice: Record<string, unknown>): boolean => {
  try {
    functionConfig('fn', withBlock(sluice), ctx);
    return true;
  } catch (e) {
    assert.ok(e instanceof ConfigError, `a ConfigError, not ${String(e)}`);
    return false;
  }
};

test('the plugin registers the schema that the checks take their ranges from, not a copy', () => {
  const Plugin = require('../../framework/serverless/index.cjs');
  const registered: unknown[] = [];
  new Plugin(
    {
      configSchemaHandler: {
        defineFunctionProperties: (provider: string, s: { properties: { sluice: unknown } }) =>
          registered.push([provider, s.properties.sluice]),
      },
    },
    {},
  );
  assert.deepEqual(registered, [['aws', SLUICE_OPTIONS_SCHEMA]]);
  assert.equal((registered[0] as unknown[])[1], SLUICE_OPTIONS_SCHEMA, 'the same object: one file, required by both');
  assert.deepEqual(SLUICE_FUNCTION_OPTIONS, Object.keys(SLUICE_OPTIONS_SCHEMA.properties));
});

test("messages quote the schema's ranges", () => {
  const { maximumRetryAttempts: r, provisionedPollers: p } = SLUICE_OPTIONS_SCHEMA.properties;
  assert.throws(
    () => readSluiceOptions('functions.fn', { maximumRetryAttempts: 'x' }),
    new RegExp(`from ${r.minimum} \\(forever\\) to ${r.maximum}`),
  );
  assert.throws(
    () => readSluiceOptions('functions.fn', { provisionedPollers: { maximum: 0 } }),
    new RegExp(
      `minimum: ${p.properties.minimum.minimum}-${p.properties.minimum.maximum}, maximum: minimum-${p.properties.maximum.maximum}`,
    ),
  );
  assert.throws(
    () => readSluiceOptions('functions.fn', { pollers: 1 }),
    /allowed: maximumRetryAttempts, deadLetterTopic, onFailure, provisionedPollers, tick, guarantee\./,
  );
});

/** The rules of the `sluice:` block that a JSON schema cannot state; the checks add them to the schema's. */
function beyondSchema(b: Record<string, unknown>): boolean {
  const p = b.provisionedPollers as { minimum?: number; maximum: number } | undefined;
  if (p && p.maximum < (p.minimum ?? 1)) return false;
  if (!p && (b.maximumRetryAttempts !== undefined || b.onFailure !== undefined)) return false;
  return b.onFailure === undefined || /^(kafka:\/\/[a-zA-Z0-9._-]{1,249}|arn:aws[a-zA-Z-]*:(sqs|s3|sns):.+)$/.test(b.onFailure as string);
}

test('the checks and the schema agree: what the schema refuses is refused, and what it accepts is accepted unless a rule beyond it says no', () => {
  const anyValue = fc.oneof(
    fc.integer({ min: -3, max: 12_000 }),
    fc.double(),
    fc.constantFrom('', 'dlq', 'kafka://failed', 'arn:aws:sqs:us-east-1:1:q', 'sqs://nope'),
    fc.constant(null),
    fc.boolean(),
  );
  // Mostly plausible values, so that both sides of every range and rule are reached.
  const mostly = <T>(plausible: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: plausible }, { weight: 1, arbitrary: anyValue });
  const known = fc.record(
    {
      maximumRetryAttempts: mostly(fc.integer({ min: -2, max: 10_001 })),
      deadLetterTopic: mostly(fc.constantFrom('dlq', 'orders.fn.dlq')),
      onFailure: mostly(
        fc.constantFrom(
          'kafka://failed',
          'kafka://',
          'arn:aws:sqs:us-east-1:1:q',
          'arn:aws:s3:::bucket',
          'arn:aws:lambda:us-east-1:1:function:f',
          'sqs://nope',
        ),
      ),
      provisionedPollers: mostly(
        fc.oneof(
          fc.record(
            { minimum: fc.integer({ min: 0, max: 201 }), maximum: fc.integer({ min: 0, max: 2_001 }) },
            { requiredKeys: ['maximum'] },
          ),
          fc.record({ minimum: anyValue, maximum: anyValue, extra: anyValue }, { requiredKeys: [] }),
        ),
      ),
      guarantee: mostly(fc.constantFrom('exactly-once', 'at-least-once', 'exactly_once', 'Exactly-Once')),
    },
    { requiredKeys: [] },
  );
  const block = fc
    .tuple(known, fc.integer({ min: 0, max: 9 }), anyValue)
    .map(([b, n, v]): Record<string, unknown> => (n === 0 ? { ...b, unknownOption: v } : b));
  fc.assert(
    fc.property(block, (b) => {
      const schema = schemaAccepts(b);
      const ts = tsAccepts(b);
      if (!schema) assert.equal(ts, false, `the schema refuses ${JSON.stringify(b)}, the checks accept it`);
      else assert.equal(ts, beyondSchema(b), `the schema accepts ${JSON.stringify(b)}; the checks ${ts ? 'accept' : 'refuse'} it`);
    }),
    { numRuns: 2_000 },
  );
});

test("Sluice's defaults: consumer group, dead-letter topic, and a kafka:// on-failure destination by default", () => {
  assert.equal(defaultConsumerGroupId('shop', 'qa', 'orders'), 'sluice-shop-qa-orders');
  assert.equal(defaultDeadLetterTopic('orders', 'totals'), 'orders.totals.dlq');
  assert.equal(onFailureTopic('kafka://failed'), 'failed');
  assert.equal(onFailureTopic('arn:aws:sqs:us-east-1:123456789012:q'), undefined);
  assert.equal(onFailureTopic(undefined), undefined);
  const fn = functionConfig(
    'totals',
    { events: [{ msk: { arn: 'arn', topic: 'orders' } }], sluice: { provisionedPollers: { maximum: 2 } } },
    { service: 'shop', stage: 'qa' },
  )!;
  assert.deepEqual(fn, {
    name: 'totals',
    kind: 'msk',
    topic: 'orders',
    consumerGroupId: 'sluice-shop-qa-totals',
    clusterArn: 'arn',
    vpc: false,
    auth: 'iam',
    tls: true,
    deadLetterTopic: 'orders.totals.dlq',
    onFailure: 'kafka://orders.totals.dlq',
    provisionedPollers: { minimum: 1, maximum: 2 },
    tickMs: 60_000,
  });
});

test('a function without a Kafka event is not a Sluice function, unless it has a sluice: block', () => {
  assert.equal(functionConfig('web', { events: [{ http: { path: '/' } }] }, ctx), undefined);
  assert.throws(
    () => functionConfig('web', { events: [], sluice: {} }, ctx),
    /functions\.web has a sluice: block but no msk or kafka event/,
  );
  assert.throws(
    () => functionConfig('two', { events: [{ msk: { topic: 'a' } }, { kafka: { topic: 'b' } }] }, ctx),
    /functions\.two has 2 Kafka events/,
  );
});

test('an emulator entry reads as the same declaration Serverless hands the plugin', () => {
  assert.deepEqual(declarationOf({ event: { topic: 'in' }, eventKind: 'kafka', sluice: { deadLetterTopic: 'd' } }), {
    events: [{ kafka: { topic: 'in' } }],
    sluice: { deadLetterTopic: 'd' },
  });
  assert.deepEqual(declarationOf({ event: { topic: 'in' } }), { events: [{ msk: { topic: 'in' } }] });
  assert.deepEqual(declarationOf({}), { events: [] });
});

test("guarantee: the schema lists exactly the runtime's guarantees; a bad value names the option, the value and the choices", () => {
  assert.deepEqual(SLUICE_OPTIONS_SCHEMA.properties.guarantee.enum, GUARANTEES);
  const config = (sluice: Record<string, unknown> | undefined, defaults?: Record<string, unknown>) =>
    functionConfig(
      'orders',
      { events: [{ kafka: { topic: 'in' } }], ...(sluice ? { sluice } : {}) },
      { ...ctx, ...(defaults ? { defaults } : {}) },
    )!;
  assert.deepEqual(config({ guarantee: 'exactly-once' }).guarantee, {
    value: 'exactly-once',
    option: 'functions.orders.sluice.guarantee',
    serviceDefault: false,
  });
  assert.deepEqual(config(undefined, { guarantee: 'exactly-once' }).guarantee, {
    value: 'exactly-once',
    option: 'custom.sluice.guarantee',
    serviceDefault: true,
  });
  assert.deepEqual(config({ guarantee: 'at-least-once' }, { guarantee: 'exactly-once' }).guarantee?.value, 'at-least-once');
  assert.equal(config(undefined).guarantee, undefined, 'nothing set: nothing recorded, so the source decides');
  for (const [sluice, defaults, option] of [
    [{ guarantee: 'exactly_once' }, undefined, 'functions.orders.sluice.guarantee'],
    [{ guarantee: true }, undefined, 'functions.orders.sluice.guarantee'],
    [undefined, { guarantee: 'once' }, 'custom.sluice.guarantee'],
  ] as const) {
    assert.throws(
      () => config(sluice, defaults),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message.startsWith(
          `${option} must be one of 'at-least-once' or 'exactly-once'; received ${JSON.stringify((sluice ?? defaults)!.guarantee)}.`,
        ),
      JSON.stringify([sluice, defaults]),
    );
  }
});

test("the deployed guarantee: the function's option, else the source's, else the service's default, else at-least-once; two explicit choices must agree", () => {
  const fn = (value?: 'exactly-once' | 'at-least-once', serviceDefault = false) => ({
    name: 'orders',
    ...(value
      ? { guarantee: { value, option: serviceDefault ? 'custom.sluice.guarantee' : 'functions.orders.sluice.guarantee', serviceDefault } }
      : {}),
  });
  assert.equal(deployedGuarantee(fn(), undefined), 'at-least-once');
  assert.equal(deployedGuarantee(fn(), 'exactly-once'), 'exactly-once');
  assert.equal(deployedGuarantee(fn('exactly-once'), undefined), 'exactly-once');
  assert.equal(deployedGuarantee(fn('exactly-once'), 'exactly-once'), 'exactly-once');
  assert.equal(deployedGuarantee(fn('exactly-once', true), undefined), 'exactly-once');
  assert.equal(deployedGuarantee(fn('exactly-once', true), 'at-least-once'), 'at-least-once', 'a service default yields to the source');
  assert.equal(deployedGuarantee(fn('at-least-once', true), 'exactly-once'), 'exactly-once');
  for (const [yml, source] of [
    ['at-least-once', 'exactly-once'],
    ['exactly-once', 'at-least-once'],
  ] as const) {
    assert.throws(
      () => deployedGuarantee(fn(yml), source),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.message ===
          `function "orders": functions.orders.sluice.guarantee is '${yml}' in serverless.yml but its handler's source sets guarantee '${source}'; ` +
            'make them the same, or remove one of the two (either is enough).',
    );
  }
});

test('custom.sluice as the plugin registers it: the tick and the guarantee, with the schemas of the function options', () => {
  const Plugin = require('../../framework/serverless/index.cjs');
  const custom: { properties: { sluice: { properties: Record<string, unknown>; additionalProperties: boolean } } }[] = [];
  new Plugin(
    { configSchemaHandler: { defineFunctionProperties: () => {}, defineCustomProperties: (s: (typeof custom)[number]) => custom.push(s) } },
    {},
  );
  const { properties, additionalProperties } = custom[0].properties.sluice;
  assert.deepEqual(Object.keys(properties), ['tick', 'guarantee']);
  assert.equal(properties.guarantee, SLUICE_OPTIONS_SCHEMA.properties.guarantee);
  assert.equal(additionalProperties, false);
});

test("the emulator's mapping carries the function's guarantee option, for deployedGuarantee to settle with the source's", () => {
  const entry = { name: 'orders', file: 'h.ts', exportName: 'handler', event: { topic: 'in' }, eventKind: 'kafka' as const };
  assert.deepEqual(esmConfig({ ...entry, sluice: { guarantee: 'exactly-once' } }, 'svc').guarantee, {
    value: 'exactly-once',
    option: 'functions.orders.sluice.guarantee',
    serviceDefault: false,
  });
  assert.equal(esmConfig(entry, 'svc').guarantee, undefined);
  assert.throws(() => esmConfig({ ...entry, sluice: { guarantee: 'once' } }, 'svc'), /functions\.orders\.sluice\.guarantee must be one of/);
});
