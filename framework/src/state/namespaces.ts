/**
 * Names of state namespaces: the one place that knows how keyed state, window state and
 * partition-level items are told apart in a store. Stores write partition-level items (a
 * partition's clock and index of open windows) after the key items of the same batch, so a crash
 * between the two never leaves an index pointing at state that was not written.
 *
 * @example
 * keyedNamespace('seen');                       // 'keyed:seen'
 * partitionNamespace(windowNamespace('total', 'tumbling(10000)')); // 'window:total:tumbling(10000)#partition'
 * isPartitionNamespace('window:total:x#partition'); // true
 */

const KEYED = 'keyed:';
const IDLE = 'idle';
const WINDOW = 'window:';
const PARTITION_SUFFIX = '#partition';

/** The namespace of a keyed state declaration. */
export function keyedNamespace(name: string): string {
  return `${KEYED}${name}`;
}

/** The namespace of a window step: its name and a signature of its spec and aggregations. */
export function windowNamespace(name: string, signature: string): string {
  return `${WINDOW}${name}:${signature}`;
}

/** Whether a namespace (not a partition-level one) holds window state. */
export function isWindowNamespace(namespace: string): boolean {
  return namespace.startsWith(WINDOW) && !isPartitionNamespace(namespace);
}

/** The namespace of the partition-level items that belong to `namespace`. */
export function partitionNamespace(namespace: string): string {
  return `${namespace}${PARTITION_SUFFIX}`;
}

/** Whether a namespace holds partition-level items, which a store writes after key items. */
export function isPartitionNamespace(namespace: string): boolean {
  return namespace.endsWith(PARTITION_SUFFIX);
}

/** The key of the idle item in {@link idleNamespace}. */
export const IDLE_ITEM = 'idle';

/**
 * The namespace of a partition's idle item (what idle closing knows of the partition: its last
 * applied offset, when it arrived, each idle window's clock and earliest due position, and the
 * floors ticks set), partition-level so it is written after key items.
 *
 * @example
 * idleNamespace(); // 'idle#partition'
 */
export function idleNamespace(): string {
  return partitionNamespace(IDLE);
}
