/**
 * `sls package` through the Sluice plugin, offline: the artifacts, the CloudFormation template
 * (checked by cfn-lint), and each zip run from an empty directory by a clean Node process.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { unzipTo } from '../../framework/src/build/zip.js';
import { brokers, freshTopics, groupOffsets, kafkaAvailability, kafkaClient, readUntil } from '../support/kafka.js';
import { runFunction, toKafkaEvents } from '../../framework/src/testing/index.js';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import { type RieHandle, selectRie, startRie } from '../../scripts/rie/rie.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';
import { protoModel } from '../model/proto.js';

const root = path.resolve(import.meta.dirname, '../..');
// Checked before any suite starts: the suites below block the event loop while sls runs.
const kafkaAvailable = await kafkaAvailability();
const dynamodbAvailable = await dynamodbAvailability();
const tickAvailable = kafkaAvailable.skip ? kafkaAvailable : dynamodbAvailable;
const slsBin = path.join(root, 'node_modules/serverless/bin/serverless.js');
const examples = ['sensor-sums', 'speed-average', 'fast-vehicles', 'sessions', 'transport-mode'];

/** Runs the Serverless CLI with no AWS credentials and no telemetry. */
function sls(cwd: string, ...args: string[]) {
  const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SDK_LOAD_CONFIG']) delete env[k];
  const r = spawnSync(process.execPath, [slsBin, ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

type Resources = Record<string, { Type: string; Properties: Record<string, any>; DependsOn?: string[]; DeletionPolicy?: string }>;
const template = (dir: string): { Resources: Resources } =>
  JSON.parse(readFileSync(path.join(dir, '.serverless/cloudformation-template-update-stack.json'), 'utf8'));

/** An event in the shape of AWS's sample MSK event (test/fixtures/events/msk-event.json), with our records. */
function mskEvent(topic: string, values: { key: string; value: unknown; timestamp: number }[], bootstrapServers?: string) {
  const sample = JSON.parse(readFileSync(path.join(root, 'test/fixtures/events/msk-event.json'), 'utf8'));
  const [first] = Object.values(sample.records as Record<string, any[]>)[0];
  const records = values.map((v, i) => ({
    ...first,
    topic,
    partition: 0,
    offset: 100 + i,
    timestamp: v.timestamp,
    key: Buffer.from(v.key).toString('base64'),
    value: Buffer.from(JSON.stringify(v.value)).toString('base64'),
  }));
  return { ...sample, ...(bootstrapServers ? { bootstrapServers } : {}), records: { [`${topic}-0`]: records } };
}

/** Unzips an artifact into an empty directory outside the repository and invokes its handler with a clean Node process. */
async function runArtifact(zip: string, handlerFile: string, event: unknown, env: Record<string, string> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-artifact-'));
  try {
    const files = await unzipTo(zip, dir);
    writeFileSync(path.join(dir, 'event.json'), JSON.stringify(event));
    writeFileSync(
      path.join(dir, 'invoke.mjs'),
      [
        `import { readFileSync } from 'node:fs';`,
        `const { handler } = await import('./${handlerFile}');`,
        `const context = { functionName: 'f', awsRequestId: 'r1', getRemainingTimeInMillis: () => 30000 };`,
        `const response = await handler(JSON.parse(readFileSync('event.json', 'utf8')), context);`,
        `console.log(JSON.stringify({ response }));`,
        `process.exit(0);`,
      ].join('\n'),
    );
    const r = spawnSync(process.execPath, ['invoke.mjs'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    const lines = r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    return {
      code: r.status,
      stderr: r.stderr,
      files,
      lines,
      response: lines.find((l) => 'response' in l)?.response,
      outputs: lines.filter((l) => l.sluice === 'output'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('sls package: the example service', () => {
  let packaged: { code: number | null; out: string };
  before(() => {
    rmSync(path.join(root, '.serverless'), { recursive: true, force: true });
    packaged = sls(root, 'package');
  });

  test('works offline, without AWS credentials, one zip per function holding only that function', async () => {
    assert.equal(packaged.code, 0, packaged.out);
    for (const fn of examples) {
      const dir = mkdtempSync(path.join(tmpdir(), 'sluice-zip-'));
      const files = await unzipTo(path.join(root, `.serverless/sluice-${fn}.zip`), dir);
      rmSync(dir, { recursive: true, force: true });
      assert.ok(files.includes(`functions/${fn}/handler.mjs`), `${fn}: ${files.join(', ')}`);
      assert.ok(files.includes(`functions/${fn}/handler.mjs.map`), `${fn}: a source map for its own code`);
      for (const other of examples.filter((o) => o !== fn))
        assert.ok(!files.some((f) => f.includes(`functions/${other}/`)), `${fn} holds ${other}`);
      assert.ok(!files.some((f) => f.includes('node_modules') || f.endsWith('.ts')), `${fn}: ${files.join(', ')}`);
    }
  });

  test('the template: each mapping from its msk event, partial batch responses with provisioned pollers only, a state table, the runtime environment', () => {
    const r = template(root).Resources;
    const mappings = Object.values(r).filter((x) => x.Type === 'AWS::Lambda::EventSourceMapping');
    assert.equal(mappings.length, 5);
    const sums = mappings.find((m) => m.Properties.Topics[0] === 'sensor-counts')!;
    assert.deepEqual(sums.Properties.FunctionResponseTypes, ['ReportBatchItemFailures']);
    assert.deepEqual(sums.Properties.ProvisionedPollerConfig, { MinimumPollers: 1, MaximumPollers: 2 });
    assert.equal(sums.Properties.MaximumRetryAttempts, 3);
    assert.deepEqual(sums.Properties.DestinationConfig, { OnFailure: { Destination: 'kafka://sensor-counts-dlq' } });
    assert.equal(sums.Properties.AmazonManagedKafkaEventSourceConfig.ConsumerGroupId, 'sluice-sluice-examples-dev-sensor-sums');
    for (const m of mappings.filter((x) => x !== sums)) {
      assert.equal(m.Properties.FunctionResponseTypes, undefined, 'on-demand pollers: no partial batch responses');
      assert.equal(m.Properties.DestinationConfig, undefined);
    }
    const table = r.SluiceStateTable;
    assert.equal(table.Type, 'AWS::DynamoDB::Table');
    assert.equal(table.Properties.BillingMode, 'PAY_PER_REQUEST');
    assert.deepEqual(table.Properties.TimeToLiveSpecification, { AttributeName: 'ttl', Enabled: true });
    assert.deepEqual(table.Properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    assert.deepEqual(table.Properties.SSESpecification, { SSEEnabled: true });
    assert.equal(table.DeletionPolicy, 'Retain');
    const env = (id: string) => r[id].Properties.Environment.Variables;
    assert.deepEqual(env('SensorDashsumsLambdaFunction').SLUICE_STATE_TABLE, { Ref: 'SluiceStateTable' });
    assert.equal(env('FastDashvehiclesLambdaFunction').SLUICE_STATE_TABLE, undefined, 'a stateless function gets no table');
    assert.equal(env('SensorDashsumsLambdaFunction').SLUICE_PARTIAL_BATCH, 'true');
    assert.equal(env('SpeedDashaverageLambdaFunction').SLUICE_PARTIAL_BATCH, 'false');
    assert.equal(env('SensorDashsumsLambdaFunction').SLUICE_KAFKA_AUTH, 'iam');
    assert.equal(r.IamRoleLambdaExecution, undefined, 'the shared role is gone');
  });

  test('ticks: only the function with idle windows (sessions) gets a schedule, with the tick input, every minute by default', () => {
    const r = template(root).Resources;
    const scheduled = Object.entries(r).filter(([, x]) =>
      ['AWS::Events::Rule', 'AWS::Lambda::Permission', 'AWS::Lambda::EventInvokeConfig'].includes(x.Type),
    );
    assert.deepEqual(scheduled.map(([id]) => id).sort(), [
      'SessionsSluiceTickInvokeConfig',
      'SessionsSluiceTickPermission',
      'SessionsSluiceTickRule',
    ]);
    const rule = r.SessionsSluiceTickRule.Properties;
    assert.equal(rule.ScheduleExpression, 'rate(1 minute)');
    assert.deepEqual(
      rule.Targets.map((t: any) => [t.Arn, JSON.parse(t.Input), t.RetryPolicy.MaximumRetryAttempts]),
      [[{ 'Fn::GetAtt': ['SessionsLambdaFunction', 'Arn'] }, { sluice: 'tick' }, 0]],
    );
    assert.deepEqual(r.SessionsSluiceTickPermission.Properties.SourceArn, { 'Fn::GetAtt': ['SessionsSluiceTickRule', 'Arn'] });
    assert.equal(r.SessionsSluiceTickInvokeConfig.Properties.MaximumRetryAttempts, 0);
    const env = (id: string) => r[id].Properties.Environment.Variables;
    assert.match(
      String(env('SessionsLambdaFunction').SLUICE_KAFKA_CLUSTER_ARN),
      /^arn:aws:kafka:us-east-1:123456789012:cluster\/sluice-demo\//,
    );
    assert.equal(env('SensorDashsumsLambdaFunction').SLUICE_KAFKA_CLUSTER_ARN, undefined);
  });

  test('the packaged MSK clients sign: an IAM token, and the broker lookup of a container that only got ticks', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-zip-'));
    const server = http.createServer((req, res) => {
      const signed = /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/us-east-1\/kafka\/aws4_request/.test(String(req.headers.authorization));
      res.writeHead(signed ? 200 : 403).end(JSON.stringify({ bootstrapBrokerStringSaslIam: 'b-1:9098' }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const files = await unzipTo(path.join(root, '.serverless/sluice-sessions.zip'), dir);
      const chunk = (name: string) =>
        import(pathToFileURL(path.join(dir, files.find((f) => f.startsWith(`chunks/${name}-`) && f.endsWith('.mjs'))!)).href);
      const credentials = { accessKeyId: 'AKID', secretAccessKey: 'secret' };
      const { token } = await (await chunk('msk-iam')).mskIamToken({ region: 'us-east-1', credentials });
      assert.match(
        Buffer.from(token, 'base64url').toString(),
        /^https:\/\/kafka\.us-east-1\.amazonaws\.com\/\?Action=kafka-cluster%3AConnect&/,
      );
      const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const clusterArn = 'arn:aws:kafka:us-east-1:123456789012:cluster/c/u';
      const found = await (await chunk('msk-brokers')).mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true, credentials, endpoint });
      assert.equal(found, 'b-1:9098');
    } finally {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('IAM: one role per function; no wildcard resource for DynamoDB or kafka-cluster actions; DynamoDB only on the state table', () => {
    const r = template(root).Resources;
    const roles = Object.entries(r).filter(([, x]) => x.Type === 'AWS::IAM::Role');
    assert.deepEqual(roles.map(([id]) => id).sort(), [
      'FastDashvehiclesSluiceRole',
      'SensorDashsumsSluiceRole',
      'SessionsSluiceRole',
      'SpeedDashaverageSluiceRole',
      'TransportDashmodeSluiceRole',
    ]);
    for (const [id, role] of roles) {
      for (const s of role.Properties.Policies.flatMap((p: any) => p.PolicyDocument.Statement)) {
        const actions: string[] = [s.Action].flat();
        const resources = [s.Resource].flat();
        const data = actions.filter((a) => /^(dynamodb|kafka-cluster|secretsmanager|sqs|s3|sns):/.test(a));
        if (data.length === 0) continue;
        for (const res of resources) {
          assert.ok(res !== '*' && !(typeof res === 'string' && res.includes('*')), `${id}: ${data.join(',')} on ${JSON.stringify(res)}`);
        }
        if (data.some((a) => a.startsWith('dynamodb:'))) assert.deepEqual(resources, [{ 'Fn::GetAtt': ['SluiceStateTable', 'Arn'] }], id);
      }
    }
    const statements = (id: string) => r[id].Properties.Policies[0].PolicyDocument.Statement as { Action: string[]; Resource: unknown }[];
    const cluster = 'arn:aws:kafka:us-east-1:123456789012:cluster/sluice-demo/00000000-0000-0000-0000-000000000000-1';
    const sums = statements('SensorDashsumsSluiceRole');
    assert.deepEqual(
      sums.find((s) => s.Action.includes('kafka-cluster:ReadData'))!.Resource,
      cluster.replace(':cluster/', ':topic/') + '/sensor-counts',
    );
    assert.deepEqual(
      sums.find((s) => s.Action.includes('kafka-cluster:AlterGroup'))!.Resource,
      cluster.replace(':cluster/', ':group/') + '/sluice-sluice-examples-dev-sensor-sums',
    );
    assert.deepEqual(
      sums.find((s) => s.Action.includes('kafka-cluster:WriteData'))!.Resource,
      ['sensor-sums', 'sensor-counts-dlq'].map((t) => cluster.replace(':cluster/', ':topic/') + `/${t}`),
    );
    assert.ok(
      !statements('FastDashvehiclesSluiceRole').some((s) => s.Action.some((a) => a.startsWith('dynamodb:'))),
      'a stateless function has no DynamoDB access',
    );
  });

  test('cfn-lint finds no errors or warnings in the template', (t) => {
    const bin = process.env.SLUICE_PYTHON_BIN ? path.join(process.env.SLUICE_PYTHON_BIN, 'cfn-lint') : undefined;
    if (!bin || !existsSync(bin)) {
      if (process.env.SLUICE_REQUIRE_INFRA) assert.fail('cfn-lint is required: npm run test:all installs it (scripts/python-tools.sh)');
      t.skip('cfn-lint not installed (npm run test:all installs it)');
      return;
    }
    const r = spawnSync(bin, ['--regions', 'us-east-1', '--', path.join(root, '.serverless/cloudformation-template-update-stack.json')], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  test("each zip runs from an empty directory with a clean Node process: AWS's sample MSK event, the right results", async () => {
    const t0 = 1_767_225_600_000;
    const readings = [
      { key: 'sensor-1', value: { value: 2 }, timestamp: t0 + 1_000 },
      { key: 'sensor-1', value: { value: 3 }, timestamp: t0 + 9_000 },
      { key: 'sensor-2', value: { value: 'oops' }, timestamp: t0 + 9_500 },
      { key: 'sensor-1', value: { value: 7 }, timestamp: t0 + 13_000 },
    ];
    const sums = await runArtifact(
      path.join(root, '.serverless/sluice-sensor-sums.zip'),
      'functions/sensor-sums/handler.mjs',
      mskEvent('sensor-counts', readings),
    );
    assert.equal(sums.code, 0, sums.stderr);
    assert.deepEqual(sums.response, { batchItemFailures: [] });
    assert.deepEqual(
      sums.outputs.map((o) => [o.topic, o.key, o.value]),
      [['sensor-sums', 'sensor-1', { start: t0, end: t0 + 10_000, value: 5 }]],
    );
    assert.match(sums.stderr, /"sluice":"dead-letter".*"reason":"value must be a number"/);

    const speeds = [
      { key: 'v1', value: { vehicle: 'v1', speed: 40 }, timestamp: t0 },
      { key: 'v2', value: { vehicle: 'v2', speed: 20 }, timestamp: t0 + 1 },
    ];
    const fast = await runArtifact(
      path.join(root, '.serverless/sluice-fast-vehicles.zip'),
      'functions/fast-vehicles/handler.mjs',
      mskEvent('vehicle-speeds', speeds),
    );
    assert.equal(fast.code, 0, fast.stderr);
    assert.deepEqual(
      fast.outputs.map((o) => o.value),
      [{ vehicle: 'v1', kmh: 144 }],
    );
  });
});

describe('sls package: the model function (transport-mode)', () => {
  const zip = path.join(root, '.serverless/sluice-transport-mode.zip');

  test('holds only the linux-x64 ONNX Runtime binding and library and its model; zip <= 20 MB, unzipped < 60 MB; other functions hold no ONNX Runtime', async () => {
    // The example service was packaged by the suite above (node:test runs suites in order).
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-zip-'));
    try {
      const files = await unzipTo(zip, dir);
      const onnx = files.filter((f) => /onnx|\.node$|\.so/.test(f));
      assert.deepEqual(onnx.map((f) => path.basename(f)).sort(), ['libonnxruntime.so.1', 'model.onnx', 'onnxruntime_binding.node']);
      assert.ok(files.includes('functions/transport-mode/sluice-assets/model.onnx'), files.join(', '));
      assert.ok(!files.some((f) => /darwin|win32|arm64|\.dll|\.dylib/.test(f)), files.join(', '));
      const unzipped = files.reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
      assert.ok(statSync(zip).size <= 20 * 1024 * 1024, `zip ${statSync(zip).size} bytes`);
      assert.ok(unzipped < 60 * 1024 * 1024, `unzipped ${unzipped} bytes`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const fn of examples.filter((f) => f !== 'transport-mode')) {
      const other = mkdtempSync(path.join(tmpdir(), 'sluice-zip-'));
      try {
        const files = await unzipTo(path.join(root, `.serverless/sluice-${fn}.zip`), other);
        assert.ok(!files.some((f) => /onnx/.test(f)), `${fn}: ${files.join(', ')}`);
        const code = files
          .filter((f) => f.endsWith('.mjs'))
          .map((f) => readFileSync(path.join(other, f), 'utf8'))
          .join('\n');
        assert.ok(!code.includes('onnxruntime_binding'), `${fn} bundles ONNX Runtime`);
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    }
  });

  test('the zip, from an empty directory with a clean Node process, predicts what the function predicts in the repo', async () => {
    const lines = readFileSync(path.join(root, 'functions/transport-mode/sample.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const event = mskEvent('gps-speeds', lines);
    const run = await runArtifact(zip, 'functions/transport-mode/handler.mjs', event);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.response, { batchItemFailures: [] });
    const { handler } = await import('../../functions/transport-mode/handler.js');
    const inRepo = await runFunction(handler, lines, { batchSize: lines.length });
    const repo = inRepo.values('transport-modes');
    assert.equal(repo.length, 54);
    assert.deepEqual(
      run.outputs.map((o) => o.value),
      repo,
    );
    assert.match(run.stderr, /"sluice":"dead-letter".*"reason":"speed must be a non-negative number of m\/s"/);
  });
});

describe('sls package: a self-managed Kafka service, run from the zip against the real broker', kafkaAvailable, () => {
  const project = path.join(root, 'test/fixtures/deploy-project');

  test('the packaged zip produces its window results to the output topic (SLUICE_OUTPUTS=kafka)', async () => {
    const r = sls(project, 'package');
    assert.equal(r.code, 0, r.out);
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    try {
      await freshTopics(admin, [{ topic: 'it-pkg-sums-out', numPartitions: 1 }]);
    } finally {
      await admin.disconnect();
    }
    const t0 = 1_767_225_600_000;
    const event = mskEvent(
      'it-pkg-sums-in',
      [
        { key: 'a', value: { value: 4 }, timestamp: t0 + 1_000 },
        { key: 'a', value: { value: 6 }, timestamp: t0 + 2_000 },
        { key: 'a', value: { value: 1 }, timestamp: t0 + 30_000 },
      ],
      brokers,
    );
    const env = template(project).Resources.PkgDashsumsLambdaFunction.Properties.Environment.Variables as Record<string, string>;
    assert.equal(env.SLUICE_KAFKA_AUTH, 'none');
    const run = await runArtifact(path.join(project, '.serverless/sluice-pkg-sums.zip'), 'functions/pkg-sums/handler.mjs', event, {
      SLUICE_OUTPUTS: env.SLUICE_OUTPUTS,
      SLUICE_KAFKA_TLS: env.SLUICE_KAFKA_TLS,
      SLUICE_DEAD_LETTER_TOPIC: env.SLUICE_DEAD_LETTER_TOPIC,
      AWS_LAMBDA_FUNCTION_NAME: 'sluice-pkg-dev-pkg-sums',
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.response, { batchItemFailures: [] });
    const out = await readUntil(kafka, 'it-pkg-sums-out', (m) => m.length >= 1);
    assert.deepEqual(
      out.map((m) => [m.key, m.value, m.headers['sluice-id']]),
      [['a', { start: t0, end: t0 + 10_000, value: 10 }, `pkg-sums:total:a:${t0}:${t0 + 10_000}`]],
    );
  });
});

describe('the packaged zip, exactly once (SLUICE_GUARANTEE=exactly-once), against the real broker', kafkaAvailable, () => {
  const project = path.join(root, 'test/fixtures/deploy-project');

  test('publishes in a Kafka transaction with its position; a retry of the same event in a new container publishes nothing again', async () => {
    const r = sls(project, 'package');
    assert.equal(r.code, 0, r.out);
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    const source = `it-pkg-eo-in-${process.pid}`;
    try {
      await freshTopics(admin, [
        { topic: source, numPartitions: 1 },
        { topic: 'it-pkg-sums-out', numPartitions: 1 },
      ]);
      // The packaged function writes to 'it-pkg-sums-out'.
      const t0 = 1_767_225_600_000;
      const event = mskEvent(
        source,
        [
          { key: 'a', value: { value: 4 }, timestamp: t0 + 1_000 },
          { key: 'a', value: { value: 6 }, timestamp: t0 + 2_000 },
          { key: 'a', value: { value: 1 }, timestamp: t0 + 30_000 },
        ],
        brokers,
      );
      const env = template(project).Resources.PkgDashsumsLambdaFunction.Properties.Environment.Variables as Record<string, string>;
      const fn = `sluice-pkg-dev-pkg-sums-eo-${process.pid}`;
      const runEnv = { SLUICE_OUTPUTS: env.SLUICE_OUTPUTS, SLUICE_GUARANTEE: 'exactly-once', AWS_LAMBDA_FUNCTION_NAME: fn };
      const zip = path.join(project, '.serverless/sluice-pkg-sums.zip');
      const before = await admin.fetchTopicOffsets('it-pkg-sums-out').catch(() => []);
      const first = await runArtifact(zip, 'functions/pkg-sums/handler.mjs', event, runEnv);
      assert.equal(first.code, 0, first.stderr);
      assert.deepEqual(first.response, { batchItemFailures: [] });
      // The same event again in a fresh process (a new container, as after a lost response).
      const again = await runArtifact(zip, 'functions/pkg-sums/handler.mjs', event, runEnv);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.response, { batchItemFailures: [] });
      // The position was committed inside the transaction: the batch's last offset (102).
      const partitions = await groupOffsets(admin, `sluice-${fn}.published`, source, (ps) => ps[0]?.offset === '103');
      assert.deepEqual(
        partitions.map((p) => [p.partition, p.offset, p.metadata]),
        [[0, '103', '{"at":102}']],
      );
      // One result, once, for a read_committed reader, past what the topic held before.
      const start = Number(before.find((o) => o.partition === 0)?.high ?? 0);
      const got = (await readUntil(kafka, 'it-pkg-sums-out', (m) => m.filter((x) => x.offset >= start).length >= 1)).filter(
        (x) => x.offset >= start,
      );
      await new Promise((res) => setTimeout(res, 300));
      const all = (await readUntil(kafka, 'it-pkg-sums-out', (m) => m.filter((x) => x.offset >= start).length >= got.length)).filter(
        (x) => x.offset >= start && x.headers['sluice-id'] === `pkg-sums:total:a:${t0}:${t0 + 10_000}`,
      );
      assert.deepEqual(
        all.map((m) => [m.key, m.value]),
        [['a', { start: t0, end: t0 + 10_000, value: 10 }]],
      );
    } finally {
      await admin.deleteTopics({ topics: [source] }).catch(() => {});
      await admin.disconnect();
    }
  });
});

describe('the packaged sessions example, ticked as its deployed schedule would', tickAvailable, () => {
  // The zip of the sessions example (test/fixtures/deploy-project: pkg-sessions re-exports
  // functions/sessions/handler.ts) run under the official Lambda Runtime Interface Emulator when it
  // can be had (SLUICE_RIE_BIN, or built from SLUICE_RIE_SOURCE, which .ci/run sets), else the
  // plain-Node stand-in, saying which in a diagnostic; with the environment of its template.
  // The clock: the sample is shifted so its last click is now and arrives now (real time, in the
  // bundle), and the ticks carry their wall-clock time as `now`, so minutes of schedule pass in
  // seconds; the end offsets come from the real broker, so the topic is the example's own, `clicks`
  // (created if missing, never deleted: another test producing to it at the same time would hold
  // the partition busy, and this test would say so by timing out on unclosed sessions).
  test('after the last click, every session is emitted once, within idle + one tick of when it could close', async (t) => {
    const emulator = await selectRie();
    t.diagnostic(emulator.note);
    if (!emulator.official && process.env.SLUICE_REQUIRE_INFRA && (process.env.SLUICE_RIE_SOURCE || process.env.SLUICE_RIE_BIN))
      assert.fail(`the official RIE was asked for but cannot be used: ${emulator.note}`);
    const project = path.join(root, 'test/fixtures/deploy-project');
    const zip = path.join(project, '.serverless/sluice-pkg-sessions.zip');
    // Packaged by the self-managed suite above; packaged here when this test runs alone.
    if (!existsSync(zip)) assert.equal(sls(project, 'package').code, 0);
    const r = template(project).Resources;
    const rule = r.PkgDashsessionsSluiceTickRule.Properties;
    const event = JSON.parse(rule.Targets[0].Input);
    assert.deepEqual(event, { sluice: 'tick' });
    const rate = /^rate\((\d+) minutes?\)$/.exec(rule.ScheduleExpression);
    assert.ok(rate, rule.ScheduleExpression);
    const period = Number(rate[1]) * 60_000;
    assert.equal(period, 120_000, "the function's own tick: 2 minutes, over the service's 5");
    const env = r.PkgDashsessionsLambdaFunction.Properties.Environment.Variables as Record<string, unknown>;
    // The fixture's bootstrapServers (the default port); a run on other ports points it at its broker below.
    assert.equal(env.SLUICE_KAFKA_BROKERS, '127.0.0.1:9092', 'a container that only gets ticks knows the brokers');

    const sample: { key: string; value: { user: string; page: string }; timestamp: number }[] = readFileSync(
      path.join(root, 'functions/sessions/sample.jsonl'),
      'utf8',
    )
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const t0 = Date.now();
    const shift = t0 - Math.max(...sample.map((c) => c.timestamp));
    const clicks = sample.map((c) => ({ ...c, timestamp: c.timestamp + shift }));

    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    await admin
      .createTopics({
        topics: [{ topic: 'clicks', numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '-1' }] }],
        waitForLeaders: true,
      })
      .finally(() => admin.disconnect());
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const [sent] = await producer
      .send({
        topic: 'clicks',
        acks: -1,
        messages: clicks.map((c) => ({ key: c.key, value: JSON.stringify(c.value), timestamp: String(c.timestamp), partition: 0 })),
      })
      .finally(() => producer.disconnect());
    const firstOffset = Number(sent.baseOffset);

    const table = `sluice-pkg-ticks-${process.pid}-${Date.now()}`;
    await new DynamoDBStore({ table, endpoint: dynamodbEndpoint }).ensureTable();
    const taskDir = mkdtempSync(path.join(tmpdir(), 'sluice-ticks-'));
    await unzipTo(zip, taskDir);
    const fnEnv: Record<string, string> = {
      ...Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string')),
      // Results as log lines, read per invocation, rather than on the shared output topic; the
      // offsets reader is there all the same (what a tick needs does not depend on the outputs).
      SLUICE_OUTPUTS: 'log',
      SLUICE_KAFKA_BROKERS: brokers,
      SLUICE_STATE_TABLE: table,
      SLUICE_DYNAMODB_ENDPOINT: dynamodbEndpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    };
    const start = () =>
      startRie({
        taskDir,
        handler: 'functions/pkg-sessions/handler.handler',
        functionName: 'sluice-pkg-dev-pkg-sessions',
        env: fnEnv,
        timeoutSeconds: 10,
        binary: emulator.binary,
      });
    type Session = { key: string; value: { start: number; end: number; clicks: number; pages: string[]; seconds: number }; id: string };
    const emitted: { session: Session; by: string; at: number; container: RieHandle }[] = [];
    // The function writes its results before it answers, into the pipe the emulator's REPORT line
    // follows them in: once that line is there, so are they.
    const seen = new Map<RieHandle, number>();
    const invoke = async (rie: RieHandle, ev: unknown, by: string, at: number) => {
      const response = await rie.invoke(ev).catch((e) => assert.fail(`${by}: ${e}\n${rie.logs()}`));
      const n = (seen.get(rie) ?? 0) + 1;
      seen.set(rie, n);
      for (let i = 0; (rie.logs().match(/^REPORT RequestId/gm) ?? []).length < n; i++) {
        assert.ok(i < 100, `no REPORT line for invocation ${n}:\n${rie.logs()}`);
        await new Promise((res) => setTimeout(res, 50));
      }
      const lines = rie
        .logs()
        .split('\n')
        .filter((l) => l.startsWith('{"sluice":"output"'));
      const before = emitted.filter((e) => e.container === rie).length;
      for (const l of lines.slice(before)) emitted.push({ session: JSON.parse(l) as Session, by, at, container: rie });
      return response as {
        batchItemFailures: unknown[];
        tick?: { windowsClosed: number; partitions: { partition: number; decision: { action: string; reason?: string } }[] };
      };
    };

    const first = await start();
    const [batch, ...more] = [...toKafkaEvents(clicks, { topic: 'clicks', startOffset: firstOffset })];
    assert.equal(more.length, 0);
    const arrivedFrom = Date.now();
    let tickTimes: number[];
    const tickMs: number[] = [];
    let second: RieHandle | undefined;
    let tickReports: string[] = [];
    try {
      assert.deepEqual(await invoke(first, batch, 'batch', arrivedFrom), { batchItemFailures: [] });
      const arrivedBy = Date.now();
      await first.stop();
      // A new container: it gets only ticks, so no Kafka event ever told it where the brokers are.
      second = await start();
      // The schedule's phase is arbitrary: this one ticks between the two users' sessions' due times.
      tickTimes = [0, 1, 2].map((k) => arrivedBy + 30_000 + k * period);
      const reports = [];
      for (const [i, now] of tickTimes.entries()) {
        const began = Date.now();
        reports.push(await invoke(second, { ...event, now }, `tick ${i + 1}`, now));
        tickMs.push(Date.now() - began);
      }
      tickReports = [...second.logs().matchAll(/^REPORT .*?(?:Init Duration: ([\d.]+) ms\t)?Duration: ([\d.]+) ms/gm)].map(
        (m) => `${m[2]} ms${m[1] ? ` (+${m[1]} ms init)` : ''}`,
      );
      assert.deepEqual(
        reports.map((x) => x.tick?.windowsClosed),
        [1, 1, 0],
        JSON.stringify(reports),
      );
      assert.deepEqual(
        reports.map((x) => x.tick?.partitions.find((p) => p.partition === 0)?.decision.action),
        ['close', 'close', 'skip'],
      );

      // Every session once: those later clicks closed in the batch, the last ones by ticks; the
      // same results, ids included, as the function in the repo gives when its input ends.
      const { handler: inRepo } = await import('../../functions/sessions/handler.js');
      const reference = await runFunction(inRepo, clicks, { flush: true });
      const key = (s: { key: string | null; value: unknown }) => JSON.stringify([s.key, s.value]);
      assert.deepEqual(emitted.map((e) => key(e.session)).sort(), reference.outputs.map(key).sort());
      assert.deepEqual(emitted.map((e) => e.session.id).sort(), reference.outputs.map((o) => o.id).sort());
      assert.equal(emitted.filter((e) => e.by === 'batch').length, 4, 'two sessions per user closed by their own later clicks');

      // When a session could close: its end + grace (5 s) in event time, which the partition's
      // newest event time (the last click, t0) maps to its arrival; never before the partition has
      // been quiet for idle (10 s). It must come out no earlier than that plus idle, and no later
      // than that plus idle and one tick period.
      const idle = 10_000;
      const grace = 5_000;
      for (const user of ['bo', 'ana']) {
        const last = emitted.filter((e) => e.session.key === user).sort((a, b) => b.session.value.end - a.session.value.end)[0];
        assert.match(last.by, /^tick/, `${user}'s last session is closed by a tick`);
        const due = Math.max(last.session.value.end + grace, t0) - t0;
        assert.ok(last.at >= arrivedFrom + due + idle, `${user}: emitted at ${last.at - arrivedFrom} ms, before ${due + idle} ms`);
        assert.ok(last.at <= arrivedBy + due + idle + period, `${user}: emitted ${last.at - arrivedBy - due} ms after it could close`);
      }
      assert.deepEqual(
        emitted.filter((e) => e.by !== 'batch').map((e) => [e.by, e.session.key]),
        [
          ['tick 1', 'bo'],
          ['tick 2', 'ana'],
        ],
      );
    } finally {
      await first.stop();
      await second?.stop();
      rmSync(taskDir, { recursive: true, force: true });
    }
    process.stderr.write(
      `packaged ticks: ${JSON.stringify({ tickRoundTripMs: tickMs, tickDurations: tickReports, tickTimesAfterArrival: tickTimes!.map((t) => t - arrivedFrom) })}\n`,
    );
  });
});

describe('sls sluice dev: the emulator from the Serverless CLI', kafkaAvailable, () => {
  test('runs a function of serverless.yml against the broker and stops cleanly on Ctrl-C', async () => {
    const project = path.join(root, 'test/fixtures/deploy-project');
    const kafka = kafkaClient();
    const admin = kafka.admin();
    await admin.connect();
    try {
      await freshTopics(admin, [
        { topic: 'it-pkg-pass-in', numPartitions: 1 },
        { topic: 'it-pkg-pass-out', numPartitions: 1 },
      ]);
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: 'it-pkg-pass-in', messages: [{ key: 'k', value: JSON.stringify({ n: 41 }) }] });
    await producer.disconnect();
    const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
    const child = spawn(process.execPath, [slsBin, 'sluice', 'dev', '--function', 'pkg-pass', '--brokers', brokers, '--no-view'], {
      cwd: project,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stdout!.on('data', (d) => (err += d));
    child.stderr!.on('data', (d) => (err += d));
    try {
      const out = await readUntil(kafka, 'it-pkg-pass-out', (m) => m.length >= 1);
      assert.deepEqual(
        out.map((m) => m.value),
        [{ n: 41 }],
      );
      assert.match(err, /sluice dev: pkg-pass ← it-pkg-pass-in/);
    } finally {
      child.kill('SIGINT');
      const code = await new Promise((r) => child.once('exit', r));
      assert.equal(code, 0, err);
    }
  });
});

describe('sls package: bad configuration fails, naming the function and the option', () => {
  const dir = path.join(root, 'test/fixtures', `.tmp-deploy-${process.pid}`);
  before(() => {
    mkdirSync(path.join(dir, 'functions'), { recursive: true });
    cpSync(path.join(root, 'functions/sensor-sums/handler.ts'), path.join(dir, 'functions/sums.ts'));
    cpSync(path.join(root, 'functions/transport-mode/handler.ts'), path.join(dir, 'functions/mode.ts'));
    writeFileSync(path.join(dir, 'functions/plain.ts'), 'export const handler = async () => ({ ok: true });\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const service = (fn: string) =>
    [
      'service: bad',
      "frameworkVersion: '3'",
      'plugins: [sluice/serverless]',
      'provider: { name: aws, runtime: nodejs22.x }',
      'functions:',
      fn,
    ].join('\n');
  const msk = 'events: [{ msk: { arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/u", topic: sensor-counts } }]';
  const gps = 'events: [{ msk: { arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/u", topic: gps-speeds } }]';
  for (const [name, fn, message, setup] of [
    [
      'an unknown Sluice option',
      `  sums: { handler: functions/sums.handler, sluice: { retries: 3 }, ${msk} }`,
      /unknown option functions\.sums\.sluice\.retries in serverless\.yml; allowed: maximumRetryAttempts, deadLetterTopic, onFailure, provisionedPollers/,
    ],
    [
      'a handler that exports no Sluice handler',
      `  plain: { handler: functions/plain.handler, ${msk} }`,
      /function "plain": functions\/plain\.ts does not export a Sluice handler named "handler"/,
    ],
    [
      "a topic that is not the handler's",
      `  sums: { handler: functions/sums.handler, events: [{ msk: { arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/u", topic: other } }] }`,
      /function "sums": its handler reads topic "sensor-counts" but its msk event is on topic "other"/,
    ],
    [
      'a retry limit without provisioned pollers',
      `  sums: { handler: functions/sums.handler, sluice: { maximumRetryAttempts: 2 }, ${msk} }`,
      /functions\.sums\.sluice\.maximumRetryAttempts needs functions\.sums\.sluice\.provisionedPollers/,
    ],
    [
      'a tick period EventBridge cannot run',
      `  sums: { handler: functions/sums.handler, sluice: { tick: 10s }, ${msk} }`,
      /functions\.sums\.sluice\.tick must be a tick period; received "10s"; give a whole number of minutes, at least one .*or false to run no schedule/,
    ],
    [
      'a missing handler file',
      `  gone: { handler: functions/gone.handler, ${msk} }`,
      /function "gone": no handler file functions\/gone\.ts/,
    ],
    [
      'a corrupt model file',
      `  mode: { handler: functions/mode.handler, ${gps} }`,
      /function "mode": loading .*mode\.ts failed: model "transport-mode" \(.*model\.onnx\) is not a valid ONNX model/,
      () => writeFileSync(path.join(dir, 'functions/model.onnx'), 'not a model'),
    ],
    [
      'a model ONNX Runtime cannot load',
      `  mode: { handler: functions/mode.handler, ${gps} }`,
      /function "mode": model "transport-mode" \(.*model\.onnx\) cannot be loaded by ONNX Runtime: .*NoSuchOp/,
      () =>
        writeFileSync(
          path.join(dir, 'functions/model.onnx'),
          protoModel({
            op: 'NoSuchOp',
            inputs: [{ name: 'features', elemType: 1, dims: ['N', 4] }],
            outputs: [{ name: 'label', elemType: 1, dims: ['N'] }],
          }),
        ),
    ],
  ] as const) {
    test(name, () => {
      setup?.();
      writeFileSync(path.join(dir, 'serverless.yml'), service(fn));
      const r = sls(dir, 'package');
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, message);
    });
  }
});

describe('osls (the open-source fork of Serverless v3)', () => {
  test('packages the example service with the same template as Serverless v3, apart from artifact keys', (t) => {
    const v3 = template(root);
    const install = spawnSync('bash', [path.join(root, 'scripts/osls.sh')], { encoding: 'utf8', timeout: 300_000 });
    if (install.status !== 0) {
      if (process.env.SLUICE_REQUIRE_INFRA) assert.fail(`osls could not be installed: ${install.stderr}`);
      t.skip(`osls not installable here: ${install.stderr.trim().split('\n').pop()}`);
      return;
    }
    const cli = install.stdout.trim().split('\n').pop()!;
    const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SDK_LOAD_CONFIG'])
      delete env[k];
    const r = spawnSync(process.execPath, [cli, 'package'], { cwd: root, env, encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const withoutKeys = (tpl: { Resources: Resources }) => JSON.parse(JSON.stringify(tpl).replace(/"S3Key":"[^"]*"/g, '"S3Key":"…"'));
    assert.deepEqual(withoutKeys(template(root)), withoutKeys(v3));
  });
});
