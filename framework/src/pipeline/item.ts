/**
 * What one run of a batch works with: the items flowing through the steps, and what the run has
 * produced so far.
 */
import type { RecordContext } from '../define/manifest.js';
import type { Transaction } from '../state/transaction.js';
import { recordLetter, resultLetter } from './dead-letters.js';
import { type DeadLetter, type LateOutput, type OutputMessage, SourceRecord } from './records.js';
import { type BatchStats, OUTCOME, type Outcome } from './stats.js';

/**
 * A value on its way through the steps. `sub` is its path among the children of one record:
 * `0` for the record itself, `3` for the fourth child of an expand, `3.1` for a child of that.
 * A window result's `source` is the record that closed its window. A {@link SourceRecord} is the
 * first item of its own path; window results, and what later steps make of them, are not an input
 * record's path (`fromWindow`), so they settle no input record's outcome.
 *
 * @example
 * const child: Item = { key: it.key, value: v, ts: it.ts, offset: it.offset, sub: '0.1', source: it.source };
 */
export interface Item {
  key: string | null;
  value: unknown;
  ts: number;
  readonly offset: number;
  readonly sub: string;
  readonly source: SourceRecord;
  /** Set on window results: the deterministic id of the result. */
  readonly windowId?: string;
  /** True on window results and on the children an `expand` makes of them. */
  readonly fromWindow?: boolean;
}

/**
 * Settles the outcome of the input record an item is the path of (nothing for a window result).
 *
 * @example
 * if (!keep) settleItem(it, OUTCOME.filtered);
 */
export function settleItem(it: Item, o: Outcome): void {
  if (it.fromWindow !== true) it.source.settle(o);
}

/**
 * One run over a batch (or the part of it before a failing record): its transaction and what it
 * has produced.
 *
 * @example
 * const pass: Pass = { functionName, tx, outputs: [], deadLetters: [...rejected], late: [], stats: newStats(n) };
 */
export interface Pass {
  readonly functionName: string;
  readonly tx: Transaction;
  readonly outputs: OutputMessage[];
  readonly deadLetters: DeadLetter[];
  readonly late: LateOutput[];
  readonly stats: BatchStats;
}

/**
 * Dead-letters an item as the source record it came from (a window result: the record that
 * closed its window). A record or expand child settles its input record as dead-lettered; a
 * window result does not (the records in its window were applied).
 *
 * @example
 * poisonRecord(pass, it, step.name, e.reason);
 */
export function poisonRecord(pass: Pass, it: Item, stage: string, reason: string): void {
  pass.deadLetters.push(recordLetter(it.source, stage, reason));
  pass.stats.poison++;
  settleItem(it, OUTCOME.deadLettered);
}

/**
 * Dead-letters an item as itself: a window result with its key and value (its reason names the
 * result), a record as the record.
 *
 * @example
 * poisonItem(pass, it, step.name, r.reason);
 */
export function poisonItem(pass: Pass, it: Item, stage: string, reason: string): void {
  if (!it.windowId) {
    poisonRecord(pass, it, stage, reason);
    return;
  }
  pass.deadLetters.push(
    resultLetter(
      it.source,
      { id: it.windowId, key: it.key, value: it.value, timestamp: it.ts },
      stage,
      `window result ${it.windowId}: ${reason}`,
    ),
  );
  pass.stats.poison++;
}

/**
 * The context a step gets with a value. Headers are copied on first read, so a step that edits
 * them does not change what the next step sees.
 *
 * @example
 * fn(it.value, recordContext(it));
 */
export function recordContext(it: Item): RecordContext {
  const s = it.source;
  let headers: Record<string, string> | undefined;
  return {
    key: it.key,
    timestamp: it.ts,
    topic: s.topic,
    partition: s.partition,
    offset: it.offset,
    get headers() {
      return (headers ??= { ...s.headers });
    },
  };
}

const noHeaders = (): Record<string, string> => ({});

/**
 * A stand-in source record at a position, for window results that no record of the batch closed
 * (closing every open window at the end of an input).
 *
 * @example
 * positionRecord('readings', 0, 99.5);
 */
export function positionRecord(topic: string, partition: number, offset: number): SourceRecord {
  return new SourceRecord({ topic, partition, offset, timestamp: 0 }, null, null, noHeaders);
}
