// Offset commits pipelined as Lambda makes them: after success, without holding up the next batch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KafkaMessage } from 'kafkajs';
import type { EsmConfig } from '../../../framework/src/config/event-source-mapping.js';
import type { Outcome } from '../../../framework/src/local/emulator/batcher.js';
import { OffsetCommitter } from '../../../framework/src/local/emulator/committer.js';
import { type PartitionContext, runPartition } from '../../../framework/src/local/emulator/partition-loop.js';
import { emptyStats } from '../../../framework/src/local/emulator/stats.js';
import { type Converted, toLambdaRecord } from '../../../framework/src/runtime/msk-event.js';

const config: EsmConfig = {
  functionName: 'fn',
  topic: 'in',
  batchSize: 2,
  maximumBatchingWindowMs: 0,
  startingPosition: 'TRIM_HORIZON',
  consumerGroupId: 'g',
  eventSource: 'SelfManagedKafka',
  provisionedPollers: true,
  maximumRetryAttempts: 3,
  onFailureTopic: 'in.fn.dlq',
  deadLetterTopic: 'in.fn.dlq',
  timeoutMs: 6_000,
};

function records(from: number, to: number): Converted[] {
  const out: Converted[] = [];
  for (let o = from; o < to; o++) {
    const m = { key: null, value: Buffer.from(`{"n":${o}}`), timestamp: '1', offset: String(o), attributes: 0, headers: {} };
    out.push(toLambdaRecord('in', 0, m as unknown as KafkaMessage));
  }
  return out;
}

/** A commit function whose requests the test lands (or fails) one by one. */
function broker() {
  const sent: (readonly (readonly [number, number])[])[] = [];
  const waiting: { resolve(): void; reject(e: unknown): void }[] = [];
  const send = (offsets: readonly (readonly [number, number])[]) =>
    new Promise<void>((resolve, reject) => {
      sent.push(offsets);
      waiting.push({ resolve, reject });
    });
  const tick = () => new Promise((r) => setImmediate(r));
  return {
    sent,
    send,
    inFlight: () => waiting.length,
    async land() {
      waiting.shift()!.resolve();
      await tick();
    },
    async fail(e: Error) {
      waiting.shift()!.reject(e);
      await tick();
    },
    tick,
  };
}

test('one commit request at a time; what partitions ask for meanwhile coalesces into the next, newest offset each', async () => {
  const stats = emptyStats('fn');
  const b = broker();
  const c = new OffsetCommitter(stats, b.send);
  c.request(0, 10);
  c.request(1, 5);
  await b.tick();
  assert.equal(b.inFlight(), 1);
  c.request(0, 20);
  c.request(0, 30);
  c.request(1, 6);
  c.request(2, 1);
  await b.tick();
  assert.equal(b.inFlight(), 1, 'no second request while one is in flight');
  assert.deepEqual(b.sent, [[[0, 10]]]);
  assert.equal(stats.committed.get(0), undefined, 'committed only once it landed');
  await b.land();
  assert.equal(stats.committed.get(0), 10);
  assert.deepEqual(b.sent[1], [
    [1, 6],
    [0, 30],
    [2, 1],
  ]);
  await b.land();
  assert.deepEqual(
    [...stats.committed].sort(([a], [z]) => a - z),
    [
      [0, 30],
      [1, 6],
      [2, 1],
    ],
  );
  assert.equal(b.inFlight(), 0);
});

test('settle waits until every offset its partition asked for has landed, not for other partitions', async () => {
  const b = broker();
  const c = new OffsetCommitter(emptyStats('fn'), b.send);
  c.request(0, 10);
  let settled = false;
  const s = c.settle(0).then(() => (settled = true));
  c.request(0, 11);
  await b.tick();
  assert.equal(settled, false);
  await b.land();
  assert.equal(settled, false, 'offset 11 is still to be sent');
  await b.land();
  await s;
  assert.equal(settled, true);
  await c.settle(3); // nothing asked: returns at once
});

test('a failed commit fails every partition it carried and every one waiting, each told once; later commits go out again', async () => {
  const stats = emptyStats('fn');
  const b = broker();
  const c = new OffsetCommitter(stats, b.send);
  c.request(0, 10);
  await b.tick();
  c.request(1, 4);
  const boom = new Error('REBALANCE_IN_PROGRESS');
  await b.fail(boom);
  assert.equal(b.inFlight(), 0, 'what waited is dropped with it, not sent');
  assert.throws(() => c.request(0, 12), /REBALANCE_IN_PROGRESS/);
  await assert.rejects(c.settle(1), /REBALANCE_IN_PROGRESS/);
  await c.settle(0); // told once
  assert.equal(stats.committed.size, 0);
  c.request(0, 12);
  await b.tick();
  await b.land();
  assert.equal(stats.committed.get(0), 12);
});

/**
 * The partition loop with the committer as the consumer wires it: the log says when each
 * invocation starts and ends and when each commit is asked for and lands.
 */
function pipelined(invoke: (first: number, n: number) => Promise<Outcome>) {
  const stats = emptyStats('fn');
  const log: string[] = [];
  const committer = new OffsetCommitter(stats, async (offsets) => {
    log.push(`send ${offsets.map(([, o]) => o)}`);
    await new Promise((r) => setTimeout(r, 5));
    log.push(`landed ${offsets.map(([, o]) => o)}`);
  });
  const ctx: PartitionContext = {
    config,
    stats,
    limit: 1_000_000,
    async submit(rs) {
      log.push(`invoke ${rs[0].offset}-${rs.at(-1)!.offset}`);
      const o = await invoke(rs[0].offset, rs.length);
      log.push(`done ${rs[0].offset}${o.failedOffset === undefined ? '' : ` failed at ${o.failedOffset}`}`);
      return o;
    },
    async commit(next) {
      committer.request(0, next);
    },
    deadLetter: async (r) => void log.push(`dead letter ${r.offset}`),
    reason: () => undefined,
    notice: () => undefined,
    heartbeat: async () => undefined,
    running: () => true,
    sleep: async () => undefined,
  };
  return { stats, log, committer, ctx };
}

test("a partition's next batch is invoked while the previous one's commit is in flight, never before its outcome; commits go out in order", async () => {
  const { log, committer, ctx, stats } = pipelined(async () => {
    await new Promise((r) => setTimeout(r, 1));
    return {};
  });
  await runPartition(0, records(0, 8), ctx);
  await committer.settle(0);
  const invokes = log.filter((l) => l.startsWith('invoke'));
  assert.deepEqual(invokes, ['invoke 0-1', 'invoke 2-3', 'invoke 4-5', 'invoke 6-7']);
  // Each invocation starts only after the one before it is done.
  for (let i = 1; i < invokes.length; i++)
    assert.ok(log.indexOf(invokes[i]) > log.indexOf(`done ${2 * (i - 1)}`), `${invokes[i]} after its predecessor's outcome`);
  // Pipelined: the second invocation started before the first commit landed.
  assert.ok(log.indexOf('invoke 2-3') < log.indexOf('landed 2'), log.join(' | '));
  const sent = log.filter((l) => l.startsWith('send')).map((l) => Number(l.slice(5)));
  assert.ok(sent.length < 4, `coalesced: ${sent}`);
  for (let i = 1; i < sent.length; i++) assert.ok(sent[i] > sent[i - 1], `monotonic: ${sent}`);
  assert.equal(sent.at(-1), 8);
  assert.equal(stats.committed.get(0), 8);
  assert.equal(stats.records, 8);
});

test('with commits in flight, a failed invocation is retried from its failed offset, and the commits never pass it until it succeeds', async () => {
  let failures = 2;
  const { log, committer, ctx } = pipelined(async (first, n) => {
    await new Promise((r) => setTimeout(r, 1));
    // The batch 4-5 fails at 5 twice (partial batch response), then succeeds.
    if (first <= 5 && first + n > 5 && failures > 0) {
      failures--;
      return { failedOffset: 5, error: 'the handler reported this record as failed' };
    }
    return {};
  });
  await runPartition(0, records(0, 8), ctx);
  await committer.settle(0);
  assert.deepEqual(
    log.filter((l) => l.startsWith('invoke')),
    ['invoke 0-1', 'invoke 2-3', 'invoke 4-5', 'invoke 5-6', 'invoke 5-6', 'invoke 7-7'],
  );
  const sent = log.filter((l) => l.startsWith('send')).map((l) => Number(l.slice(5)));
  for (let i = 1; i < sent.length; i++) assert.ok(sent[i] > sent[i - 1], `monotonic: ${sent}`);
  // Until 5 succeeded, nothing past 5 was asked for.
  const firstPast5 = log.findIndex((l) => l.startsWith('send') && Number(l.slice(5)) > 5);
  assert.ok(firstPast5 > log.lastIndexOf('done 5 failed at 5'), log.join(' | '));
  assert.equal(sent.at(-1), 8);
});

test('a commit that fails stops the partition at its next success, and the failure reaches the batch', async () => {
  const stats = emptyStats('fn');
  const invoked: number[] = [];
  let sends = 0;
  const committer = new OffsetCommitter(stats, async () => {
    await new Promise((r) => setTimeout(r, 2));
    if (++sends === 1) throw new Error('NOT_COORDINATOR');
  });
  const ctx: PartitionContext = {
    config,
    stats,
    limit: 1_000_000,
    async submit(rs) {
      invoked.push(rs[0].offset);
      await new Promise((r) => setTimeout(r, 5));
      return {};
    },
    async commit(next) {
      committer.request(0, next);
    },
    deadLetter: async () => undefined,
    reason: () => undefined,
    notice: () => undefined,
    heartbeat: async () => undefined,
    running: () => true,
    sleep: async () => undefined,
  };
  await assert.rejects(runPartition(0, records(0, 20), ctx), /NOT_COORDINATOR/);
  assert.deepEqual(invoked, [0, 2], 'the batch in flight when the commit failed finishes; nothing after it');
  assert.equal(stats.committed.get(0), undefined);
});

test("a fetch's short last chunk waits for the next fetch when the broker has more; alone, or at the log end, it goes out", async () => {
  const run = async (moreWaiting: boolean, from: number, to: number) => {
    const invoked: string[] = [];
    const commits: number[] = [];
    const ctx: PartitionContext = {
      config: { ...config, batchSize: 3 },
      stats: emptyStats('fn'),
      limit: 1_000_000,
      async submit(rs) {
        invoked.push(`${rs[0].offset}-${rs.at(-1)!.offset}`);
        return {};
      },
      commit: async (next) => void commits.push(next),
      deadLetter: async () => undefined,
      reason: () => undefined,
      notice: () => undefined,
      heartbeat: async () => undefined,
      running: () => true,
      sleep: async () => undefined,
      moreWaiting,
    };
    const done = await runPartition(0, records(from, to), ctx);
    return { invoked, commits, done };
  };
  assert.deepEqual(await run(true, 0, 8), { invoked: ['0-2', '3-5'], commits: [3, 6], done: 6 });
  assert.deepEqual(await run(false, 0, 8), { invoked: ['0-2', '3-5', '6-7'], commits: [3, 6, 8], done: 8 });
  assert.deepEqual(await run(true, 6, 8), { invoked: ['6-7'], commits: [8], done: 2 }, 'a fetch of only a short chunk goes out');
});
