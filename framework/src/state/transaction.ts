import { SluiceError } from '../errors.js';
import type { BatchBounds, ItemChange, RejectedChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';

/**
 * Options of a transaction: the store call options, and `rewrite` for an idle tick, which writes
 * at its own position (just after the partition's last offset) again each time it closes more:
 * its changes replace a version at that same position instead of being taken for a replay.
 *
 * @example
 * new Transaction(store, scope, { before: 42, rewrite: true });
 */
export interface TransactionOptions extends StoreCallOptions {
  readonly rewrite?: boolean;
}

/** One loaded item; only this module reads or writes its fields, through {@link NamespaceView}. */
interface Entry {
  value: unknown;
  /** Offset of the version read (older than the batch's first offset): records at or below it are already applied. */
  readonly persistedOffset: number;
  /** The store's handle on the item as read, for its conditional write; undefined if absent. */
  readonly revision: unknown;
  offset: number;
  dirty: boolean;
  expiresAt: number | undefined;
}

/**
 * The state of one partition batch: items are loaded in bulk per namespace before the records
 * that need them run, as of just before the batch's first offset (`opts.before`), then read and
 * written synchronously with read-your-writes, and flushed once by {@link Transaction.commit}.
 *
 * @example
 * const tx = new Transaction(store, scope, { before: 10 });
 * await tx.load('keyed:seen', ['a', 'b']);
 * const ns = tx.namespace('keyed:seen');
 * if (!ns.isApplied('a', 17)) ns.set('a', (ns.get('a') as number ?? 0) + 1, 17);
 * await tx.commit({ firstOffset: 10, lastOffset: 17 });
 */
export class Transaction {
  readonly #namespaces = new Map<string, View>();
  #committed = false;
  /** The write set `check` looked at, which `commit` then writes. */
  #checked: ItemChange[] | undefined;

  readonly #rewrite: boolean;

  constructor(
    readonly store: StateStore,
    readonly scope: StateScope,
    readonly opts: TransactionOptions = {},
  ) {
    this.#rewrite = opts.rewrite === true;
  }

  /** The view of one namespace (created on first use). */
  namespace(name: string): NamespaceView {
    return this.#view(name);
  }

  #view(name: string): View {
    let ns = this.#namespaces.get(name);
    if (!ns) this.#namespaces.set(name, (ns = new View(name)));
    return ns;
  }

  /**
   * Reads the keys of a namespace that this transaction has not seen yet, in one store call. A key
   * the store cannot hold (`StateStore.checkKey`) is not read: using it throws the store's error,
   * so only the records that use it fail.
   */
  async load(namespace: string, keys: Iterable<string>): Promise<void> {
    const ns = this.#view(namespace);
    const missing: string[] = [];
    const check = this.store.checkKey?.bind(this.store);
    for (const k of keys) {
      if (ns.entries.has(k) || ns.refused?.has(k)) continue;
      const refused = check?.(this.scope, namespace, k);
      if (refused) (ns.refused ??= new Map()).set(k, refused);
      else missing.push(k);
    }
    if (missing.length === 0) return;
    const found = await this.store.read(this.scope, namespace, missing, this.opts);
    for (const k of missing) this.seed(namespace, k, found.get(k));
  }

  /** Takes an item read outside the transaction (undefined: absent) as if `load` had read it. */
  seed(namespace: string, key: string, item: StoredItem | undefined): void {
    this.#view(namespace).entries.set(key, {
      value: item?.value,
      persistedOffset: item ? item.offset : -1,
      revision: item?.revision,
      offset: item ? item.offset : -1,
      dirty: false,
      expiresAt: undefined,
    });
  }

  /** The changed items, as one write set. */
  changes(): ItemChange[] {
    const out: ItemChange[] = [];
    for (const ns of this.#namespaces.values()) {
      for (const [key, e] of ns.entries) {
        // Nothing newer than what is stored was applied: writing would only trip the fence.
        if (!e.dirty || e.offset < e.persistedOffset || (e.offset === e.persistedOffset && !this.#rewrite)) continue;
        const change: ItemChange = { namespace: ns.name, key, value: e.value, offset: e.offset };
        if (e.expiresAt !== undefined) (change as { expiresAt?: number }).expiresAt = e.expiresAt;
        if (e.revision !== undefined) (change as { revision?: unknown }).revision = e.revision;
        out.push(change);
      }
    }
    return out;
  }

  /**
   * The changed items the store would refuse to write (`StateStore.checkWrite`), each with its
   * error; nothing is written. `commit` then writes the write set as checked: change nothing in
   * between.
   */
  check(bounds: BatchBounds): RejectedChange[] {
    const changes = (this.#checked = this.changes());
    return changes.length > 0 && this.store.checkWrite ? this.store.checkWrite(this.scope, changes, bounds) : [];
  }

  /** Writes every changed item in one store call. A transaction commits at most once. */
  async commit(bounds: BatchBounds): Promise<WriteStats> {
    if (this.#committed) throw new SluiceError('a state transaction was committed twice; this is a bug in Sluice, please report it.');
    this.#committed = true;
    const changes = this.#checked ?? this.changes();
    if (changes.length === 0) return { writeRequests: 0 };
    return this.store.write(this.scope, changes, bounds, this.opts);
  }
}

/**
 * One namespace of a transaction: synchronous access to its loaded items, each fenced by the
 * offset of the record that changes it. Using a key that was not loaded throws a SluiceError.
 *
 * @example
 * const ns = tx.namespace('keyed:total');
 * if (!ns.isApplied('a', 17)) ns.set('a', ((ns.get('a') as number | undefined) ?? 0) + 1, 17);
 */
export interface NamespaceView {
  readonly name: string;
  /** Whether the record at `offset` has already been applied to this item (a replay). */
  isApplied(key: string, offset: number): boolean;
  /** The item's value (undefined if absent); mutate it in place only with {@link touch} or {@link modify}. */
  get(key: string): unknown;
  /** Whether the key was loaded. */
  has(key: string): boolean;
  /** Replaces the item's value, as changed by the record at `offset`; `expiresAt` in epoch ms. */
  set(key: string, value: unknown, offset: number, expiresAt?: number): void;
  /** Marks the item changed by the record at `offset` after its value was mutated in place. */
  touch(key: string, offset: number): void;
  /** Removes the item, as changed by the record at `offset`. */
  delete(key: string, offset: number): void;
  /**
   * The live value of the item for the record at `offset` to mutate in place, created by `init`
   * if absent, with the item already marked changed at `offset`; undefined, with nothing marked,
   * if that record was already applied (a replay). One lookup where `isApplied`, `get` and `set`
   * take three, for hot loops such as window operators.
   */
  modify<T>(key: string, offset: number, init: () => T): T | undefined;
}

// The only implementation: Transaction fills `entries` on load and reads them back on commit.
class View implements NamespaceView {
  readonly entries = new Map<string, Entry>();
  /** Keys the store cannot hold, with its error: thrown at the record that uses one. */
  refused: Map<string, Error> | undefined;
  constructor(readonly name: string) {}

  #entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) {
      const refused = this.refused?.get(key);
      if (refused) throw refused;
      throw new SluiceError(
        `state key "${key}" of "${this.name}" was used before it was loaded; state can only be used for the key of the record being processed.`,
      );
    }
    return e;
  }

  isApplied(key: string, offset: number): boolean {
    return offset <= this.#entry(key).persistedOffset;
  }

  get(key: string): unknown {
    return this.#entry(key).value;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  set(key: string, value: unknown, offset: number, expiresAt?: number): void {
    const e = this.#entry(key);
    e.value = value;
    if (offset > e.offset) e.offset = offset;
    e.dirty = true;
    e.expiresAt = expiresAt;
  }

  touch(key: string, offset: number): void {
    const e = this.#entry(key);
    if (offset > e.offset) e.offset = offset;
    e.dirty = true;
  }

  delete(key: string, offset: number): void {
    const e = this.#entry(key);
    e.value = undefined;
    if (offset > e.offset) e.offset = offset;
    e.dirty = true;
  }

  modify<T>(key: string, offset: number, init: () => T): T | undefined {
    const e = this.#entry(key);
    if (offset <= e.persistedOffset) return undefined;
    if (e.value === undefined) e.value = init();
    if (offset > e.offset) e.offset = offset;
    e.dirty = true;
    return e.value as T;
  }
}
