/**
 * Idle closing, the pure part: what a partition's idle item holds, and the rules a tick and a
 * batch apply to it. A partition is idle when it is caught up (its end offset on the broker is just
 * past the last offset state applied) and nothing has arrived for a window's `idle` allowance of
 * wall-clock time; then that window's event time moves with the wall clock:
 * `floor = newest event time + (now - arrival) - idle`, never backwards, and every key's clock is
 * at least the floor. Count windows have no event time: their floor is an offset, and every
 * window opened at or before it is flushed.
 *
 * A floor is part of the partition's history, as records are: a tick proposes it (tentative),
 * checks the partition is still caught up, then confirms it, and only a confirmed floor closes
 * anything; a batch that finds a proposal vetoes it before it runs (see `pipeline/idle.ts`). So
 * every run sees the same floors at the same place in the partition, and results are
 * deterministic as they are without idle closing.
 *
 * @example
 * const floors = proposeFloors(state, windows, Date.now()); // undefined: nothing would close
 */
import { closeThreshold, isClosed } from './assign.js';

/**
 * A window under idle closing, as the rules see it.
 *
 * @example
 * const w: IdleWindow = { namespace: 'window:visits:session(30s,grace=0ms,key):clicks=count', idleMs: 10_000, kind: 'time', graceMs: 0 };
 */
export interface IdleWindow {
  readonly namespace: string;
  readonly idleMs: number;
  /** 'time': positions and floors are event times; 'count': they are offsets. */
  readonly kind: 'time' | 'count';
  readonly graceMs: number;
}

/**
 * The partition's idle item. `w` per idle window: its partition clock (newest event time it took;
 * -1: none) and the earliest due position among its open windows (null: none open).
 *
 * @example
 * const p: IdleState = { l: 41, a: 1_733_400_000_000, w: { [ns]: [12_000, 20_000] } };
 */
export interface IdleState {
  /** Offset of the last record applied (a whole number). */
  l: number;
  /** Wall-clock ms when the batch holding that record was applied: its arrival. */
  a: number;
  w: Record<string, [clock: number, due: number | null]>;
  /** Floors confirmed by ticks, by window namespace. */
  f?: Record<string, number>;
  /**
   * The position of the last tick that confirmed floors (`l + 0.5` then): a retry of a batch that
   * reaches past it replays the tick there.
   */
  p?: number;
  /**
   * The sequence number of the last tick that ran at `p` (several can, while no record arrives):
   * exactly-once delivery publishes it with the tick's outputs (`runtime/exactly-once.ts`).
   */
  k?: number;
  /** A tick's proposal, not yet confirmed: its wall time and floors. */
  t?: { n: number; f: Record<string, number> };
}

/**
 * The confirmed floor of a window (-1: none).
 *
 * @example
 * floorOf({ l: 3, a: 0, w: {}, f: { ns: 9_000 } }, 'ns'); // 9000
 */
export function floorOf(state: IdleState | undefined, namespace: string): number {
  return state?.f?.[namespace] ?? -1;
}

/**
 * The floor a tick at wall time `now` proposes for a window, or undefined if the partition has
 * not been quiet for the window's allowance (or the window has taken nothing yet).
 *
 * @example
 * proposedFloor({ l: 9, a: 100_000, w: { ns: [50_000, 60_000] } }, time, 140_000); // 50000 + 40000 - idle
 */
export function proposedFloor(state: IdleState, w: IdleWindow, now: number): number | undefined {
  const quiet = now - state.a;
  if (quiet < w.idleMs) return undefined;
  if (w.kind === 'count') return state.l;
  const clock = state.w[w.namespace]?.[0];
  if (clock === undefined || clock < 0) return undefined;
  return clock + quiet - w.idleMs;
}

/**
 * Positions (a window's due position: its end, or for count windows its key's last offset) at or
 * below this are closed at `floor`.
 *
 * @example
 * dueThreshold({ namespace: 'ns', idleMs: 1, kind: 'time', graceMs: 2_000 }, 12_000); // 10000
 */
export function dueThreshold(w: IdleWindow, floor: number): number {
  return w.kind === 'count' ? floor : closeThreshold(floor, w.graceMs);
}

/**
 * Whether some open window of `w` closes at `floor`, by the partition's summary.
 *
 * @example
 * isDue({ l: 9, a: 0, w: { ns: [12_000, 10_000] } }, w, 12_000); // true with grace 2 s
 */
export function isDue(state: IdleState, w: IdleWindow, floor: number): boolean {
  const due = state.w[w.namespace]?.[1];
  return due !== undefined && due !== null && floor >= 0 && isClosed(due, dueThreshold(w, floor));
}

/**
 * The floors a tick at `now` would confirm (never lower than those confirmed), or undefined when
 * none of them would close anything: then a tick writes nothing.
 *
 * @example
 * const floors = proposeFloors(state, windows, now);
 * if (floors) await propose(floors);
 */
export function proposeFloors(state: IdleState, windows: readonly IdleWindow[], now: number): Record<string, number> | undefined {
  const floors: Record<string, number> = { ...state.f };
  let due = false;
  for (const w of windows) {
    const proposed = proposedFloor(state, w, now);
    if (proposed === undefined) continue;
    const next = Math.max(floorOf(state, w.namespace), proposed);
    floors[w.namespace] = next;
    if (isDue(state, w, next)) due = true;
  }
  return due ? floors : undefined;
}

/**
 * Whether the confirmed floors leave windows to close (a tick confirmed them and crashed, or is
 * still closing them): a tick then closes them even if the partition is no longer idle.
 *
 * @example
 * if (pendingCloses(state, windows)) await closeDue();
 */
export function pendingCloses(state: IdleState, windows: readonly IdleWindow[]): boolean {
  return windows.some((w) => isDue(state, w, floorOf(state, w.namespace)));
}
