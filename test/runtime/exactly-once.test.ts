// Exactly-once delivery on a real broker (issue 14): each partition batch's outputs and dead letters
// in one Kafka transaction, committed with its state; crashes either side of the transaction
// commit, re-batched retries and a stale invocation leave every output visible exactly once to a
// read_committed reader, while a read_uncommitted reader still sees the aborted copies.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { type Definition, type SluiceHandler, sluice, stream, sum } from 'sluice';
import { MemoryStore } from 'sluice/state';
import { CaptureLogger, CaptureSink, type InputRecord, lambdaContext, runFunction, toKafkaEvents } from 'sluice/testing';
import { guaranteeOf } from '../../framework/src/define/guarantee.js';
import { KafkaTransactions } from '../../framework/src/io/kafka-transactions.js';
import { decodePublished, encodePublished, isPublished, type OutputTransactions } from '../../framework/src/io/transactions.js';
import type { OutputMessage } from 'sluice/runtime';
import type { KafkaEvent } from '../../framework/src/runtime/msk-event.js';
import { freshTopics, kafkaAvailability, kafkaClient, type Received, readUntil } from '../support/kafka.js';

test('a published position survives the group offset and its metadata', () => {
  assert.deepEqual(decodePublished(...(Object.values(encodePublished({ at: 41 })) as [string, string])), { at: 41 });
  assert.deepEqual(decodePublished(...(Object.values(encodePublished({ at: 41.5, tick: 3 })) as [string, string])), { at: 41.5, tick: 3 });
  assert.deepEqual(decodePublished('-1', ''), { at: -1 });
  // Another tool's commit (no Sluice metadata): the offset alone, as Kafka means it.
  assert.deepEqual(decodePublished('42', 'checkpoint'), { at: 41 });
  assert.equal(isPublished({ at: 41 }, { at: 41.5, tick: 1 }), true);
  assert.equal(isPublished({ at: 42 }, { at: 41.5, tick: 1 }), false);
  assert.equal(isPublished({ at: 41.5, tick: 2 }, { at: 41.5, tick: 1 }), false);
  assert.equal(isPublished({ at: 41.5, tick: 1 }, { at: 41.5, tick: 2 }), true);
});

test('the guarantee: the deployed SLUICE_GUARANTEE, else the source, else at-least-once; a stale deployment fails at load', () => {
  const says = sluice(stream('t', { guarantee: 'exactly-once' }).to('o')).sluice.manifest;
  const silent = sluice(stream('t').to('o')).sluice.manifest;
  assert.equal(guaranteeOf(silent, {}), 'at-least-once');
  assert.equal(guaranteeOf(says, {}), 'exactly-once');
  assert.equal(guaranteeOf(silent, { SLUICE_GUARANTEE: 'exactly-once' }), 'exactly-once');
  assert.throws(
    () => guaranteeOf(says, { SLUICE_GUARANTEE: 'at-least-once' }),
    /deployed with SLUICE_GUARANTEE=at-least-once, but its source says guarantee: 'exactly-once'.*sls deploy/,
  );
  assert.throws(
    () => guaranteeOf(silent, { SLUICE_GUARANTEE: 'once' }),
    /SLUICE_GUARANTEE must be one of 'at-least-once' or 'exactly-once'; received "once"/,
  );
  assert.throws(() => stream('t', { guarantee: 'exactly_once' as never }), /guarantee of stream "t" must be one of/);
});

const run = `${process.pid}-${Date.now()}`;

/** Records of 8 keys over 10 tumbling windows of 1 s, in one partition, 3 of them poison. */
function input(): InputRecord[] {
  const out: InputRecord[] = [];
  for (let i = 0; i < 400; i++) {
    const value = i % 133 === 7 ? { n: 'not a number' } : { n: i % 5 };
    out.push({ key: `k${i % 8}`, value, timestamp: 1_000 + i * 25, partition: 0 });
  }
  return out;
}

function definition(source: string, out: string): Definition {
  return stream<{ n: number }>(source, {
    guarantee: 'exactly-once',
    validate: (v) => typeof v?.n === 'number' || 'n must be a number',
  })
    .tumblingWindow('1s', { grace: '0s' })
    .aggregate({ total: sum('n') })
    .to(out);
}

type Fault = 'none' | 'crash-before-commit' | 'crash-after-commit';

/** One call of a scenario: an invocation or a tick, at a wall-clock time. */
type Step = (h: SluiceHandler, wall: { now: number }) => Promise<unknown>;

/** A container's transactions, crashing as told: a crash leaves the transaction open, as a dead process does. */
function faulty(
  inner: OutputTransactions,
  fault: () => Fault,
  gate?: () => Promise<void> | undefined,
  claims?: { n: number },
): OutputTransactions {
  return {
    async begin(topic, partition) {
      if (claims) claims.n++;
      const txn = await inner.begin(topic, partition);
      const wait = gate?.();
      return {
        published: txn.published,
        send: (m, l, f) => txn.send(m, l, f),
        abort: () => txn.abort(),
        async commit(to) {
          await wait;
          const f = fault();
          if (f === 'crash-before-commit') throw new Error('crash: the container died before the transaction commit');
          await txn.commit(to);
          if (f === 'crash-after-commit') throw new Error('crash: the container died after the transaction commit');
        },
      };
    },
    published: (topic, partition) => inner.published(topic, partition),
    close: () => inner.close(),
  };
}

describe('exactly-once outputs on a real broker', { ...(await kafkaAvailability()), timeout: 120_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  const source = `it-eo-in-${run}`;
  const containers: KafkaTransactions[] = [];
  before(async () => {
    kafka = kafkaClient('sluice-eo-test');
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await Promise.all(containers.map((c) => c.close()));
    await admin?.disconnect();
  });

  /** Fresh source and output topics for one test (and the dead-letter topic the containers use). */
  async function topics(name: string): Promise<{ src: string; out: string }> {
    const src = `it-eo-${name}-in-${run}`;
    const out = `it-eo-${name}-out-${run}`;
    await freshTopics(admin, [
      { topic: src, numPartitions: 1 },
      { topic: out, numPartitions: 1 },
      { topic: `${source}.dlq`, numPartitions: 1 },
    ]);
    return { src, out };
  }

  /** The same calls at least once, without faults: every window's result, and how many ticks closed. */
  async function reference(
    def: Definition,
    steps: readonly Step[],
    start: number,
  ): Promise<{ messages: OutputMessage[]; closedByTicks: number }> {
    const ref = sluice(def);
    const capture = new CaptureSink();
    const wall = { now: start };
    let closedByTicks = 0;
    ref.sluice.configure({
      store: new MemoryStore(),
      sink: capture,
      deadLetters: capture,
      clock: () => wall.now,
      logger: new CaptureLogger(),
      onTick: (r) => (closedByTicks += r.windowsClosed),
    });
    for (const step of steps) await step(ref, wall);
    return { messages: capture.messages, closedByTicks };
  }

  /** A Lambda container: its own handler and transactions, sharing the function's state. */
  function container(
    def: Definition,
    store: MemoryStore,
    fault: () => Fault = () => 'none',
    gate?: () => Promise<void> | undefined,
    claims?: { n: number },
  ): SluiceHandler {
    const handler = sluice(def);
    const transactions = new KafkaTransactions({
      kafka: async () => kafka,
      manifest: handler.sluice.manifest,
      functionName: `eo-test-${run}`,
      deadLetterTopic: `${source}.dlq`,
    });
    containers.push(transactions);
    handler.sluice.configure({
      store,
      transactions: faulty(transactions, fault, gate, claims),
      ...(process.env.EO_DEBUG ? {} : { logger: new CaptureLogger() }),
    });
    return handler;
  }

  const events = (batchSize: number, from = 0) =>
    [...toKafkaEvents(input().slice(from), { topic: source, batchSize, startOffset: from })] as KafkaEvent[];
  const ctx = lambdaContext('eo');

  /** Every (id, value) a read_committed reader sees on `topic`, waiting for `n`. */
  async function committed(topic: string, n: number): Promise<Received[]> {
    return readUntil(kafka, topic, (m) => m.length >= n, 30_000);
  }

  test('crashes either side of the transaction commit, re-batched retries and a stale invocation: every output once', async () => {
    const out = `it-eo-out-${run}`;
    await freshTopics(admin, [
      { topic: source, numPartitions: 1 },
      { topic: out, numPartitions: 1 },
      { topic: `${source}.dlq`, numPartitions: 1 },
    ]);
    const def = definition(source, out);
    const reference = await runFunction(def, input(), { batchSize: 50 });
    const expected = new Map(reference.outputs.map((m) => [m.id, m.value]));
    assert.ok(expected.size >= 60, `the reference closes windows: ${expected.size}`);
    const store = new MemoryStore();

    // 1. Batch [0, 100): state committed, then the container dies before the transaction commits.
    const c1 = container(def, store, () => 'crash-before-commit');
    const first = events(100)[0];
    const r1 = await c1(first, ctx as never);
    assert.deepEqual(r1.batchItemFailures, [{ itemIdentifier: { partition: `${source}-0`, offset: 0 } }]);

    // 2. Lambda retries it re-batched ([0, 150)) in a new container: its claim aborts the open
    //    transaction; the retry recomputes the outputs from the versions kept from before 0 and
    //    commits, then dies after the commit (the response is lost).
    const c2 = container(def, store, () => 'crash-after-commit');
    assert.deepEqual((await c2(events(150)[0], ctx as never)).batchItemFailures, [
      { itemIdentifier: { partition: `${source}-0`, offset: 0 } },
    ]);

    // 3. The retry of that ([0, 200)) finds [0, 150) published and leaves it out.
    const c3 = container(def, store);
    assert.deepEqual((await c3(events(200)[0], ctx as never)).batchItemFailures, []);

    // 4. A stale invocation: a container begins [200, 300) and stalls before its commit; its retry
    //    runs in another container and commits; the stale one wakes up fenced.
    let wake!: () => void;
    const stalled = new Promise<void>((r) => (wake = r));
    const zombie = container(
      def,
      store,
      () => 'none',
      () => stalled,
    );
    const zombieRun = zombie(events(100, 200)[0], ctx as never);
    await new Promise((r) => setTimeout(r, 300));
    const c4 = container(def, store);
    assert.deepEqual((await c4(events(100, 200)[0], ctx as never)).batchItemFailures, []);
    wake();
    const late = await zombieRun;
    assert.deepEqual(
      late.batchItemFailures,
      [{ itemIdentifier: { partition: `${source}-0`, offset: 200 } }],
      'the stale invocation could not commit',
    );

    // 5. The rest, whole, in the same container as 4 (its producer is reused).
    for (const e of events(100, 300)) assert.deepEqual((await c4(e, ctx as never)).batchItemFailures, []);

    const seen = await committed(out, expected.size);
    await new Promise((r) => setTimeout(r, 500)); // anything beyond the expected count would be a duplicate
    const again = await committed(out, expected.size);
    const ids = again.map((m) => m.headers['sluice-id']);
    assert.equal(new Set(ids).size, ids.length, `no id twice: ${ids.length} messages, ${new Set(ids).size} ids`);
    assert.equal(again.length, expected.size);
    assert.ok(seen.length <= again.length);
    for (const m of again) assert.deepEqual(m.value, expected.get(m.headers['sluice-id']), m.headers['sluice-id']);
    // The three poison records were dead-lettered once each, in the same transactions.
    const letters = await committed(`${source}.dlq`, 3);
    assert.deepEqual(
      letters.map((m) => Number(m.headers['sluice-source-offset'])).sort((a, b) => a - b),
      [7, 140, 273],
    );
    // A read_uncommitted reader sees the aborted copies: the transactions, not luck, removed them.
    const raw = await readUncommitted(kafka, out, expected.size + 1);
    assert.ok(raw > expected.size, `aborted outputs exist in the log: ${raw} > ${expected.size}`);
  });

  test('a stale invocation still running in the same container (middy answered at the timeout) is fenced by its retry there', async () => {
    const { src, out } = await topics('same');
    const def = definition(src, out);
    const records = input().slice(0, 200);
    const event = [...toKafkaEvents(records, { topic: src, batchSize: 200 })][0] as KafkaEvent;
    const expected = new Map((await runFunction(def, records, { batchSize: 200 })).outputs.map((m) => [m.id, m.value]));
    let wake!: () => void;
    const stalled = new Promise<void>((r) => (wake = r));
    let calls = 0;
    // One container; its first invocation stalls before its commit, as one cut off by middy would.
    const h = container(
      def,
      new MemoryStore(),
      () => 'none',
      () => (++calls === 1 ? stalled : undefined),
    );
    const stale = h(event, ctx as never);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual((await h(event, ctx as never)).batchItemFailures, [], 'the retry claims the id with a new producer');
    wake();
    assert.deepEqual(
      (await stale).batchItemFailures,
      [{ itemIdentifier: { partition: `${src}-0`, offset: 0 } }],
      'the stale one is fenced',
    );
    const got = await committed(out, expected.size);
    await new Promise((r) => setTimeout(r, 300));
    const all = await committed(out, Math.max(got.length, expected.size));
    const ids = all.map((m) => m.headers['sluice-id']);
    assert.equal(new Set(ids).size, ids.length, 'no id twice');
    assert.deepEqual(new Set(ids), new Set(expected.keys()));
  });

  test('a tick that finishes a published tick closes only what that tick published, even after floors moved', async () => {
    const { src, out } = await topics('floors');
    const def = stream<{ n: number }>(src, { guarantee: 'exactly-once' })
      .sessionWindow('5s', { idle: '2s' })
      .aggregate({ total: sum('n') })
      .to(out);
    // Key a's session ends at 6 s (event time), b's at 15 s: a tick 3 s after the last arrival has
    // floor 11 s (a closes), one 60 s after has floor 68 s (b closes too).
    const records: InputRecord[] = [
      { key: 'a', value: { n: 1 }, timestamp: 1_000, partition: 0 },
      { key: 'b', value: { n: 2 }, timestamp: 9_000, partition: 0 },
      { key: 'b', value: { n: 3 }, timestamp: 10_000, partition: 0 },
    ];
    const event = [...toKafkaEvents(records, { topic: src, batchSize: 10 })][0] as KafkaEvent;
    const W = 1_800_000_000_000;
    const ends = { endOffsets: async () => new Map([[0, 3]]) };
    const steps: Step[] = [
      (h, w) => ((w.now = W), h(event, ctx as never)),
      (h, w) => ((w.now = W + 3_000), h.sluice.tick({ offsets: ends })),
      (h, w) => ((w.now = W + 60_000), h.sluice.tick({ offsets: ends })),
      (h, w) => ((w.now = W + 70_000), h.sluice.tick({ offsets: ends })),
    ];
    const capture = await reference(def, steps, W);
    assert.deepEqual(
      capture.messages.map((m) => m.key),
      ['a', 'b'],
    );
    // Exactly once: the tick at 3 s publishes a's session and dies before its state; the tick at
    // 60 s confirms higher floors, then finishes the first tick's state with its floors (a only).
    const store = new MemoryStore();
    const wall = { now: W };
    const plan: Fault[] = ['none', 'crash-after-commit', 'none', 'none'];
    for (const [i, step] of steps.entries()) {
      const h = container(def, store, () => plan[i]);
      h.sluice.configure({ clock: () => wall.now });
      await step(h, wall);
    }
    const got = await committed(out, 2);
    await new Promise((r) => setTimeout(r, 300));
    const all = await committed(out, Math.max(2, got.length));
    assert.deepEqual(
      all.map((m) => [m.key, m.headers['sluice-id']]),
      capture.messages.map((m) => [m.key, m.id]),
    );
  });

  test('idle ticks publish before their state: a crash between is finished by the next batch or tick, nothing twice', async () => {
    const { src, out } = await topics('tick');
    const def = stream<{ n: number }>(src, { guarantee: 'exactly-once' })
      .tumblingWindow('1s', { grace: '0s', idle: '2s' })
      .aggregate({ total: sum('n') })
      .to(out);
    const records: InputRecord[] = [];
    for (let i = 0; i < 150; i++)
      records.push({ key: `k${i % 6}`, value: { n: i % 7 }, timestamp: (i < 100 ? 1_000 : 60_000) + i * 30, partition: 0 });
    const batch = (from: number, to: number) =>
      [...toKafkaEvents(records.slice(from, to), { topic: src, batchSize: 1_000, startOffset: from })][0] as KafkaEvent;
    const W = 1_800_000_000_000;
    const ends = (end: number) => ({ endOffsets: async () => new Map([[0, end]]) });
    const steps: Step[] = [
      (h, w) => ((w.now = W), h(batch(0, 100), ctx as never)),
      (h, w) => ((w.now = W + 10_000), h.sluice.tick({ offsets: ends(100) })),
      (h, w) => ((w.now = W + 20_000), h(batch(100, 150), ctx as never)),
      (h, w) => ((w.now = W + 40_000), h.sluice.tick({ offsets: ends(150) })),
      (h, w) => ((w.now = W + 50_000), h.sluice.tick({ offsets: ends(150) })),
      (h, w) => ((w.now = W + 60_000), h.sluice.tick({ offsets: ends(150) })),
    ];

    // The reference: the same calls, at least once, no faults.
    const capture = await reference(def, steps, W);
    assert.ok(capture.closedByTicks > 0, 'the reference ticks closed windows');
    const expected = new Map(capture.messages.map((m) => [m.id, m.value]));
    assert.ok(expected.size >= 20, `ticks and batches close windows: ${expected.size}`);

    // Exactly once: step 2's tick and step 4's crash after their transaction commits.
    const store = new MemoryStore();
    const wall = { now: W };
    const plan: Fault[] = ['none', 'crash-after-commit', 'none', 'crash-after-commit', 'none', 'none'];
    const decisions: string[] = [];
    const claims = steps.map(() => ({ n: 0 }));
    for (const [i, step] of steps.entries()) {
      const h = container(def, store, () => plan[i], undefined, claims[i]);
      h.sluice.configure({
        clock: () => wall.now,
        onTick: (r) => decisions.push(r.partitions.map((p) => `${p.decision.action}${p.error ? ' failed' : ''}`).join()),
      });
      await step(h, wall);
    }
    // Both crashed ticks had published; step 5 finished the second one's state (the batch of step 3 the first's).
    assert.deepEqual(decisions, ['close failed', 'close failed', 'close', 'skip']);
    // A tick with nothing to publish or finish never claims: that would fence the batches' producer.
    assert.deepEqual(
      claims.map((c) => c.n),
      [1, 1, 1, 1, 1, 0],
    );
    const got = await committed(out, expected.size);
    await new Promise((r) => setTimeout(r, 500));
    const all = await committed(out, expected.size);
    const ids = all.map((m) => m.headers['sluice-id']);
    assert.equal(new Set(ids).size, ids.length, 'no id twice');
    assert.ok(got.length <= all.length);
    assert.deepEqual(new Set(ids), new Set(expected.keys()));
    for (const m of all) assert.deepEqual(m.value, expected.get(m.headers['sluice-id']));
  });
});

/** How many messages a read_uncommitted reader finds on a topic (waiting for at least `min`). */
async function readUncommitted(kafka: Kafka, topic: string, min: number): Promise<number> {
  const consumer = kafka.consumer({ groupId: `it-eo-raw-${run}-${Math.random()}`, readUncommitted: true });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let n = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.run({
    eachMessage: async () => {
      if (++n >= min) done();
    },
  });
  const timer = setTimeout(done, 10_000);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return n;
}
