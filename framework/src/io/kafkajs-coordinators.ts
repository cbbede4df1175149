/**
 * A cache of Kafka coordinators for Sluice's transactional producers. kafkajs 2.2.4 asks the
 * cluster for the transaction coordinator (FindCoordinator) before every AddPartitionsToTxn,
 * AddOffsetsToTxn and EndTxn, and for the group coordinator before every TxnOffsetCommit: four
 * extra round trips in every transaction, never cached. Kafka's own clients keep the coordinator
 * until a request fails. This keeps the answer for the ids and groups Sluice names (nothing else
 * in the process is affected) for at most `TTL_MS`, and forgets a producer's when its transaction
 * fails (`forgetCoordinators`), so a coordinator that moved is asked again by the next
 * transaction, on a new producer.
 *
 * kafkajs is no longer developed, so the internal method this wraps (`Cluster#findGroupCoordinatorMetadata`,
 * which every coordinator lookup goes through) is stable at the version pinned in package.json.
 */
const TTL_MS = 60_000;

interface CoordinatorQuery {
  readonly groupId: string;
  readonly coordinatorType: number;
}
type Lookup = (this: unknown, q: CoordinatorQuery) => Promise<unknown>;
interface ClusterClass {
  prototype: { findGroupCoordinatorMetadata: Lookup };
}

const cache = new Map<string, { readonly at: number; readonly metadata: Promise<unknown> }>();
let installed: Promise<void> | undefined;

/**
 * Installs the cache for coordinator lookups whose id starts with `prefix` (Sluice's transactional
 * ids and published groups: `sluice-`), once; loaded lazily, as kafkajs is.
 *
 * @example
 * await cacheCoordinators('sluice-');
 */
export function cacheCoordinators(prefix: string): Promise<void> {
  installed ??= install(prefix);
  return installed;
}

async function install(prefix: string): Promise<void> {
  // A CommonJS internal of kafkajs (it has no exports map): bundled, the same module kafkajs uses,
  // and its exports sit on `default`.
  const mod = (await import('kafkajs/src/cluster/index.js')) as { default?: ClusterClass } & ClusterClass;
  const Cluster = mod.default ?? mod;
  const lookup = Cluster.prototype.findGroupCoordinatorMetadata;
  Cluster.prototype.findGroupCoordinatorMetadata = function (this: unknown, q: CoordinatorQuery) {
    if (!q.groupId.startsWith(prefix)) return lookup.call(this, q);
    const key = `${q.coordinatorType}:${q.groupId}`;
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < TTL_MS) return hit.metadata;
    const metadata = lookup.call(this, q);
    cache.set(key, { at: Date.now(), metadata });
    metadata.catch(() => cache.delete(key));
    return metadata;
  };
}

/**
 * Forgets the coordinators of these transactional ids and groups (their transaction failed: the
 * coordinator may have moved).
 *
 * @example
 * forgetCoordinators(['sluice-fn.topic-0', 'sluice-fn.published']);
 */
export function forgetCoordinators(ids: readonly string[]): void {
  for (const key of [...cache.keys()]) if (ids.includes(key.slice(key.indexOf(':') + 1))) cache.delete(key);
}
