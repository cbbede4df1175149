import type { Consumer } from 'kafkajs';
import { type FunctionStats, PARTITION_STAGES, type PartitionStage } from './stats.js';

/**
 * How long a consumer may take to join its group before the emulator starts a fresh one.
 *
 * @example
 * watchGroupJoin(consumer).arm(restart, JOIN_TIMEOUT_MS);
 */
export const JOIN_TIMEOUT_MS = 20_000;

/**
 * Watches a kafkajs consumer for joining its group. A consumer that never joins (a coordinator
 * still loading after the broker started, a rebalance that stalls) would poll nothing forever;
 * once armed, the watchdog calls `onStall` if the consumer has not joined within the timeout.
 * Watch before `connect()` (kafkajs joins inside `run()`), arm after `run()` returns.
 *
 * @example
 * const watchdog = watchGroupJoin(consumer);
 * await consumer.connect();
 * await consumer.run({ eachBatch });
 * watchdog.arm(() => startFresh());
 */
export function watchGroupJoin(consumer: Consumer): { arm(onStall: () => void, timeoutMs?: number): void } {
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  return {
    arm(onStall, timeoutMs = JOIN_TIMEOUT_MS) {
      const timer = setTimeout(() => {
        if (!joined) onStall();
      }, timeoutMs);
      timer.unref();
    },
  };
}

/**
 * How long a partition with records waiting may go without committing before the emulator says
 * where it stands (`EmulatorOptions.stallNoticeMs`, `sluice dev --stall-notice`).
 *
 * @example
 * watchProgress(stats, { topic, functionName, timeoutMs, stallMs: STALL_NOTICE_MS, notice });
 */
export const STALL_NOTICE_MS = 60_000;

/**
 * A partition that has records waiting and has not committed for at least `stallMs`.
 *
 * @example
 * const s: Stall = { partition: 0, stage: 'waiting', stageMs: 61_000, stalledMs: 61_000, next: 10, end: 1_010 };
 */
export interface Stall {
  readonly partition: number;
  readonly stage: PartitionStage;
  /** How long it has been in `stage`. */
  readonly stageMs: number;
  /** How long since it last committed (or since `startedAt`, if it never had a batch). */
  readonly stalledMs: number;
  /** The next offset it processes (committed), if known. */
  readonly next: number | undefined;
  /** The partition's log end. */
  readonly end: number;
}

/**
 * The partitions of `stats` that are stalled at `now`: records waiting (the log end past the
 * committed offset) and no commit for `stallMs`. A partition that never had a batch counts from
 * `startedAt`, as waiting for one.
 *
 * @example
 * stalls(stats, Date.now(), 60_000, startedAt); // [{ partition: 2, stage: 'waiting', … }]
 */
export function stalls(stats: FunctionStats, now: number, stallMs: number, startedAt: number): Stall[] {
  const out: Stall[] = [];
  for (const [partition, end] of stats.highWatermarks) {
    const next = stats.committed.get(partition);
    if (end <= (next ?? 0)) continue;
    const a = stats.activity.get(partition) ?? { stage: 'waiting' as const, since: startedAt, progressAt: startedAt };
    const stalledMs = now - a.progressAt;
    if (stalledMs >= stallMs) out.push({ partition, stage: a.stage, stageMs: now - a.since, stalledMs, next, end });
  }
  return out.sort((x, y) => x.partition - y.partition);
}

const STAGE_HINTS: Record<PartitionStage, (timeoutMs: number) => string> = {
  waiting: () =>
    'the consumer has fetched nothing for it: it may be rebalancing, or the broker unreachable or not serving the partition (notices above say if the consumer restarted)',
  invoking: (t) => `an invocation has not returned (the function's timeout, ${t / 1000} s, ends it)`,
  retrying: () => 'a failing batch is being retried (see the notices above for its reason)',
  committing: () => 'the offset commit has not returned: the group coordinator may be unavailable',
};

/**
 * Watches the partitions of one emulated function for progress: when one has records waiting and
 * has not committed for `stallMs`, it says which partition, at which stage and since when, once
 * per stall (again only after the partition has moved on). Returns the stop.
 *
 * @example
 * const stop = watchProgress(stats, { topic: 'readings', functionName: 'sums', timeoutMs: 6_000, stallMs: 60_000, notice });
 * // … later
 * stop();
 */
export function watchProgress(
  stats: FunctionStats,
  opts: { topic: string; functionName: string; timeoutMs: number; stallMs: number; notice: (message: string) => void },
): () => void {
  const startedAt = Date.now();
  /** Per partition: the `progressAt` of the stall already reported. */
  const reported = new Map<number, number>();
  const fmt = (n: number) => n.toLocaleString('en-US');
  const check = () => {
    for (const s of stalls(stats, Date.now(), opts.stallMs, startedAt)) {
      const since = stats.activity.get(s.partition)?.progressAt ?? startedAt;
      if (reported.get(s.partition) === since) continue;
      reported.set(s.partition, since);
      const waiting = s.next === undefined ? `log end ${fmt(s.end)}` : `${fmt(s.end - s.next)} records waiting from offset ${fmt(s.next)}`;
      opts.notice(
        `${opts.functionName}: ${opts.topic}-${s.partition} has made no progress for ${Math.round(s.stalledMs / 1000)} s (${waiting}); ` +
          `it has been ${PARTITION_STAGES[s.stage]} for ${Math.round(s.stageMs / 1000)} s: ${STAGE_HINTS[s.stage](opts.timeoutMs)}`,
      );
    }
  };
  const timer = setInterval(check, Math.max(10, Math.min(5_000, opts.stallMs / 4)));
  timer.unref();
  return () => clearInterval(timer);
}
