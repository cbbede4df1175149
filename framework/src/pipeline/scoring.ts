/**
 * A `score` step: one model call for the whole batch's items.
 */
import type { RecordContext, ScoreStep } from '../define/manifest.js';
import { PoisonRecordError, StepError } from '../errors.js';
import { type Item, type Pass, poisonItem, recordContext } from './item.js';

/**
 * Scores every item with one model call: rows the model cannot take, and values the output
 * mapper declares poison, go to the dead-letter path (a window result as itself); the rest flow
 * on in order.
 *
 * @example
 * items = await applyScoreStep(step, items, pass);
 */
export async function applyScoreStep(step: ScoreStep, items: Item[], pass: Pass): Promise<Item[]> {
  const rows: unknown[] = [];
  const kept: Item[] = [];
  const contexts: RecordContext[] = [];
  for (const it of items) {
    const ctx = recordContext(it);
    try {
      rows.push(step.features(it.value, ctx));
      kept.push(it);
      contexts.push(ctx);
    } catch (e) {
      if (e instanceof PoisonRecordError) poisonItem(pass, it, step.name, e.reason);
      else throw new StepError(it.offset, `${step.name}.features`, e);
    }
  }
  if (kept.length === 0) return [];
  let scored: Awaited<ReturnType<ScoreStep['model']['score']>>;
  try {
    scored = await step.model.score(rows);
  } catch (e) {
    throw new StepError(kept[0].offset, step.name, e);
  }
  const out: Item[] = [];
  for (let i = 0; i < kept.length; i++) {
    const it = kept[i];
    const r = scored[i];
    if (!r.ok) {
      poisonItem(pass, it, step.name, r.reason);
      continue;
    }
    try {
      it.value = step.output(r.outputs, it.value, contexts[i]);
    } catch (e) {
      if (e instanceof PoisonRecordError) {
        poisonItem(pass, it, step.name, e.reason);
        continue;
      }
      throw new StepError(it.offset, `${step.name}.output`, e);
    }
    out.push(it);
  }
  return out;
}
