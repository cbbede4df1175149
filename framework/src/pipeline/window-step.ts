/**
 * A window step: feeds the batch's items to its window operator and turns what the operator
 * emits into items (results) and late reports.
 */
import type { LateRecord, WindowStep } from '../define/manifest.js';
import { SluiceError, StepError } from '../errors.js';
import type { StateStore } from '../state/store.js';
import type { WindowOperator, WindowSink } from '../windows/operators/index.js';
import { type Item, type Pass, poisonRecord, positionRecord } from './item.js';
import { lateId, windowResultId } from './messages.js';
import type { LateOutput } from './records.js';

/**
 * Runs the items through a window operator, in order: each result becomes an item (carrying its
 * id, at the offset of the record that produced it), each late record is reported once (and
 * handed to `onLate`). With `flush`, every open window of the partition is closed at that offset.
 *
 * @example
 * items = await applyWindowStep(step, op, items, pass, store, undefined);
 */
export async function applyWindowStep(
  step: WindowStep,
  op: WindowOperator,
  items: Item[],
  pass: Pass,
  store: StateStore,
  /** With a value: close every open window, writing at this offset (just after the input's last). */
  flush: number | undefined,
): Promise<Item[]> {
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
      });
    },
    late: (l) => {
      stats.late++;
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
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    if (it.key === null) {
      poisonRecord(pass, it, step.name, `window "${step.name}" needs a record key, and this record has none; set one with key()`);
      continue;
    }
    current = it;
    try {
      op.process(tx, it as { key: string; value: unknown; ts: number; offset: number }, sink);
    } catch (e) {
      if (e instanceof StepError) throw e;
      throw new StepError(it.offset, step.name, e);
    }
  }
  const lastItem = items[items.length - 1];
  if (lastItem) {
    current = lastItem;
    await op.finish(tx, sink, lastItem.offset);
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
