import { cloneJson } from './json.js';
import type { BatchBounds, ItemChange, StateScope, StoreCallOptions, WriteStats } from './store.js';
import { type ItemPut, type RawItem, VersionedStore, type VersionFormat } from './versioned-store.js';
import { liveValue, type Version } from './versions.js';

/** One item: its versions (sorted by offset) and its token, a write counter every put counts up. */
type MemoryItem = RawItem<Version, number>;

/** The items of one scope and namespace. */
interface MemoryTable {
  readonly namespace: string;
  readonly items: Map<string, MemoryItem>;
}

/**
 * An item as `dump()` shows it: its newest version's value and offset.
 *
 * @example
 * const snap: ItemSnapshot = store.dump()['fn/readings/0/keyed:total'].a; // { value: 3, offset: 1 }
 */
export interface ItemSnapshot {
  readonly value: unknown;
  readonly offset: number;
}

/**
 * Versions kept as the objects themselves. Reads hand out deep copies, so a batch that fails and
 * is never committed cannot leak in-place mutations into stored state; writes keep the committed
 * objects (a transaction is never used after its commit).
 */
const memoryVersions: VersionFormat<Version> = {
  encode(o, v, e) {
    const next: { o: number; v?: unknown; e?: number } = { o };
    if (v !== undefined) next.v = v;
    if (e !== undefined) next.e = e;
    return next;
  },
  decode: (version) => cloneJson(version.v),
  holdsValue: (version) => version.v !== undefined,
  expiresAt: (version) => version.e,
};

/**
 * State in process memory, for `sluice dev`, tests and benchmarks: the protocol of
 * {@link VersionedStore} (versioned items, compare-and-set, key items before partition items)
 * over Maps, exactly as the DynamoDB store runs it over a table. Values must be plain JSON data, as
 * DynamoDB keeps them: anything else fails the write with a StateValueError. No item size limit.
 *
 * @example
 * const store = new MemoryStore();
 * await runFunction(handler, records, { store });
 * store.dump(); // stored items by table, then by key: { value, offset } of the newest version
 */
export class MemoryStore extends VersionedStore<Version, number> {
  readonly kind = 'memory';
  readonly durable = false;
  readonly #tables = new Map<string, MemoryTable>();
  reads = 0;
  writes = 0;

  /** Test hook: called before each item write; throw from it to simulate a crash mid-write. */
  beforeItemWrite?: (change: ItemChange) => void;

  constructor() {
    super({ format: memoryVersions, plainJson: true });
  }

  override async write(
    scope: StateScope,
    changes: readonly ItemChange[],
    bounds: BatchBounds,
    opts?: StoreCallOptions,
  ): Promise<WriteStats> {
    this.writes++;
    return super.write(scope, changes, bounds, opts);
  }

  protected async getItems(
    scope: StateScope,
    namespace: string,
    keys: readonly string[],
    _opts: StoreCallOptions,
    found: (key: string, item: MemoryItem) => void,
  ): Promise<void> {
    this.reads++;
    const table = this.#tables.get(tableKey(scope, namespace));
    if (!table) return;
    for (const key of keys) {
      const hit = table.items.get(key);
      if (hit) found(key, hit);
    }
  }

  protected async putItems(scope: StateScope, puts: readonly ItemPut<Version, number>[]): Promise<number> {
    let conflicts = 0;
    let last: MemoryTable | undefined;
    for (const { change, versions, expected } of puts) {
      this.beforeItemWrite?.(change);
      // Puts come grouped by namespace: look each table up once per run of them.
      if (last?.namespace !== change.namespace) last = this.#table(scope, change.namespace);
      const stored = last.items.get(change.key);
      if (stored?.token !== expected?.token) {
        conflicts++;
        continue;
      }
      last.items.set(change.key, { versions, token: (stored?.token ?? 0) + 1 });
    }
    return conflicts;
  }

  protected async listItems(
    scope: StateScope,
    namespace: string,
    found: (key: string, versions: readonly Version[]) => void,
  ): Promise<void> {
    const table = this.#tables.get(tableKey(scope, namespace));
    if (table) for (const [key, item] of table.items) found(key, item.versions);
  }

  #table(scope: StateScope, namespace: string): MemoryTable {
    const tk = tableKey(scope, namespace);
    let table = this.#tables.get(tk);
    if (!table) this.#tables.set(tk, (table = { namespace, items: new Map() }));
    return table;
  }

  /**
   * Visits every stored value without copying it (read-only: do not mutate what you are given),
   * with the namespace it belongs to (tell kinds apart with `namespaces.ts`). For cheap periodic
   * summaries such as the live view's count of open windows.
   *
   * @example
   * store.forEachValue((namespace, key, value) => { if (isWindowNamespace(namespace)) n++; });
   */
  forEachValue(visit: (namespace: string, key: string, value: unknown) => void): void {
    for (const table of this.#tables.values()) {
      for (const [k, item] of table.items) {
        const v = newest(item);
        if (v !== undefined) visit(table.namespace, k, v);
      }
    }
  }

  /** Every stored item holding a value, as its newest version, decoded: for tests and the dev summary. */
  dump(): Record<string, Record<string, ItemSnapshot>> {
    const out: Record<string, Record<string, ItemSnapshot>> = {};
    for (const [tk, table] of this.#tables) {
      out[tk] = {};
      for (const [k, item] of table.items) {
        const v = newest(item);
        if (v !== undefined) out[tk][k] = { value: cloneJson(v), offset: item.versions[item.versions.length - 1].o };
      }
    }
    return out;
  }

  /** Every version of every item, for tests of the versioning itself. */
  versions(scope: StateScope, namespace: string, key: string): readonly Version[] {
    return this.#tables.get(tableKey(scope, namespace))?.items.get(key)?.versions ?? [];
  }
}

/** The value of an item's newest version, if it is live. */
function newest(item: MemoryItem): unknown {
  return liveValue(item.versions[item.versions.length - 1], Date.now());
}

function tableKey(scope: StateScope, namespace: string): string {
  return `${scope.functionName}/${scope.topic}/${scope.partition}/${namespace}`;
}
