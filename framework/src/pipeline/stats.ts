/**
 * Counters of a batch: counted per partition while it runs, summed once per invocation. Every
 * input record ends in exactly one of four outcomes (see {@link OUTCOME}), so
 * `recordsIn === applied + filtered + late + deadLettered` for every batch.
 */

/**
 * Counters of one partition batch, or of a whole invocation.
 *
 * `recordsIn` counts the records the batch processed (a batch that stopped at a failing record
 * counts the records before it; Lambda retries from there). Each of them is counted once more, in
 * `applied`, `filtered`, `late` or `deadLettered`: how its path through the steps ended.
 * `poison` counts dead letters (records and window results alike), `windowsEmitted` window
 * results, `messagesOut` output messages.
 *
 * @example
 * report.stats;
 * // { recordsIn: 1000, applied: 990, filtered: 6, late: 1, deadLettered: 3, messagesOut: 12, windowsEmitted: 12, poison: 3 }
 */
export interface BatchStats {
  recordsIn: number;
  /** Records taken into a window, or that reached the end of the steps. */
  applied: number;
  /** Records a `filter` dropped (or an `expand` turned into nothing). */
  filtered: number;
  /** Records late for every window they reached, and nothing else. */
  late: number;
  /** Input records that went to the dead-letter path (at decode, in a step, or at a window). */
  deadLettered: number;
  messagesOut: number;
  windowsEmitted: number;
  /** Dead letters: records and window results. */
  poison: number;
}

/**
 * How an input record's path ended, weakest first. A record that `expand` made several items of
 * takes the strongest outcome among them: dead-lettered over applied over late over filtered.
 * 0 is "still on its way".
 *
 * @example
 * record.settle(OUTCOME.filtered);
 */
export const OUTCOME = { filtered: 1, late: 2, applied: 3, deadLettered: 4 } as const;

/**
 * One of {@link OUTCOME}'s values, or 0 while the record is still on its way.
 *
 * @example
 * const o: Outcome = OUTCOME.late;
 */
export type Outcome = 0 | (typeof OUTCOME)[keyof typeof OUTCOME];

/**
 * Fresh counters.
 *
 * @example
 * const stats = newStats(records.length);
 */
export function newStats(recordsIn = 0): BatchStats {
  return { recordsIn, applied: 0, filtered: 0, late: 0, deadLettered: 0, messagesOut: 0, windowsEmitted: 0, poison: 0 };
}

/**
 * Counts the outcomes of a run's records once its steps are done: `items` are what came out of
 * the last step (a record or expand child among them reached the end, so it is applied; window
 * results are not input records). Records the edge rejected are counted by the caller.
 *
 * @example
 * countOutcomes(pass.stats, records, items);
 */
export function countOutcomes(
  stats: BatchStats,
  records: Iterable<{ readonly outcome: Outcome }>,
  items: Iterable<{ readonly fromWindow?: boolean; readonly source: { settle(o: Outcome): void } }>,
): void {
  for (const it of items) if (it.fromWindow !== true) it.source.settle(OUTCOME.applied);
  for (const r of records) {
    switch (r.outcome) {
      case OUTCOME.applied:
        stats.applied++;
        break;
      case OUTCOME.filtered:
        stats.filtered++;
        break;
      case OUTCOME.late:
        stats.late++;
        break;
      case OUTCOME.deadLettered:
        stats.deadLettered++;
        break;
    }
  }
}

/**
 * Records of a batch counted in no outcome: 0 unless something dropped a record silently.
 *
 * @example
 * assert.equal(unaccounted(report.stats), 0);
 */
export function unaccounted(s: BatchStats): number {
  return s.recordsIn - (s.applied + s.filtered + s.late + s.deadLettered);
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
    total.applied += s.applied;
    total.filtered += s.filtered;
    total.late += s.late;
    total.deadLettered += s.deadLettered;
    total.messagesOut += s.messagesOut;
    total.windowsEmitted += s.windowsEmitted;
    total.poison += s.poison;
  }
  return total;
}
