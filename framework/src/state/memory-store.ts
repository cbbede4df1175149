import type { BatchBounds, ItemChange, StateScope, StateStore, StoredItem, WriteStats } from './store.js';

/**
 * State in process memory, for `sluice dev`, tests and benchmarks. Items are kept serialized,
 * like a real store would, so a batch that fails and is never committed cannot leak half-applied
 * in-place mutations into stored state.
 *
 * @example
 * const store = new MemoryStore();
 * await sluiceRun(handler, records, { store });
 */
export class MemoryStore implements StateStore {
  readonly kind = 'memory';
  readonly durable = false;
  readonly #items = new Map<string, Map<string, { json: string | undefined; offset: number }>>();
  reads = 0;
  writes = 0;

  async read(scope: StateScope, namespace: string, keys: readonly string[]): Promise<Map<string, StoredItem>> {
    this.reads++;
    const table = this.#items.get(tableKey(scope, namespace));
    const out = new Map<string, StoredItem>();
    if (!table) return out;
    for (const key of keys) {
      const hit = table.get(key);
      if (hit) out.set(key, { value: hit.json === undefined ? undefined : JSON.parse(hit.json), offset: hit.offset });
    }
    return out;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], _bounds: BatchBounds): Promise<WriteStats> {
    this.writes++;
    for (const c of changes) {
      const tk = tableKey(scope, c.namespace);
      let table = this.#items.get(tk);
      if (!table) this.#items.set(tk, (table = new Map()));
      // A deleted item stays as a tombstone that remembers its offset, so a replay stays a no-op.
      table.set(c.key, { json: c.value === undefined ? undefined : JSON.stringify(c.value), offset: c.offset });
    }
    return { writeRequests: changes.length };
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    const table = this.#items.get(tableKey(scope, namespace));
    return table ? [...table].filter(([, v]) => v.json !== undefined).map(([k]) => k) : [];
  }

  /** Every stored item, decoded: for tests and the dev summary. */
  dump(): Record<string, Record<string, StoredItem>> {
    const out: Record<string, Record<string, StoredItem>> = {};
    for (const [tk, table] of this.#items) {
      out[tk] = {};
      for (const [k, v] of table) if (v.json !== undefined) out[tk][k] = { value: JSON.parse(v.json), offset: v.offset };
    }
    return out;
  }
}

function tableKey(scope: StateScope, namespace: string): string {
  return `${scope.functionName}/${scope.topic}/${scope.partition}/${namespace}`;
}
