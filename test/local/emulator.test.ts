import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Context } from 'aws-lambda';
import type { Admin, Kafka } from 'kafkajs';
import { emulateFunction } from '../../framework/src/local/emulator/index.js';
import { type EsmConfig, esmConfig } from '../../framework/src/config/event-source-mapping.js';
import type { KafkaEvent } from '../../framework/src/runtime/msk-event.js';
import type { SluiceHandler } from '../../framework/src/runtime/handler.js';
import { readServerless } from '../../framework/src/config/serverless-yml.js';
import { loadHandler, resolveFunction } from '../../framework/src/local/functions.js';
import { brokers, freshTopics, kafkaAvailability, kafkaClient, produceJson, type Received, readUntil } from '../support/kafka.js';

const project = path.resolve(import.meta.dirname, '../fixtures/kafka-project');
const bin = path.resolve(import.meta.dirname, '../../framework/bin/sluice.js');
const availability = await kafkaAvailability();

/** Deletes a consumer group, waiting out members of an earlier run that are still timing out. */
async function deleteGroup(admin: Admin, groupId: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    try {
      await admin.deleteGroups([groupId]);
      return;
    } catch (e) {
      const code = (e as { groups?: { error?: { type?: string } }[] }).groups?.[0]?.error?.type;
      if (code === 'GROUP_ID_NOT_FOUND') return;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  throw new Error(`consumer group ${groupId} could not be deleted`);
}

async function startFunction(
  name: string,
  kafka: Kafka,
  overrides: Partial<EsmConfig> | ((c: EsmConfig) => EsmConfig) = {},
  wrap: (h: SluiceHandler) => SluiceHandler = (h) => h,
) {
  const service = readServerless(path.join(project, 'serverless.yml'));
  const entry = resolveFunction(name, project);
  const handler = wrap(await loadHandler(entry));
  const fromYml = { ...esmConfig(entry, service.service, service), consumerGroupId: `it-${name}-${Date.now()}` };
  const config = typeof overrides === 'function' ? overrides(fromYml) : { ...fromYml, ...overrides };
  const notes: string[] = [];
  const fn = await emulateFunction({ kafka, handler, config, brokers, notice: (m) => notes.push(m) });
  return { fn, config, notes };
}

/** What the emulator handed one invocation, as the handler saw it. */
interface Invocation {
  readonly event: KafkaEvent;
  readonly functionName: string;
  readonly requestId: string;
  readonly remaining: readonly [number, number];
}

/** Wraps a handler to record every event and Lambda context it is invoked with. */
function spying(seen: Invocation[]) {
  return (h: SluiceHandler): SluiceHandler =>
    Object.assign(
      async (event: KafkaEvent, context: Context) => {
        const before = context.getRemainingTimeInMillis();
        await new Promise((r) => setTimeout(r, 25));
        seen.push({
          event,
          functionName: context.functionName,
          requestId: context.awsRequestId,
          remaining: [before, context.getRemainingTimeInMillis()],
        });
        return h(event, context);
      },
      { sluice: h.sluice },
    ) as unknown as SluiceHandler;
}

/** readUntil, failing with what the emulator said and counted, so a CI failure explains itself. */
async function readFrom(
  started: Awaited<ReturnType<typeof startFunction>>,
  kafka: Kafka,
  topic: string,
  done: (m: Received[]) => boolean,
): Promise<Received[]> {
  try {
    return await readUntil(kafka, topic, done);
  } catch (e) {
    const { stats } = started.fn;
    const counters = { ...stats, committed: [...stats.committed], highWatermarks: [...stats.highWatermarks] };
    throw new Error(
      `${(e as Error).message}\nemulator stats: ${JSON.stringify(counters)}\nemulator notices:\n${started.notes.join('\n') || '(none)'}`,
    );
  }
}

describe('the event source mapping emulator on a real broker', { ...availability, timeout: 400_000, concurrency: 1 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  before(async () => {
    kafka = kafkaClient();
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await admin?.disconnect();
  });

  test('end to end: a sensor dataset over 3 partitions gives the exact 10 s window sums on the output topic', async () => {
    await freshTopics(admin, [
      { topic: 'it-sums-in', numPartitions: 3 },
      { topic: 'it-sums-out', numPartitions: 3 },
    ]);
    const t0 = 1_767_225_600_000;
    const records = [];
    const expected = new Map<string, number>();
    for (let s = 0; s < 60; s++) {
      for (let i = 0; i < 6; i++) {
        const value = (s * 7 + i) % 10;
        records.push({ key: `sensor-${i}`, value: { value }, timestamp: t0 + s * 1000 + 250, partition: i % 3 });
        // Per sensor, windows up to [40 s, 50 s) close (end <= 59.25 s - 2 s); [50 s, 60 s) stays open.
        if (s < 50) {
          const k = `sensor-${i}|${t0 + Math.floor(s / 10) * 10_000}`;
          expected.set(k, (expected.get(k) ?? 0) + value);
        }
      }
    }
    await produceJson(kafka, 'it-sums-in', records);
    const started = await startFunction('sums', kafka);
    const { fn } = started;
    try {
      const out = await readFrom(started, kafka, 'it-sums-out', (m) => m.length >= expected.size);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(out.length, expected.size, 'no extra window results');
      const actual = new Map(out.map((m) => [`${m.key}|${m.value.start}`, m.value.value]));
      assert.deepEqual(actual, expected);
      for (const m of out) {
        assert.equal(m.value.end - m.value.start, 10_000);
        assert.equal(m.headers['sluice-id'], `sums:total:${m.key}:${m.value.start}:${m.value.end}`);
      }
      // Keys are preserved, so each sensor's results land in one partition of the output topic.
      const partitionsByKey = new Map<string, Set<number>>();
      for (const m of out) partitionsByKey.set(m.key!, (partitionsByKey.get(m.key!) ?? new Set()).add(m.partition));
      assert.equal(partitionsByKey.size, 6);
      for (const [k, ps] of partitionsByKey) assert.equal(ps.size, 1, `${k} spread over partitions ${[...ps]}`);
      assert.equal(fn.stats.records, records.length);
      assert.deepEqual([...fn.stats.committed].sort(), [
        [0, 120],
        [1, 120],
        [2, 120],
      ]);
    } finally {
      await fn.stop();
    }
  });

  test('poison and failing records land in the dead-letter topic with the documented headers while later records flow', async () => {
    await freshTopics(admin, [
      { topic: 'it-checked-in', numPartitions: 1 },
      { topic: 'it-checked-out', numPartitions: 1 },
      { topic: 'it-checked-dlq', numPartitions: 1 },
    ]);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'it-checked-in',
      messages: [
        { key: 'a', value: JSON.stringify({ n: 1 }) },
        { key: 'b', value: JSON.stringify({ n: 'two' }), headers: { origin: 'sensor-box' } },
        { key: 'c', value: JSON.stringify({ n: 3, explode: true }) },
        { key: 'd', value: JSON.stringify({ n: 4 }) },
        { key: 'e', value: '{not json' },
        { key: 'f', value: JSON.stringify({ n: 6 }) },
      ],
    });
    await producer.disconnect();
    const started = await startFunction('checked', kafka);
    const { fn, notes } = started;
    try {
      const dlq = await readFrom(started, kafka, 'it-checked-dlq', (m) => m.length >= 3);
      const out = await readFrom(started, kafka, 'it-checked-out', (m) => m.some((x) => x.value.n === 6));
      assert.deepEqual(
        out.map((m) => m.value.n),
        [1, 4, 6],
      );
      const byOffset = new Map(dlq.map((m) => [m.headers['sluice-source-offset'], m]));
      assert.deepEqual([...byOffset.keys()].sort(), ['1', '2', '4']);
      const poison = byOffset.get('1')!;
      assert.equal(poison.key, 'b');
      assert.deepEqual(poison.value, { n: 'two' }, 'the original value, untouched');
      assert.equal(poison.headers.origin, 'sensor-box', 'the original headers are kept');
      assert.equal(poison.headers['sluice-error'], 'n must be a number');
      assert.equal(poison.headers['sluice-stage'], 'validate');
      assert.equal(poison.headers['sluice-function'], 'checked');
      assert.equal(poison.headers['sluice-source-topic'], 'it-checked-in');
      assert.equal(poison.headers['sluice-source-partition'], '0');
      const failed = byOffset.get('2')!;
      assert.equal(failed.headers['sluice-stage'], 'invoke');
      assert.match(failed.headers['sluice-error'], /failed after 2 attempts: step "maybeExplode": exploded on n=3/);
      assert.match(byOffset.get('4')!.headers['sluice-error'], /value is not valid json/);
      assert.equal(byOffset.get('4')!.value, '{not json', 'the poison bytes are kept as they were');
      assert.equal(fn.stats.retries, 1);
      assert.equal(fn.stats.failedToDeadLetter, 1);
      assert.ok(
        notes.some((n) => /it-checked-in-0@2 failed .*retry 1 of 1/.test(n)),
        notes.join('\n'),
      );
    } finally {
      await fn.stop();
    }
  });

  test('killed mid-stream (SIGKILL) and restarted, it resumes from committed offsets, says state was lost, and skips no record', async () => {
    await freshTopics(admin, [
      { topic: 'it-pass-in', numPartitions: 3 },
      { topic: 'it-pass-out', numPartitions: 3 },
    ]);
    const N = 20_000;
    await produceJson(
      kafka,
      'it-pass-in',
      Array.from({ length: N }, (_, n) => ({ key: `k${n % 50}`, value: { n }, timestamp: 1_000 + n })),
    );
    await deleteGroup(admin, 'sluice-sluice-it-dev-passthrough');
    const run = (): { child: ChildProcess; stderr: () => string } => {
      const child = spawn(process.execPath, [bin, 'dev', 'passthrough', '--brokers', brokers], {
        cwd: project,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let err = '';
      child.stderr!.on('data', (d) => (err += d));
      return { child, stderr: () => err };
    };
    const first = run();
    const partial = await readUntil(kafka, 'it-pass-out', (m) => m.length >= 2_000, 60_000);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const seenAtKill = new Set(partial.map((m) => m.value.n)).size;
    assert.ok(seenAtKill < N, 'the first run was killed before it finished');

    const second = run();
    try {
      let distinct = new Set<number>();
      let reader: Received[] | undefined;
      let read = 0;
      await readUntil(
        kafka,
        'it-pass-out',
        (m) => {
          if (m !== reader) {
            // A fresh reader (readUntil's retry) delivers a new array: count afresh.
            reader = m;
            distinct = new Set();
            read = 0;
          }
          for (; read < m.length; read++) distinct.add(m[read].value.n);
          return distinct.size >= N;
        },
        120_000,
      ).catch(async (e) => {
        const offsets = await admin.fetchOffsets({ groupId: 'sluice-sluice-it-dev-passthrough', topics: ['it-pass-in'] }).catch(() => []);
        throw new Error(`${(e as Error).message}\ncommitted: ${JSON.stringify(offsets)}\nsecond run's stderr:\n${second.stderr()}`);
      });
      assert.equal(distinct.size, N, 'every input record reached the output');
      for (let n = 0; n < N; n++) assert.ok(distinct.has(n), `record ${n} was skipped`);
      assert.match(second.stderr(), /resuming consumer group sluice-sluice-it-dev-passthrough from committed offsets p\d@\d+/);
      assert.match(second.stderr(), /state is in memory, so windows and keyed state from before the restart are lost/);
    } finally {
      second.child.kill('SIGINT');
      const code = await new Promise((r) => second.child.once('exit', r));
      assert.equal(code, 0, `a clean stop exits 0; stderr:\n${second.stderr()}`);
    }
  });

  test('with DynamoDB state, killed mid-stream (SIGKILL) and restarted, every window sum is exact: nothing lost, nothing counted twice', async () => {
    await freshTopics(admin, [
      { topic: 'it-sums-in', numPartitions: 2 },
      { topic: 'it-sums-out', numPartitions: 2 },
    ]);
    await deleteGroup(admin, 'sluice-sluice-it-dev-sums');
    const t0 = 1_767_225_600_000;
    const records = [];
    const expected = new Map<string, number>();
    for (let s = 0; s < 400; s++) {
      for (let i = 0; i < 40; i++) {
        const value = (s * 31 + i * 7) % 10;
        records.push({ key: `sensor-${i}`, value: { value }, timestamp: t0 + s * 1000, partition: i % 2 });
        if (s < 390) {
          const k = `sensor-${i}|${t0 + Math.floor(s / 10) * 10_000}`;
          expected.set(k, (expected.get(k) ?? 0) + value);
        }
      }
    }
    await produceJson(kafka, 'it-sums-in', records);
    const env = { ...process.env, SLUICE_STATE_TABLE: `it-sums-state-${Date.now()}` };
    const args = [bin, 'dev', 'sums', '--brokers', brokers, '--no-view', '--state', 'dynamodb'];
    const first = spawn(process.execPath, args, { cwd: project, env, stdio: ['ignore', 'ignore', 'ignore'] });
    await readUntil(kafka, 'it-sums-out', (m) => m.length >= 200, 60_000);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const second = spawn(process.execPath, args, { cwd: project, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    second.stderr!.on('data', (d) => (err += d));
    try {
      const ids = new Set<string>();
      let reader: unknown;
      let read = 0;
      const out = await readUntil(
        kafka,
        'it-sums-out',
        (m) => {
          if (m !== reader) (reader = m), ids.clear(), (read = 0);
          for (; read < m.length; read++) ids.add(m[read].headers['sluice-id']);
          return ids.size >= expected.size;
        },
        120_000,
      ).catch((e) => {
        throw new Error(`${(e as Error).message}\nsecond run's stderr:\n${err}`);
      });
      const byId = new Map<string, number>();
      for (const m of out) {
        const key = `${m.key}|${m.value.start}`;
        const prior = byId.get(m.headers['sluice-id']);
        assert.ok(prior === undefined || prior === m.value.value, `a duplicate of ${m.headers['sluice-id']} carries another value`);
        byId.set(m.headers['sluice-id'], m.value.value);
        assert.equal(m.value.value, expected.get(key), `window ${key}`);
      }
      assert.equal(byId.size, expected.size, 'every window emitted');
      assert.match(err, /resuming consumer group sluice-sluice-it-dev-sums from committed offsets/);
      assert.doesNotMatch(err, /state is in memory/);
    } finally {
      second.kill('SIGINT');
      await new Promise((r) => second.once('exit', r));
    }
  });

  test('an invocation that runs past the function timeout fails like a Lambda timeout and its record is dead-lettered', async () => {
    await freshTopics(admin, [
      { topic: 'it-slow-in', numPartitions: 1 },
      { topic: 'it-slow-out', numPartitions: 1 },
      { topic: 'it-slow-in.slow.dlq', numPartitions: 1 },
    ]);
    await produceJson(kafka, 'it-slow-in', [
      { key: 'a', value: { n: 1 }, timestamp: 1 },
      { key: 'b', value: { n: 2, stall: true }, timestamp: 2 },
      { key: 'c', value: { n: 3 }, timestamp: 3 },
    ]);
    const started = await startFunction('slow', kafka);
    const { fn } = started;
    try {
      const dlq = await readFrom(started, kafka, 'it-slow-in.slow.dlq', (m) => m.length >= 1);
      assert.equal(dlq[0].key, 'b');
      assert.match(dlq[0].headers['sluice-error'], /failed after 1 attempts: Task timed out after 1\.00 seconds/);
      const out = await readFrom(started, kafka, 'it-slow-out', (m) => m.some((x) => x.value.n === 3));
      assert.deepEqual(
        out.map((m) => m.value.n).filter((n) => n !== 2),
        [1, 3],
      );
      assert.equal(fn.stats.committed.get(0), 3);
    } finally {
      await fn.stop();
    }
  });

  test('one invocation holds records of several partitions; no event exceeds batchSize; the handler gets a Lambda context', async () => {
    await freshTopics(admin, [
      { topic: 'it-pass-in', numPartitions: 3 },
      { topic: 'it-pass-out', numPartitions: 3 },
    ]);
    const ARN = 'arn:aws:kafka:eu-west-1:111122223333:cluster/it/0f0f0f0f-1111-2222-3333-444444444444-1';
    // Two records per partition, all there before the emulator starts: one fetch, one event.
    await produceJson(
      kafka,
      'it-pass-in',
      [0, 1, 2, 3, 4, 5].map((n) => ({ key: `k${n}`, value: { n }, timestamp: 1_000 + n, partition: n % 3 })),
    );
    const seen: Invocation[] = [];
    const started = await startFunction(
      'passthrough',
      kafka,
      { batchSize: 7, maximumBatchingWindowMs: 1_000, eventSource: 'aws:kafka', eventSourceArn: ARN },
      spying(seen),
    );
    const { fn, config } = started;
    try {
      await readFrom(started, kafka, 'it-pass-out', (m) => m.length >= 6);
      const first = seen[0].event;
      assert.ok(Object.keys(first.records).length >= 2, `the first event holds ${Object.keys(first.records).join(', ')}`);
      assert.equal(first.eventSource, 'aws:kafka');
      assert.equal(first.eventSourceArn, ARN);
      assert.equal(first.bootstrapServers, brokers);
      for (const [group, records] of Object.entries(first.records))
        for (const r of records) assert.equal(`${r.topic}-${r.partition}`, group);

      // Then 20 more per partition: batches of at most 7 records, and some of exactly 7.
      await produceJson(
        kafka,
        'it-pass-in',
        Array.from({ length: 60 }, (_, i) => ({ key: `k${i}`, value: { n: 100 + i }, timestamp: 2_000 + i, partition: i % 3 })),
      );
      await readFrom(started, kafka, 'it-pass-out', (m) => m.length >= 66);
      const sizes = seen.map((s) => Object.values(s.event.records).flat().length);
      assert.ok(Math.max(...sizes) <= 7, `event sizes ${sizes}`);
      assert.ok(sizes.includes(7), `no event reached the batch size: ${sizes}`);
      assert.equal(
        sizes.reduce((a, b) => a + b, 0),
        66,
        'every record delivered once',
      );
      for (const p of [0, 1, 2]) {
        const offsets = seen.flatMap((s) => (s.event.records[`it-pass-in-${p}`] ?? []).map((r) => r.offset));
        assert.deepEqual(
          offsets,
          Array.from({ length: 22 }, (_, i) => i),
          `partition ${p} in order, once each`,
        );
      }

      assert.ok(seen.every((s) => s.functionName === 'passthrough'));
      assert.equal(new Set(seen.map((s) => s.requestId)).size, seen.length, 'a request id per invocation');
      for (const s of seen) {
        assert.match(s.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
        const [before, afterwards] = s.remaining;
        assert.ok(
          before <= config.timeoutMs && before > config.timeoutMs - 1_000,
          `remaining ${before} of ${config.timeoutMs} ms at the start`,
        );
        assert.ok(afterwards < before, `remaining time decreases: ${before} then ${afterwards}`);
      }
      assert.equal(config.timeoutMs, 10_000, 'provider.timeout of the fixture');
    } finally {
      await fn.stop();
    }
  });

  test('LATEST is pinned when the group is new: a restart before the first batch commits reads what was produced meanwhile, and nothing older', async () => {
    await freshTopics(admin, [
      { topic: 'it-pass-in', numPartitions: 2 },
      { topic: 'it-pass-out', numPartitions: 2 },
    ]);
    await produceJson(
      kafka,
      'it-pass-in',
      Array.from({ length: 10 }, (_, n) => ({ key: `old${n}`, value: { n }, timestamp: 1_000 + n, partition: n % 2 })),
    );
    const group = `it-latest-${Date.now()}`;
    const first = await startFunction('passthrough', kafka, { startingPosition: 'LATEST', consumerGroupId: group });
    // Stopped before any batch: only the pinned starting position was committed.
    await first.fn.stop();
    assert.ok(
      first.notes.some((n) => /starting position LATEST pinned for consumer group it-latest-\d+ at p0@5, p1@5/.test(n)),
      first.notes.join('\n'),
    );
    const pinned = await admin.fetchOffsets({ groupId: group, topics: ['it-pass-in'] });
    assert.deepEqual(pinned[0].partitions.map((p) => [p.partition, p.offset]).sort(), [
      [0, '5'],
      [1, '5'],
    ]);

    await produceJson(
      kafka,
      'it-pass-in',
      Array.from({ length: 6 }, (_, i) => ({ key: `new${i}`, value: { n: 100 + i }, timestamp: 2_000 + i, partition: i % 2 })),
    );
    const second = await startFunction('passthrough', kafka, { startingPosition: 'LATEST', consumerGroupId: group });
    try {
      const out = await readFrom(second, kafka, 'it-pass-out', (m) => m.length >= 6);
      assert.deepEqual(
        out.map((m) => m.value.n).sort((a, b) => a - b),
        [100, 101, 102, 103, 104, 105],
        'the new records, and none of the old',
      );
      await new Promise((r) => setTimeout(r, 1_500));
      const ends = await admin.fetchTopicOffsets('it-pass-out');
      assert.equal(
        ends.reduce((n, o) => n + Number(o.high), 0),
        6,
        'nothing else came out',
      );
      assert.equal(second.fn.stats.records, 6);
      assert.ok(
        second.notes.some((n) => /resuming consumer group it-latest-\d+ from committed offsets p\d@5, p\d@5/.test(n)),
        second.notes.join('\n'),
      );
    } finally {
      await second.fn.stop();
    }
  });

  test('without provisioned pollers a failing batch is retried whole until it succeeds: the partition blocks, nothing is committed or dead-lettered, and stop() is prompt', async () => {
    await freshTopics(admin, [
      { topic: 'it-checked-in', numPartitions: 1 },
      { topic: 'it-checked-out', numPartitions: 1 },
      { topic: 'it-checked-dlq', numPartitions: 1 },
    ]);
    await produceJson(kafka, 'it-checked-in', [
      { key: 'a', value: { n: 1 }, timestamp: 1 },
      { key: 'b', value: { n: 3, explode: true }, timestamp: 2 },
      { key: 'c', value: { n: 4 }, timestamp: 3 },
    ]);
    // As deployed without provisioned pollers (the plugin sets SLUICE_PARTIAL_BATCH=false): the
    // handler itself fails the whole batch.
    const previous = process.env.SLUICE_PARTIAL_BATCH;
    process.env.SLUICE_PARTIAL_BATCH = 'false';
    const started = await startFunction('checked', kafka, (c) => {
      const { maximumRetryAttempts: _r, onFailureTopic: _o, ...rest } = c;
      return { ...rest, provisionedPollers: false };
    });
    const { fn, notes } = started;
    try {
      for (let i = 0; i < 150 && fn.stats.retries < 3; i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(fn.stats.retries >= 3, `retries ${fn.stats.retries}; notices:\n${notes.join('\n')}`);
      const out = await readFrom(started, kafka, 'it-checked-out', (m) => m.length >= 3);
      assert.ok(
        out.every((m) => m.value.n === 1),
        'record 0 comes out again with each retry of the whole batch; record 2 never',
      );
      assert.equal(new Set(out.map((m) => m.headers['sluice-id'])).size, 1, 'the duplicates carry one id');
      assert.deepEqual([...fn.stats.blocked.keys()], [0]);
      assert.equal(fn.stats.blocked.get(0)!.offset, 0);
      assert.equal(fn.stats.committed.get(0), undefined, 'nothing committed');
      assert.equal(fn.stats.failedToDeadLetter, 0);
      assert.ok(
        notes.some((n) =>
          /checked: it-checked-in-0@0 failed \(step "maybeExplode": exploded on n=3 \(at it-checked-in-0@1\); .*retrying the whole batch until it succeeds, as Lambda does without provisioned pollers: it-checked-in-0 is blocked here/.test(
            n,
          ),
        ),
        notes.join('\n'),
      );
    } finally {
      const t0 = Date.now();
      await fn.stop();
      assert.ok(Date.now() - t0 < 5_000, `stop() took ${Date.now() - t0} ms`);
      if (previous === undefined) delete process.env.SLUICE_PARTIAL_BATCH;
      else process.env.SLUICE_PARTIAL_BATCH = previous;
    }
    const dlq = await admin.fetchTopicOffsets('it-checked-dlq');
    assert.equal(dlq[0].high, '0', 'nothing dead-lettered');
    const offsets = await admin.fetchOffsets({ groupId: started.config.consumerGroupId, topics: ['it-checked-in'] });
    assert.equal(offsets[0].partitions[0].offset, '-1', 'no offset committed for the group');
  });

  test('with no function named, it runs every function of serverless.yml that has a Kafka event', async () => {
    await freshTopics(
      admin,
      ['it-pass-in', 'it-checked-in', 'it-sums-in', 'it-slow-in'].map((topic) => ({ topic, numPartitions: 1 })),
    );
    const child = spawn(process.execPath, [bin, 'dev', '--brokers', brokers, '--no-view'], {
      cwd: project,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    try {
      for (let i = 0; i < 300 && !err.includes('press Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 100));
      for (const name of ['passthrough', 'checked', 'sums', 'slow']) assert.match(err, new RegExp(`sluice dev: ${name} ← `), err);
    } finally {
      child.kill('SIGINT');
      assert.equal(await new Promise((r) => child.once('exit', r)), 0, err);
    }
  });

  test('a missing source topic and an unreachable broker fail with a clear message and a non-zero exit', async () => {
    await admin.deleteTopics({ topics: ['it-sums-in'] }).catch(() => undefined);
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, ...args], { cwd: project, stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        child.stderr!.on('data', (d) => (err += d));
        child.once('exit', (code) => resolve({ code, err }));
      });
    for (let i = 0; i < 50 && (await admin.listTopics()).includes('it-sums-in'); i++) await new Promise((r) => setTimeout(r, 200));
    const missing = await cli(['dev', 'sums', '--brokers', brokers, '--no-view']);
    assert.equal(missing.code, 2, missing.err);
    assert.match(missing.err, /topic "it-sums-in" \(functions\.sums event in serverless\.yml\) does not exist on the broker/);
    const unreachable = await cli(['dev', 'sums', '--brokers', '127.0.0.1:1', '--no-view']);
    assert.equal(unreachable.code, 2, unreachable.err);
    assert.match(unreachable.err, /could not reach Kafka at 127\.0\.0\.1:1/);
  });
});
