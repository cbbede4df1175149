import { toMs } from '../duration.js';
import { ConfigError } from '../errors.js';

/**
 * The period of a function's idle ticks (`tick:` in the `sluice:` block of a function, or in
 * `custom.sluice` for the whole service): how often the deployed schedule invokes the function
 * with the tick event. EventBridge schedules run at most once a minute and count in whole
 * minutes, so the period is a whole number of minutes; `false` turns the schedule off.
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html
 */

/**
 * The period when serverless.yml sets none: one minute, EventBridge's finest.
 *
 * @example
 * DEFAULT_TICK_MS; // 60000
 */
export const DEFAULT_TICK_MS = 60_000;

const MINUTE = 60_000;
const RATE_WORDS = /^(\d+)\s*(minute|minutes|hour|hours|day|days)$/;
const WORD_MS = { minute: MINUTE, hour: 60 * MINUTE, day: 1_440 * MINUTE } as const;

/**
 * Reads a `tick:` option: a duration (`'1m'`, `'120s'`, `'1h'`) or a rate (`'1 minute'`,
 * `'5 minutes'`, `'2 hours'`), a whole number of minutes of at least one; or `false` (no
 * schedule). `option` names the option in the error, e.g. `functions.sessions.sluice.tick`.
 *
 * @example
 * readTickPeriod('5 minutes', 'functions.sessions.sluice.tick'); // 300000
 * readTickPeriod(false, 'custom.sluice.tick');                   // false
 */
export function readTickPeriod(value: unknown, option: string): number | false {
  if (value === false) return false;
  const fix = `give a whole number of minutes, at least one (EventBridge schedules run at most once a minute), such as '1 minute', '5m' or '1h', or false to run no schedule (when you invoke the function with {"sluice":"tick"} yourself)`;
  let ms: number | undefined;
  if (typeof value === 'string') {
    const words = RATE_WORDS.exec(value.trim());
    if (words) ms = Number(words[1]) * WORD_MS[words[2].replace(/s$/, '') as keyof typeof WORD_MS];
    else {
      try {
        ms = toMs(value, option);
      } catch {
        ms = undefined;
      }
    }
  }
  if (ms === undefined || ms < MINUTE || ms % MINUTE !== 0) {
    throw new ConfigError(`${option} must be a tick period; received ${JSON.stringify(value)}; ${fix}.`);
  }
  return ms;
}

/**
 * The EventBridge rate expression of a period in whole minutes, in the largest unit that divides
 * it (singular for 1, as EventBridge requires).
 *
 * @example
 * rateExpression(60_000);    // 'rate(1 minute)'
 * rateExpression(7_200_000); // 'rate(2 hours)'
 */
export function rateExpression(ms: number): string {
  const minutes = ms / MINUTE;
  const [n, unit] = minutes % 1_440 === 0 ? [minutes / 1_440, 'day'] : minutes % 60 === 0 ? [minutes / 60, 'hour'] : [minutes, 'minute'];
  return `rate(${n} ${unit}${n === 1 ? '' : 's'})`;
}
