/*
 * The CLI options that say when time moves for idle closing: the tick period of
 * `sluice dev --brokers` (`--tick`), and the explicit wall clock and tick times of file mode
 * (`--wall-clock`, `--tick-at`), parsed and validated in one place.
 */
import { formatMs, toMs } from '../duration.js';
import { SluiceError } from '../errors.js';

/**
 * The default period of idle ticks, as the Serverless plugin schedules them deployed.
 *
 * @example
 * tickPeriod(undefined); // DEFAULT_TICK_MS
 */
export const DEFAULT_TICK_MS = 60_000;

/** Shorter periods would keep a local store busy for nothing: a floor moves in whole idle allowances. */
const MIN_TICK_MS = 100;

/**
 * `--tick <duration|off>`: the period of idle ticks in ms, or false for none.
 *
 * @example
 * tickPeriod('1s'); // 1000
 * tickPeriod('off'); // false
 */
export function tickPeriod(value: string | undefined): number | false {
  if (value === undefined) return DEFAULT_TICK_MS;
  if (['off', 'none', 'false', '0'].includes(value.trim().toLowerCase())) return false;
  const ms = durationOrUndefined(value);
  if (ms === undefined || ms < MIN_TICK_MS) {
    throw new SluiceError(
      `--tick must be the period of idle ticks, a duration from ${MIN_TICK_MS}ms such as 1s, 30s or 1m (deployed: ${formatMs(DEFAULT_TICK_MS)}), or off to run none; received ${JSON.stringify(value)}.`,
    );
  }
  return ms;
}

/**
 * `--wall-clock <ISO time|epoch ms>`: the wall clock while file mode reads its input (epoch ms);
 * `now` when not given.
 *
 * @example
 * wallClock('2026-01-01T00:05:00Z', Date.now()); // 1767225900000
 */
export function wallClock(value: string | undefined, now: number): number {
  if (value === undefined) return now;
  const ms = instant(value);
  if (ms === undefined) {
    throw new SluiceError(
      `--wall-clock must be an ISO time such as 2026-01-01T00:05:00Z or epoch milliseconds such as 1767225900000; received ${JSON.stringify(value)}.`,
    );
  }
  return ms;
}

/**
 * `--tick-at <time>…` (repeated, or comma-separated): when file mode runs idle ticks after its
 * input, in epoch ms. A duration (`45s`, `+45s`) counts from the wall clock; an ISO time or
 * epoch milliseconds is absolute. Times must not go back, nor come before the wall clock.
 *
 * @example
 * tickTimes(['15s,45s'], 1_767_225_900_000); // [1767225915000, 1767225945000]
 */
export function tickTimes(values: readonly string[], wall: number): number[] {
  const out: number[] = [];
  for (const value of values.flatMap((v) => v.split(',')).map((v) => v.trim())) {
    const after = durationOrUndefined(value.replace(/^\+/, ''));
    const at = after === undefined ? instant(value) : wall + after;
    if (at === undefined) {
      throw new SluiceError(
        `--tick-at must be a time to run an idle tick at: a duration after the wall clock such as 45s, an ISO time such as 2026-01-01T00:05:45Z, or epoch milliseconds; received ${JSON.stringify(value)}.`,
      );
    }
    if (at < wall) {
      throw new SluiceError(
        `--tick-at ${value} is ${iso(at)}, before the wall clock ${iso(wall)} at which the input is read; ticks run after the input: give a later time, or an earlier --wall-clock.`,
      );
    }
    const previous = out[out.length - 1];
    if (previous !== undefined && at < previous) {
      throw new SluiceError(
        `--tick-at ${value} (${iso(at)}) comes before the tick before it (${iso(previous)}); the wall clock never goes back: give tick times in order.`,
      );
    }
    out.push(at);
  }
  return out;
}

function durationOrUndefined(value: string): number | undefined {
  try {
    return toMs(value.trim(), 'duration');
  } catch {
    return undefined;
  }
}

/** An ISO date-time or epoch ms; undefined for anything else (Date.parse alone accepts too much). */
function instant(value: string): number | undefined {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v);
  if (!/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v)) return undefined;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? undefined : ms;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}
