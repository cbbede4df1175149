// The emulator's small roles on their own, without a broker: the handler's failure reasons, the
// Lambda-like invocation (context, timeout) and the group-join watchdog.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import type { Consumer } from 'kafkajs';
import { SluiceError } from 'sluice';
import { FailureReasons, lambdaInvoker } from '../../../framework/src/local/emulator/invocation.js';
import { emptyStats } from '../../../framework/src/local/emulator/stats.js';
import { watchGroupJoin } from '../../../framework/src/local/emulator/watchdog.js';
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
