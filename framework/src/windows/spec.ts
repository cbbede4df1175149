import { type Duration, formatMs, toMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import { describe } from '../io/serializers.js';

/**
 * When window results are emitted: once when the window closes, or on every update.
 *
 * @example
 * EMIT_MODES.includes(opts.emit); // validates a user's option
 */
export const EMIT_MODES = ['final', 'current'] as const;
/**
 * `'final'`: one result when the window closes; `'current'`: an updated result after every record
 * it takes.
 *
 * @example
 * @tumblingWindow('10s', { emit: 'current' }) running = sum('value');
 */
export type EmitMode = (typeof EMIT_MODES)[number];

/**
 * Whose clock closes windows: each key's own latest timestamp, or the partition's.
 *
 * @example
 * CLOSING_STRATEGIES.includes(opts.closeBy); // validates a user's option
 */
export const CLOSING_STRATEGIES = ['key', 'partition'] as const;
/**
 * `'key'`: a key's windows close on that key's latest timestamp; `'partition'`: on the latest
 * timestamp of the whole partition, so quiet keys still get their results.
 *
 * @example
 * @tumblingWindow('10s', { grace: '2s', closeBy: 'partition' }) total = sum('value');
 */
export type ClosingStrategy = (typeof CLOSING_STRATEGIES)[number];

/**
 * Options shared by every time window.
 *
 * @example
 * .tumblingWindow('10s', { grace: '2s', emit: 'final', closeBy: 'key' })
 */
export interface TimeWindowOptions {
  /** How long after a window's end records may still arrive for it. Default 0. */
  readonly grace?: Duration;
  /** Default `'final'`. */
  readonly emit?: EmitMode;
  /** Default `'key'`. */
  readonly closeBy?: ClosingStrategy;
  /**
   * Idle closing: once the partition is caught up and quiet this long, its event time moves with
   * the wall clock and the windows still open close (see docs/windows.md). Off unless set here or
   * as the source's `idle` default; `false` turns the default off for this window.
   */
  readonly idle?: Duration | false;
}

/**
 * Options of count windows (they close on their record count; no grace, no clock).
 *
 * @example
 * .tumblingCountWindow(100, { emit: 'current' })
 */
export interface CountWindowOptions {
  readonly emit?: EmitMode;
  /** Idle flush: once the partition is caught up and quiet this long, partial windows are emitted. */
  readonly idle?: Duration | false;
}

interface Common {
  readonly emit: EmitMode;
  /**
   * The idle allowance in ms; false: off; absent: the source's `idle` default, resolved at load
   * (`checkManifest`), so operators see a number or nothing.
   */
  readonly idleMs?: number | false;
}
interface TimeCommon extends Common {
  readonly graceMs: number;
  readonly closeBy: ClosingStrategy;
}

/**
 * A validated window definition, as it appears in the manifest.
 *
 * @example
 * manifestOf(SensorSums).steps.find((s) => s.kind === 'window')?.window;
 * // { kind: 'tumbling', sizeMs: 10000, graceMs: 2000, emit: 'final', closeBy: 'key' }
 */
export type WindowSpec =
  | (TimeCommon & { readonly kind: 'tumbling'; readonly sizeMs: number })
  | (TimeCommon & { readonly kind: 'hopping'; readonly sizeMs: number; readonly stepMs: number })
  | (TimeCommon & { readonly kind: 'sliding'; readonly sizeMs: number })
  | (TimeCommon & { readonly kind: 'session'; readonly gapMs: number })
  | (Common & { readonly kind: 'tumblingCount'; readonly count: number })
  | (Common & { readonly kind: 'hoppingCount'; readonly count: number; readonly step: number })
  | (Common & { readonly kind: 'slidingCount'; readonly count: number });

const TIME_OPTIONS = ['grace', 'emit', 'closeBy', 'idle'] as const;
const COUNT_OPTIONS = ['emit', 'idle'] as const;

function checkOptions(opts: unknown, allowed: readonly string[], where: string): Record<string, unknown> {
  if (opts === undefined) return {};
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) {
    throw new ConfigError(
      `options of ${where} must be an object such as { ${allowed.map((a) => `${a}: …`).join(', ')} }; received ${describe(opts)}.`,
    );
  }
  for (const k of Object.keys(opts)) {
    if (!allowed.includes(k)) {
      throw new ConfigError(`unknown option "${k}" for ${where}; allowed: ${allowed.join(', ')}.`);
    }
  }
  return opts as Record<string, unknown>;
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T, what: string): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new ConfigError(`${what} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}; received ${describe(value)}.`);
  }
  return value as T;
}

function timeCommon(opts: unknown, where: string) {
  const o = checkOptions(opts, TIME_OPTIONS, where);
  return {
    graceMs: o.grace === undefined ? 0 : toMs(o.grace, `grace of ${where}`),
    emit: oneOf(o.emit, EMIT_MODES, 'final', `emit of ${where}`),
    closeBy: oneOf(o.closeBy, CLOSING_STRATEGIES, 'key', `closeBy of ${where}`),
    ...idleOption(o.idle, `idle of ${where}`),
  };
}

function countCommon(opts: unknown, where: string) {
  const o = checkOptions(opts, COUNT_OPTIONS, where);
  return { emit: oneOf(o.emit, EMIT_MODES, 'final', `emit of ${where}`), ...idleOption(o.idle, `idle of ${where}`) };
}

/**
 * Validates an idle allowance (a window's `idle`, or the source's default): a duration over zero,
 * or false for off.
 *
 * @example
 * idleMs('30s', 'idle of sessionWindow "visits"'); // 30000
 */
export function idleMs(value: unknown, what: string): number | false | undefined {
  if (value === undefined || value === false) return value;
  const fix = `give how long a caught-up partition must be quiet before its windows close, such as '30s' or '5m', or false for off`;
  let ms: number;
  try {
    ms = toMs(value, what);
  } catch {
    throw new ConfigError(`${what} must be a duration or false; received ${describe(value)}; ${fix}.`);
  }
  if (ms === 0) throw new ConfigError(`${what} must be more than 0 (received ${describe(value)}); ${fix}.`);
  return ms;
}

function idleOption(value: unknown, what: string): { idleMs?: number | false } {
  const ms = idleMs(value, what);
  return ms === undefined ? {} : { idleMs: ms };
}

/**
 * The idle allowance a window runs with: its own, else the source's default; undefined for off.
 *
 * @example
 * idleAllowance({ kind: 'session', gapMs: 30_000, graceMs: 0, emit: 'final', closeBy: 'key', idleMs: 10_000 }); // 10000
 */
export function idleAllowance(w: WindowSpec): number | undefined {
  return typeof w.idleMs === 'number' ? w.idleMs : undefined;
}

function positiveMs(value: unknown, what: string): number {
  const ms = toMs(value, what);
  if (ms <= 0) throw new ConfigError(`${what} must be greater than zero; received ${describe(value)}.`);
  return ms;
}

function positiveInt(value: unknown, what: string, minimum = 1): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < minimum) {
    throw new ConfigError(`${what} must be a whole number of records, at least ${minimum}; received ${describe(value)}.`);
  }
  return value;
}

function graceWithin(graceMs: number, limitMs: number, limitName: string, where: string, alternative: string) {
  if (graceMs > limitMs) {
    throw new ConfigError(
      `grace (${formatMs(graceMs)}) must not exceed the ${limitName} (${formatMs(limitMs)}) of ${where}; lower grace${alternative}.`,
    );
  }
}

/**
 * Builders that validate window parameters: `where` names the window in messages.
 *
 * @example
 * windowSpecs.tumbling('10s', { grace: '2s' }, 'tumblingWindow "total"');
 * // { kind: 'tumbling', sizeMs: 10000, graceMs: 2000, emit: 'final', closeBy: 'key' }
 */
export const windowSpecs = {
  tumbling(size: unknown, opts: unknown, where: string): WindowSpec {
    const sizeMs = positiveMs(size, `size of ${where}`);
    const common = timeCommon(opts, where);
    graceWithin(common.graceMs, sizeMs, 'window size', where, ' or use a larger window');
    return { kind: 'tumbling', sizeMs, ...common };
  },
  hopping(size: unknown, step: unknown, opts: unknown, where: string): WindowSpec {
    const sizeMs = positiveMs(size, `size of ${where}`);
    const stepMs = positiveMs(step, `step of ${where}`);
    if (stepMs >= sizeMs) {
      throw new ConfigError(
        `step (${formatMs(stepMs)}) of ${where} must be smaller than its size (${formatMs(sizeMs)}); with step = size use tumblingWindow('${formatMs(sizeMs)}').`,
      );
    }
    if (sizeMs % stepMs !== 0) {
      throw new ConfigError(
        `step (${formatMs(stepMs)}) of ${where} must divide its size (${formatMs(sizeMs)}) so every record falls in the same number of windows; use a step such as ${formatMs(largestDivisorAtMost(sizeMs, stepMs))}.`,
      );
    }
    const common = timeCommon(opts, where);
    graceWithin(common.graceMs, sizeMs, 'window size', where, ' or use a larger window');
    return { kind: 'hopping', sizeMs, stepMs, ...common };
  },
  sliding(size: unknown, opts: unknown, where: string): WindowSpec {
    const sizeMs = positiveMs(size, `size of ${where}`);
    const common = timeCommon(opts, where);
    graceWithin(common.graceMs, sizeMs, 'window size', where, ' or use a larger window');
    return { kind: 'sliding', sizeMs, ...common };
  },
  session(gap: unknown, opts: unknown, where: string): WindowSpec {
    const gapMs = positiveMs(gap, `gap of ${where}`);
    return { kind: 'session', gapMs, ...timeCommon(opts, where) };
  },
  tumblingCount(count: unknown, opts: unknown, where: string): WindowSpec {
    return { kind: 'tumblingCount', count: positiveInt(count, `count of ${where}`), ...countCommon(opts, where) };
  },
  hoppingCount(count: unknown, step: unknown, opts: unknown, where: string): WindowSpec {
    const n = positiveInt(count, `count of ${where}`, 2);
    const s = positiveInt(step, `step of ${where}`);
    if (s >= n)
      throw new ConfigError(
        `step (${s}) of ${where} must be smaller than its count (${n}); with step = count use tumblingCountWindow(${n}).`,
      );
    return { kind: 'hoppingCount', count: n, step: s, ...countCommon(opts, where) };
  },
  slidingCount(count: unknown, opts: unknown, where: string): WindowSpec {
    return { kind: 'slidingCount', count: positiveInt(count, `count of ${where}`, 2), ...countCommon(opts, where) };
  },
};

function largestDivisorAtMost(n: number, limit: number): number {
  for (let d = Math.min(limit, n); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/**
 * A short text form of a window, used in stored state keys and messages.
 *
 * @example
 * windowSignature({ kind: 'tumbling', sizeMs: 10_000, graceMs: 2_000, emit: 'final', closeBy: 'key' }); // 'tumbling(10s,grace=2s,key)'
 */
export function windowSignature(w: WindowSpec): string {
  switch (w.kind) {
    case 'tumbling':
    case 'sliding':
      return `${w.kind}(${formatMs(w.sizeMs)},grace=${formatMs(w.graceMs)},${w.closeBy})`;
    case 'hopping':
      return `hopping(${formatMs(w.sizeMs)},${formatMs(w.stepMs)},grace=${formatMs(w.graceMs)},${w.closeBy})`;
    case 'session':
      return `session(${formatMs(w.gapMs)},grace=${formatMs(w.graceMs)},${w.closeBy})`;
    case 'tumblingCount':
    case 'slidingCount':
      return `${w.kind}(${w.count})`;
    case 'hoppingCount':
      return `hoppingCount(${w.count},${w.step})`;
  }
}
