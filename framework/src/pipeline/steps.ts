/**
 * The stateless steps (`map`, `filter`, `expand`, `update`, `key`, `timestamp`) over a batch's
 * items. Steps are synchronous; keyed state is read through `withRecordState`.
 */
import type { FunctionStep } from '../define/manifest.js';
import { errorText, isRetriable, PoisonRecordError, SluiceError, StateValueError, StepError } from '../errors.js';
import { withRecordState } from '../state/keyed.js';
import type { Transaction } from '../state/transaction.js';
import { type Item, type Pass, poisonItem, poisonRecord, recordContext, settleItem } from './item.js';
import { OUTCOME } from './stats.js';

/**
 * Runs one function step over the items, in order. Poison goes to the dead-letter path; anything
 * else thrown stops the batch at that record (a {@link StepError}). A record a `filter` drops, or
 * an `expand` turns into nothing, settles as filtered.
 *
 * @example
 * items = applyFunctionStep(step, items, pass, views);
 */
export function applyFunctionStep(
  step: FunctionStep,
  items: Item[],
  pass: Pass,
  views: Map<string, ReturnType<Transaction['namespace']>>,
): Item[] {
  const fn = step.fn;
  const out: Item[] = [];
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    let result: unknown;
    try {
      result = withRecordState({ key: it.key, offset: it.offset, timestamp: it.ts, views }, () => fn(it.value, recordContext(it)));
      if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
        throw new SluiceError(
          `step "${step.name}" returned a Promise; steps must be synchronous (do I/O in middy middleware or after the window)`,
        );
      }
    } catch (e) {
      if (e instanceof PoisonRecordError) {
        poisonRecord(pass, it, step.name, e.reason);
        continue;
      }
      // A window result that fails for good is dead-lettered itself: leaving out the record that
      // closed its window would only move the failure to the next record of its key.
      if (it.windowId !== undefined && !isRetriable(e)) {
        poisonItem(pass, it, e instanceof StateValueError ? 'state' : step.name, errorText(e));
        continue;
      }
      throw new StepError(it.offset, step.name, e);
    }
    switch (step.kind) {
      case 'map':
        it.value = result;
        out.push(it);
        break;
      case 'filter':
        if (result) out.push(it);
        else settleItem(it, OUTCOME.filtered);
        break;
      case 'update':
        out.push(it);
        break;
      case 'expand': {
        if (result == null || typeof (result as Iterable<unknown>)[Symbol.iterator] !== 'function') {
          throw new StepError(
            it.offset,
            step.name,
            new SluiceError(`expand step "${step.name}" must return an iterable (e.g. an array); it returned ${typeof result}`),
          );
        }
        let n = 0;
        // First-level children are numbered 0, 1, …; deeper ones extend their parent's path.
        const prefix = it.sub === '0' ? '' : `${it.sub}.`;
        const fromWindow = it.fromWindow === true;
        for (const v of result as Iterable<unknown>) {
          out.push({ key: it.key, value: v, ts: it.ts, offset: it.offset, sub: `${prefix}${n++}`, source: it.source, fromWindow });
        }
        // Nothing to go on with: counted as filtered (see pipeline/stats.ts).
        if (n === 0) settleItem(it, OUTCOME.filtered);
        break;
      }
      case 'key':
        if (result === null || typeof result === 'string') it.key = result;
        else if (typeof result === 'number' || typeof result === 'bigint') it.key = String(result);
        else {
          poisonRecord(pass, it, step.name, `key step "${step.name}" returned ${typeof result}; a key must be a string or null`);
          continue;
        }
        out.push(it);
        break;
      case 'timestamp':
        if (typeof result !== 'number' || !Number.isFinite(result) || result < 0) {
          poisonRecord(
            pass,
            it,
            step.name,
            `event time from "${step.name}" must be a non-negative number of epoch milliseconds; got ${String(result)}`,
          );
          continue;
        }
        it.ts = Math.floor(result);
        out.push(it);
        break;
    }
  }
  return out;
}
