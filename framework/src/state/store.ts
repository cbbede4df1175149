/**
 * The state-store contract. Core code (windows, keyed state) never talks to a store directly:
 * it goes through a {@link Transaction}, one per partition batch, which reads items in bulk,
 * serves reads and writes from memory (read-your-writes) and hands the store one write set.
 *
 * A store keeps, per item, the offset of the last input record whose effect the item holds.
 * Replaying that record (a Lambda retry) then leaves the item alone: the effect is applied once.
 */

/**
 * Which slice of state a transaction covers: one function's view of one Kafka partition.
 *
 * @example
 * const scope: StateScope = { functionName: 'SensorSums', topic: 'sensor-counts', partition: 0 };
 */
export interface StateScope {
  readonly functionName: string;
  readonly topic: string;
  readonly partition: number;
}

/**
 * One stored item: a JSON-serializable value and the last input offset applied to it.
 *
 * @example
 * (await store.read(scope, 'keyed:lastSeen', ['s1'])).get('s1'); // { value: 1_000, offset: 41 }
 */
export interface StoredItem {
  readonly value: unknown;
  readonly offset: number;
}

/**
 * One change in a write set. `value: undefined` deletes the item's value; the store keeps a
 * tombstone with the offset (until its TTL) so that replaying older records stays a no-op.
 *
 * @example
 * const changes: ItemChange[] = [
 *   { namespace: 'keyed:lastSeen', key: 's1', value: 1_000, offset: 41 },
 *   { namespace: 'keyed:lastSeen', key: 's2', value: undefined, offset: 42 }, // delete
 * ];
 */
export interface ItemChange {
  readonly namespace: string;
  readonly key: string;
  readonly value: unknown;
  readonly offset: number;
  /** Milliseconds since epoch after which the store may drop the item (TTL), if any. */
  readonly expiresAt?: number;
}

/**
 * The offsets a write set covers; a store uses them to fence stale writers.
 *
 * @example
 * await store.write(scope, changes, { firstOffset: 40, lastOffset: 49 });
 */
export interface BatchBounds {
  readonly firstOffset: number;
  readonly lastOffset: number;
}

/**
 * A state backend. Implementations: the in-memory store (local runs, tests) and the DynamoDB
 * store. `read` and `write` are called once per namespace and once per batch respectively,
 * never per record.
 *
 * @example
 * const store: StateStore = new MemoryStore();
 * const items = await store.read(scope, 'keyed:lastSeen', ['sensor-1']);
 */
export interface StateStore {
  readonly kind: string;
  /** Whether state survives the process (DynamoDB) or not (memory). */
  readonly durable: boolean;
  read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>>;
  /**
   * Writes a batch's changes. Each item is written only if its stored offset is older than the
   * change's (a stale writer is fenced: StateConflictError). A write may be cut short by a crash,
   * leaving some items written: every item remembers its own offset, so re-applying is safe.
   * Partition-level items (namespaces ending in `#partition`) are written after the others.
   */
  write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats>;
  /** Keys holding a value in a namespace: only for closing every window at the end of a finite input. */
  keys?(scope: StateScope, namespace: string): Promise<string[]>;
}

/**
 * What a write cost, for metrics.
 *
 * @example
 * const { writeRequests } = await store.write(scope, changes, { firstOffset: 40, lastOffset: 49 });
 */
export interface WriteStats {
  readonly writeRequests: number;
  readonly conflicts?: number;
}

/**
 * Per-call options: the time (epoch ms) by which the call must finish, so that retries of
 * throttled requests stay within the invocation's remaining time.
 *
 * @example
 * await store.read(scope, ns, keys, { deadline: Date.now() + context.getRemainingTimeInMillis() - 1000 });
 */
export interface StoreCallOptions {
  readonly deadline?: number;
}
