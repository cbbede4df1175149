import { cloneJson, firstNonJson } from './json.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';
import { conflictError, keepVersions, liveValue, pickVersion, staleReadError, type Version } from './versions.js';

/** One item: its versions (sorted by offset) and its revision, counted up by every write. */
interface MemoryItem {
  readonly versions: readonly Version[];
  readonly revision: number;
}

/** An item as `dump()` shows it: its newest version's value and offset. */
export interface ItemSnapshot {
  readonly value: unknown;
  readonly offset: number;
}

const ABSENT: readonly Version[] = [{ o: -1 }];

/**
 * State in process memory, for `sluice dev`, tests and benchmarks. Reads hand out deep copies,
 * so a batch that fails and is never committed cannot leak in-place mutations into stored state;
 * writes keep the committed objects (a transaction is never used after its commit). Values must be
 * plain JSON data, as in DynamoDB: anything else fails the write with a clear error. Items are
 * versioned and written compare-and-set, exactly as in the DynamoDB store (see `versions.ts`).
 *
 * @example
 * const store = new MemoryStore();
 * await runFunction(handler, records, { store });
 * store.dump(); // stored items by table, then by key: { value, offset } of the newest version
 */
export class MemoryStore implements StateStore {
  readonly kind = 'memory';
  readonly durable = false;
  readonly #items = new Map<string, Map<string, MemoryItem>>();
  reads = 0;
  writes = 0;

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts: StoreCallOptions = {}): Promise<Map<string, StoredItem>> {
    this.reads++;
    const table = this.#items.get(tableKey(scope, namespace));
    const out = new Map<string, StoredItem>();
    if (!table) return out;
    const now = Date.now();
    for (const key of keys) {
      const hit = table.get(key);
      if (!hit) continue;
      const version = pickVersion(hit.versions, opts.before);
      if (!version) throw staleReadError(scope, namespace, key, hit.versions[0].o, opts.before!);
      out.set(key, { value: cloneJson(liveValue(version, now)), offset: version.o, revision: hit.revision });
    }
    return out;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds): Promise<WriteStats> {
    this.writes++;
    // Values must be plain JSON: check them all before writing any.
    for (const c of changes) checkJson(c.value, c.namespace, c.key);
    let conflicts = 0;
    // As in DynamoDB: each item only if unchanged since it was read; partition-level items last.
    const partitionLevel: ItemChange[] = [];
    let lastTable: { key: string; table: Map<string, MemoryItem> } | undefined;
    const apply = (c: ItemChange) => {
      this.beforeItemWrite?.(c);
      // Changes come grouped by namespace: look each table up once per run of them.
      if (lastTable?.key !== c.namespace) {
        const tk = tableKey(scope, c.namespace);
        let table = this.#items.get(tk);
        if (!table) this.#items.set(tk, (table = new Map()));
        lastTable = { key: c.namespace, table };
      }
      const table = lastTable.table;
      const stored = table.get(c.key);
      if (stored?.revision !== c.revision) {
        conflicts++;
        return;
      }
      const next: { o: number; v?: unknown; e?: number } = { o: c.offset };
      if (c.value !== undefined) next.v = c.value;
      if (c.expiresAt !== undefined) next.e = c.expiresAt;
      table.set(c.key, { versions: keepVersions(stored?.versions ?? ABSENT, bounds.firstOffset, next), revision: (stored?.revision ?? 0) + 1 });
    };
    for (const c of changes) {
      if (c.namespace.endsWith('#partition')) partitionLevel.push(c);
      else apply(c);
    }
    for (const c of partitionLevel) apply(c);
    if (conflicts > 0) throw conflictError(scope, conflicts);
    return { writeRequests: changes.length, conflicts };
  }

  /** Test hook: called before each item write; throw from it to simulate a crash mid-write. */
  beforeItemWrite?: (change: ItemChange) => void;

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    const table = this.#items.get(tableKey(scope, namespace));
    return table ? [...table].filter(([, item]) => newest(item) !== undefined).map(([k]) => k) : [];
  }

  /**
   * Visits every stored value without copying it (read-only: do not mutate what you are given).
   * For cheap periodic summaries such as the live view's count of open windows.
   */
  forEachValue(visit: (table: string, key: string, value: unknown) => void): void {
    for (const [tk, table] of this.#items) {
      for (const [k, item] of table) {
        const v = newest(item);
        if (v !== undefined) visit(tk, k, v);
      }
    }
  }

  /** Every stored item holding a value, as its newest version, decoded: for tests and the dev summary. */
  dump(): Record<string, Record<string, ItemSnapshot>> {
    const out: Record<string, Record<string, ItemSnapshot>> = {};
    for (const [tk, table] of this.#items) {
      out[tk] = {};
      for (const [k, item] of table) {
        const v = newest(item);
        if (v !== undefined) out[tk][k] = { value: cloneJson(v), offset: item.versions[item.versions.length - 1].o };
      }
    }
    return out;
  }

  /** Every version of every item, for tests of the versioning itself. */
  versions(scope: StateScope, namespace: string, key: string): readonly Version[] {
    return this.#items.get(tableKey(scope, namespace))?.get(key)?.versions ?? [];
  }
}

/** The value of an item's newest version, if it is live. */
function newest(item: MemoryItem): unknown {
  return liveValue(item.versions[item.versions.length - 1], Date.now());
}

function tableKey(scope: StateScope, namespace: string): string {
  return `${scope.functionName}/${scope.topic}/${scope.partition}/${namespace}`;
}


/** Rejects state a real store could not keep (functions, class instances, NaN…), naming the item. */
function checkJson(v: unknown, namespace: string, key: string): unknown {
  if (v !== undefined) {
    const bad = firstNonJson(v);
    if (bad !== undefined) {
      throw new TypeError(`state "${namespace}" for key "${key}" holds ${bad}, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.`);
    }
  }
  return v;
}

