// The emulator's small roles on their own, without a broker: the handler's failure reasons, the
// Lambda-like invocation (context, timeout), the group-join watchdog and the counted transactions.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { Consumer } from 'kafkajs';
import { SluiceError } from 'sluice';
import { FailureReasons, lambdaInvoker } from '../../../framework/src/local/emulator/invocation.js';
import { emptyStats } from '../../../framework/src/local/emulator/stats.js';
import { CountedTransactions } from '../../../framework/src/local/emulator/transactions.js';
import { watchGroupJoin } from '../../../framework/src/local/emulator/watchdog.js';
import type { OutputTransaction } from '../../../framework/src/io/transactions.js';
import type { SluiceHandler } from '../../../framework/src/runtime/handler.js';
import type { KafkaEvent } from '../../../framework/src/runtime/msk-event.js';

const report = (
  partitions: { partition: number; failedOffset?: number; failedStage?: string; error?: unknown }[],
  failed: { partition: number; stage: string; error: unknown }[] = [],
) =>
  ({ partitions: partitions.map((p) => ({ failedOffset: undefined, failedStage: undefined, error: undefined, ...p })), failed }) as never;

test("failure reasons: the handler's account of a failed record, given once, only for offsets in range", () => {
  const reasons = new FailureReasons();
  reasons.record(report([{ partition: 0, failedOffset: 42, failedStage: 'parse', error: new Error('bad json') }, { partition: 1 }]));
  assert.equal(reasons.take(1, 0, 100), undefined, 'partition 1 did not fail');
  assert.equal(reasons.take(0, 43, 50), undefined, 'offset 42 is not among 43..50');
  assert.deepEqual(reasons.take(0, 40, 49), { offset: 42, reason: 'step "parse": bad json' });
  assert.equal(reasons.take(0, 40, 49), undefined, 'given out once');
});

test('failure reasons: a partition that failed whole is reported at the first offset asked about', () => {
  const reasons = new FailureReasons();
  reasons.record(report([], [{ partition: 3, stage: 'commit', error: 'fenced' }]));
  assert.deepEqual(reasons.take(3, 7, 9), { offset: 7, reason: 'state commit failed: fenced' });
});

test("the invocation: a Lambda context with the function's name, Lambda's message past the timeout, one batch counted per call", async () => {
  const stats = emptyStats('fn');
  const seen: string[] = [];
  const handler = (async (_e: KafkaEvent, ctx: { functionName: string }) => {
    seen.push(ctx.functionName);
    return { batchItemFailures: [] };
  }) as unknown as SluiceHandler;
  const invoke = lambdaInvoker(handler, { functionName: 'fn', timeoutMs: 1_000 }, stats);
  assert.deepEqual(await invoke({ eventSource: 'aws:kafka', records: {} }), { batchItemFailures: [] });
  assert.deepEqual(seen, ['fn']);
  const slow = lambdaInvoker(
    (() => new Promise(() => undefined)) as unknown as SluiceHandler,
    { functionName: 'fn', timeoutMs: 30 },
    stats,
  );
  await assert.rejects(
    slow({ eventSource: 'aws:kafka', records: {} }),
    (e: unknown) => e instanceof SluiceError && e.message === 'Task timed out after 0.03 seconds',
  );
  assert.equal(stats.batches, 2);
});

/** A stand-in for a kafkajs consumer: only its events. */
function fakeConsumer(): Consumer & EventEmitter {
  return Object.assign(new EventEmitter(), { events: { GROUP_JOIN: 'consumer.group_join' } }) as unknown as Consumer & EventEmitter;
}

test('the watchdog calls for a fresh consumer only when the group was not joined in time', async () => {
  const stalled = fakeConsumer();
  const joined = fakeConsumer();
  const calls: string[] = [];
  watchGroupJoin(stalled).arm(() => calls.push('stalled'), 20);
  const watch = watchGroupJoin(joined);
  joined.emit('consumer.group_join', { payload: {} });
  watch.arm(() => calls.push('joined'), 20);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(calls, ['stalled']);
});

test('the invocation: one abandoned at its timeout (or by middy just before it) is said, so its container can be replaced; a failure is not', async () => {
  const stats = emptyStats('fn');
  let abandoned = 0;
  const never = lambdaInvoker(
    (() => new Promise(() => undefined)) as unknown as SluiceHandler,
    { functionName: 'fn', timeoutMs: 30 },
    stats,
    () => abandoned++,
  );
  await assert.rejects(never({ eventSource: 'aws:kafka', records: {} }));
  assert.equal(abandoned, 1);
  // middy's early timeout response: rejects a few ms before the timeout while the handler runs on.
  const middyEarly = lambdaInvoker(
    (() =>
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('[AbortError]: The operation was aborted.')), 45),
      )) as unknown as SluiceHandler,
    { functionName: 'fn', timeoutMs: 50 },
    stats,
    () => abandoned++,
  );
  await assert.rejects(middyEarly({ eventSource: 'aws:kafka', records: {} }), /AbortError/);
  assert.equal(abandoned, 2);
  const failing = lambdaInvoker(
    (async () => {
      throw new Error('boom');
    }) as unknown as SluiceHandler,
    { functionName: 'fn', timeoutMs: 1_000 },
    stats,
    () => abandoned++,
  );
  await assert.rejects(failing({ eventSource: 'aws:kafka', records: {} }), /boom/);
  assert.equal(abandoned, 2, 'a handler that failed on its own has ended');
});

test('counted transactions: committed, aborted after sending or a failed commit; an empty abort is neither; reset reaches the inner ones', async () => {
  const ends: string[] = [];
  let resets = 0;
  const inner = {
    async begin(): Promise<OutputTransaction> {
      return {
        published: { at: 4 },
        send: async (messages) => {
          if (messages.some((m) => m.value === 'refused')) throw new Error('send failed');
        },
        commit: async (to) => {
          if (to.at === 13) throw new Error('fenced');
          ends.push(`commit ${to.at}`);
        },
        abort: async () => void ends.push('abort'),
      };
    },
    published: async () => ({ at: 4 }),
    close: async () => {},
    reset: () => void resets++,
  };
  const counts = { committed: 0, aborted: 0 };
  const txns = new CountedTransactions(inner, counts);
  const message = (value: string) => ({ topic: 'out', key: null, value, timestamp: 0, headers: {}, id: value });
  const a = await txns.begin('in', 0);
  assert.deepEqual(a.published, { at: 4 });
  await a.send([message('x')], [], 'fn');
  await a.commit({ at: 10 });
  const empty = await txns.begin('in', 0);
  await empty.abort();
  const sent = await txns.begin('in', 0);
  await sent.send([message('y')], [], 'fn');
  await sent.abort();
  await sent.abort();
  const refused = await txns.begin('in', 0);
  await assert.rejects(refused.send([message('refused')], [], 'fn'), /send failed/);
  const fenced = await txns.begin('in', 0);
  await assert.rejects(fenced.commit({ at: 13 }), /fenced/);
  assert.deepEqual(counts, { committed: 1, aborted: 3 });
  assert.deepEqual(ends, ['commit 10', 'abort', 'abort', 'abort']);
  txns.reset();
  assert.equal(resets, 1);
});
