/**
 * The state-store contract. Core code (windows, keyed state) never talks to a store directly:
 * it goes through a {@link Transaction}, one per partition batch, which reads items in bulk,
 * serves reads and writes from memory (read-your-writes) and hands the store one write set.
 *
 * A store keeps each item as a few versions, each its value as of an input offset, and a batch
 * reads the newest version older than its first offset (see `versions.ts`): a retried or
 * re-batched batch sees state exactly as its first run did, so every record's effect is applied
 * once and everything computed from state comes out the same again. Writes are compare-and-set
 * on the revision the batch read. That protocol has one owner, `versioned-store.ts`; the stores
 * extend it and only get and put items.
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
 * One stored item as a batch reads it: the value of the version it reads, that version's offset,
 * and the store's handle on the item as read, which a write hands back to be conditional on it.
 *
 * @example
 * (await store.read(scope, 'keyed:lastSeen', ['s1'], { before: 50 })).get('s1'); // { value: 1_000, offset: 41, revision: … }
 */
export interface StoredItem {
  readonly value: unknown;
  readonly offset: number;
  /** Opaque to callers: what the store needs to write the item back only if it is unchanged. */
  readonly revision: unknown;
}

/**
 * One change in a write set. `value: undefined` deletes the item's value (a version saying so is
 * kept until the item's TTL, so a retry can still read the value before it). `revision` is the
 * one the item was read with; none for an item that was absent.
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
  /** Milliseconds since epoch after which the value reads as absent (TTL), if any. */
  readonly expiresAt?: number;
  readonly revision?: unknown;
}

/**
 * The offsets a write set covers: versions older than `firstOffset` other than the one the batch
 * read are no longer needed.
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
 * store, both on `VersionedStore`. `read` and `write` are called once per namespace and once per
 * batch respectively, never per record.
 *
 * @example
 * const store: StateStore = new MemoryStore();
 * const items = await store.read(scope, 'keyed:lastSeen', ['sensor-1']);
 */
export interface StateStore {
  readonly kind: string;
  /** Whether state survives the process (DynamoDB) or not (memory). */
  readonly durable: boolean;
  /**
   * Reads items as of just before `opts.before` (the batch's first offset; the newest version
   * without it). Throws StateConflictError when an item only has versions at or after `before`.
   */
  read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>>;
  /**
   * Writes a batch's changes. Each item is written only if it is unchanged since it was read
   * (otherwise StateConflictError: the invocation is stale). A write may be cut short by a crash,
   * leaving some items written: the retry reads the versions from before the batch, so that is
   * safe. Partition-level items (`isPartitionNamespace` in `namespaces.ts`) are written after the others,
   * and the idle item (`idleNamespace`) after every other item, only if none conflicted.
   */
  write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats>;
  /** Keys holding a value in a namespace: only for closing every window at the end of a finite input. */
  keys?(scope: StateScope, namespace: string): Promise<string[]>;
  /**
   * Why the store cannot keep state of `namespace` under `key` (over its key size limits), as a
   * non-retriable error, or undefined. Cheap and local: a transaction asks before it reads a key,
   * so a key the store cannot hold fails only the records that use it, never the partition's read.
   */
  checkKey?(scope: StateScope, namespace: string, key: string): Error | undefined;
  /**
   * The changes of a write set that `write` would refuse (values that are not plain JSON data,
   * items over the store's size limit), each with its non-retriable error; empty if it would take
   * them all. Nothing is written: a batch asks before its outputs leave, so the record whose state
   * cannot be kept is found and left out instead of failing the commit.
   */
  checkWrite?(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds): RejectedChange[];
}

/**
 * A change a store cannot keep, and why.
 *
 * @example
 * for (const { change, error } of store.checkWrite?.(scope, changes, bounds) ?? []) console.log(change.key, error.message);
 */
export interface RejectedChange {
  readonly change: ItemChange;
  readonly error: Error;
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
 * throttled requests stay within the invocation's remaining time, and for reads the offset to
 * read the state before.
 *
 * @example
 * await store.read(scope, ns, keys, { deadline: Date.now() + context.getRemainingTimeInMillis() - 1000 });
 */
export interface StoreCallOptions {
  readonly deadline?: number;
  /** For reads: the batch's first offset; the read returns each item as of just before it. */
  readonly before?: number;
}
