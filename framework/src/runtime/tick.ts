/**
 * An idle tick as a unit: what makes a function's time move while no record arrives. The deployed
 * schedule (and `sluice dev --brokers`, and tests) invoke the handler with {@link TICK_EVENT}; for
 * every partition of the source topic the tick decides, against the broker's end offset and the
 * partition's idle item, whether the partition is idle (`pipeline/idle.ts`), then closes what the
 * confirmed floors make due, delivering the results as an invocation does: outputs, dead
 * letters, then state.
 */
import { errorText, isRetriable } from '../errors.js';
import { decideTick, type TickDecision } from '../pipeline/idle.js';
import type { PartitionResult } from '../pipeline/runner.js';
import { type BatchStats, sumStats } from '../pipeline/stats.js';
import { deliverTick, type TickDelivery } from './exactly-once.js';
import { exactlyOnce, type Invocation, storeStats } from './invoke.js';

/**
 * The event the schedule sends to run a tick.
 *
 * @example
 * await handler(TICK_EVENT as never, context); // { batchItemFailures: [], tick: { … } }
 */
export const TICK_EVENT = { sluice: 'tick' } as const;

/**
 * Whether an event is a tick (the schedule's input), not a Kafka event.
 *
 * @example
 * isTickEvent({ sluice: 'tick' }); // true
 */
export function isTickEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as { sluice?: unknown }).sluice === TICK_EVENT.sluice;
}

/**
 * Where a tick learns each partition's end offset (the offset its next record will get): the
 * broker when deployed and in `sluice dev --brokers`, the input's end in tests and file mode.
 *
 * @example
 * const offsets: EndOffsets = { endOffsets: async () => new Map([[0, 100]]) };
 */
export interface EndOffsets {
  /** Every partition of the topic, with its end offset. */
  endOffsets(topic: string): Promise<Map<number, number>>;
}

/**
 * What a tick did for one partition.
 *
 * @example
 * report.partitions.filter((p) => p.decision.action === 'close').map((p) => p.windowsClosed);
 */
export interface TickPartitionReport {
  readonly topic: string;
  readonly partition: number;
  readonly decision: TickDecision;
  /** Window results the tick emitted (closing windows) for this partition. */
  readonly windowsClosed: number;
  /** Why the tick failed here (a conflict with a batch or another tick, throttling…); the next tick tries again. */
  readonly error?: string;
}

/**
 * What one tick did.
 *
 * @example
 * handler.sluice.configure({ onTick: (r) => console.log(r.windowsClosed, r.state) });
 */
export interface TickReport {
  readonly now: number;
  readonly partitions: readonly TickPartitionReport[];
  readonly windowsClosed: number;
  readonly stats: BatchStats;
  /** State store requests of this tick (stores that count them: DynamoDB). */
  readonly state?: Readonly<Record<string, number>>;
}

/**
 * Runs one tick over every partition of the function's source topic, at wall-clock time `now`.
 * A function without idle windows does nothing. A partition whose tick fails (a batch or another
 * tick changed its state first, a store error) is reported and left for the next tick: nothing a
 * tick does needs retrying.
 *
 * @example
 * const report = await tick(invocation, offsets, Date.now());
 */
export async function tick(run: Invocation, offsets: EndOffsets, now: number, remainingMs?: number): Promise<TickReport> {
  const { runtime, runner, manifest } = run;
  const windows = runner.pipeline.idleWindows;
  const topic = manifest.source.topic;
  if (windows.length === 0) return { now, partitions: [], windowsClosed: 0, stats: sumStats([]) };
  const deadline = remainingMs === undefined ? undefined : Date.now() + Math.max(0, remainingMs - 1_000);
  const opts = deadline === undefined ? {} : { deadline };
  const before = storeStats(runtime.store);
  const partitions = [...(await offsets.endOffsets(topic)).keys()].sort((a, b) => a - b);
  const endOffset = async (p: number) => {
    const end = (await offsets.endOffsets(topic)).get(p);
    if (end === undefined) throw new Error(`partition ${p} of topic "${topic}" is gone from the broker's answer`);
    return end;
  };
  const transactions = exactlyOnce(run);
  if (transactions) {
    const delivered = await Promise.all(
      partitions.map(async (partition) => {
        const d = await deliverTick(run, transactions, topic, partition, now, () => endOffset(partition), opts).catch(
          (error: unknown): TickDelivery => ({ decision: { action: 'skip', reason: 'raced' }, error }),
        );
        if (d.error) logFailure(run, topic, partition, d.error);
        const windowsClosed = d.result && (d.published || !d.error) ? d.result.stats.windowsEmitted : 0;
        return { partition, ...d, windowsClosed };
      }),
    );
    const reports = delivered.map(
      (d): TickPartitionReport => ({
        topic,
        partition: d.partition,
        decision: d.decision,
        windowsClosed: d.windowsClosed,
        ...(d.error ? { error: errorText(d.error) } : {}),
      }),
    );
    return finish(
      run,
      now,
      reports,
      delivered.flatMap((d) => (d.result ? [d.result] : [])),
      before,
    );
  }
  const decided = await Promise.all(
    partitions.map(async (partition) => {
      const scope = { functionName: runner.functionName, topic, partition };
      try {
        const decision = await decideTick(runtime.store, scope, windows, now, () => endOffset(partition), opts);
        const result =
          decision.action === 'close' ? await runner.run(topic, partition, [], { tickAt: decision.at, now, ...opts }) : undefined;
        if (result?.failedOffset !== undefined) {
          // A step after the window failed on a result: nothing is committed, the windows stay open.
          return { partition, decision, error: result.error ?? new Error(`step "${result.failedStage}" failed`) };
        }
        return { partition, decision, result };
      } catch (e) {
        return { partition, decision: { action: 'skip', reason: 'raced' } as TickDecision, error: e };
      }
    }),
  );
  const results = decided.flatMap((d) => (d.result ? [d.result] : []));
  const messages = results.flatMap((r) => r.outputs);
  const reports: TickPartitionReport[] = [];
  let sent = true;
  try {
    if (messages.length > 0) await runtime.sink.send(messages);
    const letters = results.flatMap((r) => r.deadLetters);
    if (letters.length > 0) await runtime.deadLetters.send(letters, manifest.name);
  } catch (e) {
    // Nothing is committed after a failed send: the next tick closes the same windows again.
    sent = false;
    runtime.logger.error({ sluice: 'tick-failed', topic, stage: 'outputs', error: errorText(e) });
    for (const d of decided) reports.push({ topic, partition: d.partition, decision: d.decision, windowsClosed: 0, error: errorText(e) });
  }
  if (sent) {
    await Promise.all(
      decided.map(async (d) => {
        let error = d.error;
        if (d.result && !error) error = await commit(d.result);
        if (error) logFailure(run, topic, d.partition, error);
        const windowsClosed = d.result && !error ? d.result.stats.windowsEmitted : 0;
        reports.push({ topic, partition: d.partition, decision: d.decision, windowsClosed, ...(error ? { error: errorText(error) } : {}) });
      }),
    );
  }
  return finish(run, now, reports, results, before);
}

/** The tick's report, in partition order, and `onTick`. */
function finish(
  { runtime }: Invocation,
  now: number,
  reports: TickPartitionReport[],
  results: readonly PartitionResult[],
  before: Record<string, number> | undefined,
): TickReport {
  reports.sort((a, b) => a.partition - b.partition);
  const after = storeStats(runtime.store);
  const state = before && after ? Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]])) : undefined;
  const report: TickReport = {
    now,
    partitions: reports,
    windowsClosed: reports.reduce((n, r) => n + r.windowsClosed, 0),
    stats: sumStats(results.map((r) => r.stats)),
    ...(state ? { state } : {}),
  };
  runtime.onTick?.(report);
  return report;
}

/** A partition's tick failed: a conflict (a batch or another tick was first) is a warning. */
function logFailure({ runtime }: Invocation, topic: string, partition: number, error: unknown): void {
  runtime.logger[isRetriable(error) ? 'warn' : 'error']({ sluice: 'tick-failed', topic, partition, error: errorText(error) });
}

async function commit(result: PartitionResult): Promise<unknown> {
  try {
    await result.commit();
    return undefined;
  } catch (e) {
    return e;
  }
}
