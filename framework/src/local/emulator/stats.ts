import type { Guarantee } from '../../define/guarantee.js';
import type { TransactionCounts } from './transactions.js';

/*
 * What an emulated event source mapping has done so far: the emulator writes these counters, the
 * live view (local/view.ts) reads them.
 */

/**
 * Live counters of one emulated function, shown by the live view and summed up on exit.
 *
 * @example
 * const stats: FunctionStats = emptyStats('sensor-sums');
 * stats.committed.get(0); // the next offset partition 0 reads
 */
export interface FunctionStats {
  readonly name: string;
  /** The delivery guarantee the function runs with (its source's, or `sluice dev --guarantee`). */
  guarantee: Guarantee;
  /** Exactly-once: the Kafka transactions that committed and aborted (transactions.ts). */
  readonly transactions: TransactionCounts;
  records: number;
  batches: number;
  retries: number;
  windowsEmitted: number;
  late: number;
  poison: number;
  failedToDeadLetter: number;
  /** Times the Kafka consumer crashed and was started again (each one is also a notice). */
  consumerRestarts: number;
  /**
   * Records the mapping never processed because the broker no longer had them when it got there
   * (retention, deleted records, an offset reset past them); each loss is also a notice (losses.ts).
   */
  lost: number;
  /** Idle ticks: the period (undefined: the function runs none) and what they did. */
  readonly ticks: TickStats;
  /** Next offset to consume per partition (committed). */
  readonly committed: Map<number, number>;
  /** Log end offset per partition (refreshed periodically). */
  readonly highWatermarks: Map<number, number>;
  /** Partitions held at a batch that keeps failing and is retried until it succeeds. */
  readonly blocked: Map<number, { readonly offset: number; readonly attempts: number }>;
  /** What each partition that has had a batch is doing, for the progress watchdog (watchdog.ts). */
  readonly activity: Map<number, PartitionActivity>;
}

/**
 * What the idle ticks of one emulated function did (ticker.ts).
 *
 * @example
 * const t: TickStats = { periodMs: 1_000, runs: 12, skipped: 0, failed: 0, windowsClosed: 3, lastAt: Date.now() };
 */
export interface TickStats {
  /** The tick period in ms; undefined when the function runs no ticks (no idle windows, or `--tick off`). */
  periodMs: number | undefined;
  /** Ticks that ran to the end. */
  runs: number;
  /** Ticks not started because the one before was still running. */
  skipped: number;
  /** Ticks that failed whole, or failed for some partition (the next tick tries again). */
  failed: number;
  /** Window results emitted by ticks (also counted in `windowsEmitted`). */
  windowsClosed: number;
  /** When the last tick started (ms since the epoch). */
  lastAt: number | undefined;
}

/**
 * The stages of a partition in the emulator, as the progress watchdog names them.
 *
 * @example
 * PARTITION_STAGES.invoking; // 'invoking the function'
 */
export const PARTITION_STAGES = {
  waiting: 'waiting for a batch from the broker',
  invoking: 'invoking the function',
  retrying: 'retrying a failed batch',
  committing: 'committing its offset',
} as const;

/**
 * One of {@link PARTITION_STAGES}.
 *
 * @example
 * const stage: PartitionStage = 'invoking';
 */
export type PartitionStage = keyof typeof PARTITION_STAGES;

/**
 * What one partition is doing, and when it last moved forward.
 *
 * @example
 * const a: PartitionActivity = { stage: 'invoking', since: Date.now(), progressAt: Date.now() };
 */
export interface PartitionActivity {
  stage: PartitionStage;
  /** When the stage began (ms since the epoch). */
  since: number;
  /** When the partition last committed an offset, or had its first batch (ms since the epoch). */
  progressAt: number;
}

/**
 * Records that `partition` entered `stage` (and, with `progressed`, that it just committed).
 *
 * @example
 * enterStage(stats, 0, 'committing');
 * await commit(next);
 * enterStage(stats, 0, 'invoking', true);
 */
export function enterStage(stats: FunctionStats, partition: number, stage: PartitionStage, progressed = false): void {
  const now = Date.now();
  const a = stats.activity.get(partition);
  if (!a) {
    stats.activity.set(partition, { stage, since: now, progressAt: now });
    return;
  }
  if (a.stage !== stage) {
    a.stage = stage;
    a.since = now;
  }
  if (progressed) a.progressAt = now;
}

/**
 * A fresh set of counters.
 *
 * @example
 * const stats = emptyStats('sensor-sums'); // all zero, no partitions yet
 */
export function emptyStats(name: string, guarantee: Guarantee = 'at-least-once'): FunctionStats {
  return {
    name,
    guarantee,
    transactions: { committed: 0, aborted: 0 },
    records: 0,
    batches: 0,
    retries: 0,
    windowsEmitted: 0,
    late: 0,
    poison: 0,
    failedToDeadLetter: 0,
    consumerRestarts: 0,
    lost: 0,
    ticks: { periodMs: undefined, runs: 0, skipped: 0, failed: 0, windowsClosed: 0, lastAt: undefined },
    committed: new Map(),
    highWatermarks: new Map(),
    blocked: new Map(),
    activity: new Map(),
  };
}
