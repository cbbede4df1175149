/**
 * The bad-input part of the fault suite (issue 11): every case of test/support/bad-inputs.ts
 * through the real handler, in both deployment modes (SLUICE_PARTIAL_BATCH true and false), with
 * the store the suite runs with, counted as `npm run test:faults -- --json` prints them.
 *
 * @example
 * const figures = await runBadInputs('memory', async () => new MemoryStore());
 * figures; // { badInputs: 36, blockedPartitions: 0, innocentDeadLetters: 0, unaccounted: 0, problems: [] }
 */
import type { StateStore } from 'sluice/state';
import { badInputCases, judge, run, type StoreKind } from '../support/bad-inputs.js';

/** Bad-input figures of one store; `problems` says what differed from a case's expectation. */
export interface BadInputFigures {
  badInputs: number;
  blockedPartitions: number;
  innocentDeadLetters: number;
  unaccounted: number;
  problems: string[];
}

/**
 * Runs every bad-input case in both deployment modes; `store(partialBatch)` gives the store of one
 * mode's runs (the cases' function names differ, so one store per mode is enough).
 */
export async function runBadInputs(kind: StoreKind, store: (partialBatch: boolean) => Promise<StateStore>): Promise<BadInputFigures> {
  const figures: BadInputFigures = { badInputs: 0, blockedPartitions: 0, innocentDeadLetters: 0, unaccounted: 0, problems: [] };
  for (const partialBatch of [true, false]) {
    const state = await store(partialBatch);
    for (const c of badInputCases) {
      const r = await run(c.definition, state, partialBatch, c.events());
      const v = judge(c, r, kind);
      figures.badInputs++;
      figures.blockedPartitions += v.blockedPartitions;
      figures.innocentDeadLetters += v.innocentDeadLetters;
      figures.unaccounted += v.unaccounted;
      try {
        await c.check?.(r, kind, state);
      } catch (e) {
        figures.problems.push(`${c.name}: ${(e as Error).message}`);
      }
      for (const p of v.problems) figures.problems.push(`${kind}, SLUICE_PARTIAL_BATCH=${partialBatch}, ${c.name}: ${p}`);
    }
  }
  return figures;
}
