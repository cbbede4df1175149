/**
 * One invocation as a unit: a Kafka event's partitions in, one report out. It owns the order
 * that makes outputs at-least-once and state exactly-once: outputs, then dead letters, leave
 * before any state is committed; a partition whose state cannot be read or committed fails whole
 * and Lambda retries it, unless no retry could change that (`isRetriable`): then its records are
 * dead letters with the error, and the partition goes on. `flush` goes through the same hand-off.
 */
import type { Guarantee } from '../define/guarantee.js';
import type { Manifest } from '../define/manifest.js';
import { errorText, isRetriable, SluiceError } from '../errors.js';
import type { DeadLetterSink, OutputSink } from '../io/sinks.js';
import type { OutputTransactions } from '../io/transactions.js';
import { eventLetter } from '../pipeline/dead-letters.js';
import { type DeadLetter, type LateOutput, letterOrigin } from '../pipeline/records.js';
import type { PartitionResult } from '../pipeline/runner.js';
import { type BatchStats, newStats, sumStats } from '../pipeline/stats.js';
import type { StateStore } from '../state/store.js';
import type { Logger } from './logger.js';
import type { KafkaBatchResponse, KafkaEventRecord, PartitionBatch } from './msk-event.js';
import type { PartitionRunner } from './partition-runner.js';
import { BatchResponse } from './response.js';
import { deliverBatch } from './exactly-once.js';
import type { EndOffsets, TickReport } from './tick.js';

/**
 * The adapters a handler runs with. Lambda gets defaults; `sluice dev` and tests swap them.
 *
 * @example
 * const runtime: Runtime = { store: new MemoryStore(), sink: logOutputSink, deadLetters: logDeadLetterSink, logger: consoleLogger };
 * handler.sluice.configure(runtime);
 */
export interface Runtime {
  store: StateStore;
  sink: OutputSink;
  deadLetters: DeadLetterSink;
  /** Where the runtime's own log entries go (failures, warnings, state metrics); JSON lines on the console by default. */
  logger: Logger;
  /** Called after each invocation with what it did (the dev view and metrics use it). */
  onBatch?: (report: BatchReport) => void;
  /** Called after each idle tick with what it did. */
  onTick?: (report: TickReport) => void;
  /**
   * The wall clock (epoch ms), `Date.now` unless swapped: when records arrive (for idle closing),
   * the clock guard's reference, and a tick's time. Tests and `sluice dev` swap it so idle closing
   * runs without sleeping.
   */
  clock?: () => number;
  /** Where ticks learn each partition's end offset: the Kafka cluster when deployed. */
  offsets?: EndOffsets;
  /**
   * Kafka transactions, for a function whose guarantee is exactly-once (`define/guarantee.ts`):
   * then every partition's outputs and dead letters go through them (`exactly-once.ts`), not
   * `sink` and `deadLetters`. Without them, such a function delivers at least once.
   */
  transactions?: OutputTransactions;
}

/**
 * A partition of an invocation that failed whole, and why.
 *
 * @example
 * const f: PartitionFailure = { topic: 'readings', partition: 0, stage: 'read', error: new StateConflictError('…') };
 */
export interface PartitionFailure {
  readonly topic: string;
  readonly partition: number;
  /** `publish`: exactly-once, the partition's transaction could not begin, send or commit. */
  readonly stage: 'read' | 'commit' | 'publish';
  readonly error: unknown;
}

/**
 * What one invocation did.
 *
 * @example
 * handler.sluice.configure({ onBatch: (r) => console.log(r.stats.recordsIn, r.late.length, r.response.batchItemFailures) });
 */
export interface BatchReport {
  readonly partitions: readonly PartitionResult[];
  /** Partitions that failed whole: their state could not be read, or not committed. Lambda retries them. */
  readonly failed: readonly PartitionFailure[];
  readonly late: readonly LateOutput[];
  readonly stats: BatchStats;
  readonly response: KafkaBatchResponse;
  /** State store requests of this invocation (stores that count them: DynamoDB). */
  readonly state?: Readonly<Record<string, number>>;
}

/**
 * What an invocation runs with: the function, its adapters and its partition runner (both may be
 * swapped between invocations).
 *
 * @example
 * const report = await invoke({ manifest, runtime, runner }, partitionsOf(event), context.getRemainingTimeInMillis());
 */
export interface Invocation {
  readonly manifest: Manifest;
  /** The function's delivery guarantee (`guaranteeOf`); absent: at-least-once. */
  readonly guarantee?: Guarantee;
  readonly runtime: Runtime;
  readonly runner: PartitionRunner;
}

/**
 * Runs an event's partitions side by side and delivers what they produced, in order: outputs,
 * then dead letters, then each partition's state. A partition that fails to read or commit its
 * state, or stops at a failing record, is listed in the response at the offset to retry from;
 * when the failure is deterministic (the same on every retry), its records are dead-lettered
 * with the error instead, so it never blocks the partition.
 * `remainingMs` (Lambda's remaining time) sets a deadline one second early, so a slow store
 * fails the batch cleanly rather than being cut off mid-write.
 *
 * @example
 * const report = await invoke(invocation, partitionsOf(event), context.getRemainingTimeInMillis());
 * return answer(report.response);
 */
export async function invoke(run: Invocation, partitions: readonly PartitionBatch[], remainingMs?: number): Promise<BatchReport> {
  const { runtime, runner, manifest } = run;
  const log = runtime.logger;
  const deadline = remainingMs === undefined ? undefined : Date.now() + Math.max(0, remainingMs - 1_000);
  const before = storeStats(runtime.store);
  const now = (runtime.clock ?? Date.now)();
  const transactions = exactlyOnce(run);
  if (transactions) {
    const response = new BatchResponse();
    const done: PartitionResult[] = [];
    const failed: PartitionFailure[] = [];
    const runOpts = { now, ...(deadline === undefined ? {} : { deadline }) };
    await Promise.all(partitions.map((p) => deliverBatch(run, transactions, p, runOpts, { response, done, failed })));
    return report(run, partitions, before, done, failed, response);
  }
  const settled = await Promise.all(
    partitions.map((p) =>
      runner.run(p.topic, p.partition, p.records, { now, ...(deadline === undefined ? {} : { deadline }) }).then(
        (result) => ({ p, result }),
        (error: unknown) => ({ p, error }),
      ),
    ),
  );
  const response = new BatchResponse();
  const done: PartitionResult[] = [];
  const failed: PartitionFailure[] = [];
  for (const s of settled) {
    if ('error' in s) {
      if (!isRetriable(s.error)) {
        // No retry can read this partition's state: its records become dead letters, nothing is committed.
        log.error({
          sluice: 'partition-dead-lettered',
          topic: s.p.topic,
          partition: s.p.partition,
          stage: 'read',
          error: errorText(s.error),
        });
        done.push(deadPartition(s.p, s.error));
        continue;
      }
      // State could not be read: nothing of this partition is committed; Lambda retries it whole.
      log.error({ sluice: 'partition-failed', topic: s.p.topic, partition: s.p.partition, error: errorText(s.error) });
      failed.push({ topic: s.p.topic, partition: s.p.partition, stage: 'read', error: s.error });
      response.fail(s.p.topic, s.p.partition, s.p.records[0].offset);
    } else done.push(s.result);
  }
  await handOff(run, done);
  const uncommitted: DeadLetter[] = [];
  await Promise.all(
    done.map((r) => {
      const batch = partitions.find((p) => p.topic === r.topic && p.partition === r.partition);
      return settle(log, r, batch, response, failed, uncommitted);
    }),
  );
  if (uncommitted.length > 0) await runtime.deadLetters.send(uncommitted, manifest.name);
  return report(run, partitions, before, done, failed, response);
}

/**
 * The transactions an invocation delivers through: the runtime's, when the function's guarantee
 * is exactly-once.
 *
 * @example
 * const transactions = exactlyOnce(run); // undefined: at-least-once
 */
export function exactlyOnce(run: Invocation): OutputTransactions | undefined {
  return run.guarantee === 'exactly-once' ? run.runtime.transactions : undefined;
}

/** The invocation's report, its state metrics line, and `onBatch`. */
function report(
  { runtime, manifest }: Invocation,
  partitions: readonly PartitionBatch[],
  before: Record<string, number> | undefined,
  done: PartitionResult[],
  failed: PartitionFailure[],
  response: BatchResponse,
): BatchReport {
  const log = runtime.logger;
  const after = storeStats(runtime.store);
  const state = before && after ? Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]])) : undefined;
  if (state && !runtime.onBatch) {
    // One metrics line per invocation, for CloudWatch (metric filters or Logs Insights).
    log.info({ sluice: 'state-metrics', function: manifest.name, records: partitions.reduce((n, p) => n + p.records.length, 0), ...state });
  }
  const result: BatchReport = {
    partitions: done,
    failed,
    late: done.flatMap((r) => r.late),
    stats: sumStats(done.map((r) => r.stats)),
    response: response.value,
    ...(state ? { state } : {}),
  };
  runtime.onBatch?.(result);
  return result;
}

/**
 * Closes every open window of one partition (the end of a finite input) and delivers the results
 * as an invocation does: outputs, dead letters, then state, written just after `lastOffset`.
 *
 * @example
 * await flushPartition(invocation, 'sensor-counts', 0, 99);
 */
export async function flushPartition(run: Invocation, topic: string, partition: number, lastOffset: number): Promise<PartitionResult> {
  const result = await run.runner.run(topic, partition, [], {
    flush: true,
    flushOffset: lastOffset,
    now: (run.runtime.clock ?? Date.now)(),
  });
  if (result.failedOffset !== undefined) {
    throw new SluiceError(
      `closing the open windows of ${topic}-${partition} failed in step "${result.failedStage}": ${errorText(result.error)}`,
      { cause: result.error },
    );
  }
  await handOff(run, [result]);
  await result.commit();
  return result;
}

/** Outputs, then dead letters, leave before any state is committed (at-least-once output). */
async function handOff({ runtime, manifest }: Invocation, results: readonly PartitionResult[]): Promise<void> {
  const messages = results.flatMap((r) => r.outputs);
  if (messages.length > 0) await runtime.sink.send(messages);
  const letters = results.flatMap((r) => r.deadLetters);
  if (letters.length > 0) await runtime.deadLetters.send(letters, manifest.name);
}

/**
 * Commits one partition's state and answers for it in the response: a retriable failure fails the
 * partition from its first offset; a deterministic one dead-letters its records (into
 * `uncommitted`); a batch that stopped at a failing record resumes there.
 */
async function settle(
  log: Logger,
  r: PartitionResult,
  batch: PartitionBatch | undefined,
  response: BatchResponse,
  failed: PartitionFailure[],
  uncommitted: DeadLetter[],
): Promise<void> {
  try {
    await r.commit();
  } catch (e) {
    const { topic, partition } = r;
    if (isRetriable(e) || !batch) {
      log.error({ sluice: 'commit-failed', topic, partition, error: errorText(e) });
      failed.push({ topic, partition, stage: 'commit', error: e });
      response.fail(topic, partition, batch?.records[0].offset ?? r.failedOffset ?? 0);
      return;
    }
    // The checks before hand-off let this through, and no retry could commit it: rather than block
    // the partition, its records (their outputs have left) become dead letters.
    log.error({ sluice: 'partition-dead-lettered', topic, partition, stage: 'commit', error: errorText(e) });
    uncommitted.push(...uncommittedLetters(batch.records, r, e));
  }
  if (r.failedOffset !== undefined) {
    logRecordFailure(log, r);
    response.fail(r.topic, r.partition, r.failedOffset);
  }
}

/**
 * The dead letters of a batch whose state no retry could commit: its records up to the one that
 * failed, except those already dead letters.
 *
 * @example
 * await txn.send([], uncommittedLetters(records, result, error), manifest.name);
 */
export function uncommittedLetters(records: readonly KafkaEventRecord[], r: PartitionResult, error: unknown): DeadLetter[] {
  const lettered = new Set(r.deadLetters.map((d) => letterOrigin(d).offset));
  const end = r.failedOffset ?? Infinity;
  const out: DeadLetter[] = [];
  for (const rec of records) if (rec.offset < end && !lettered.has(rec.offset)) out.push(eventLetter(rec, 'state', errorText(error)));
  return out;
}

/**
 * Logs the record a batch stopped at (Lambda resumes there).
 *
 * @example
 * if (result.failedOffset !== undefined) logRecordFailure(runtime.logger, result);
 */
export function logRecordFailure(log: Logger, r: PartitionResult): void {
  log.error({
    sluice: 'record-failed',
    topic: r.topic,
    partition: r.partition,
    offset: r.failedOffset,
    step: r.failedStage,
    error: errorText(r.error),
  });
}

/**
 * A partition none of whose records could be processed, for a reason no retry changes: all dead letters.
 *
 * @example
 * done.push(deadPartition(batch, error));
 */
export function deadPartition(p: PartitionBatch, error: unknown): PartitionResult {
  const reason = errorText(error);
  const stats = newStats(p.records.length);
  stats.poison = p.records.length;
  stats.deadLettered = p.records.length;
  return {
    topic: p.topic,
    partition: p.partition,
    outputs: [],
    deadLetters: p.records.map((r) => eventLetter(r, 'state', reason)),
    late: [],
    stats,
    failedOffset: undefined,
    failedStage: undefined,
    error: undefined,
    commit: async () => {},
  };
}

/**
 * A copy of a store's request counters, if it keeps any (the DynamoDB store does).
 *
 * @example
 * const before = storeStats(runtime.store);
 */
export function storeStats(store: StateStore): Record<string, number> | undefined {
  const stats = (store as { stats?: Record<string, number> }).stats;
  return stats ? { ...stats } : undefined;
}
