/**
 * Which event times a window takes: a real time (a record without a valid Kafka timestamp has
 * none, unless a timestamp step gives it one), and not too far ahead of the wall clock (the clock
 * guard: one record from a producer with a broken clock would otherwise move its key's or its
 * partition's clock so far that every later record is late). Pure: the caller passes the wall
 * clock and gets a reason, or nothing.
 */
import { formatMs } from '../duration.js';

/**
 * How far ahead of the wall clock an event time may be by default: one hour.
 *
 * @example
 * stream('t', { maxClockSkew: DEFAULT_MAX_CLOCK_SKEW_MS * 24 }); // a day
 */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 3_600_000;

/**
 * The latest event time a window takes at wall-clock time `now`: `now + maxClockSkewMs`, or
 * Infinity with the guard off (`false`).
 *
 * @example
 * eventTimeLimit(Date.now(), 3_600_000); // an hour from now
 * eventTimeLimit(Date.now(), false);     // Infinity
 */
export function eventTimeLimit(now: number, maxClockSkewMs: number | false): number {
  return maxClockSkewMs === false ? Infinity : now + maxClockSkewMs;
}

/**
 * Why window `window` cannot take a record at event time `ts`, or undefined if it can. `ts` is -1
 * when the record has no valid Kafka timestamp (`raw` is the one it arrived with) and no
 * timestamp step set one; `limit` comes from {@link eventTimeLimit}.
 *
 * @example
 * eventTimeProblem(-1, undefined, 'total', Infinity, 0, false);
 * // 'the record has no valid Kafka timestamp (none) and window "total" needs an event time; …'
 */
export function eventTimeProblem(
  ts: number,
  raw: unknown,
  window: string,
  limit: number,
  now: number,
  maxClockSkewMs: number | false,
): string | undefined {
  if (ts < 0) {
    return `the record has no valid Kafka timestamp (${describeTimestamp(raw)}; Kafka's "no timestamp" is -1) and window "${window}" needs an event time; set one with eventTime() / .timestamp(), or produce records with timestamps`;
  }
  if (ts > limit) {
    return `event time ${iso(ts)} is ${roughly(ts - now)} ahead of the wall clock (${iso(now)}), more than maxClockSkew (${formatMs(maxClockSkewMs as number)}) allows, so window "${window}" did not take it and no window clock moved; fix the producer's clock, or raise maxClockSkew on the source (false turns the guard off)`;
  }
  return undefined;
}

function describeTimestamp(raw: unknown): string {
  if (raw === undefined) return 'none';
  if (typeof raw === 'number') return String(raw);
  return `${typeof raw} ${JSON.stringify(raw) ?? String(raw)}`;
}

function iso(ms: number): string {
  return ms <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

/** A duration as a person reads it in a message: `3.5h`, `12m`, `40s`. */
function roughly(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1_000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size) return `${Math.round((ms / size) * 10) / 10}${unit}`;
  return `${ms}ms`;
}
