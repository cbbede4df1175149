/**
 * Exactly-once delivery (`guarantee: 'exactly-once'`): the order in which one partition's work
 * reaches Kafka and the state store so that a `read_committed` consumer sees every output, late
 * record and dead letter once, across crashes, retries, re-batched retries and stale invocations.
 * The at-least-once order lives in `invoke.ts`; docs/guarantees.md states both with their
 * failure cases.
 *
 * A batch: claim the partition's transaction (fencing every older producer of it; the position
 * the partition published is read after the claim, so it is final), leave out the records already
 * published, run, send into the transaction while state commits, then commit the transaction
 * with the batch's last offset as the published position. A crash before the transaction commits publishes
 * nothing; Lambda retries, and the retry recomputes the same outputs from the versions kept from
 * before its first record (state commits are replays). A crash after it: the retry finds the
 * records published and leaves them out.
 *
 * An idle tick has no records to recompute from, and several ticks can run at one position, so it
 * goes the other way: it commits its transaction first, published as its position and sequence
 * number `k`, then its state (with `k` in the idle item). A crash between leaves the tick's state
 * behind what it published; whoever claims the partition next (a batch or a tick) sees the idle
 * item's `k` short of the published one and finishes the tick's state first, dropping its outputs.
 */
import { errorText, isRetriable } from '../errors.js';
import { type Published, isPublished, type OutputTransaction, type OutputTransactions } from '../io/transactions.js';
import { decideTick, type TickDecision } from '../pipeline/idle.js';
import type { PartitionResult, RunOptions } from '../pipeline/runner.js';
import { IDLE_ITEM, idleNamespace } from '../state/namespaces.js';
import type { StateScope, StoreCallOptions } from '../state/store.js';
import type { IdleState } from '../windows/idle.js';
import { deadPartition, type Invocation, logRecordFailure, type PartitionFailure, uncommittedLetters } from './invoke.js';
import type { PartitionBatch } from './msk-event.js';
import type { BatchResponse } from './response.js';

/**
 * Where one partition's outcome goes: the invocation's response and report.
 *
 * @example
 * await deliverBatch(run, transactions, batch, { now }, { response, done, failed });
 */
export interface Outcomes {
  readonly response: BatchResponse;
  readonly done: PartitionResult[];
  readonly failed: PartitionFailure[];
}

/**
 * One partition batch, exactly once (see the module comment). Failures that can pass fail the
 * partition from its first unpublished record, with the transaction aborted; a deterministic one
 * dead-letters the records, in the transaction.
 *
 * @example
 * await Promise.all(partitions.map((p) => deliverBatch(run, transactions, p, { now }, outcomes)));
 */
export async function deliverBatch(
  run: Invocation,
  transactions: OutputTransactions,
  p: PartitionBatch,
  opts: RunOptions,
  out: Outcomes,
): Promise<void> {
  const { runtime, runner, manifest } = run;
  const log = runtime.logger;
  const { topic, partition } = p;
  const fail = (stage: PartitionFailure['stage'], error: unknown, from: number) => {
    log.error({ sluice: stage === 'commit' ? 'commit-failed' : 'partition-failed', topic, partition, stage, error: errorText(error) });
    out.failed.push({ topic, partition, stage, error });
    out.response.fail(topic, partition, from);
  };
  let txn: OutputTransaction;
  try {
    txn = await transactions.begin(topic, partition);
  } catch (e) {
    fail('publish', e, p.records[0].offset);
    return;
  }
  // Records a committed transaction already published (a retry after the commit) are done.
  const records = p.records.filter((r) => !isPublished({ at: r.offset }, txn.published));
  if (records.length === 0) {
    await txn.abort();
    return;
  }
  const first = records[0].offset;
  const scope: StateScope = { functionName: runner.functionName, topic, partition };
  let result: PartitionResult;
  try {
    await finishTick(run, scope, txn.published, opts);
    result = await runner.run(topic, partition, records, opts);
  } catch (e) {
    if (isRetriable(e)) {
      await txn.abort();
      fail('read', e, first);
      return;
    }
    log.error({ sluice: 'partition-dead-lettered', topic, partition, stage: 'read', error: errorText(e) });
    result = deadPartition({ ...p, records }, e);
  }
  if (result.failedOffset === first) {
    // Nothing was applied: nothing to publish or commit; Lambda resumes at that record.
    await txn.abort();
    logRecordFailure(log, result);
    out.response.fail(topic, partition, first);
    out.done.push(result);
    return;
  }
  // Sending and the state commit overlap: the transaction stays invisible until it commits, after
  // both; if the send fails after the state committed, the retry recomputes (as after a crash).
  const [sent, committed] = await Promise.allSettled([txn.send(result.outputs, result.deadLetters, manifest.name), result.commit()]);
  if (sent.status === 'rejected') {
    await txn.abort();
    fail('publish', sent.reason, first);
    return;
  }
  if (committed.status === 'rejected') {
    const e = committed.reason;
    if (isRetriable(e)) {
      await txn.abort();
      fail('commit', e, first);
      return;
    }
    // No retry could commit it: its records (not yet dead letters) become dead letters, published
    // with the rest, and the partition goes on.
    log.error({ sluice: 'partition-dead-lettered', topic, partition, stage: 'commit', error: errorText(e) });
    try {
      await txn.send([], uncommittedLetters(records, result, e), manifest.name);
    } catch (e2) {
      fail('publish', e2, first);
      return;
    }
  }
  const last = result.failedOffset !== undefined ? result.failedOffset - 1 : records[records.length - 1].offset;
  try {
    await txn.commit({ at: last });
  } catch (e) {
    // State is committed and nothing published: the retry recomputes the outputs from the
    // versions kept from before `first`.
    fail('publish', e, first);
    return;
  }
  if (result.failedOffset !== undefined) {
    logRecordFailure(log, result);
    out.response.fail(topic, partition, result.failedOffset);
  }
  out.done.push(result);
}

/**
 * What one exactly-once tick did for a partition: its decision and result, or why it stopped.
 *
 * @example
 * const t = await deliverTick(run, transactions, 'clicks', 0, Date.now(), endOffset, {});
 */
export interface TickDelivery {
  readonly decision: TickDecision;
  readonly result?: PartitionResult;
  /** Whether the tick's transaction committed (its windows are closed for readers even if `error`). */
  readonly published?: boolean;
  readonly error?: unknown;
}

/**
 * One partition of an idle tick, exactly once: outputs published before state (see the module
 * comment). A tick never runs while the partition's last batch is applied but unpublished (its
 * retry is coming): a tick published after it would make that retry skip its records.
 *
 * @example
 * const t = await deliverTick(run, transactions, 'clicks', 0, Date.now(), () => endOffset(0), {});
 */
export async function deliverTick(
  run: Invocation,
  transactions: OutputTransactions,
  topic: string,
  partition: number,
  now: number,
  endOffset: () => Promise<number>,
  opts: StoreCallOptions,
): Promise<TickDelivery> {
  const { runtime, runner, manifest } = run;
  const scope: StateScope = { functionName: runner.functionName, topic, partition };
  const state = await readIdle(run, scope, opts);
  if (!state || state.l < 0) return { decision: { action: 'skip', reason: 'no state' } };
  // Claiming fences the producer of whichever container runs the partition's batches, so a tick
  // claims only when it has something to publish or finish.
  let decision: TickDecision;
  if (state.p === state.l + 0.5 && tickUnfinished(state, await transactions.published(topic, partition))) {
    decision = { action: 'close', at: state.p, proposed: false };
  } else {
    decision = await decideTick(runtime.store, scope, runner.pipeline.idleWindows, now, endOffset, opts);
    if (decision.action !== 'close') return { decision };
  }
  const txn = await transactions.begin(topic, partition);
  try {
    const fresh = (await readIdle(run, scope, opts)) ?? state;
    if (!isPublished({ at: fresh.l }, txn.published)) {
      // The last batch is applied and unpublished: its retry is coming, and must find it unpublished.
      await txn.abort();
      return { decision: { action: 'skip', reason: 'lagging' } };
    }
    if (await finishTick(run, scope, txn.published, { now, ...opts }, fresh)) {
      await txn.abort();
      return { decision: { action: 'close', at: fresh.p!, proposed: false } };
    }
    if (decision.action !== 'close' || decision.at !== fresh.l + 0.5) {
      await txn.abort();
      return { decision: { action: 'skip', reason: 'raced' } };
    }
    const published = txn.published;
    const seq = Math.max(fresh.k ?? 0, published.at === decision.at ? (published.tick ?? 0) : 0) + 1;
    // The floors it closes with are published with it: a tick that finishes its state closes the same.
    const floors = fresh.f ?? {};
    const result = await runner.run(topic, partition, [], { tickAt: decision.at, tickSeq: seq, tickFloors: floors, now, ...opts });
    if (result.failedOffset !== undefined) {
      await txn.abort();
      return { decision, error: result.error ?? new Error(`step "${result.failedStage}" failed`) };
    }
    await txn.send(result.outputs, result.deadLetters, manifest.name);
    await txn.commit({ at: decision.at, tick: seq, floors });
    // Published: from here a failure leaves the state to the next claimant (finishTick).
    try {
      await result.commit();
    } catch (e) {
      return { decision, result, published: true, error: e };
    }
    return { decision, result, published: true };
  } catch (e) {
    await txn.abort();
    return { decision, error: e };
  }
}

/** Whether the idle item's last tick is behind what the partition published (its state unfinished). */
function tickUnfinished(state: IdleState, published: Published): boolean {
  return published.tick !== undefined && state.p === published.at && (state.k ?? 0) < published.tick;
}

/**
 * Finishes the state of a tick whose transaction committed and whose state did not (the idle
 * item's `k` is short of the published tick's): runs the tick again at its position, which closes
 * what its floors make due, and commits the state without publishing (its outputs are out).
 * Returns whether there was one.
 */
async function finishTick(
  run: Invocation,
  scope: StateScope,
  published: Published,
  opts: RunOptions & StoreCallOptions,
  known?: IdleState,
): Promise<boolean> {
  if (published.tick === undefined || run.runner.pipeline.idleWindows.length === 0) return false;
  const state = known ?? (await readIdle(run, scope, opts));
  if (!state || !tickUnfinished(state, published)) return false;
  const result = await run.runner.run(scope.topic, scope.partition, [], {
    ...opts,
    tickAt: published.at,
    tickSeq: published.tick,
    ...(published.floors ? { tickFloors: published.floors } : {}),
  });
  if (result.failedOffset !== undefined) throw result.error ?? new Error(`step "${result.failedStage}" failed`);
  await result.commit();
  run.runtime.logger.info({
    sluice: 'tick-finished',
    topic: scope.topic,
    partition: scope.partition,
    at: published.at,
    tick: published.tick,
  });
  return true;
}

/** The partition's idle item, newest version. */
async function readIdle(run: Invocation, scope: StateScope, opts: StoreCallOptions): Promise<IdleState | undefined> {
  const ns = idleNamespace();
  const { deadline } = opts;
  const item = (await run.runtime.store.read(scope, ns, [IDLE_ITEM], deadline === undefined ? {} : { deadline })).get(IDLE_ITEM);
  return item?.value as IdleState | undefined;
}
