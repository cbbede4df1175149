import { type Duration, toMs } from '../duration.js';
import { ConfigError, PoisonRecordError, SluiceError, StateValueError } from '../errors.js';
import { firstNonJson } from './json.js';
import { keyedNamespace } from './namespaces.js';
import type { NamespaceView } from './transaction.js';

/** The record being processed, as keyed state sees it. Set by the runner around each step call. */
interface Current {
  key: string | null;
  offset: number;
  timestamp: number;
  views: Map<string, NamespaceView>;
}

let current: Current | undefined;

/**
 * @internal Runs `fn` with keyed state bound to one record. Steps are synchronous, so this is safe across partitions.
 *
 * @example
 * withRecordState({ key: 'a', offset: 17, timestamp: 0, views }, () => step(value));
 */
export function withRecordState<R>(ctx: Current, fn: () => R): R {
  const previous = current;
  current = ctx;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

/**
 * Options of a keyed state handle ({@link keyedState}; `@keyed()` takes the same).
 *
 * @example
 * const lastSeen = keyedState<number>('lastSeen', { ttl: '1d' });
 */
export interface KeyedStateOptions {
  /** Drop a key's value this long after its last write (DynamoDB TTL). */
  readonly ttl?: Duration;
}

/**
 * State scoped to the current record's key: for dedupe, running totals, last-seen values.
 * Reads and writes go through the batch transaction (read-your-writes) and are flushed once per
 * batch, each applied exactly once.
 *
 * @example
 * class Dedupe {
 *   @keyed() seen!: KeyedState<boolean>;
 *   @filter() firstTime(r: Click) { if (this.seen.get()) return false; this.seen.set(true); return true; }
 * }
 */
export class KeyedState<T> {
  readonly name: string;
  readonly ttlMs: number | undefined;
  readonly #namespace: string;

  constructor(name: string, opts: KeyedStateOptions = {}) {
    if (typeof name !== 'string' || !/^[A-Za-z_$][\w$-]*$/.test(name)) {
      throw new ConfigError(`keyed state name ${JSON.stringify(name)} is not valid; use letters, digits, _ or -, e.g. 'lastSeen'.`);
    }
    for (const k of Object.keys(opts)) {
      if (k !== 'ttl') throw new ConfigError(`unknown option "${k}" for keyed state "${name}"; allowed: ttl.`);
    }
    this.name = name;
    this.ttlMs = opts.ttl === undefined ? undefined : toMs(opts.ttl, `ttl of keyed state "${name}"`);
    this.#namespace = keyedNamespace(name);
  }

  #view(): { view: NamespaceView; key: string; cur: Current } {
    const cur = current;
    if (!cur) {
      throw new SluiceError(
        `keyed state "${this.name}" was used outside a step; read and write it only inside map/filter/update/… while a record is processed.`,
      );
    }
    if (cur.key === null) {
      // Deterministic: retrying cannot give the record a key, so it is poison, not a failure.
      throw new PoisonRecordError(
        `keyed state "${this.name}" needs a record key, but the record at offset ${cur.offset} has none; set one with key().`,
      );
    }
    const view = cur.views.get(this.#namespace);
    if (!view)
      throw new ConfigError(
        `keyed state "${this.name}" is not declared on this function; declare it with @keyed() or stream(…, { state: [${this.name}] }).`,
      );
    return { view, key: cur.key, cur };
  }

  /** The value for the current key, or undefined. */
  get(): T | undefined {
    const { view, key } = this.#view();
    return view.get(key) as T | undefined;
  }

  /** Sets the value for the current key (plain JSON data). A replayed record leaves it unchanged. */
  set(value: T): void {
    const { view, key, cur } = this.#view();
    if (view.isApplied(key, cur.offset)) return;
    checkPlain(value, this.name);
    // TTL counts from the write, in wall-clock time (a replay of old data must not expire at once).
    view.set(key, value, cur.offset, this.ttlMs === undefined ? undefined : Date.now() + this.ttlMs);
  }

  /** Removes the value for the current key. */
  delete(): void {
    const { view, key, cur } = this.#view();
    if (view.isApplied(key, cur.offset)) return;
    view.delete(key, cur.offset);
  }
}

/**
 * Creates a keyed state handle for the function-first form.
 *
 * @example
 * const total = keyedState<number>('total');
 * stream<Reading>('readings', { state: [total] }).update((r) => total.set((total.get() ?? 0) + r.value));
 */
export function keyedState<T>(name: string, opts: KeyedStateOptions = {}): KeyedState<T> {
  return new KeyedState<T>(name, opts);
}

function checkPlain(value: unknown, name: string): void {
  const bad = value === undefined ? 'undefined' : firstNonJson(value);
  if (bad !== undefined) {
    throw new StateValueError(
      `keyed state "${name}" can only hold plain JSON data (numbers, strings, booleans, null, arrays, plain objects); this value holds ${bad}. Convert it first, e.g. a Date to date.getTime().`,
    );
  }
}
