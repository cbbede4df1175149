/**
 * The versioned, fenced state protocol, in one place (one concept, over 350 lines on purpose: the
 * protocol split across files is what this base replaced). Both stores extend {@link VersionedStore};
 * it decides everything a store must get right for exactly-once state, and the adapters only move
 * items in and out of their storage (the shape of Powertools idempotency's `BasePersistenceLayer`,
 * whose DynamoDB and cache layers only implement `_getRecord`/`_putRecord`).
 *
 * The base owns: which version a batch reads (`pickVersion`), stale reads, live and expired values,
 * the checks (key sizes, plain JSON data, an item size limit: `checkKey` and `checkWrite`, which
 * a batch runs before its outputs leave, and `write` again), which versions a write keeps
 * (`keepVersions`), compare-and-set on the item as read, writing key items before partition-level
 * items (the idle item last), and counting conflicts into one StateConflictError. An adapter implements
 * {@link VersionedStore.getItems}, {@link VersionedStore.putItems} and
 * {@link VersionedStore.listItems}, encodes versions with a {@link VersionFormat}, and translates
 * its SDK's errors (a failed conditional write is a conflict, not an error). An adapter that keeps
 * large values outside the item (DynamoDB's chunk items) also implements
 * {@link VersionedStore.loadValues}, which fetches the values of the versions a read picked.
 *
 * Over 350 lines because it is one concept: every rule of the protocol, and the errors that name them.
 */
import { StateConflictError, StateValueError } from '../errors.js';
import { firstNonJson } from './json.js';
import { idleNamespace, isPartitionNamespace } from './namespaces.js';

const IDLE_NAMESPACE = idleNamespace();
import type { BatchBounds, ItemChange, RejectedChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';
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
 * A store's cap on one value (a version's whole value, wherever the store keeps it): DynamoDB's
 * configurable `maxValueBytes`. Checked before outputs leave, like the item limit.
 *
 * @example
 * const cap: ValueLimit<StoredVersion> = { maxBytes: 6 * 1024 * 1024, name: 'the state value cap of 6 MB', valueBytes: (v) => 0 };
 */
export interface ValueLimit<V> {
  readonly maxBytes: number;
  /** How an error names the cap and where to raise it. */
  readonly name: string;
  /** Bytes of the version's whole value. */
  valueBytes(version: V): number;
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
  /** Bytes of the version's encoded value in the item itself (a value kept in other items: none). */
  valueBytes(version: V): number;
}

/**
 * A store's limits on the keys it stores items under, in UTF-8 bytes: the record key, and what
 * the scope and namespace take together (DynamoDB: its sort key and partition key limits).
 *
 * @example
 * const limit: KeyLimit = { maxKeyBytes: 1_022, keyName: "DynamoDB's 1,024-byte sort key limit (less the 2-byte `k:` prefix)",
 *   maxScopeBytes: 2_048, scopeName: "DynamoDB's 2,048-byte partition key limit", scopeBytes: (scope, ns) => 0 };
 */
export interface KeyLimit {
  readonly maxKeyBytes: number;
  /** How an error names the key limit. */
  readonly keyName: string;
  readonly maxScopeBytes: number;
  /** How an error names the scope limit. */
  readonly scopeName: string;
  /** UTF-8 bytes of the store's key for a scope and namespace. */
  scopeBytes(scope: StateScope, namespace: string): number;
}

/**
 * What a store's keys and values must satisfy, checked before anything of a write set is written.
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
  /** Reject values over the cap. */
  readonly valueLimit?: ValueLimit<V>;
  /** Reject keys over the store's key limits. */
  readonly keyLimit?: KeyLimit;
}

/** A write set ready to put: key items, then partition-level items, or what refused it. */
interface PreparedWrite<V, T> {
  readonly bounds: BatchBounds;
  readonly keyItems: ItemPut<V, T>[];
  readonly partitionItems: ItemPut<V, T>[];
  readonly rejected: RejectedChange[];
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
  readonly #valueLimit: ValueLimit<V> | undefined;
  readonly #keyLimit: KeyLimit | undefined;
  /** The versions of an item never written: absent before any record. */
  #absent: readonly V[] | undefined;
  /** Write sets checked by `checkWrite`, so `write` does not encode and check them again. */
  readonly #prepared = new WeakMap<readonly ItemChange[], PreparedWrite<V, T>>();

  protected constructor(rules: StoreRules<V>) {
    this.#format = rules.format;
    this.#plainJson = rules.plainJson ?? false;
    this.#limit = rules.itemLimit;
    this.#valueLimit = rules.valueLimit;
    this.#keyLimit = rules.keyLimit;
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

  /**
   * Fetches what `format.decode` needs of the versions a read picked, for stores that keep some
   * values outside the item (the others leave it out). Called with the live versions only.
   */
  protected loadValues?(
    scope: StateScope,
    namespace: string,
    picked: readonly { readonly key: string; readonly version: V }[],
    opts: StoreCallOptions,
  ): Promise<void>;

  /** Hands `found` every item of a namespace with its versions. */
  protected abstract listItems(scope: StateScope, namespace: string, found: (key: string, versions: readonly V[]) => void): Promise<void>;

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts: StoreCallOptions = {}): Promise<Map<string, StoredItem>> {
    const out = new Map<string, StoredItem>();
    const format = this.#format;
    const before = opts.before;
    let now: number | undefined;
    const load = this.loadValues;
    const picked: { key: string; version: V; item: RawItem<V, T> }[] | undefined = load ? [] : undefined;
    await this.getItems(scope, namespace, keys, opts, (key, item) => {
      const version = pickVersion(item.versions, before);
      if (!version) throw staleReadError(scope, namespace, key, item.versions[0]?.o ?? -1, before!);
      // Stores delete expired items lazily (DynamoDB within days): an expired value reads as absent.
      const e = format.expiresAt(version);
      const expired = e !== undefined && e < (now ??= Date.now());
      if (picked && !expired) picked.push({ key, version, item });
      else out.set(key, { value: expired ? undefined : format.decode(version), offset: version.o, revision: item });
    });
    if (picked && picked.length > 0) {
      await load!.call(this, scope, namespace, picked, opts);
      for (const { key, version, item } of picked) out.set(key, { value: format.decode(version), offset: version.o, revision: item });
    }
    return out;
  }

  checkKey(scope: StateScope, namespace: string, key: string): StateValueError | undefined {
    const limit = this.#keyLimit;
    if (!limit) return undefined;
    // A UTF-16 code unit is at most 3 UTF-8 bytes: most keys need no counting.
    if (key.length * 3 > limit.maxKeyBytes) {
      const bytes = utf8Bytes(key);
      if (bytes > limit.maxKeyBytes) {
        return new StateValueError(
          `the record key "${key.slice(0, 40)}…" is ${bytes} bytes, over ${limit.keyName}: state "${namespace}" of function "${scope.functionName}" ` +
            `cannot be kept under it (a key may be at most ${limit.maxKeyBytes} bytes); use a shorter key, e.g. a hash of it, with key().`,
        );
      }
    }
    const scopeBytes = limit.scopeBytes(scope, namespace);
    if (scopeBytes > limit.maxScopeBytes) {
      return new StateValueError(
        `state "${namespace}" of function "${scope.functionName}" on topic "${scope.topic}" needs a ${scopeBytes}-byte store key, over ${limit.scopeName}; ` +
          `use shorter function, topic, window or state names.`,
      );
    }
    return undefined;
  }

  checkWrite(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds): RejectedChange[] {
    const prepared = this.#prepare(scope, changes, bounds);
    this.#prepared.set(changes, prepared);
    return prepared.rejected;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts: StoreCallOptions = {}): Promise<WriteStats> {
    let prepared = this.#prepared.get(changes);
    if (prepared) this.#prepared.delete(changes);
    if (prepared?.bounds.firstOffset !== bounds.firstOffset || prepared.bounds.lastOffset !== bounds.lastOffset) {
      prepared = this.#prepare(scope, changes, bounds);
    }
    // Every check before any item is written: a value the store cannot keep fails the batch whole.
    if (prepared.rejected.length > 0) throw prepared.rejected[0].error;
    const { keyItems, partitionItems } = prepared;
    // Partition-level items (clocks, indexes of open windows) only once every key item is written,
    // so a crash in between never leaves an index pointing at state that was not written.
    let conflicts = keyItems.length > 0 ? await this.putItems(scope, keyItems, opts) : 0;
    // The idle item last, and only over a whole write: an idle tick takes it to say that every
    // item of the batch it names is written (see pipeline/idle.ts).
    const idle = partitionItems.filter((p) => p.change.namespace === IDLE_NAMESPACE);
    const others = idle.length > 0 ? partitionItems.filter((p) => p.change.namespace !== IDLE_NAMESPACE) : partitionItems;
    if (others.length > 0) conflicts += await this.putItems(scope, others, opts);
    if (idle.length > 0 && conflicts === 0) conflicts += await this.putItems(scope, idle, opts);
    if (conflicts > 0) throw conflictError(scope, conflicts);
    return { writeRequests: changes.length, conflicts };
  }

  /** Encodes a write set's new versions, decides the versions each item keeps, and checks them. */
  #prepare(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds): PreparedWrite<V, T> {
    const format = this.#format;
    const limit = this.#limit;
    const absent = (this.#absent ??= [format.encode(-1, undefined, undefined)]);
    const keyItems: ItemPut<V, T>[] = [];
    const partitionItems: ItemPut<V, T>[] = [];
    const rejected: RejectedChange[] = [];
    for (const c of changes) {
      const notJson = this.#plainJson ? nonJsonError(c) : undefined;
      if (notJson) {
        rejected.push({ change: c, error: notJson });
        continue;
      }
      const expected = c.revision as RawItem<V, T> | undefined;
      const next = format.encode(c.offset, c.value, c.expiresAt);
      const versions = keepVersions(expected?.versions ?? absent, bounds.firstOffset, next);
      const tooBig =
        (this.#valueLimit && valueSizeError(this.#valueLimit, scope, c, next)) ||
        (limit ? itemSizeError(limit, scope, c, versions, next) : undefined);
      if (tooBig) {
        rejected.push({ change: c, error: tooBig });
        continue;
      }
      const put: ItemPut<V, T> = { change: c, versions, expected };
      if (isPartitionNamespace(c.namespace)) partitionItems.push(put);
      else keyItems.push(put);
    }
    return { bounds, keyItems, partitionItems, rejected };
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

/** The error for state a real store could not keep (functions, class instances, NaN…), naming the item. */
function nonJsonError(c: ItemChange): StateValueError | undefined {
  if (c.value === undefined) return undefined;
  const bad = firstNonJson(c.value);
  if (bad === undefined) return undefined;
  return new StateValueError(
    `state "${c.namespace}" for key "${c.key}" holds ${bad}, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.`,
  );
}

/** The error for a value over the store's cap, wherever the store would keep it. */
function valueSizeError<V>(cap: ValueLimit<V>, scope: StateScope, c: ItemChange, next: V): StateValueError | undefined {
  const bytes = cap.valueBytes(next);
  if (bytes <= cap.maxBytes) return undefined;
  return new StateValueError(
    `state "${c.namespace}" of function "${scope.functionName}" for key "${c.key}" (partition ${scope.partition}) would hold ${bytes} bytes, ` +
      `over ${cap.name} (${cap.maxBytes} bytes); use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect), or raise the cap.`,
  );
}

/** The error for an item whose versions (the new one with those kept for retries) exceed the store's limit. */
function itemSizeError<V>(
  limit: ItemLimit<V>,
  scope: StateScope,
  c: ItemChange,
  versions: readonly V[],
  next: V,
): StateValueError | undefined {
  let bytes = 0;
  for (const v of versions) bytes += limit.versionOverheadBytes + limit.valueBytes(v);
  if (bytes <= limit.maxBytes) return undefined;
  return new StateValueError(
    `state "${c.namespace}" of function "${scope.functionName}" for key "${c.key}" (partition ${scope.partition}) would be ${Math.round(bytes / 1024)} KB ` +
      `(the value is ${Math.round(limit.valueBytes(next) / 1024)} KB, kept with its version from before this batch for retries), over ${limit.name}; ` +
      `use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect).`,
  );
}

/** Bytes of a string as UTF-8, without encoding it (the core does not use Node's Buffer). */
function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      // A surrogate pair is one 4-byte character; a lone surrogate becomes U+FFFD (3 bytes).
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
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
