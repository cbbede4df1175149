/**
 * Idle closing against the store: how a batch and a tick use the partition's idle item (its rules
 * are the pure functions of `windows/idle.ts`).
 *
 * A tick makes the partition's time move without records, so it must place that move in the
 * partition's history as firmly as a record: every run of every batch must see the same floors.
 * It works in three conditional writes of the one idle item, at position `l + 0.5` (just after the
 * last offset state applied, before the next record):
 *
 * 1. propose: the floors, as a tentative `t`, only if the broker's end offset is `l + 1` (no record
 *    waits) and something would close;
 * 2. check the end offset again: a record that arrived meanwhile may belong to a batch that read the
 *    idle item before the proposal; then the tick stops and the proposal is never confirmed;
 * 3. confirm: move `t` into the floors `f`.
 *
 * A batch that reads a proposal vetoes it (removes it, conditionally) before it runs, so a
 * proposal is either confirmed before any batch after it reads the item, or never. Then the tick
 * closes what the confirmed floors make due as a run of the pipeline with no records, at the same
 * position; a batch after it applies the floors to its own keys too, so a tick that crashed
 * half-way loses nothing (the next tick or batch finishes it), and a result is the same whoever
 * emits it: duplicates only through the same deterministic id.
 *
 * @example
 * const idle = await readIdleForBatch(store, scope, { before: 42 });
 * tx.seed(idleNamespace(), IDLE_ITEM, idle);
 */
import { StateConflictError } from '../errors.js';
import { IDLE_ITEM, idleNamespace } from '../state/namespaces.js';
import type { BatchBounds, StateScope, StateStore, StoreCallOptions, StoredItem } from '../state/store.js';
import type { Transaction } from '../state/transaction.js';
import { KEEP_ALL_VERSIONS } from '../state/versions.js';
import { type IdleState, type IdleWindow, pendingCloses, proposeFloors } from '../windows/idle.js';
import type { WindowOperator } from '../windows/operators/index.js';

const NS = idleNamespace();

/** Conditional writes a batch tries before it gives up on an idle item that keeps changing. */
const VETO_ATTEMPTS = 5;

/**
 * Where a tick writes: its position, keeping every version of the items it writes. A tick's
 * position is not Lambda's committed offset: the batch before it may have committed its state and
 * still be retried (its invocation failed after the commit), reading as of its own first offset.
 *
 * @example
 * await store.write(scope, changes, tickBounds(41.5));
 */
export function tickBounds(at: number): BatchBounds {
  return { firstOffset: KEEP_ALL_VERSIONS, lastOffset: at };
}

/**
 * A tick that happened inside a batch's range: a retry of a batch whose first attempt committed,
 * then a tick confirmed floors at `at` (just after that attempt's last offset), and the retry
 * reaches past it. The retry replays the tick there, with its floors.
 *
 * @example
 * const inside: TickInside = { at: 41.5, floors: { [ns]: 90_000 } };
 */
export interface TickInside {
  readonly at: number;
  readonly floors: Readonly<Record<string, number>>;
}

/**
 * The idle item as a batch reads it (as of its first offset), and a tick inside the batch's
 * range, if any.
 *
 * @example
 * const { item, tick } = await readIdleForBatch(store, scope, { before: 42 });
 */
export interface IdleRead {
  readonly item: StoredItem | undefined;
  readonly tick?: TickInside;
}

/**
 * Raises the batch's floors to a tick's inside it (see {@link TickInside}), at the tick's position,
 * before the window steps run the tick there.
 *
 * @example
 * raiseFloors(tx, { at: 41.5, floors });
 */
export function raiseFloors(tx: Transaction, tick: TickInside): void {
  const ns = tx.namespace(NS);
  const state = ns.get(IDLE_ITEM) as IdleState | undefined;
  if (!state) {
    ns.set(IDLE_ITEM, { l: -1, a: 0, w: {}, f: { ...tick.floors }, p: tick.at } satisfies IdleState, tick.at);
    return;
  }
  const f = (state.f ??= {});
  for (const [w, floor] of Object.entries(tick.floors)) f[w] = Math.max(f[w] ?? -1, floor);
  state.p = tick.at;
  ns.touch(IDLE_ITEM, tick.at);
}

/**
 * Reads the idle item as of a batch's first offset (`opts.before`), vetoing a tick's unconfirmed
 * proposal first, so the batch runs with floors no tick can confirm behind its back.
 *
 * @example
 * const { item } = await readIdleForBatch(store, scope, { before: 42 });
 */
export async function readIdleForBatch(store: StateStore, scope: StateScope, opts: StoreCallOptions): Promise<IdleRead> {
  for (let attempt = 0; attempt < VETO_ATTEMPTS; attempt++) {
    // The newest version first: older than the batch's start (every batch but a retry), it is the one to read.
    const newest = (await store.read(scope, NS, [IDLE_ITEM], { ...opts, before: undefined })).get(IDLE_ITEM);
    const retry = newest !== undefined && opts.before !== undefined && newest.offset >= opts.before;
    const item = retry ? (await store.read(scope, NS, [IDLE_ITEM], opts)).get(IDLE_ITEM) : newest;
    // A tick confirmed floors after the batch's first run committed: they hold from its position on.
    const last = newest?.value as IdleState | undefined;
    const tick = retry && last?.f && last.p !== undefined && last.p >= opts.before! ? { at: last.p, floors: last.f } : undefined;
    const state = item?.value as IdleState | undefined;
    if (!item || !state?.t) return tick ? { item, tick } : { item };
    const { t: _proposal, ...vetoed } = state;
    try {
      // At the proposal's own position: the version is replaced, never added after the batch's start.
      const at = item.offset;
      await store.write(scope, [{ namespace: NS, key: IDLE_ITEM, value: vetoed, offset: at, revision: item.revision }], {
        firstOffset: KEEP_ALL_VERSIONS,
        lastOffset: at,
      });
    } catch (e) {
      // The tick confirmed first, or another attempt vetoed: read again.
      if (!(e instanceof StateConflictError)) throw e;
    }
  }
  throw new StateConflictError(
    `the idle item of function "${scope.functionName}", partition ${scope.partition}, changed ${VETO_ATTEMPTS} times while this batch read it (idle ticks racing it); the batch is retried.`,
  );
}

/**
 * Records in the idle item what a batch or tick leaves: each idle window's clock and earliest due
 * position, and for a batch its last offset and arrival (`applied`). Written at `offset` (a
 * batch's last offset; a tick's position, rewritten).
 *
 * @example
 * recordIdle(tx, ops, 57, { last: 57, now: Date.now() });
 */
export function recordIdle(
  tx: Transaction,
  ops: readonly WindowOperator[],
  offset: number,
  applied: { readonly last: number; readonly now: number } | undefined,
  tickSeq?: number,
): void {
  const ns = tx.namespace(NS);
  let state: IdleState | undefined;
  if (applied) {
    state = ns.modify<IdleState>(IDLE_ITEM, offset, () => ({ l: -1, a: 0, w: {} }));
    // A replayed batch changes nothing.
    if (!state) return;
    state.l = applied.last;
    state.a = applied.now;
  } else {
    state = ns.get(IDLE_ITEM) as IdleState | undefined;
    if (!state) return;
    if (tickSeq !== undefined) state.k = tickSeq;
    ns.touch(IDLE_ITEM, offset);
  }
  const summary: IdleState['w'] = {};
  for (const op of ops) {
    const now = op.idleSummary(tx) ?? state.w[op.namespace];
    if (now) summary[op.namespace] = now;
  }
  state.w = summary;
}

/**
 * What one tick decided for one partition.
 *
 * @example
 * const d: TickDecision = { action: 'close', at: 41.5, proposed: true };
 */
export type TickDecision =
  | { readonly action: 'skip'; readonly reason: 'no state' | 'not quiet' | 'nothing due' | 'lagging' | 'moved' | 'raced' }
  | { readonly action: 'close'; readonly at: number; readonly proposed: boolean };

/**
 * Steps 1-3 of a tick for one partition (see the module comment): decides whether the tick
 * closes windows, and confirms new floors when the partition is idle. `endOffset` asks the broker
 * for the partition's end offset (the offset its next record will get).
 *
 * @example
 * const decision = await decideTick(store, scope, windows, Date.now(), () => admin.endOffset(topic, 0));
 * if (decision.action === 'close') await runner.run(topic, 0, [], { tickAt: decision.at });
 */
export async function decideTick(
  store: StateStore,
  scope: StateScope,
  windows: readonly IdleWindow[],
  now: number,
  endOffset: () => Promise<number>,
  opts: StoreCallOptions = {},
): Promise<TickDecision> {
  const item = (await store.read(scope, NS, [IDLE_ITEM], opts)).get(IDLE_ITEM);
  const state = item?.value as IdleState | undefined;
  if (!item || !state || state.l < 0) return { action: 'skip', reason: 'no state' };
  const at = state.l + 0.5;
  const floors = proposeFloors(state, windows, now);
  if (!floors) {
    if (pendingCloses(state, windows)) return { action: 'close', at, proposed: false };
    return { action: 'skip', reason: windows.some((w) => now - state.a >= w.idleMs) ? 'nothing due' : 'not quiet' };
  }
  // Caught up: every record on the partition has been applied, none waits, none is being retried.
  if ((await endOffset()) !== state.l + 1) {
    return pendingCloses(state, windows) ? { action: 'close', at, proposed: false } : { action: 'skip', reason: 'lagging' };
  }
  const { t: _stale, ...base } = state;
  const bounds = tickBounds(at);
  const proposal: IdleState = { ...base, t: { n: now, f: floors } };
  try {
    await store.write(scope, [{ namespace: NS, key: IDLE_ITEM, value: proposal, offset: at, revision: item.revision }], bounds, opts);
  } catch (e) {
    if (e instanceof StateConflictError) return { action: 'skip', reason: 'raced' };
    throw e;
  }
  // A record that arrived since may be in a batch that read the item before the proposal.
  if ((await endOffset()) !== state.l + 1) return { action: 'skip', reason: 'moved' };
  const written = (await store.read(scope, NS, [IDLE_ITEM], opts)).get(IDLE_ITEM);
  const current = written?.value as IdleState | undefined;
  if (!written || current?.t?.n !== now || current.l !== state.l) return { action: 'skip', reason: 'raced' };
  const confirmed: IdleState = { ...base, f: floors, p: at };
  try {
    await store.write(scope, [{ namespace: NS, key: IDLE_ITEM, value: confirmed, offset: at, revision: written.revision }], bounds, opts);
  } catch (e) {
    // A batch vetoed the proposal: it runs without these floors, and so does everything after it.
    if (e instanceof StateConflictError) return { action: 'skip', reason: 'raced' };
    throw e;
  }
  return { action: 'close', at, proposed: true };
}
