/**
 * The versioned, fenced state protocol, in one place. Both stores extend {@link VersionedStore};
 * it decides everything a store must get right for exactly-once state, and the adapters only move
 * items in and out of their storage (the shape of Powertools idempotency's `BasePersistenceLayer`,
 * whose DynamoDB and cache layers only implement `_getRecord`/`_putRecord`).
 *
 * The base owns: which version a batch reads (`pickVersion`), stale reads, live and expired values,
 * the value checks (plain JSON data, an item size limit), which versions a write keeps
 * (`keepVersions`), compare-and-set on the item as read, writing key items before partition-level
 * items, and counting conflicts into one StateConflictError. An adapter implements
 * {@link VersionedStore.getItems}, {@link VersionedStore.putItems} and
 * {@link VersionedStore.listItems}, encodes versions with a {@link VersionFormat}, and translates
 * its SDK's errors (a failed conditional write is a conflict, not an error).
 */
import { StateConflictError, StateValueError } from '../errors.js';
import { firstNonJson } from './json.js';
import { isPartitionNamespace } from './namespaces.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';
import { keepVersions, pickVersion } from './versions.js';

/**
 * How an adapter stores one version (see `versions.ts`): any shape with the offset `o` readable,
 * so a store can keep what its storage returned and pass it back untouched.
 *
 * @example
 * const memoryVersions: VersionFormat<Version> = {
 *   encode: (o, v, e) => ({ o, v, e }), decode: (x) => cloneJson(x.v),
 *   holdsValue: (x) => x.v !== undefined, expiresAt: (x) => x.e,
 * };
 */
export interface VersionFormat<V extends { readonly o: number }> {
  /** The stored form of a new version: `value` (undefined: absent) as of `offset`, expiring at `expiresAt`. */
  encode(offset: number, value: unknown, expiresAt: number | undefined): V;
  /** A fresh copy of the value the version holds (undefined if none): callers may mutate it. */
  decode(version: V): unknown;
  /** Whether the version holds a value, expired or not, without decoding it. */
  holdsValue(version: V): boolean;
  /** Epoch ms after which the version's value reads as absent, if any. */
  expiresAt(version: V): number | undefined;
}

/**
 * A store's limit on the size of one item (all its versions): DynamoDB's 400 KB.
 *
 * @example
 * const limit: ItemLimit<StoredVersion> = { maxBytes: 380 * 1024, versionOverheadBytes: 48, name: "DynamoDB's 400 KB item limit", valueBytes: (v) => 0 };
 */
export interface ItemLimit<V> {
  /** Bytes all versions' values may take, less room for the key and bookkeeping attributes. */
  readonly maxBytes: number;
  /** Bytes each version costs besides its value (attribute names, offset, expiry). */
  readonly versionOverheadBytes: number;
  /** How an error names the limit, e.g. `DynamoDB's 400 KB item limit`. */
  readonly name: string;
  /** Bytes of the version's encoded value. */
  valueBytes(version: V): number;
}

/**
 * What a store's values must satisfy, checked before anything of a write set is written.
 *
 * @example
 * const rules: StoreRules<Version> = { format: memoryVersions, plainJson: true };
 */
export interface StoreRules<V extends { readonly o: number }> {
  readonly format: VersionFormat<V>;
  /** Reject values that are not plain JSON data (a store that keeps the objects themselves). */
  readonly plainJson?: boolean;
  /** Reject items whose versions together exceed the limit. */
  readonly itemLimit?: ItemLimit<V>;
}

/**
 * One stored item as the adapter found it: its versions, sorted by offset, and `token`, what a
 * conditional put compares (a write counter). It is also the revision a batch hands back.
 *
 * @example
 * const item: RawItem<Version, number> = { versions: [{ o: 41, v: 7 }], token: 3 };
 */
export interface RawItem<V, T = unknown> {
  readonly versions: readonly V[];
  readonly token: T;
}

/**
 * One conditional put: write `versions` as the item `change` names, only if it is still as
 * `expected` (its token unchanged), or still absent when nothing was read.
 *
 * @example
 * const put: ItemPut<Version, number> = { change, versions: [{ o: -1 }, { o: 42, v: 8 }], expected: undefined };
 */
export interface ItemPut<V, T = unknown> {
  readonly change: ItemChange;
  readonly versions: readonly V[];
  readonly expected: RawItem<V, T> | undefined;
}

/**
 * The base of every state store: the protocol of `versions.ts` on top of an adapter that gets and
 * puts items. See the module comment for the split.
 *
 * @example
 * class MyStore extends VersionedStore<Version, number> {
 *   readonly kind = 'mine'; readonly durable = false;
 *   constructor() { super({ format: memoryVersions }); }
 *   protected async getItems(scope, namespace, keys, opts, found) { … }
 *   protected async putItems(scope, puts, opts) { …; return conflicts; }
 *   protected async listItems(scope, namespace, found) { … }
 * }
 */
export abstract class VersionedStore<V extends { readonly o: number }, T = unknown> implements StateStore {
  abstract readonly kind: string;
  abstract readonly durable: boolean;
  readonly #format: VersionFormat<V>;
  readonly #plainJson: boolean;
  readonly #limit: ItemLimit<V> | undefined;
  /** The versions of an item never written: absent before any record. */
  #absent: readonly V[] | undefined;

  protected constructor(rules: StoreRules<V>) {
    this.#format = rules.format;
    this.#plainJson = rules.plainJson ?? false;
    this.#limit = rules.itemLimit;
  }

  /**
   * Hands `found` each of `keys` that has an item in the namespace (keys without one are simply
   * not handed over), read consistently.
   */
  protected abstract getItems(
    scope: StateScope,
    namespace: string,
    keys: readonly string[],
    opts: StoreCallOptions,
    found: (key: string, item: RawItem<V, T>) => void,
  ): Promise<void>;

  /**
   * Puts each item only if it is still as expected; returns how many were refused because they
   * were not (conflicts are counts, not errors). Puts may run in parallel, in any order.
   */
  protected abstract putItems(scope: StateScope, puts: readonly ItemPut<V, T>[], opts: StoreCallOptions): Promise<number>;

  /** Hands `found` every item of a namespace with its versions. */
  protected abstract listItems(scope: StateScope, namespace: string, found: (key: string, versions: readonly V[]) => void): Promise<void>;

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts: StoreCallOptions = {}): Promise<Map<string, StoredItem>> {
    const out = new Map<string, StoredItem>();
    const format = this.#format;
    const before = opts.before;
    let now: number | undefined;
    await this.getItems(scope, namespace, keys, opts, (key, item) => {
      const version = pickVersion(item.versions, before);
      if (!version) throw staleReadError(scope, namespace, key, item.versions[0]?.o ?? -1, before!);
      // Stores delete expired items lazily (DynamoDB within days): an expired value reads as absent.
      const e = format.expiresAt(version);
      const expired = e !== undefined && e < (now ??= Date.now());
      out.set(key, { value: expired ? undefined : format.decode(version), offset: version.o, revision: item });
    });
    return out;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts: StoreCallOptions = {}): Promise<WriteStats> {
    // Every check before any item is written: a value the store cannot keep fails the batch whole.
    if (this.#plainJson) for (const c of changes) checkPlainJson(c);
    const format = this.#format;
    const limit = this.#limit;
    const absent = (this.#absent ??= [format.encode(-1, undefined, undefined)]);
    const keyItems: ItemPut<V, T>[] = [];
    let partitionItems: ItemPut<V, T>[] | undefined;
    for (const c of changes) {
      const expected = c.revision as RawItem<V, T> | undefined;
      const next = format.encode(c.offset, c.value, c.expiresAt);
      const versions = keepVersions(expected?.versions ?? absent, bounds.firstOffset, next);
      if (limit) checkItemSize(limit, scope, c, versions, next);
      const put: ItemPut<V, T> = { change: c, versions, expected };
      if (isPartitionNamespace(c.namespace)) (partitionItems ??= []).push(put);
      else keyItems.push(put);
    }
    // Partition-level items (clocks, indexes of open windows) only once every key item is written,
    // so a crash in between never leaves an index pointing at state that was not written.
    let conflicts = keyItems.length > 0 ? await this.putItems(scope, keyItems, opts) : 0;
    if (partitionItems) conflicts += await this.putItems(scope, partitionItems, opts);
    if (conflicts > 0) throw conflictError(scope, conflicts);
    return { writeRequests: changes.length, conflicts };
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    const format = this.#format;
    const now = Date.now();
    const out: string[] = [];
    await this.listItems(scope, namespace, (key, versions) => {
      const newest = versions[versions.length - 1];
      if (newest === undefined || !format.holdsValue(newest)) return;
      const e = format.expiresAt(newest);
      if (e === undefined || e >= now) out.push(key);
    });
    return out;
  }
}

/** Rejects state a real store could not keep (functions, class instances, NaN…), naming the item. */
function checkPlainJson(c: ItemChange): void {
  if (c.value === undefined) return;
  const bad = firstNonJson(c.value);
  if (bad !== undefined) {
    throw new StateValueError(
      `state "${c.namespace}" for key "${c.key}" holds ${bad}, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.`,
    );
  }
}

/** Rejects an item whose versions (the new one with those kept for retries) exceed the store's limit. */
function checkItemSize<V>(limit: ItemLimit<V>, scope: StateScope, c: ItemChange, versions: readonly V[], next: V): void {
  let bytes = 0;
  for (const v of versions) bytes += limit.versionOverheadBytes + limit.valueBytes(v);
  if (bytes <= limit.maxBytes) return;
  throw new StateValueError(
    `state "${c.namespace}" of function "${scope.functionName}" for key "${c.key}" (partition ${scope.partition}) would be ${Math.round(bytes / 1024)} KB ` +
      `(the value is ${Math.round(limit.valueBytes(next) / 1024)} KB, kept with its version from before this batch for retries), over ${limit.name}; ` +
      `use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect).`,
  );
}

/** The error for a read that finds only versions newer than its batch: the invocation is stale. */
function staleReadError(scope: StateScope, namespace: string, key: string, oldest: number, before: number): StateConflictError {
  return new StateConflictError(
    `state "${namespace}" of function "${scope.functionName}" for key "${key}" (partition ${scope.partition}) holds only versions from offset ${oldest} on, ` +
      `but this batch starts at offset ${before}: the partition has moved past this invocation (a stale one still running beside its retry), ` +
      `or the input restarted at an older offset (then clear the state table or continue from the committed offset). Nothing was changed.`,
  );
}

/** The error for items changed since this invocation read them: it is stale and stops. */
function conflictError(scope: StateScope, conflicts: number): StateConflictError {
  return new StateConflictError(
    `${conflicts} state item(s) of function "${scope.functionName}", partition ${scope.partition}, were changed by another invocation since this one read them; ` +
      `this invocation is stale and stops without overwriting them.`,
  );
}
