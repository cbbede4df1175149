// The emulator's batching, payload cap, event shape and failure handling, without a broker.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import { Batcher, type Outcome } from '../../framework/src/local/emulator/batcher.js';
import { BLOCKED_RETRY_BACKOFF, type PartitionContext, runPartition } from '../../framework/src/local/emulator/partition-loop.js';
import { emptyStats } from '../../framework/src/local/emulator/stats.js';
import type { EsmConfig } from '../../framework/src/config/event-source-mapping.js';
import { MAX_PAYLOAD_BYTES } from '../../framework/src/config/limits.js';
import {
  type Converted,
  eventOverheadBytes,
  type KafkaBatchResponse,
  type KafkaEvent,
  type KafkaEventRecord,
  lambdaEvent,
  partitionOverheadBytes,
  recordJsonBytes,
  toLambdaRecord,
} from '../../framework/src/runtime/msk-event.js';

const fixtures = path.resolve(import.meta.dirname, '../fixtures/events');
const fixture = (name: string) => JSON.parse(readFileSync(path.join(fixtures, name), 'utf8')) as KafkaEvent & { eventSourceArn?: string };
const BROKERS = '127.0.0.1:9092';
const bytesOf = (x: unknown) => Buffer.byteLength(JSON.stringify(x));

const base: EsmConfig = {
  functionName: 'fn',
  topic: 'in',
  batchSize: 100,
  maximumBatchingWindowMs: 0,
  startingPosition: 'TRIM_HORIZON',
  consumerGroupId: 'g',
  eventSource: 'SelfManagedKafka',
  provisionedPollers: false,
  deadLetterTopic: 'in.fn.dlq',
  timeoutMs: 6_000,
};
const provisioned: EsmConfig = { ...base, provisionedPollers: true, maximumRetryAttempts: 2, onFailureTopic: 'in.fn.dlq' };

function message(offset: number, opts: { key?: string; value?: string; headers?: KafkaMessage['headers'] } = {}): KafkaMessage {
  return {
    key: opts.key === undefined ? null : Buffer.from(opts.key),
    value: Buffer.from(opts.value ?? JSON.stringify({ n: offset })),
    timestamp: String(1_700_000_000_000 + offset),
    offset: String(offset),
    attributes: 0,
    size: 0,
    headers: opts.headers ?? {},
  } as unknown as KafkaMessage;
}

/** A partition context whose submissions go to a real Batcher and whose effects are recorded. */
function harness(config: EsmConfig, invoke: (e: KafkaEvent) => Promise<KafkaBatchResponse>, opts: { stopAfterSleeps?: number } = {}) {
  const batcher = new Batcher(config, BROKERS, invoke);
  const effects = {
    commits: [] as number[],
    deadLetters: [] as { offset: number; reason: string }[],
    notices: [] as string[],
    sleeps: [] as number[],
  };
  let running = true;
  const stats = emptyStats(config.functionName);
  const ctx: PartitionContext = {
    config,
    stats,
    limit: batcher.limit - partitionOverheadBytes(config.topic, 0),
    submit: (records, bytes) => batcher.submit(0, records, bytes + partitionOverheadBytes(config.topic, 0)),
    commit: async (next) => void effects.commits.push(next),
    deadLetter: async (record, reason) => void effects.deadLetters.push({ offset: record.offset, reason }),
    reason: () => undefined,
    notice: (m) => void effects.notices.push(m),
    heartbeat: async () => undefined,
    running: () => running,
    sleep: async (ms) => {
      effects.sleeps.push(ms);
      if (opts.stopAfterSleeps !== undefined && effects.sleeps.length >= opts.stopAfterSleeps) running = false;
    },
  };
  return { ctx, stats, effects };
}

describe('the size of a record in the event', () => {
  test('is what JSON.stringify makes of it, headers counted as arrays of byte numbers', () => {
    const cases: KafkaMessage[] = [
      message(0),
      message(7, { key: 'sensor-1', headers: { origin: 'box', 'trace-id': Buffer.from([0, 9, 10, 99, 100, 255]) } }),
      message(123_456_789, { key: 'ключ', headers: { 'naïve "name"': 'x', repeated: ['a', 'b'] } }),
      message(1, { headers: { big: Buffer.alloc(100_000, 200) } }),
    ];
    for (const m of cases) {
      const { record, bytes } = toLambdaRecord('in-topic', 3, m);
      assert.equal(bytes, bytesOf(record), JSON.stringify(record).slice(0, 80));
      assert.equal(recordJsonBytes(record), bytes);
    }
    const withNull: KafkaEventRecord = {
      topic: 't',
      partition: 0,
      offset: 1,
      timestamp: 2,
      key: null,
      value: null,
      headers: [{ a: [1], b: [22, 3] }],
    };
    assert.ok(recordJsonBytes(withNull) >= bytesOf(withNull), 'never less than the real size');
  });

  test('a 100 KB header costs its bytes as numbers: about 400 KB of event, not a flat few bytes', () => {
    const { bytes } = toLambdaRecord('in', 0, message(0, { headers: { big: Buffer.alloc(100_000, 255) } }));
    assert.ok(bytes > 400_000, `estimated ${bytes}`);
  });

  test('the event envelope and partition groups are counted as the JSON has them', () => {
    const records = {
      'in-0': [toLambdaRecord('in', 0, message(0)).record, toLambdaRecord('in', 0, message(1)).record],
      'in-12': [toLambdaRecord('in', 12, message(5)).record],
    };
    const config = { eventSource: 'aws:kafka' as const, eventSourceArn: 'arn:aws:kafka:eu-west-1:111122223333:cluster/c/uuid-1' };
    const predicted =
      eventOverheadBytes(config, BROKERS) +
      partitionOverheadBytes('in', 0) +
      records['in-0'].reduce((n, r) => n + recordJsonBytes(r) + 1, 0) +
      partitionOverheadBytes('in', 12) +
      records['in-12'].reduce((n, r) => n + recordJsonBytes(r) + 1, 0);
    const actual = bytesOf(lambdaEvent(config, BROKERS, records));
    assert.ok(predicted >= actual && predicted <= actual + 4, `predicted ${predicted}, actual ${actual}`);
  });
});

describe('the 6 MB payload cap', () => {
  test('records with large headers are split into events that each stay under 6 MB', async () => {
    // 40 records with a 100 KB header each: about 16 MB of event JSON, under the batch size of 100.
    const converted = Array.from({ length: 40 }, (_, i) =>
      toLambdaRecord('in', 0, message(i, { headers: { big: Buffer.alloc(100_000, 200) } })),
    );
    const events: KafkaEvent[] = [];
    const { ctx, effects } = harness(base, async (e) => (events.push(e), { batchItemFailures: [] }));
    await runPartition(0, converted, ctx);
    assert.ok(events.length >= 3, `${events.length} events`);
    for (const e of events) assert.ok(bytesOf(e) <= MAX_PAYLOAD_BYTES, `an event of ${bytesOf(e)} bytes`);
    assert.deepEqual(
      events.flatMap((e) => e.records['in-0'].map((r) => r.offset)),
      converted.map((c) => c.record.offset),
      'every record once, in order',
    );
    assert.equal(effects.commits.at(-1), 40);
  });

  test('events of several partitions are split by size across partitions too', async () => {
    const events: KafkaEvent[] = [];
    const batcher = new Batcher(
      { ...base, maximumBatchingWindowMs: 50 },
      BROKERS,
      async (e) => (events.push(e), { batchItemFailures: [] }),
    );
    // Two partitions with 4 MB each: together over the cap, so two events.
    const big = (p: number) =>
      Array.from({ length: 10 }, (_, i) => toLambdaRecord('in', p, message(i, { headers: { h: Buffer.alloc(100_000, 255) } })));
    const submit = (p: number, cs: Converted[]) =>
      batcher.submit(
        p,
        cs.map((c) => c.record),
        partitionOverheadBytes('in', p) + cs.reduce((n, c) => n + c.bytes + 1, 0),
      );
    const outcomes = await Promise.all([submit(0, big(0)), submit(1, big(1))]);
    assert.deepEqual(outcomes, [{}, {}]);
    assert.equal(events.length, 2);
    for (const e of events) assert.ok(bytesOf(e) <= MAX_PAYLOAD_BYTES);
  });

  test('with provisioned pollers, a record over 6 MB alone goes to the on-failure topic at once, undelivered, and the partition moves on', async () => {
    const converted = [
      toLambdaRecord('in', 0, message(0)),
      toLambdaRecord('in', 0, message(1, { headers: { h: Buffer.alloc(1_600_000, 255) } })),
      toLambdaRecord('in', 0, message(2)),
    ];
    assert.ok(converted[1].bytes > MAX_PAYLOAD_BYTES);
    const delivered: number[] = [];
    const { ctx, effects, stats } = harness(
      provisioned,
      async (e) => (
        delivered.push(
          ...Object.values(e.records)
            .flat()
            .map((r) => r.offset),
        ),
        { batchItemFailures: [] }
      ),
    );
    await runPartition(0, converted, ctx);
    assert.deepEqual(delivered, [0, 2], 'the handler never receives it');
    assert.equal(effects.deadLetters.length, 1);
    assert.equal(effects.deadLetters[0].offset, 1);
    assert.match(
      effects.deadLetters[0].reason,
      /^not delivered: its event would be [\d,]+ bytes, over Lambda's 6 MB invocation payload limit \(6,291,456 bytes\)/,
    );
    assert.equal(effects.commits.at(-1), 3);
    assert.equal(stats.failedToDeadLetter, 1);
    assert.equal(stats.retries, 0, 'retrying cannot shrink it');
  });

  test('without provisioned pollers, a record over 6 MB blocks its partition, as any failing batch does; never dropped, never committed', async () => {
    const converted = [
      toLambdaRecord('in', 0, message(0)),
      toLambdaRecord('in', 0, message(1, { value: 'x'.repeat(5_000_000) })),
      toLambdaRecord('in', 0, message(2)),
    ];
    const delivered: number[] = [];
    const { ctx, effects, stats } = harness(
      base,
      async (e) => (
        delivered.push(
          ...Object.values(e.records)
            .flat()
            .map((r) => r.offset),
        ),
        { batchItemFailures: [] }
      ),
      { stopAfterSleeps: 12 },
    );
    await runPartition(0, converted, ctx);
    assert.deepEqual(delivered, [0]);
    assert.deepEqual(effects.deadLetters, []);
    assert.deepEqual(effects.commits, [1], 'committed up to the big record, not past it');
    assert.deepEqual([...stats.blocked], [[0, { offset: 1, attempts: stats.retries }]]);
    assert.ok(stats.retries >= 3);
    assert.match(
      effects.notices[0],
      /in-0@1 failed \(its event would be [\d,]+ bytes, over Lambda's 6 MB invocation payload limit.*retrying the whole batch until it succeeds, as Lambda does without provisioned pollers: in-0 is blocked here/,
    );
  });
});

describe('failures, as the deployed mapping handles them', () => {
  test('without provisioned pollers a failing batch is retried whole, with growing pauses, until it succeeds, then committed', async () => {
    const converted = Array.from({ length: 5 }, (_, i) => toLambdaRecord('in', 0, message(i)));
    const invocations: number[][] = [];
    const { ctx, effects, stats } = harness(base, async (e) => {
      invocations.push(e.records['in-0'].map((r) => r.offset));
      if (invocations.length <= 3) throw new Error('downstream unavailable');
      return { batchItemFailures: [] };
    });
    await runPartition(0, converted, ctx);
    assert.equal(invocations.length, 4);
    for (const offsets of invocations) assert.deepEqual(offsets, [0, 1, 2, 3, 4], 'the whole batch each time');
    assert.deepEqual(effects.commits, [5]);
    assert.equal(stats.retries, 3);
    assert.deepEqual(effects.deadLetters, []);
    assert.deepEqual(stats.blocked.size, 0, 'unblocked once it succeeds');
    // Pauses per retry: 0.5 s, 1 s, 2 s (slept in slices of at most 1 s, heartbeating between).
    assert.deepEqual(effects.sleeps, [500, 1_000, 1_000, 1_000]);
    assert.equal(BLOCKED_RETRY_BACKOFF.initialMs, 500);
    assert.match(
      effects.notices[0],
      /in-0@0 failed \(downstream unavailable\); retrying the whole batch until it succeeds.*To bound this, give functions\.fn\.sluice provisionedPollers and maximumRetryAttempts/,
    );
  });

  test('without provisioned pollers a partial batch response fails the whole event, every partition in it from its first record', async () => {
    const events: KafkaEvent[] = [];
    const batcher = new Batcher(
      { ...base, maximumBatchingWindowMs: 50 },
      BROKERS,
      async (e) => (events.push(e), { batchItemFailures: [{ itemIdentifier: { partition: 'in-1', offset: 12 } }] }),
    );
    const recs = (p: number, from: number) => [from, from + 1, from + 2].map((o) => toLambdaRecord('in', p, message(o)).record);
    const [o0, o1] = await Promise.all([batcher.submit(0, recs(0, 3), 1_000), batcher.submit(1, recs(1, 10), 1_000)]);
    assert.equal(events.length, 1, 'one event held both partitions');
    assert.equal(o0.failedOffset, 3);
    assert.equal(o1.failedOffset, 10);
    assert.match(
      o1.error!,
      /reported in-1@12 as failed, and without provisioned pollers partial batch responses are off, so the whole batch failed/,
    );
  });

  test('with provisioned pollers the partial batch response is honoured: only the reported partition fails, from the reported offset', async () => {
    const batcher = new Batcher({ ...provisioned, maximumBatchingWindowMs: 50 }, BROKERS, async () => ({
      batchItemFailures: [{ itemIdentifier: { partition: 'in-1', offset: 12 } }],
    }));
    const recs = (p: number, from: number) => [from, from + 1, from + 2].map((o) => toLambdaRecord('in', p, message(o)).record);
    const outcomes: Outcome[] = await Promise.all([batcher.submit(0, recs(0, 3), 1_000), batcher.submit(1, recs(1, 10), 1_000)]);
    assert.deepEqual(outcomes, [{}, { failedOffset: 12, error: 'the handler reported this record as failed' }]);
  });

  test('with provisioned pollers a failing record is retried maximumRetryAttempts times, then goes to the on-failure topic and the partition moves on', async () => {
    const converted = Array.from({ length: 4 }, (_, i) => toLambdaRecord('in', 0, message(i)));
    let calls = 0;
    const { ctx, effects, stats } = harness(provisioned, async (e) => {
      calls++;
      const first = e.records['in-0'][0].offset;
      return first <= 1 && e.records['in-0'].some((r) => r.offset === 1)
        ? { batchItemFailures: [{ itemIdentifier: { partition: 'in-0', offset: 1 } }] }
        : { batchItemFailures: [] };
    });
    await runPartition(0, converted, ctx);
    assert.deepEqual(
      effects.deadLetters.map((d) => d.offset),
      [1],
    );
    assert.match(effects.deadLetters[0].reason, /^failed after 3 attempts: the handler reported this record as failed/);
    assert.deepEqual(effects.commits, [1, 2, 4]);
    assert.equal(stats.retries, 2);
    assert.equal(calls, 4);
    assert.deepEqual(effects.sleeps, [], 'bounded retries do not pause');
  });

  test('batchSize caps the records of one event across partitions', async () => {
    const events: KafkaEvent[] = [];
    const batcher = new Batcher(
      { ...base, batchSize: 4, maximumBatchingWindowMs: 50 },
      BROKERS,
      async (e) => (events.push(e), { batchItemFailures: [] }),
    );
    const recs = (p: number) => [0, 1, 2].map((o) => toLambdaRecord('in', p, message(o)).record);
    await Promise.all([batcher.submit(0, recs(0), 100), batcher.submit(1, recs(1), 100), batcher.submit(2, recs(2), 100)]);
    for (const e of events) assert.ok(Object.values(e.records).flat().length <= 4);
    assert.equal(events.length, 3);
  });
});

describe('the event shape', () => {
  test('an msk event is aws:kafka with the cluster ARN, field for field like the MSK fixture', () => {
    const msk = fixture('msk-event.json');
    const event = lambdaEvent({ eventSource: 'aws:kafka', eventSourceArn: msk.eventSourceArn }, msk.bootstrapServers!, msk.records);
    assert.deepEqual(event, msk);
    assert.deepEqual(Object.keys(event), Object.keys(msk));
  });

  test('a kafka (self-managed) event is SelfManagedKafka without an ARN, like the self-managed fixture', () => {
    const smk = fixture('self-managed-kafka-event.json');
    const event = lambdaEvent(
      { eventSource: 'SelfManagedKafka', eventSourceArn: 'arn:aws:kafka:us-east-1:1:cluster/ignored/x' },
      smk.bootstrapServers!,
      smk.records,
    );
    assert.deepEqual(event, smk);
    assert.equal('eventSourceArn' in event, false);
  });

  test('a kafkajs message becomes the fixture record: base64 value, headers as byte arrays, CREATE_TIME', () => {
    const want = fixture('msk-event.json').records['mytopic-0'][0];
    const m = {
      key: Buffer.from(want.key!, 'base64'),
      value: Buffer.from(want.value!, 'base64'),
      timestamp: String(want.timestamp),
      offset: String(want.offset),
      headers: { headerKey: Buffer.from('headerValue') },
      attributes: 0,
      size: 0,
    } as unknown as KafkaMessage;
    const { record } = toLambdaRecord('mytopic', 0, m);
    const { key: _k1, ...rest } = record;
    const { key: _k2, ...expected } = want;
    assert.deepEqual(rest, expected);
    assert.equal(record.key, Buffer.from(want.key!, 'base64').toString('base64'));
  });
});
