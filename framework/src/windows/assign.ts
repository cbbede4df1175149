/**
 * Pure window math. Intervals are [start, end) in epoch milliseconds, aligned to epoch 0.
 */

/**
 * Start times of the windows of `size` every `step` that contain `ts`, in ascending order
 * (tumbling: step = size, one window). Only windows starting at or after 0.
 *
 * @example
 * windowStarts(25_000, 30_000, 10_000); // [0, 10000, 20000]
 */
export function windowStarts(ts: number, size: number, step: number): number[] {
  const out: number[] = [];
  const last = ts - (ts % step);
  for (let start = last; start > ts - size && start >= 0; start -= step) out.push(start);
  return out.reverse();
}

/** Start of the tumbling window of `size` that contains `ts`. @example tumblingStart(12_345, 10_000) // 10000 */
export function tumblingStart(ts: number, size: number): number {
  return ts - (ts % size);
}

/** Whether a window ending at `end` is closed for a clock at `clock` with `grace`: `end <= clock - grace`. */
export function isClosed(end: number, clock: number, grace: number): boolean {
  return end <= clock - grace;
}

/**
 * Start indices (0-based record counts) of the count windows of `count` every `step` records that
 * contain the record with index `i`.
 *
 * @example
 * countWindowStarts(4, 3, 1); // [2, 3, 4]
 */
export function countWindowStarts(i: number, count: number, step: number): number[] {
  const out: number[] = [];
  const last = i - (i % step);
  for (let start = last; start > i - count && start >= 0; start -= step) out.push(start);
  return out.reverse();
}
