/**
 * The DynamoDB store's page layout, the I/O half (the pure half is `dynamodb-pages.ts`): the keys
 * of a namespace share page items `p:<d>.<b>`, each one conditional put when the batch changes one
 * of its keys, so a batch writes about its changed state's compressed size in write units instead
 * of one unit per key. The protocol per key (versions, stale reads, compare-and-set) is unchanged:
 * a key's revision is its page as read, and a put rewrites the page with the other keys as read,
 * conditional on the page's write count, so a conflict on a page is a conflict for each of its keys.
 * See docs/state.md ("Pages"). Over 350 lines because it is one concept: reading pages through a
 * view of the trie that may miss splits, writing them per key, and splitting them.
 *
 * @example
 * const pages = new PagedItems(io);
 * await pages.get(pk, ['sensor-1'], deadline, (key, item) => …);
 * const conflicts = await pages.put(pk, puts, deadline);
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { SluiceError, StateValueError } from '../errors.js';
import { batchGetConsistent, sdk } from './dynamodb-client.js';
import {
  decodePage,
  encodePage,
  keyHash,
  lineVersions,
  type PageEntry,
  type PageId,
  PageLayout,
  pageLine,
  pageHolds,
  pageOfSortKey,
  pageSortKey,
  pageTarget,
  planSplit,
} from './dynamodb-pages.js';
import { CHUNK_TTL_MARGIN_MS, type StoredVersion, versionsFromJson, versionsToJson } from './dynamodb-values.js';
import type { RawItem } from './versioned-store.js';

/** The sort key of a namespace's directory item: the splits known when it was last written. */
const DIRECTORY_SK = 'd';
/** Pages one split makes at most: markers and pages together stay under a transaction's 100 items. */
const MAX_SPLIT_LEAVES = 32;
/** Pages written at once. */
const WRITE_CONCURRENCY = 25;

/**
 * A page as one read found it: the revision of every key it holds (and of the keys it would hold).
 *
 * @example
 * const page: PageRead = { pk, id: { d: 0, b: 0 }, n: '7', entries };
 */
export interface PageRead {
  readonly pk: string;
  readonly id: PageId;
  /** Its write count; undefined: the page did not exist. */
  readonly n: string | undefined;
  readonly entries: ReadonlyMap<string, PageEntry>;
}

/**
 * A key's put into its page: its new versions, and the page it was read from (none: the key was absent).
 *
 * @example
 * const put: PagePut = { key: 'sensor-1', versions, expected: item };
 */
export interface PagePut {
  readonly key: string;
  readonly versions: readonly StoredVersion[];
  readonly expected: RawItem<StoredVersion, unknown> | undefined;
  /** Epoch ms the key's entry expires at (the latest of its versions' expiries). */
  readonly expires: number;
}

/**
 * What the page layout needs of its store: sending with retries, the table, the counters, and
 * putting a chunked version's chunk items.
 *
 * @example
 * const io: PageIo = { table, stats, send: (c, d) => store.send(c, d), putChunks: (v, pk, ttl, d) => … };
 */
export interface PageIo {
  readonly table: string;
  /** Payload bytes a page aims at; undefined: one write unit's worth ({@link pageTarget}). */
  readonly pageBytes: number | undefined;
  readonly stats: {
    readRequests: number;
    writeRequests: number;
    consumedReadUnits: number;
    consumedWriteUnits: number;
    retries: number;
    conditionalCheckFailures: number;
  };
  send<T>(command: unknown, deadline: number): Promise<T>;
  putChunks(version: StoredVersion, pk: string, ttlSeconds: number, deadline: number): Promise<void>;
  /** Thrown when a namespace still holds state in the item layout (`k:` items), which pages do not read. */
  oldLayoutError(pk: string): Error;
}

/** What a container knows of one namespace's pages. */
interface LayoutView {
  readonly layout: PageLayout;
  /** The directory item's write count as last read or written; undefined: none yet. */
  n: string | undefined;
  /** Splits the directory item holds (as far as this container knows). */
  saved: number;
  /** The namespace was checked for state in the item layout. */
  checked: boolean;
}

type ConsumedCapacity = { CapacityUnits?: number };

/**
 * Pages of the DynamoDB store (see the module comment).
 *
 * @example
 * const pages = new PagedItems(io);
 */
export class PagedItems {
  readonly #views = new Map<string, Promise<LayoutView>>();
  readonly #slots = new Slots(WRITE_CONCURRENCY);

  constructor(readonly io: PageIo) {}

  /** Hands `found` the versions of each of `keys` its page holds, with the page as its revision. */
  async get(
    pk: string,
    keys: readonly string[],
    deadline: number,
    found: (key: string, item: RawItem<StoredVersion, PageRead>) => void,
  ): Promise<void> {
    const pages = await this.#readPages(pk, keys, deadline);
    const now = Date.now();
    for (const [key, page] of pages) {
      const entry = live(page.entries.get(key), now);
      if (entry) found(key, { versions: versionsFromJson(lineVersions(entry.line)), token: page });
    }
  }

  /** Every key of the namespace with its versions (a Query of its pages). */
  async list(pk: string, found: (key: string, versions: readonly StoredVersion[]) => void): Promise<void> {
    const { QueryCommand } = await sdk();
    const now = Date.now();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.io.send<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>(
        new QueryCommand({
          TableName: this.io.table,
          ConsistentRead: true,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :p)',
          ExpressionAttributeValues: { ':pk': { S: pk }, ':p': { S: 'p:' } },
          ProjectionExpression: 'sk, z, j, x',
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
        Date.now() + 30_000,
      );
      for (const item of res.Items ?? []) {
        if (item.x) continue;
        for (const [key, entry] of entriesOf(item)) if (entry.ttl * 1000 >= now) found(key, versionsFromJson(lineVersions(entry.line)));
      }
      start = res.LastEvaluatedKey;
    } while (start);
  }

  /**
   * Writes the puts of one namespace, each page they touch once, conditional on its write count as
   * read. Compare-and-set stays per key: when a page changed since it was read (another key of it
   * written by an idle tick, a split), the page is read again and the puts whose keys are still as
   * they were read are written on it; returns how many puts were refused because their key changed.
   */
  async put(pk: string, puts: readonly PagePut[], deadline: number): Promise<number> {
    const view = await this.#view(pk, deadline);
    // Each put's key as read: its line, or undefined (absent), and the page it was read in.
    const asRead = new Map<PagePut, string | undefined>();
    const pageOf = new Map<PagePut, PageRead>();
    const byKey = new Map<string, PagePut>();
    const unread: PagePut[] = [];
    const readPages = new Map<string, PageRead>();
    for (const p of puts) {
      byKey.set(p.key, p);
      const page = p.expected?.token as PageRead | undefined;
      asRead.set(p, page?.entries.get(p.key)?.line);
      if (page) {
        pageOf.set(p, page);
        readPages.set(pageSortKey(page.id), page);
      }
    }
    // A key read as absent goes to the page read for its neighbours when there is one (a leaf as
    // read holds every key of its hashes), else its page is read now.
    for (const p of puts) {
      if (pageOf.has(p)) continue;
      const hash = keyHash(p.key);
      const page = readPages.get(pageSortKey(view.layout.pageOf(hash)));
      if (page && pageHolds(page.id, hash)) pageOf.set(p, page);
      else unread.push(p);
    }
    let pending = [...puts];
    let conflicts = 0;
    for (let attempt = 0; ; attempt++) {
      const fresh =
        unread.length > 0
          ? await this.#readPages(
              pk,
              unread.map((p) => p.key),
              deadline,
            )
          : new Map<string, PageRead>();
      for (const p of unread) pageOf.set(p, fresh.get(p.key)!);
      unread.length = 0;
      const groups = new Map<string, { base: PageRead; puts: PagePut[] }>();
      const retry: PagePut[] = [];
      const now = Date.now();
      for (const p of pending) {
        const page = pageOf.get(p)!;
        const sk = pageSortKey(page.id);
        const g = groups.get(sk);
        // Two reads of one page that saw different contents: read it again.
        if (g && g.base.n !== page.n) retry.push(p);
        else if (live(page.entries.get(p.key), now)?.line !== asRead.get(p)) {
          // The key itself changed since this invocation read it: it is stale.
          conflicts++;
          this.io.stats.conditionalCheckFailures++;
        } else if (g) g.puts.push(p);
        else groups.set(sk, { base: page, puts: [p] });
      }
      const failed = await Promise.all([...groups.values()].map((g) => this.#writeGroup(pk, view, g.base, g.puts, deadline)));
      for (const keys of failed) for (const k of keys) retry.push(byKey.get(k)!);
      if (retry.length === 0) break;
      if (attempt >= 4) {
        conflicts += retry.length;
        this.io.stats.conditionalCheckFailures++;
        break;
      }
      unread.push(...retry);
      pending = retry;
    }
    if (view.layout.splits > view.saved) await this.#saveLayout(pk, view, deadline);
    return conflicts;
  }

  /** Writes one page's puts on the page as read; returns the keys whose write its condition refused. */
  async #writeGroup(pk: string, view: LayoutView, base: PageRead, puts: readonly PagePut[], deadline: number): Promise<string[]> {
    await this.#slots.acquire();
    try {
      const now = Date.now();
      const entries = new Map<string, PageEntry>();
      // Entries past their expiry read as absent: a rewrite drops them, as TTL would have.
      for (const [key, e] of base.entries) if (live(e, now)) entries.set(key, e);
      for (const p of puts) {
        const ttl = Math.ceil(p.expires / 1000);
        // A chunked value's chunks before the page that references them (see dynamodb-values.ts).
        for (const v of p.versions)
          if (v.chunks) await this.io.putChunks(v, pk, Math.ceil((p.expires + CHUNK_TTL_MARGIN_MS) / 1000), deadline);
        entries.set(p.key, { line: pageLine(p.key, ttl, versionsToJson(p.versions)), ttl });
      }
      const changed = new Set(puts.map((p) => p.key));
      return [...(await this.#writePage(pk, view, base.id, base.n, base.entries, entries, changed, deadline))];
    } finally {
      this.#slots.release();
    }
  }

  /**
   * Writes a page's new entries, conditional on its write count `n` as read. A page over its target
   * is split first: one transaction turns the page as read into a marker and its entries into the
   * planned pages (so a crash leaves the split whole or not at all, and the batch's changes are not
   * in it), then each planned page the batch changed is written like any page. Returns the changed
   * keys whose page write a condition refused.
   */
  async #writePage(
    pk: string,
    view: LayoutView,
    id: PageId,
    n: string | undefined,
    base: ReadonlyMap<string, PageEntry>,
    entries: Map<string, PageEntry>,
    changed: ReadonlySet<string>,
    deadline: number,
  ): Promise<Set<string>> {
    const target = this.io.pageBytes ?? pageTarget(Buffer.byteLength(pk));
    const encoded = encodePage(entries);
    if (encoded.bytes > target && entries.size > 1) {
      const plan = planSplit(
        id,
        [...entries].map(([key, e]) => ({ key, hash: keyHash(key), bytes: Buffer.byteLength(e.line) })),
        encoded.bytes / encoded.rawBytes,
        target * 0.9,
        MAX_SPLIT_LEAVES,
      );
      if (plan.splits.length > 0) {
        const leaves = plan.leaves.map((leaf) => ({ id: leaf.id, base: subset(base, leaf.id), entries: subset(entries, leaf.id) }));
        if (!(await this.#split(pk, n, plan.splits, leaves, deadline))) return new Set(changed);
        for (const s of plan.splits) view.layout.split(s.d, s.b);
        const results = await Promise.all(
          leaves
            .filter((leaf) => [...leaf.entries.keys()].some((k) => changed.has(k)))
            .map((leaf) =>
              this.#writePage(pk, view, leaf.id, leaf.base.size > 0 ? '1' : undefined, leaf.base, leaf.entries, changed, deadline),
            ),
        );
        return new Set(results.flatMap((r) => [...r]));
      }
    }
    const { PutItemCommand } = await sdk();
    const written = await this.#conditional(
      () =>
        new PutItemCommand({
          TableName: this.io.table,
          Item: pageItem(pk, id, String(Number(n ?? 0) + 1), entries, encoded),
          ...condition(n),
          ReturnConsumedCapacity: 'TOTAL',
        }),
      deadline,
    );
    return written ? new Set() : new Set([...entries.keys()].filter((k) => changed.has(k)));
  }

  /** One transaction: the page (`splits[0]`) becomes a marker, the pages below it are created with its entries as read. */
  async #split(
    pk: string,
    n: string | undefined,
    splits: readonly PageId[],
    leaves: readonly { id: PageId; base: Map<string, PageEntry> }[],
    deadline: number,
  ): Promise<boolean> {
    const { TransactWriteItemsCommand } = await sdk();
    const put = (Item: Record<string, AttributeValue>, n: string | undefined) => ({
      Put: { TableName: this.io.table, Item, ...condition(n) },
    });
    const items = [
      ...splits.map((s, i) =>
        put(
          { pk: { S: pk }, sk: { S: pageSortKey(s) }, n: { N: String(Number(i === 0 ? (n ?? 0) : 0) + 1) }, x: { BOOL: true } },
          i === 0 ? n : undefined,
        ),
      ),
      ...leaves.filter((l) => l.base.size > 0).map((l) => put(pageItem(pk, l.id, '1', l.base, encodePage(l.base)), undefined)),
    ];
    return this.#conditional(() => new TransactWriteItemsCommand({ TransactItems: items, ReturnConsumedCapacity: 'TOTAL' }), deadline);
  }

  /** Sends a conditional write; false if its condition failed (a conflict), counting what it consumed. */
  async #conditional(command: () => unknown, deadline: number): Promise<boolean> {
    this.io.stats.writeRequests++;
    try {
      const res = await this.io.send<{ ConsumedCapacity?: ConsumedCapacity | ConsumedCapacity[] }>(command(), deadline);
      const used = res.ConsumedCapacity;
      for (const c of Array.isArray(used) ? used : used ? [used] : []) this.io.stats.consumedWriteUnits += c.CapacityUnits ?? 0;
      return true;
    } catch (e) {
      const err = e as { name?: unknown; CancellationReasons?: { Code?: string; Message?: string }[] };
      if (err.name === 'TransactionCanceledException') {
        const invalid = err.CancellationReasons?.find((r) => r.Code === 'ValidationError');
        if (invalid)
          throw new StateValueError(`DynamoDB refused a state page split of table "${this.io.table}" as invalid: ${invalid.Message}`);
        // Otherwise a condition failed, or another transaction held one of its items: the page changed.
      } else if (err.name !== 'ConditionalCheckFailedException') throw e;
      this.io.stats.conditionalCheckFailures++;
      return false;
    }
  }

  /** The page of each key as it is now: a marker read means this container's view missed a split. */
  async #readPages(pk: string, keys: readonly string[], deadline: number): Promise<Map<string, PageRead>> {
    const view = await this.#view(pk, deadline);
    const out = new Map<string, PageRead>();
    let pending = byPage(view.layout, keys);
    for (let depth = 0; pending.size > 0; depth++) {
      if (depth > 33)
        throw new SluiceError(
          `the state pages of "${pk}" split deeper than a 32-bit hash allows; this is a bug in Sluice, please report it.`,
        );
      const got = new Map<string, Record<string, AttributeValue>>();
      await batchGetConsistent(
        (command, d) => this.io.send(command, d),
        this.io.table,
        this.io.stats,
        [...pending.keys()].map((sk) => ({ pk: { S: pk }, sk: { S: sk } })),
        'sk, n, z, j, x',
        deadline,
        (item) => got.set(item.sk.S!, item),
      );
      const next: string[] = [];
      for (const [sk, pageKeys] of pending) {
        const item = got.get(sk);
        const id = pageOfSortKey(sk);
        if (item?.x) {
          view.layout.split(id.d, id.b);
          next.push(...pageKeys);
          continue;
        }
        if (!item && id.d === 0 && !view.checked) await this.#checkOldLayout(pk, view, deadline);
        const page: PageRead = { pk, id, n: item?.n?.N, entries: item ? entriesOf(item) : new Map() };
        for (const k of pageKeys) out.set(k, page);
      }
      pending = byPage(view.layout, next);
    }
    return out;
  }

  /** This container's view of a namespace's pages: the directory item, read once. */
  #view(pk: string, deadline: number): Promise<LayoutView> {
    let view = this.#views.get(pk);
    if (!view) {
      view = this.#readDirectory(pk, deadline).then(({ layout, n }) => ({ layout, n, saved: layout.splits, checked: false }));
      this.#views.set(pk, view);
      // A failed read is not kept: the next batch reads again.
      view.catch(() => this.#views.delete(pk));
    }
    return view;
  }

  async #readDirectory(pk: string, deadline: number): Promise<{ layout: PageLayout; n: string | undefined }> {
    const { GetItemCommand } = await sdk();
    this.io.stats.readRequests++;
    const res = await this.io.send<{ Item?: Record<string, AttributeValue>; ConsumedCapacity?: ConsumedCapacity }>(
      new GetItemCommand({
        TableName: this.io.table,
        Key: { pk: { S: pk }, sk: { S: DIRECTORY_SK } },
        ConsistentRead: true,
        ReturnConsumedCapacity: 'TOTAL',
      }),
      deadline,
    );
    this.io.stats.consumedReadUnits += res.ConsumedCapacity?.CapacityUnits ?? 0;
    return { layout: PageLayout.decode(res.Item?.t?.B), n: res.Item?.n?.N };
  }

  /**
   * Saves the splits this container knows into the directory item, so that other containers find
   * pages without descending through markers. Only a shortcut: a failure changes nothing but cost.
   */
  async #saveLayout(pk: string, view: LayoutView, deadline: number): Promise<void> {
    const { PutItemCommand } = await sdk();
    for (let attempt = 0; attempt < 3; attempt++) {
      const splits = view.layout.splits;
      const n = String(Number(view.n ?? 0) + 1);
      if (
        await this.#conditional(
          () =>
            new PutItemCommand({
              TableName: this.io.table,
              Item: { pk: { S: pk }, sk: { S: DIRECTORY_SK }, n: { N: n }, t: { B: view.layout.encode() } },
              ...condition(view.n),
              ReturnConsumedCapacity: 'TOTAL',
            }),
          deadline,
        )
      ) {
        view.n = n;
        view.saved = splits;
        return;
      }
      // Another container saved first: keep what both know.
      const current = await this.#readDirectory(pk, deadline);
      view.layout.merge(current.layout);
      view.n = current.n;
    }
  }

  /** A namespace without pages may still hold state in the item layout, which would be silently ignored. */
  async #checkOldLayout(pk: string, view: LayoutView, deadline: number): Promise<void> {
    const { QueryCommand } = await sdk();
    this.io.stats.readRequests++;
    const res = await this.io.send<{ Count?: number; ConsumedCapacity?: ConsumedCapacity }>(
      new QueryCommand({
        TableName: this.io.table,
        ConsistentRead: true,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :k)',
        ExpressionAttributeValues: { ':pk': { S: pk }, ':k': { S: 'k:' } },
        Limit: 1,
        Select: 'COUNT',
        ReturnConsumedCapacity: 'TOTAL',
      }),
      deadline,
    );
    this.io.stats.consumedReadUnits += res.ConsumedCapacity?.CapacityUnits ?? 0;
    if ((res.Count ?? 0) > 0) throw this.io.oldLayoutError(pk);
    view.checked = true;
  }
}

/** An entry, or undefined once it has expired (it reads as absent). */
function live(entry: PageEntry | undefined, now: number): PageEntry | undefined {
  return entry && entry.ttl * 1000 >= now ? entry : undefined;
}

/** At most `size` holders at once, served in order. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Keys grouped by the page the layout puts them in, by sort key. */
function byPage(layout: PageLayout, keys: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const k of keys) {
    const sk = pageSortKey(layout.pageOf(keyHash(k)));
    let list = out.get(sk);
    if (!list) out.set(sk, (list = []));
    list.push(k);
  }
  return out;
}

/** The entries of `entries` that page `id` holds. */
function subset(entries: ReadonlyMap<string, PageEntry>, id: PageId): Map<string, PageEntry> {
  const out = new Map<string, PageEntry>();
  for (const [k, e] of entries) if (pageHolds(id, keyHash(k))) out.set(k, e);
  return out;
}

/** A page item's entries. */
function entriesOf(item: Record<string, AttributeValue>): Map<string, PageEntry> {
  if (item.z?.B) return decodePage(item.z.B, true);
  return decodePage(item.j?.S ?? '', false);
}

/** The item of a page: its payload, write count and expiry (its keys' latest). */
function pageItem(
  pk: string,
  id: PageId,
  n: string,
  entries: ReadonlyMap<string, PageEntry>,
  encoded: ReturnType<typeof encodePage>,
): Record<string, AttributeValue> {
  let ttl = 0;
  for (const e of entries.values()) ttl = Math.max(ttl, e.ttl);
  return {
    pk: { S: pk },
    sk: { S: pageSortKey(id) },
    n: { N: n },
    ...(encoded.deflated ? { z: { B: encoded.payload as Uint8Array } } : { j: { S: encoded.payload as string } }),
    ttl: { N: String(ttl) },
  };
}

/** The condition of a write over an item read with write count `n` (undefined: read as absent). */
function condition(n: string | undefined) {
  return n === undefined
    ? { ConditionExpression: 'attribute_not_exists(pk)' }
    : { ConditionExpression: 'n = :n', ExpressionAttributeValues: { ':n': { N: n } } };
}
