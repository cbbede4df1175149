// `sluice dev --brokers` with the exactly-once guarantee, on the real broker: outputs and dead
// letters go through Kafka transactions, a read_committed reader sees each window result once, the
// same as the at-least-once run's; and an invocation abandoned at its timeout, running on beside
// its retry, publishes nothing (at-least-once, the same injection publishes duplicates).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { sluice, stream, sum } from 'sluice';
import { CaptureLogger } from 'sluice/testing';
import type { EsmConfig } from '../../framework/src/config/event-source-mapping.js';
import type { Guarantee } from '../../framework/src/define/guarantee.js';
import { publishedGroup } from '../../framework/src/io/transactions.js';
import { emulateFunction } from '../../framework/src/local/emulator/index.js';
import { MemoryStore } from '../../framework/src/state/memory-store.js';
import type { BatchBounds, ItemChange, StateScope, StoreCallOptions, WriteStats } from '../../framework/src/state/store.js';
import { brokers, freshTopics, groupOffsets, kafkaAvailability, kafkaClient, produceJson } from '../support/kafka.js';

const availability = await kafkaAvailability();
// Function names (so transactional ids and published groups) and consumer groups of this run only.
const RUN = `${process.pid}-${Date.now().toString(36)}`;
const [IN, DLQ] = ['it-eos-in', 'it-eos-dlq'];
const T0 = 1_767_225_600_000;
const SENSORS = 4;
const SECONDS = 120;

/** 10 s tumbling sums per sensor, 2 s grace, to `out`; `value` must be a number (else a dead letter). */
function sums(out: string, guarantee?: Guarantee) {
  return sluice(
    stream<{ value: number }>(IN, {
      name: 'eos-sums',
      validate: (v) => typeof v?.value === 'number' || 'value must be a number',
      ...(guarantee ? { guarantee } : {}),
    })
      .tumblingWindow('10s', { grace: '2s' })
      .aggregate(sum('value'), { name: 'total' })
      .to(out),
  );
}

/** One record per sensor per second over 2 partitions, and one poison record; the closed windows' sums. */
function dataset() {
  const records: { key: string; value: unknown; timestamp: number; partition: number }[] = [];
  const expected = new Map<string, number>();
  for (let s = 0; s < SECONDS; s++) {
    for (let i = 0; i < SENSORS; i++) {
      const value = (s * 7 + i * 3) % 10;
      records.push({ key: `sensor-${i}`, value: { value }, timestamp: T0 + s * 1000 + 250, partition: i % 2 });
      // Per sensor the clock ends at (SECONDS - 1) s + 250 ms: windows ending by then - 2 s close.
      if (Math.floor(s / 10) * 10 + 10 <= SECONDS - 1 - 2) {
        const id = `eos-sums:total:sensor-${i}:${T0 + Math.floor(s / 10) * 10_000}:${T0 + Math.floor(s / 10) * 10_000 + 10_000}`;
        expected.set(id, (expected.get(id) ?? 0) + value);
      }
    }
    if (s === 30) records.push({ key: 'sensor-0', value: { value: 'NaN' }, timestamp: T0 + s * 1000 + 500, partition: 0 });
  }
  return { records, expected };
}

interface Read {
  readonly id: string;
  readonly value: number;
}

/**
 * Every message of `topics` as one reader at this isolation level sees them: read from the
 * beginning until each topic has at least `atLeast[topic]` and nothing more came for 700 ms (so
 * extras are seen too).
 */
async function readAll(kafka: Kafka, atLeast: Record<string, number>, readUncommitted = false): Promise<Map<string, Read[]>> {
  const topics = Object.keys(atLeast);
  const consumer = kafka.consumer({
    groupId: `it-eos-reader-${RUN}-${readUncommitted}-${Math.random()}`,
    readUncommitted,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const got = new Map<string, Read[]>(topics.map((t) => [t, []]));
  let lastAt = Date.now();
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      const value = JSON.parse(message.value!.toString()).value;
      got.get(topic)!.push({ id: String(message.headers?.['sluice-id']), value });
      lastAt = Date.now();
    },
  });
  const started = Date.now();
  const short = () => topics.some((t) => got.get(t)!.length < atLeast[t]);
  while ((short() || Date.now() - lastAt < 700) && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 50));
  await consumer.disconnect();
  return got;
}

/**
 * A memory store whose `stallAt`-th write returns `ms` late (it is applied at once): its invocation
 * runs past its timeout with its state committed and its outputs not yet published, and goes on
 * to publish them late, beside its retry. `done` settles when it has returned.
 */
class StallingStore extends MemoryStore {
  calls = 0;
  #returned!: () => void;
  readonly done = new Promise<void>((r) => (this.#returned = r));
  constructor(
    readonly stallAt: number,
    readonly ms: number,
  ) {
    super();
  }
  override async write(
    scope: StateScope,
    changes: readonly ItemChange[],
    bounds: BatchBounds,
    opts?: StoreCallOptions,
  ): Promise<WriteStats> {
    const written = await super.write(scope, changes, bounds, opts);
    if (++this.calls === this.stallAt) {
      await new Promise((r) => setTimeout(r, this.ms));
      // Let the stale invocation's transaction commit (or fail) before `done`.
      setTimeout(this.#returned, 500);
    }
    return written;
  }
}

function esm(mode: string, overrides: Partial<EsmConfig> = {}): EsmConfig {
  return {
    functionName: `it-eos-${mode}-${RUN}`,
    topic: IN,
    batchSize: 40,
    maximumBatchingWindowMs: 0,
    startingPosition: 'TRIM_HORIZON',
    consumerGroupId: `it-eos-${mode}-${RUN}`,
    eventSource: 'SelfManagedKafka',
    provisionedPollers: false,
    deadLetterTopic: DLQ,
    timeoutMs: 10_000,
    ...overrides,
  };
}

describe('the emulator with exactly-once outputs, on a real broker', { ...availability, timeout: 120_000, concurrency: 1 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  let data: ReturnType<typeof dataset>;
  before(async () => {
    kafka = kafkaClient('sluice-test-eos');
    admin = kafka.admin();
    await admin.connect();
    data = dataset();
    await freshTopics(admin, [
      { topic: IN, numPartitions: 2 },
      ...['it-eos-out-alo', 'it-eos-out-eos', 'it-eos-out-stall-alo', 'it-eos-out-stall-eos', DLQ].map((topic) => ({
        topic,
        numPartitions: 2,
      })),
    ]);
    await produceJson(kafka, IN, data.records);
  });
  after(async () => {
    await admin?.disconnect();
  });

  /** Runs the emulator until it has committed every input record, then stops it. */
  async function run(handler: ReturnType<typeof sums>, config: EsmConfig, store = new MemoryStore(), guarantee?: Guarantee) {
    const notes: string[] = [];
    const logger = new CaptureLogger();
    handler.sluice.configure({ logger });
    const fn = await emulateFunction({
      kafka,
      brokers,
      handler,
      config,
      store,
      notice: (m) => notes.push(m),
      tickMs: false,
      ...(guarantee ? { guarantee } : {}),
    });
    const ends = new Map((await admin.fetchTopicOffsets(IN)).map((o) => [o.partition, Number(o.high)]));
    try {
      for (let i = 0; i < 300 && [...ends].some(([p, end]) => fn.stats.committed.get(p) !== end); i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(new Map(fn.stats.committed), ends, `every record committed; notices:\n${notes.join('\n')}`);
    } finally {
      await fn.stop();
    }
    return { fn, notes, logger };
  }

  test('read_committed sees every window result exactly once, the same ids and values as the at-least-once run and the reference', async () => {
    const eosHandler = sums('it-eos-out-eos', 'exactly-once');
    assert.equal(eosHandler.sluice.guarantee, 'exactly-once', 'the source option');
    const [alo, eos] = await Promise.all([run(sums('it-eos-out-alo'), esm('alo')), run(eosHandler, esm('eos'))]);
    assert.equal(alo.fn.stats.guarantee, 'at-least-once');
    assert.equal(eos.fn.stats.guarantee, 'exactly-once');

    const read = await readAll(kafka, { 'it-eos-out-alo': data.expected.size, 'it-eos-out-eos': data.expected.size, [DLQ]: 2 });
    const atLeastOnce = read.get('it-eos-out-alo')!;
    const exactlyOnce = read.get('it-eos-out-eos')!;
    const byId = new Map<string, number>();
    for (const m of exactlyOnce) {
      assert.ok(!byId.has(m.id), `${m.id} seen twice by a read_committed reader`);
      byId.set(m.id, m.value);
    }
    assert.deepEqual(byId, data.expected, 'the reference, each window once');
    assert.deepEqual(byId, new Map(atLeastOnce.map((m) => [m.id, m.value])), 'the at-least-once run');
    // The poison record: a dead letter per run, the exactly-once one in the transaction of its batch.
    assert.deepEqual(
      read.get(DLQ)!.map((m) => m.value),
      ['NaN', 'NaN'],
    );

    // Outputs went through transactions: each committed transaction leaves a commit marker, so the
    // output log holds more offsets than messages; and the published group recorded every record.
    const high = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0);
    assert.ok((await high('it-eos-out-eos')) > exactlyOnce.length, 'transaction markers in the output log');
    assert.equal(await high('it-eos-out-alo'), atLeastOnce.length, 'at-least-once writes no markers');
    const inEnds = await admin.fetchTopicOffsets(IN);
    const ends = JSON.stringify(inEnds.map((o) => [o.partition, o.high]).sort());
    const published = await groupOffsets(
      admin,
      publishedGroup(`it-eos-eos-${RUN}`),
      IN,
      (ps) => JSON.stringify(ps.map((p) => [p.partition, p.offset]).sort()) === ends,
    );
    assert.deepEqual(published.map((p) => [p.partition, p.offset]).sort(), inEnds.map((o) => [o.partition, o.high]).sort());
    const { committed, aborted } = eos.fn.stats.transactions;
    assert.ok(committed >= 2 && aborted === 0, `transactions ${committed} committed, ${aborted} aborted`);
    assert.deepEqual(alo.fn.stats.transactions, { committed: 0, aborted: 0 });
  });

  test('an invocation abandoned at its timeout publishes nothing beside its retry: no duplicate ids read_committed (at-least-once: duplicates)', async () => {
    // The 3rd state write returns 4 s late, past the function's timeout (2 s): its invocation is
    // abandoned and retried while it runs on, then tries to publish late. The guarantee is given
    // as `sluice dev --guarantee` gives it, over the source's default.
    const stalled = async (mode: 'alo' | 'eos') => {
      const store = new StallingStore(3, 4_000);
      const r = await run(
        sums(`it-eos-out-stall-${mode}`),
        esm(`stall-${mode}`, { timeoutMs: 2_000 }),
        store,
        mode === 'eos' ? 'exactly-once' : 'at-least-once',
      );
      assert.ok(r.fn.stats.retries >= 1, `the timeout was retried; notices:\n${r.notes.join('\n')}`);
      await store.done;
      return r;
    };
    const [alo, eos] = await Promise.all([stalled('alo'), stalled('eos')]);
    const expected = data.expected.size;
    const read = await readAll(kafka, { 'it-eos-out-stall-alo': expected, 'it-eos-out-stall-eos': expected });
    const aloIds = read.get('it-eos-out-stall-alo')!.map((m) => m.id);
    assert.ok(aloIds.length > new Set(aloIds).size, 'at-least-once: the abandoned invocation and its retry both published');

    const committed = read.get('it-eos-out-stall-eos')!;
    const ids = committed.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicate ids read_committed');
    assert.deepEqual(new Map(committed.map((m) => [m.id, m.value])), data.expected);
    const counts = eos.fn.stats.transactions;
    assert.ok(counts.aborted >= 1, `the abandoned transaction aborted: ${JSON.stringify(counts)}`);
    // It was fenced: its retry claimed the partition's transactional id afresh (transactions.reset()).
    const failures = eos.logger.at('error').filter((e) => e.stage === 'publish');
    assert.ok(
      failures.some((e) => /old epoch|fenced/i.test(String(e.error))),
      JSON.stringify(eos.logger.entries),
    );
    // What the abandoned invocation sent is in the log, aborted: a read_uncommitted reader sees it.
    const uncommitted = (await readAll(kafka, { 'it-eos-out-stall-eos': expected + 1 }, true)).get('it-eos-out-stall-eos')!;
    assert.ok(uncommitted.length > ids.length, `read_uncommitted sees the aborted outputs (${uncommitted.length} vs ${ids.length})`);
    assert.equal(alo.logger.at('error').filter((e) => e.stage === 'publish').length, 0);
  });
});
