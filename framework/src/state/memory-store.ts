import { StateConflictError } from '../errors.js';
import { cloneJson, firstNonJson } from './json.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoredItem, WriteStats } from './store.js';

/**
 * State in process memory, for `sluice dev`, tests and benchmarks. Reads hand out deep copies,
 * so a batch that fails and is never committed cannot leak in-place mutations into stored state;
 * writes keep the committed objects (a transaction is never used after its commit). Values must be
 * plain JSON data, as in DynamoDB: anything else fails the write with a clear error.
 *
 * @example
 * const store = new MemoryStore();
 * await runFunction(handler, records, { store });
 * store.dump(); // stored items by table, then by key: { value, offset }
 */
export class MemoryStore implements StateStore {
  readonly kind = 'memory';
  readonly durable = false;
  readonly #items = new Map<string, Map<string, { value: unknown; offset: number; expiresAt?: number }>>();
  reads = 0;
  writes = 0;

  async read(scope: StateScope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredItem>> {
    this.reads++;
    const table = this.#items.get(tableKey(scope, namespace));
    const out = new Map<string, StoredItem>();
    if (!table) return out;
    for (const key of keys) {
      const hit = table.get(key);
      if (hit) out.set(key, { value: hit.expiresAt !== undefined && hit.expiresAt < Date.now() ? undefined : cloneJson(hit.value), offset: hit.offset });
    }
    return out;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], _bounds: BatchBounds): Promise<WriteStats> {
    this.writes++;
    // Values must be plain JSON: check them all before writing any.
    for (const c of changes) checkJson(c.value, c.namespace, c.key);
    let conflicts = 0;
    // As in DynamoDB: each item only if its stored offset is older; partition-level items last.
    const ordered = [...changes.filter((c) => !c.namespace.endsWith('#partition')), ...changes.filter((c) => c.namespace.endsWith('#partition'))];
    for (const c of ordered) {
      this.beforeItemWrite?.(c);
      const tk = tableKey(scope, c.namespace);
      let table = this.#items.get(tk);
      if (!table) this.#items.set(tk, (table = new Map()));
      const stored = table.get(c.key);
      if (stored && stored.offset >= c.offset) {
        conflicts++;
        continue;
      }
      // A deleted item stays as a tombstone that remembers its offset, so a replay stays a no-op.
      table.set(c.key, c.expiresAt === undefined ? { value: c.value, offset: c.offset } : { value: c.value, offset: c.offset, expiresAt: c.expiresAt });
    }
    if (conflicts > 0) {
      throw new StateConflictError(`${conflicts} state item(s) of function "${scope.functionName}", partition ${scope.partition}, were already written by a newer invocation; this invocation is stale and stops without overwriting them.`);
    }
    return { writeRequests: changes.length, conflicts };
  }

  /** Test hook: called before each item write; throw from it to simulate a crash mid-write. */
  beforeItemWrite?: (change: ItemChange) => void;

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    const table = this.#items.get(tableKey(scope, namespace));
    return table ? [...table].filter(([, v]) => v.value !== undefined).map(([k]) => k) : [];
  }

  /**
   * Visits every stored value without copying it (read-only: do not mutate what you are given).
   * For cheap periodic summaries such as the live view's count of open windows.
   */
  forEachValue(visit: (table: string, key: string, value: unknown) => void): void {
    for (const [tk, table] of this.#items) for (const [k, v] of table) if (v.value !== undefined) visit(tk, k, v.value);
  }

  /** Every stored item, decoded: for tests and the dev summary. */
  dump(): Record<string, Record<string, StoredItem>> {
    const out: Record<string, Record<string, StoredItem>> = {};
    for (const [tk, table] of this.#items) {
      out[tk] = {};
      for (const [k, v] of table) if (v.value !== undefined) out[tk][k] = { value: cloneJson(v.value), offset: v.offset };
    }
    return out;
  }
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

