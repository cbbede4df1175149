/**
 * Counters of a batch: counted per partition while it runs, summed once per invocation.
 */

/**
 * Counters of one partition batch, or of a whole invocation.
 *
 * @example
 * report.stats; // { recordsIn: 1000, messagesOut: 12, windowsEmitted: 12, late: 1, poison: 0 }
 */
export interface BatchStats {
  recordsIn: number;
  messagesOut: number;
  windowsEmitted: number;
  late: number;
  poison: number;
}

/**
 * Fresh counters.
 *
 * @example
 * const stats = newStats(records.length);
 */
export function newStats(recordsIn = 0): BatchStats {
  return { recordsIn, messagesOut: 0, windowsEmitted: 0, late: 0, poison: 0 };
}

/**
 * The counters of several batches added up.
 *
 * @example
 * sumStats(results.map((r) => r.stats)).recordsIn;
 */
export function sumStats(all: Iterable<BatchStats>): BatchStats {
  const total = newStats();
  for (const s of all) {
    total.recordsIn += s.recordsIn;
    total.messagesOut += s.messagesOut;
    total.windowsEmitted += s.windowsEmitted;
    total.late += s.late;
    total.poison += s.poison;
  }
  return total;
}
