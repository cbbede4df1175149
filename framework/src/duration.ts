import { ConfigError } from './errors.js';

/**
 * A duration: milliseconds as a number, or a string with a unit: `'250ms'`, `'10s'`, `'5m'`, `'1h'`, `'1d'`.
 *
 * @example
 * const grace: Duration = '2s'; // same as 2_000
 */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses a {@link Duration} into whole milliseconds; `what` names the option for the error.
 *
 * @example
 * toMs('10s', 'size of tumblingWindow "total"'); // 10000
 */
export function toMs(value: unknown, what: string): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value;
  } else if (typeof value === 'string' && PATTERN.test(value.trim())) {
    const [, amount, unit] = PATTERN.exec(value.trim())!;
    ms = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  } else {
    throw new ConfigError(
      `${what} must be a duration such as '500ms', '10s', '5m', '1h', '1d' or a number of milliseconds; received ${JSON.stringify(value)}.`,
    );
  }
  if (!Number.isFinite(ms) || ms < 0 || !Number.isInteger(ms)) {
    throw new ConfigError(`${what} must be a whole, non-negative number of milliseconds; received ${JSON.stringify(value)}.`);
  }
  return ms;
}

/** Formats milliseconds the way users write them, for messages. */
export function formatMs(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    if (ms >= UNIT_MS[unit] && ms % UNIT_MS[unit] === 0) return `${ms / UNIT_MS[unit]}${unit}`;
  }
  return `${ms}ms`;
}
