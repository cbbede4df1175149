/**
 * A window step: feeds the batch's items to its window operator and turns what the operator
 * emits into items (results) and late reports. It is where event time is used, so it is where an
 * item without a valid one, or with one too far ahead of the wall clock, is dead-lettered (see
 * `windows/event-time.ts`).
 */
import type { LateRecord, WindowStep } from '../define/manifest.js';
import { SluiceError, StepError } from '../errors.js';
import type { StateStore } from '../state/store.js';
import { eventTimeLimit, eventTimeProblem } from '../windows/event-time.js';
import type { WindowOperator, WindowSink } from '../windows/operators/index.js';
import { type Item, type Pass, poisonRecord, positionRecord, settleItem } from './item.js';
import { lateId, windowResultId } from './messages.js';
import type { LateOutput } from './records.js';
import { OUTCOME } from './stats.js';

/**
 * When a window step runs: the wall clock (`now`, for the clock guard), the clock guard's margin
 * (the source's `maxClockSkew`, or false for none), and for a run without records where it writes:
 * `flush` closes every open window (end of a finite input), `tick` closes what the idle floors
 * make due (an idle tick), both at that position just after the partition's last offset.
 *
 * @example
 * const timing: WindowTiming = { now: Date.now(), maxClockSkewMs: 3_600_000 };
 */
export interface WindowTiming {
  readonly now: number;
  readonly maxClockSkewMs: number | false;
  readonly flush?: number;
  readonly tick?: number;
}

/**
 * Runs the items through a window operator, in order: each result becomes an item (carrying its
 * id, at the offset of the record that produced it), each late record is reported once (and
 * handed to `onLate`). An item without a key, without a valid event time (-1: no Kafka timestamp
 * and no timestamp step) or with one more than `maxClockSkewMs` ahead of the wall clock is
 * dead-lettered before the operator sees it, so it moves no clock. A record the operator takes
 * settles as applied, one late for every window it belongs to as late. With `timing.flush`, every
 * open window of the partition is closed at that offset; with `timing.tick`, the due ones.
 *
 * @example
 * items = await applyWindowStep(step, op, items, pass, store, { now: Date.now(), maxClockSkewMs: manifest.source.maxClockSkewMs });
 */
export async function applyWindowStep(
  step: WindowStep,
  op: WindowOperator,
  items: Item[],
  pass: Pass,
  store: StateStore,
  timing: WindowTiming,
): Promise<Item[]> {
  const { now, maxClockSkewMs, flush, tick } = timing;
  const { tx, stats, functionName: fn } = pass;
  const keys = new Set<string>();
  for (const it of items) if (it.key !== null) keys.add(it.key);
  await op.load(tx, keys);
  const out: Item[] = [];
  let current: Item | undefined;
  const sink: WindowSink = {
    result: (r) => {
      const base = current!;
      stats.windowsEmitted++;
      out.push({
        key: r.key,
        value: r.value,
        ts: r.start,
        offset: r.offset,
        sub: '0',
        source: base.source,
        windowId: windowResultId(fn, step.name, r, base.sub),
        fromWindow: true,
      });
    },
    late: (l) => {
      const { source, sub } = current!;
      const entry: LateOutput = {
        window: step.name,
        key: l.input.key,
        value: l.input.value,
        timestamp: l.input.ts,
        offset: l.input.offset,
        windows: l.windows,
        clock: l.clock,
        id: lateId(fn, step.name, source, l.input.offset, sub),
      };
      pass.late.push(entry);
      if (step.onLate) {
        const info: LateRecord = { ...entry, topic: source.topic, partition: source.partition };
        try {
          step.onLate(info);
        } catch (e) {
          throw new StepError(l.input.offset, `${step.name}.onLate`, e);
        }
      }
    },
  };
  // One wall-clock reading per run of the batch: every item is judged against it.
  const limit = eventTimeLimit(now, maxClockSkewMs);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.key === null) {
      poisonRecord(pass, it, step.name, `window "${step.name}" needs a record key, and this record has none; set one with key()`);
      continue;
    }
    const ts = it.ts;
    if (ts < 0 || ts > limit) {
      poisonRecord(pass, it, step.name, eventTimeProblem(ts, it.source.timestamp, step.name, limit, now, maxClockSkewMs)!);
      continue;
    }
    current = it;
    let taken: boolean;
    try {
      taken = op.process(tx, it as { key: string; value: unknown; ts: number; offset: number }, sink);
    } catch (e) {
      if (e instanceof StepError) throw e;
      throw new StepError(it.offset, step.name, e);
    }
    settleItem(it, taken ? OUTCOME.applied : OUTCOME.late);
  }
  const lastItem = items[items.length - 1];
  if (lastItem) {
    current = lastItem;
    await op.finish(tx, sink, lastItem.offset);
  } else if (tick !== undefined) {
    current = positionRecord(tx.scope.topic, tx.scope.partition, tick);
    await op.finish(tx, sink, tick);
  }
  if (flush !== undefined) {
    if (!store.keys) {
      throw new SluiceError(
        `closing every open window needs a store that can list its keys; the ${store.kind} store cannot. Run the flush with the in-memory store.`,
      );
    }
    const all = new Set(await store.keys(tx.scope, op.namespace));
    for (const k of keys) all.add(k);
    current = lastItem ?? positionRecord(tx.scope.topic, tx.scope.partition, flush);
    await op.closeAll(tx, [...all], sink, current.offset);
  }
  return out;
}
