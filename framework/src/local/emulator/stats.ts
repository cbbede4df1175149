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
  records: number;
  batches: number;
  retries: number;
  windowsEmitted: number;
  late: number;
  poison: number;
  failedToDeadLetter: number;
  /** Times the Kafka consumer crashed and was started again (each one is also a notice). */
  consumerRestarts: number;
  /** Next offset to consume per partition (committed). */
  readonly committed: Map<number, number>;
  /** Log end offset per partition (refreshed periodically). */
  readonly highWatermarks: Map<number, number>;
  /** Partitions held at a batch that keeps failing and is retried until it succeeds. */
  readonly blocked: Map<number, { readonly offset: number; readonly attempts: number }>;
}

/**
 * A fresh set of counters.
 *
 * @example
 * const stats = emptyStats('sensor-sums'); // all zero, no partitions yet
 */
export function emptyStats(name: string): FunctionStats {
  return {
    name,
    records: 0,
    batches: 0,
    retries: 0,
    windowsEmitted: 0,
    late: 0,
    poison: 0,
    failedToDeadLetter: 0,
    consumerRestarts: 0,
    committed: new Map(),
    highWatermarks: new Map(),
    blocked: new Map(),
  };
}
