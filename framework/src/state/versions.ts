/**
 * Versioned items: how a store makes a replayed batch see state exactly as its first run did.
 *
 * Every item keeps a short list of versions, each its value as of an input offset `o` (the last
 * record applied to it). A version is a deterministic function of the partition's records up to
 * `o`, whichever invocation wrote it, so any version is right for its own offset. A batch that
 * starts at offset `f` reads the newest version older than `f`; records from `f` on are applied
 * again on top of it, so a retry, a re-batched retry or the batch after a shorter retry always
 * starts from the state just before its first record, even when an earlier attempt crashed after
 * writing some items and not others.
 *
 * A write keeps the version it started from, every version at or after its own first offset (an
 * attempt that committed a shorter range may have written one that a later batch needs) and
 * adds its own. A batch's first offset is the event source mapping's committed offset, so nothing
 * it drops can be needed by a live invocation. Writes are compare-and-set on the item's revision:
 * an invocation never overwrites an item changed since it read it (a stale invocation still
 * running beside its retry fails instead).
 *
 * @example
 * const versions = [{ o: -1 }, { o: 41, v: 7 }, { o: 57, v: 9 }];
 * pickVersion(versions, 50);                  // { o: 41, v: 7 }: a batch starting at 50 ignores 57
 * keepVersions(versions, 50, { o: 52, v: 8 }); // [{ o: 41, v: 7 }, { o: 52, v: 8 }, { o: 57, v: 9 }]
 */
export interface Version<V = unknown> {
  /** The offset of the last input record this version holds; -1 for "absent before any record". */
  readonly o: number;
  /** The value; undefined when the item is absent (never set, or deleted) as of `o`. */
  readonly v?: V;
  /** Epoch milliseconds after which the value reads as absent (keyed-state TTL). */
  readonly e?: number;
}

/**
 * The version a batch starting at `before` reads: the newest one older than `before` (the newest
 * of all without `before`). Versions are sorted by offset. Undefined when every version is at or
 * after `before`: the reader is stale (`VersionedStore.read` raises StateConflictError).
 *
 * @example
 * pickVersion([{ o: 41 }, { o: 57 }], 50);        // { o: 41 }
 * pickVersion([{ o: 41 }, { o: 57 }], undefined); // { o: 57 }
 * pickVersion([{ o: 57 }], 50);                   // undefined: stale
 */
export function pickVersion<T extends { readonly o: number }>(versions: readonly T[], before: number | undefined): T | undefined {
  if (before === undefined) return versions[versions.length - 1];
  for (let i = versions.length - 1; i >= 0; i--) if (versions[i].o < before) return versions[i];
  return undefined;
}

/**
 * The versions an item keeps after a batch starting at `before` writes `next`: the one it read
 * (the newest older than `before`), those at or after `before` that another attempt wrote (one
 * with `next`'s offset is replaced: it holds the same records, so the same value), and `next`.
 *
 * @example
 * keepVersions([{ o: 20 }, { o: 31 }, { o: 45 }], 40, { o: 45 }); // [{ o: 31 }, { o: 45 }]: the new 45 replaces the old
 */
export function keepVersions<T extends { readonly o: number }>(versions: readonly T[], before: number, next: T): T[] {
  const out: T[] = [];
  const base = pickVersion(versions, before);
  if (base) out.push(base);
  let placed = false;
  // Versions are sorted by offset: insert `next` in place instead of sorting (a hot path).
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i];
    if (v.o < before || v.o === next.o) continue;
    if (!placed && next.o < v.o) {
      out.push(next);
      placed = true;
    }
    out.push(v);
  }
  if (!placed) out.push(next);
  return out;
}

/**
 * The first offset of a write that must drop no version: an idle tick's (and a veto of a tick's
 * proposal), which is placed after the partition's last offset but cannot know whether Lambda
 * will still retry the batch before it, whose retry reads the versions from before that batch.
 * With it, {@link keepVersions} keeps every version and adds (or replaces) its own; the next
 * batch's write drops what it no longer needs.
 *
 * @example
 * keepVersions([{ o: -1 }, { o: 41 }], KEEP_ALL_VERSIONS, { o: 41.5 }); // [{ o: -1 }, { o: 41 }, { o: 41.5 }]
 */
export const KEEP_ALL_VERSIONS = Number.NEGATIVE_INFINITY;

/**
 * The value a version holds now: absent once its expiry has passed.
 *
 * @example
 * liveValue({ o: 3, v: true, e: Date.now() - 1 }, Date.now()); // undefined
 */
export function liveValue<V>(version: Version<V>, now: number): V | undefined {
  return version.e !== undefined && version.e < now ? undefined : version.v;
}
