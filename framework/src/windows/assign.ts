/**
 * Pure window math: which windows a record falls in, when a window closes, when a record is late,
 * which sessions a record joins. The operators in `operators/` apply these rules to state and
 * call nothing else to decide them (as Quix Streams' `TimeWindow.process_window` calls
 * `get_window_ranges`); nothing here reads state or does I/O.
 *
 * Positions are epoch milliseconds for time windows and 0-based record indices for count windows:
 * both are fixed windows of `size` every `step` positions, aligned to 0. Fixed windows and sessions
 * are [start, end); sliding windows are [start, end], inclusive at both ends (Quix Streams).
 *
 * @example
 * for (let s = oldestWindowStart(25_000, 30_000, 10_000); s <= newestWindowStart(25_000, 10_000); s += 10_000) {
 *   // s = 0, 10000, 20000: the windows [s, s + 30000) that hold 25000
 * }
 */

// ---------- fixed windows: tumbling (step = size), hopping, and the three count windows ----------

/**
 * Start of the newest window every `step` that holds position `at`: the last multiple of `step`
 * at or before it.
 *
 * @example
 * newestWindowStart(12_345, 10_000); // 10000
 */
export function newestWindowStart(at: number, step: number): number {
  return at - (at % step);
}

/**
 * Start of the oldest window of `size` every `step` that holds position `at`, never below 0.
 * With step = size (tumbling) it is the newest one. The windows that hold `at` start at every
 * `step` from here up to {@link newestWindowStart}, so callers walk them oldest first without
 * building a list.
 *
 * @example
 * oldestWindowStart(25_000, 30_000, 10_000); // 0: windows start at 0, 10000 and 20000
 * oldestWindowStart(4, 3, 1);                // 2: count windows of 3 records every record hold record 4 from 2, 3, 4
 */
export function oldestWindowStart(at: number, size: number, step: number): number {
  let start = newestWindowStart(at, step);
  while (start - step > at - size && start - step >= 0) start -= step;
  return start;
}

/**
 * The position at or below which windows are closed, for a clock (the largest timestamp seen by
 * the key or the partition) and a grace period.
 *
 * @example
 * closeThreshold(12_000, 2_000); // 10000: [0, 10000) closes once a record at 12 s arrives
 */
export function closeThreshold(clock: number, graceMs: number): number {
  return clock - graceMs;
}

/**
 * Whether a window ending (exclusive) at `end` is closed at `threshold` ({@link closeThreshold}):
 * `end <= threshold`. A record for a closed window is late and never changes an emitted result.
 *
 * @example
 * isClosed(10_000, closeThreshold(12_000, 2_000)); // true
 * isClosed(10_000, closeThreshold(11_999, 2_000)); // false
 */
export function isClosed(end: number, threshold: number): boolean {
  return end <= threshold;
}

/**
 * Whether the count window whose first record has index `first` is full once the record with
 * index `index` is in it: it holds `count` records, so it closes and its result is final.
 *
 * @example
 * isCountWindowFull(3, 5, 3); // true: records 3, 4 and 5
 * isCountWindowFull(4, 5, 3); // false: records 4 and 5
 */
export function isCountWindowFull(first: number, index: number, count: number): boolean {
  return index - first + 1 >= count;
}

// ---------- session windows: [first record's time, last record's time + gap) ----------

/**
 * End (exclusive) of a session whose latest record is at `lastTs`.
 *
 * @example
 * sessionEnd(7_000, 5_000); // 12000
 */
export function sessionEnd(lastTs: number, gapMs: number): number {
  return lastTs + gapMs;
}

/**
 * The sessions a record at `ts` joins, as an index range [first, last] into `sessions` (sorted
 * by start, disjoint, each [startTs, lastTs, …]); undefined if it starts a session of its own. A
 * record joins a session when it is closer than `gap` to it on either side; one that joins
 * several bridges them, and they merge into one. Joined sessions are contiguous, since sessions
 * are disjoint and sorted.
 *
 * @example
 * joinedSessions([[0, 2_000], [9_000, 9_000]], 5_500, 4_000); // [0, 1]: 5.5 s bridges both
 * joinedSessions([[0, 2_000]], 6_000, 4_000);                 // undefined: the gap is reached
 */
export function joinedSessions(
  sessions: ReadonlyArray<readonly [start: number, lastTs: number, ...rest: unknown[]]>,
  ts: number,
  gapMs: number,
): [first: number, last: number] | undefined {
  let first = -1;
  let last = -1;
  for (let i = 0; i < sessions.length; i++) {
    if (ts > sessions[i][0] - gapMs && ts < sessions[i][1] + gapMs) {
      if (first < 0) first = i;
      last = i;
    }
  }
  return first < 0 ? undefined : [first, last];
}

// ---------- sliding windows: [max(0, end - size), end] for every accepted record time ----------

/**
 * Start of the sliding window that ends (inclusive) at `end`, never below 0.
 *
 * @example
 * slidingWindowStart(12_000, 10_000); // 2000
 * slidingWindowStart(3_000, 10_000);  // 0
 */
export function slidingWindowStart(end: number, sizeMs: number): number {
  return Math.max(0, end - sizeMs);
}

/**
 * Whether a record at `ts` belongs to the sliding window that ends at `end`: both bounds inclusive.
 *
 * @example
 * inSlidingWindow(2_000, 12_000, 10_000); // true
 * inSlidingWindow(1_999, 12_000, 10_000); // false
 */
export function inSlidingWindow(ts: number, end: number, sizeMs: number): boolean {
  return ts >= end - sizeMs && ts <= end;
}

/**
 * Whether the sliding window ending at `end` is closed at `threshold` ({@link closeThreshold}):
 * `end < threshold`, one millisecond later than fixed windows since `end` is inclusive.
 *
 * @example
 * isSlidingClosed(9_999, 10_000);  // true
 * isSlidingClosed(10_000, 10_000); // false
 */
export function isSlidingClosed(end: number, threshold: number): boolean {
  return end < threshold;
}

/**
 * Whether a record at `ts` is late for sliding windows: every window it could belong to, up to
 * the one ending `size` after it, is closed at `threshold`.
 *
 * @example
 * isSlidingLate(4_999, 15_000, 10_000); // true
 * isSlidingLate(5_000, 15_000, 10_000); // false: it still counts in the window ending at 15 s
 */
export function isSlidingLate(ts: number, threshold: number, sizeMs: number): boolean {
  return isSlidingClosed(ts + sizeMs, threshold);
}

/**
 * The earliest record time sliding windows still need at `threshold`: records before it are in
 * no open window (the earliest open one ends at `earliestOpenEnd`, if any) and in no window a
 * future accepted record can make, so they can be dropped.
 *
 * @example
 * slidingRetainFrom(15_000, 12_000, 10_000);   // 2000
 * slidingRetainFrom(15_000, undefined, 10_000); // 5000
 */
export function slidingRetainFrom(threshold: number, earliestOpenEnd: number | undefined, sizeMs: number): number {
  return Math.min(threshold, earliestOpenEnd ?? Infinity) - sizeMs;
}
