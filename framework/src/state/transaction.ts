import { SluiceError } from '../errors.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoreCallOptions, WriteStats } from './store.js';

/** One loaded item. Operators on the hot path may use it directly (see {@link NamespaceView.entry}). */
export interface Entry {
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
  readonly #namespaces = new Map<string, NamespaceView>();
  #committed = false;

  constructor(
    readonly store: StateStore,
    readonly scope: StateScope,
    readonly opts: StoreCallOptions = {},
  ) {}

  /** The view of one namespace (created on first use). */
  namespace(name: string): NamespaceView {
    let ns = this.#namespaces.get(name);
    if (!ns) this.#namespaces.set(name, (ns = new NamespaceView(name)));
    return ns;
  }

  /** Reads the keys of a namespace that this transaction has not seen yet, in one store call. */
  async load(namespace: string, keys: Iterable<string>): Promise<void> {
    const ns = this.namespace(namespace);
    const missing: string[] = [];
    for (const k of keys) if (!ns.entries.has(k)) missing.push(k);
    if (missing.length === 0) return;
    const found = await this.store.read(this.scope, namespace, missing, this.opts);
    for (const k of missing) {
      const item = found.get(k);
      ns.entries.set(k, {
        value: item?.value,
        persistedOffset: item ? item.offset : -1,
        revision: item?.revision,
        offset: item ? item.offset : -1,
        dirty: false,
        expiresAt: undefined,
      });
    }
  }

  /** The changed items, as one write set. */
  changes(): ItemChange[] {
    const out: ItemChange[] = [];
    for (const ns of this.#namespaces.values()) {
      for (const [key, e] of ns.entries) {
        // Nothing newer than what is stored was applied: writing would only trip the fence.
        if (!e.dirty || e.offset <= e.persistedOffset) continue;
        const change: ItemChange = { namespace: ns.name, key, value: e.value, offset: e.offset };
        if (e.expiresAt !== undefined) (change as { expiresAt?: number }).expiresAt = e.expiresAt;
        if (e.revision !== undefined) (change as { revision?: unknown }).revision = e.revision;
        out.push(change);
      }
    }
    return out;
  }

  /** Writes every changed item in one store call. A transaction commits at most once. */
  async commit(bounds: BatchBounds): Promise<WriteStats> {
    if (this.#committed) throw new SluiceError('a state transaction was committed twice; this is a bug in Sluice, please report it.');
    this.#committed = true;
    const changes = this.changes();
    if (changes.length === 0) return { writeRequests: 0 };
    return this.store.write(this.scope, changes, bounds, this.opts);
  }
}

/** One namespace of a transaction: synchronous access to its loaded items. */
export class NamespaceView {
  readonly entries = new Map<string, Entry>();
  constructor(readonly name: string) {}

  /** The loaded item itself, for hot loops that would otherwise look it up several times. */
  entry(key: string): Entry {
    return this.#entry(key);
  }

  #entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) {
      throw new SluiceError(
        `state key "${key}" of "${this.name}" was used before it was loaded; state can only be used for the key of the record being processed.`,
      );
    }
    return e;
  }

  /** Whether the record at `offset` has already been applied to this item (a replay). */
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

  /** Marks the item changed after its value was mutated in place. */
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
}
