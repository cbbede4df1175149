/**
 * Deploying the exactly-once guarantee: the environment the plugin writes (SLUICE_GUARANTEE,
 * SLUICE_TRANSACTION_TIMEOUT_MS) and the MSK IAM statements for the function's transactional ids
 * and published group, on templates built in memory and on `sls package` of a small project
 * (test/fixtures/exactly-once-project), checked by cfn-lint.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from 'sluice';
import { functionConfig } from '../../framework/src/config/function-config.js';
import { KAFKA_MAX_TRANSACTION_TIMEOUT_MS, transactionTimeoutMs } from '../../framework/src/config/limits.js';
import type { Manifest } from '../../framework/src/define/manifest.js';
import { publishedGroup, transactionalId } from '../../framework/src/io/transactions.js';
import { applySluice, everyPartition, type Template } from '../../framework/src/serverless/template.js';
import { handler as eosCopy } from '../fixtures/exactly-once-project/functions/eos-copy/handler.js';
import { handler as eosTotals } from '../fixtures/exactly-once-project/functions/eos-totals/handler.js';

const root = path.resolve(import.meta.dirname, '../..');
const uuid = '00000000-0000-0000-0000-000000000000-1';
const cluster = `arn:aws:kafka:us-east-1:123456789012:cluster/demo/${uuid}`;
const ctx = { service: 'svc', stage: 'dev' };

type Statement = { Effect: string; Action: string[]; Resource: unknown };
type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;
const TXN_ACTIONS = ['kafka-cluster:DescribeTransactionalId', 'kafka-cluster:AlterTransactionalId'];

/** An IAM resource pattern as a regular expression (`*` any run of characters, `?` one). */
const iamPattern = (p: string) =>
  new RegExp(
    `^${p
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );

/** The compiled template and role statements of one function, built in memory as the plugin would. */
function deploy(
  opts: { events: unknown[]; sluice?: Record<string, unknown>; defaults?: Record<string, unknown> },
  manifest: Manifest,
  timeout?: number,
) {
  const name = 'orders';
  const options = functionConfig(
    name,
    { events: opts.events, ...(opts.sluice ? { sluice: opts.sluice } : {}) },
    {
      ...ctx,
      ...(opts.defaults ? { defaults: opts.defaults } : {}),
    },
  )!;
  const template: Template = {
    Resources: {
      OrdersLambdaFunction: {
        Type: 'AWS::Lambda::Function',
        Properties: { Handler: 'h.handler', ...(timeout ? { Timeout: timeout } : {}) },
      },
    },
  };
  applySluice(template, [{ options, manifest, stateful: false, lambdaLogicalId: 'OrdersLambdaFunction', deployedName: 'svc-dev-orders' }]);
  const r = template.Resources;
  return {
    env: r.OrdersLambdaFunction.Properties!.Environment.Variables as Record<string, unknown>,
    statements: r.OrdersSluiceRole.Properties!.Policies[0].PolicyDocument.Statement as Statement[],
  };
}

const msk = (topic: string, arn: unknown = cluster) => [{ msk: { arn, topic } }];
const silent = eosCopy.sluice.manifest; // its source says nothing about the guarantee
const saysExactlyOnce = eosTotals.sluice.manifest;

describe('the exactly-once deployment, in memory', () => {
  test('an exactly-once MSK function: SLUICE_GUARANTEE, the transaction timeout, and IAM on exactly its transactional ids and published group', () => {
    const { env, statements } = deploy({ events: msk('eos-clicks'), sluice: { guarantee: 'exactly-once' } }, silent, 30);
    assert.equal(env.SLUICE_GUARANTEE, 'exactly-once');
    assert.equal(env.SLUICE_TRANSACTION_TIMEOUT_MS, '40000', 'the function timeout (30 s) plus 10 s');
    const txn = statements.filter((s) => s.Action.some((a) => TXN_ACTIONS.includes(a)));
    assert.deepEqual(txn, [
      {
        Effect: 'Allow',
        Action: TXN_ACTIONS,
        Resource: `arn:aws:kafka:us-east-1:123456789012:transactional-id/demo/${uuid}/sluice-svc-dev-orders.eos-clicks-*`,
      },
    ]);
    const groups = statements.filter((s) => s.Action.includes('kafka-cluster:AlterGroup')).map((s) => s.Resource);
    assert.deepEqual(groups, [
      `arn:aws:kafka:us-east-1:123456789012:group/demo/${uuid}/sluice-svc-dev-orders`,
      `arn:aws:kafka:us-east-1:123456789012:group/demo/${uuid}/sluice-svc-dev-orders.published`,
    ]);
    assert.deepEqual(statements.find((s) => s.Resource === groups[1])!.Action, ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup']);
    // The pattern covers the ids the runtime claims (function name = AWS_LAMBDA_FUNCTION_NAME), and no other function's.
    const ids = iamPattern((txn[0].Resource as string).split(`/${uuid}/`)[1]);
    for (const p of [0, 7, 127]) assert.match(transactionalId('svc-dev-orders', 'eos-clicks', p), ids);
    assert.doesNotMatch(transactionalId('svc-dev-orders2', 'eos-clicks', 0), ids);
    assert.doesNotMatch(transactionalId('svc-dev-orders', 'eos-clicks2', 0), ids);
    // Function "svc-dev-orders-eos" reading "clicks" is another function: not covered.
    assert.doesNotMatch(transactionalId('svc-dev-orders-eos', 'clicks', 0), ids);
    assert.equal(groups[1], `${cluster.replace(':cluster/', ':group/')}/${publishedGroup('svc-dev-orders')}`);
    // Transactions need idempotent writes, which every MSK function has already.
    assert.ok(statements.some((s) => s.Action.includes('kafka-cluster:WriteDataIdempotently') && s.Resource === cluster));
  });

  test("the source's guarantee alone is enough; the timeout is Serverless's default (6 s) when the template has none", () => {
    const { env, statements } = deploy({ events: msk('eos-orders') }, saysExactlyOnce);
    assert.equal(env.SLUICE_GUARANTEE, 'exactly-once');
    assert.equal(env.SLUICE_TRANSACTION_TIMEOUT_MS, '16000');
    assert.deepEqual(
      statements.filter((s) => s.Action.includes('kafka-cluster:AlterTransactionalId')).map((s) => s.Resource),
      [`arn:aws:kafka:us-east-1:123456789012:transactional-id/demo/${uuid}/sluice-svc-dev-orders.eos-orders-*`],
    );
  });

  test('an at-least-once function: SLUICE_GUARANTEE says so, no transaction timeout, no transactional or published-group statements', () => {
    for (const [opts, manifest] of [
      [{ events: msk('eos-clicks') }, silent],
      [{ events: msk('eos-clicks'), sluice: { guarantee: 'at-least-once' } }, silent],
      [{ events: msk('eos-orders'), defaults: { guarantee: 'exactly-once' }, sluice: { guarantee: 'at-least-once' } }, silent],
    ] as const) {
      const { env, statements } = deploy(opts, manifest, 30);
      assert.equal(env.SLUICE_GUARANTEE, 'at-least-once', JSON.stringify(opts));
      assert.equal(env.SLUICE_TRANSACTION_TIMEOUT_MS, undefined);
      const text = JSON.stringify(statements);
      assert.ok(!text.includes('TransactionalId') && !text.includes('transactional-id'), text);
      assert.ok(!text.includes('.published'), text);
    }
  });

  test('the service default (custom.sluice.guarantee) applies where neither the function nor its source says', () => {
    assert.equal(
      deploy({ events: msk('eos-clicks'), defaults: { guarantee: 'exactly-once' } }, silent).env.SLUICE_GUARANTEE,
      'exactly-once',
    );
    assert.equal(
      deploy({ events: msk('eos-orders'), defaults: { guarantee: 'at-least-once' } }, saysExactlyOnce).env.SLUICE_GUARANTEE,
      'exactly-once',
    );
  });

  test("the transaction timeout: function timeout + 10 s, capped at Kafka's default transaction.max.timeout.ms (15 min)", () => {
    assert.equal(KAFKA_MAX_TRANSACTION_TIMEOUT_MS, 900_000);
    assert.deepEqual(
      [1, 6, 60, 889, 890, 891, 900].map(transactionTimeoutMs),
      [11_000, 16_000, 70_000, 899_000, 900_000, 900_000, 900_000],
    );
    const env = deploy({ events: msk('eos-orders') }, saysExactlyOnce, 900).env;
    assert.equal(env.SLUICE_TRANSACTION_TIMEOUT_MS, '900000');
  });

  test('a cluster ARN given as an intrinsic: the transactional-id and group ARNs are built at deploy time', () => {
    const { statements } = deploy({ events: msk('eos-orders', { Ref: 'Cluster' }) }, saysExactlyOnce);
    const split = { 'Fn::Split': [':cluster/', { Ref: 'Cluster' }] };
    const join = (kind: string, name: string) => ({
      'Fn::Join': ['', [{ 'Fn::Select': [0, split] }, `:${kind}/`, { 'Fn::Select': [1, split] }, `/${name}`]],
    });
    assert.deepEqual(
      statements.find((s) => s.Action.includes('kafka-cluster:AlterTransactionalId'))!.Resource,
      join('transactional-id', 'sluice-svc-dev-orders.eos-orders-*'),
    );
    assert.ok(statements.some((s) => JSON.stringify(s.Resource) === JSON.stringify(join('group', 'sluice-svc-dev-orders.published'))));
  });

  test('a self-managed Kafka function (SCRAM or no auth): the environment only, no kafka-cluster IAM', () => {
    const events = [
      {
        kafka: {
          topic: 'eos-clicks',
          bootstrapServers: ['b-1:9096'],
          accessConfigurations: { saslScram512Auth: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:s' },
        },
      },
    ];
    const { env, statements } = deploy({ events, sluice: { guarantee: 'exactly-once' } }, silent, 30);
    assert.equal(env.SLUICE_GUARANTEE, 'exactly-once');
    assert.equal(env.SLUICE_TRANSACTION_TIMEOUT_MS, '40000');
    assert.equal(env.SLUICE_KAFKA_AUTH, 'scram');
    assert.ok(!statements.some((s) => s.Action.some((a) => a.startsWith('kafka-cluster:'))), JSON.stringify(statements));
  });

  test("a function option that contradicts the source's fails, naming both values and the fix", () => {
    assert.throws(
      () => deploy({ events: msk('eos-orders'), sluice: { guarantee: 'at-least-once' } }, saysExactlyOnce),
      (e: unknown) =>
        e instanceof ConfigError &&
        /^function "orders": functions\.orders\.sluice\.guarantee is 'at-least-once' in serverless\.yml but its handler's source sets guarantee 'exactly-once'; make them the same/.test(
          e.message,
        ),
    );
  });

  test("the IAM pattern of the transactional ids is the runtime's id with the partition as the only wildcard", () => {
    assert.equal(everyPartition('shop-prod-orders', 'orders'), 'sluice-shop-prod-orders.orders-*');
    assert.equal(everyPartition('f', 'a.b_c-d'), `${transactionalId('f', 'a.b_c-d', 12).slice(0, -2)}*`);
  });
});

/** Runs the Serverless CLI with no AWS credentials and no telemetry. */
function sls(cwd: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SDK_LOAD_CONFIG']) delete env[k];
  const r = spawnSync(process.execPath, [path.join(root, 'node_modules/serverless/bin/serverless.js'), ...args], {
    cwd,
    env,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('sls package: an exactly-once project on MSK with IAM', () => {
  const project = path.join(root, 'test/fixtures/exactly-once-project');
  const templateFile = path.join(project, '.serverless/cloudformation-template-update-stack.json');
  let packaged: { code: number | null; out: string };
  before(() => {
    rmSync(path.join(project, '.serverless'), { recursive: true, force: true });
    packaged = sls(project, 'package');
  });

  test('the environment: each function its deployed guarantee; exactly-once ones their transaction timeout', () => {
    assert.equal(packaged.code, 0, packaged.out);
    const r = JSON.parse(readFileSync(templateFile, 'utf8')).Resources as Resources;
    const fn = (id: string) => r[id].Properties;
    assert.deepEqual(
      ['EosDashtotalsLambdaFunction', 'EosDashcopyLambdaFunction', 'AloDashcopyLambdaFunction'].map((id) => [
        fn(id).FunctionName,
        fn(id).Timeout,
        fn(id).Environment.Variables.SLUICE_GUARANTEE,
        fn(id).Environment.Variables.SLUICE_TRANSACTION_TIMEOUT_MS,
      ]),
      [
        ['sluice-eos-dev-eos-totals', 60, 'exactly-once', '70000'],
        ['sluice-eos-dev-eos-copy', 20, 'exactly-once', '30000'],
        ['sluice-eos-dev-alo-copy', 20, 'at-least-once', undefined],
      ],
    );
  });

  test('IAM: transactional ids and the published group of each exactly-once function, named after its deployed name; the only wildcard the partition', () => {
    const r = JSON.parse(readFileSync(templateFile, 'utf8')).Resources as Resources;
    const statements = (id: string) => r[id].Properties.Policies[0].PolicyDocument.Statement as Statement[];
    const arn = (kind: string, name: string) =>
      `arn:aws:kafka:us-east-1:123456789012:${kind}/eos-demo/11111111-2222-3333-4444-555555555555-1/${name}`;
    for (const [role, fn, topic] of [
      ['EosDashtotalsSluiceRole', 'sluice-eos-dev-eos-totals', 'eos-orders'],
      ['EosDashcopySluiceRole', 'sluice-eos-dev-eos-copy', 'eos-clicks'],
    ]) {
      const s = statements(role);
      assert.deepEqual(
        s.filter((x) => x.Action.some((a) => TXN_ACTIONS.includes(a))),
        [{ Effect: 'Allow', Action: TXN_ACTIONS, Resource: arn('transactional-id', `sluice-${fn}.${topic}-*`) }],
        role,
      );
      assert.ok(
        s.some(
          (x) =>
            x.Resource === arn('group', publishedGroup(fn)) && x.Action.join() === 'kafka-cluster:DescribeGroup,kafka-cluster:AlterGroup',
        ),
        role,
      );
      assert.match(transactionalId(fn, topic, 3), iamPattern(`sluice-${fn}.${topic}-*`));
    }
    const alo = JSON.stringify(statements('AloDashcopySluiceRole'));
    assert.ok(!alo.includes('TransactionalId') && !alo.includes('.published'), alo);
    for (const [id, res] of Object.entries(r).filter(([, x]) => x.Type === 'AWS::IAM::Role')) {
      for (const s of res.Properties.Policies[0].PolicyDocument.Statement as Statement[]) {
        if (!s.Action.some((a) => a.startsWith('kafka-cluster:'))) continue;
        for (const resource of [s.Resource].flat() as string[]) {
          const stars = resource.split('*').length - 1;
          const allowed = resource.includes(':transactional-id/') && resource.endsWith('-*') ? 1 : 0;
          assert.equal(stars, allowed, `${id}: ${resource}`);
        }
      }
    }
  });

  test('cfn-lint finds no errors or warnings in the template', (t) => {
    assert.equal(packaged.code, 0, packaged.out);
    const bin = process.env.SLUICE_PYTHON_BIN ? path.join(process.env.SLUICE_PYTHON_BIN, 'cfn-lint') : undefined;
    if (!bin || !existsSync(bin)) {
      if (process.env.SLUICE_REQUIRE_INFRA) assert.fail('cfn-lint is required: npm run test:all installs it (scripts/python-tools.sh)');
      t.skip('cfn-lint not installed (npm run test:all installs it)');
      return;
    }
    const r = spawnSync(bin, ['--regions', 'us-east-1', '--', templateFile], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });
});

describe("sls package: a guarantee that contradicts the handler's fails at package time", () => {
  const dir = path.join(root, 'test/fixtures', `.tmp-eos-${process.pid}`);
  before(() => {
    mkdirSync(path.join(dir, 'functions'), { recursive: true });
    cpSync(path.join(root, 'test/fixtures/exactly-once-project/functions/eos-totals/handler.ts'), path.join(dir, 'functions/totals.ts'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the source says exactly-once, serverless.yml at-least-once: both values and the fix', () => {
    writeFileSync(
      path.join(dir, 'serverless.yml'),
      [
        'service: eos-bad',
        "frameworkVersion: '3'",
        'plugins: [sluice/serverless]',
        'provider: { name: aws, runtime: nodejs22.x }',
        'functions:',
        '  totals: { handler: functions/totals.handler, sluice: { guarantee: at-least-once }, events: [{ msk: { arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/u", topic: eos-orders } }] }',
      ].join('\n'),
    );
    const r = sls(dir, 'package');
    assert.notEqual(r.code, 0, r.out);
    assert.match(
      r.out,
      /function "totals": functions\.totals\.sluice\.guarantee is 'at-least-once' in serverless\.yml but its handler's source sets guarantee 'exactly-once'; make them the same, or remove one of the two/,
    );
  });
});
