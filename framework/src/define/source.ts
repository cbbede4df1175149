/**
 * The source options both authoring forms share (`@source(topic, options)` and
 * `stream(topic, options)`), validated into the manifest's {@link SourceSpec} at load.
 */
import { toMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import { describe, resolveSerializer } from '../io/serializers.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS } from '../windows/event-time.js';
import { idleMs } from '../windows/spec.js';
import { readGuarantee } from './guarantee.js';
import type { SourceSpec } from './manifest.js';
import type { SourceOptions } from './metadata.js';

/**
 * The option names of a source, in both forms (`stream()` adds `state`).
 *
 * @example
 * SOURCE_OPTIONS.includes('maxClockSkew'); // true
 */
export const SOURCE_OPTIONS: readonly string[] = ['key', 'value', 'validate', 'lateTopic', 'name', 'maxClockSkew', 'idle', 'guarantee'];

/**
 * Validates source options into a {@link SourceSpec}; throws a ConfigError naming the option,
 * the value and the fix.
 *
 * @example
 * sourceSpec('readings', { value: 'json', maxClockSkew: '15m' }, 'stream "readings"').maxClockSkewMs; // 900000
 */
export function sourceSpec(topic: string, opts: SourceOptions<any>, where: string): SourceSpec {
  const validate = opts.validate;
  if (validate !== undefined && typeof validate !== 'function') {
    throw new ConfigError(`validate of ${where} must be a function (value) => true | 'reason'; received ${describe(validate)}.`);
  }
  return {
    topic,
    key: resolveSerializer(opts.key, 'string', `key serializer of ${where}`),
    value: resolveSerializer(opts.value, 'json', `value serializer of ${where}`),
    maxClockSkewMs: maxClockSkew(opts.maxClockSkew, where),
    ...idleDefault(opts.idle, where),
    ...(opts.guarantee === undefined ? {} : { guarantee: readGuarantee(opts.guarantee, `guarantee of ${where}`) }),
    ...(validate
      ? {
          validate: (v: unknown) => {
            const r = validate(v);
            return r === true ? true : typeof r === 'string' ? r : `rejected by validate() of ${where}`;
          },
        }
      : {}),
  };
}

function idleDefault(value: unknown, where: string): { idleMs?: number } {
  const ms = idleMs(value, `idle of ${where}`);
  return typeof ms === 'number' ? { idleMs: ms } : {};
}

function maxClockSkew(value: unknown, where: string): number | false {
  if (value === undefined) return DEFAULT_MAX_CLOCK_SKEW_MS;
  if (value === false) return false;
  const fix = `give a margin such as '1h' (the default) or '1d', or false to turn the clock guard off`;
  let ms: number;
  try {
    ms = toMs(value, `maxClockSkew of ${where}`);
  } catch {
    throw new ConfigError(
      `maxClockSkew of ${where} must be a duration (how far ahead of the wall clock an event time may be) or false; received ${describe(value)}; ${fix}.`,
    );
  }
  if (ms === 0) {
    throw new ConfigError(
      `maxClockSkew of ${where} must be more than 0 (received ${describe(value)}): 0 would dead-letter records from producers whose clocks run a millisecond fast; ${fix}.`,
    );
  }
  return ms;
}
