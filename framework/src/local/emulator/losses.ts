import type { EsmConfig } from '../../config/event-source-mapping.js';
import { errorText } from '../../errors.js';
import type { FunctionStats } from './stats.js';

/*
 * Records the mapping never processed because the broker no longer had them when it got there.
 * kafkajs answers a fetch below the log start (retention, deleted records) or past the log end (a
 * recreated topic) by resetting to the start or end of the log, without telling its user; the
 * event source mapping goes on from there too. The emulator goes on likewise, but says so at once,
 * with the partition, the offsets and the count, and counts them in `stats.lost`.
 */

/**
 * The offsets a partition's log holds now: `low` is its first offset, `high` the next one.
 *
 * @example
 * const log: LogRange = { low: 240_000, high: 250_000 };
 */
export interface LogRange {
  readonly low: number;
  readonly high: number;
}

/**
 * What a jump of the fetch position means:
 * - `deleted`: offsets `from`..`to - 1` were no longer on the broker (its log starts past `from`)
 *   and were never processed; `count` of them.
 * - `rewound`: the log now ends before `from` (a recreated topic); what followed `from` in the old
 *   log was never processed and cannot be counted; processing goes on from `to`.
 *
 * @example
 * const gap: Gap = { kind: 'deleted', from: 10_000, to: 240_000, count: 230_000 };
 */
export type Gap =
  | { readonly kind: 'deleted'; readonly from: number; readonly to: number; readonly count: number }
  | { readonly kind: 'rewound'; readonly from: number; readonly to: number };

/**
 * Whether a fetched batch starting at `first` is somewhere other than the next offset the mapping
 * expects (its committed offset): only then is the broker asked why (see {@link gapOf}).
 *
 * @example
 * jumped(10_000, 240_000); // true
 * jumped(undefined, 0);    // false: nothing committed yet, nothing expected
 */
export function jumped(expected: number | undefined, first: number): expected is number {
  return expected !== undefined && first !== expected;
}

/**
 * What a fetched batch that starts at `first`, where the mapping expected `expected`, lost, given
 * the partition's log now. A jump forward loses records only when the log starts past `expected`
 * (otherwise the offsets between held no records to process: transaction markers, aborted or
 * compacted records); a jump back is a rewound log only when the log ends before `expected`
 * (otherwise it is a redelivery).
 *
 * @example
 * gapOf(10_000, 240_000, { low: 240_000, high: 250_000 }); // { kind: 'deleted', from: 10_000, to: 240_000, count: 230_000 }
 * gapOf(10_000, 10_002, { low: 0, high: 250_000 });        // undefined: a transaction marker, say
 * gapOf(250_000, 0, { low: 0, high: 500 });                // { kind: 'rewound', from: 250_000, to: 0 }
 */
export function gapOf(expected: number, first: number, log: LogRange): Gap | undefined {
  if (first > expected && log.low > expected) return { kind: 'deleted', from: expected, to: first, count: first - expected };
  if (first < expected && log.high < expected) return { kind: 'rewound', from: expected, to: first };
  return undefined;
}

/**
 * What {@link LostRecords} works with.
 *
 * @example
 * const opts: LostRecordsOptions = { config, stats, notice, log: (p) => partitionLog(admin, config.topic, p) };
 */
export interface LostRecordsOptions {
  readonly config: Pick<EsmConfig, 'functionName' | 'topic'>;
  readonly stats: FunctionStats;
  readonly notice: (message: string) => void;
  /** The partition's log as the broker holds it now. */
  log(partition: number): Promise<LogRange>;
}

/**
 * Checks each fetched batch against the next offset the mapping expects (`stats.committed`), and
 * says and counts what was lost, once per loss (a batch fetched again after a rebalance does not
 * count it twice).
 *
 * @example
 * const losses = new LostRecords({ config, stats, notice, log });
 * await losses.check(batch.partition, Number(batch.messages[0].offset)); // before processing the batch
 */
export class LostRecords {
  /** Per partition: offsets below this were already reported lost. */
  readonly #reportedTo = new Map<number, number>();
  /** Per partition: the offset a rewound log was last reported from. */
  readonly #rewoundFrom = new Map<number, number>();

  constructor(readonly opts: LostRecordsOptions) {}

  /** Says and counts what was lost before a batch of `partition` that starts at offset `first`. */
  async check(partition: number, first: number): Promise<void> {
    const { config, stats, notice } = this.opts;
    const expected = stats.committed.get(partition);
    if (!jumped(expected, first)) return;
    const where = `${config.functionName}: ${config.topic}-${partition}`;
    let log: LogRange;
    try {
      log = await this.opts.log(partition);
    } catch (e) {
      if (first > expected)
        notice(
          `${where}: the consumer fetched from offset ${fmt(first)} where ${fmt(expected)} was next, and the broker could not be asked for the partition's log start (${errorText(e)}); offsets ${fmt(expected)}–${fmt(first - 1)} may have been lost`,
        );
      return;
    }
    const gap = gapOf(expected, first, log);
    if (gap?.kind === 'deleted') {
      const from = Math.max(gap.from, this.#reportedTo.get(partition) ?? gap.from);
      if (from >= gap.to) return;
      this.#reportedTo.set(partition, gap.to);
      const count = gap.to - from;
      stats.lost += count;
      const kept = Math.max(log.low, from);
      const skipped =
        gap.to > kept
          ? `; of these, the ${fmt(gap.to - kept)} at ${fmt(kept)}–${fmt(gap.to - 1)} are still there, but the offset reset went past them`
          : '';
      notice(
        `${where}: LOST ${fmt(count)} records, offsets ${fmt(from)}–${fmt(gap.to - 1)}, never processed: they were gone from the broker when the function got to them ` +
          `(the partition's log now starts at ${fmt(log.low)}: retention by time or size, deleted records, or a recreated topic)${skipped}. ` +
          `Going on from offset ${fmt(gap.to)}, as the event source mapping does. To keep records whatever their timestamps, set retention.ms=-1 on the topic.`,
      );
    } else if (gap?.kind === 'rewound' && this.#rewoundFrom.get(partition) !== gap.from) {
      this.#rewoundFrom.set(partition, gap.from);
      notice(
        `${where}: the partition's log now ends at offset ${fmt(log.high)}, before ${fmt(gap.from)} where the function was (the topic was recreated, or its records deleted): ` +
          `records that followed ${fmt(gap.from)} in the old log, if any, were never processed and cannot be counted. Going on from offset ${fmt(gap.to)}, as the event source mapping does.`,
      );
    }
  }
}

const fmt = (n: number) => n.toLocaleString('en-US');
