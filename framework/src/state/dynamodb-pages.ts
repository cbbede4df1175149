/**
 * The page layout of the DynamoDB store, as pure functions: which page holds a key, how a page's
 * entries are encoded (deflated when it pays), and how an over-full page splits. No I/O here;
 * `dynamodb-paged.ts` reads and writes the items. See docs/state.md ("Pages").
 *
 * A namespace's keys are spread over pages by a 32-bit hash: a page is a node of a binary trie,
 * `(d, b)` = the keys whose hash's low `d` bits are `b`. The root `(0, 0)` holds every key until it
 * grows past {@link pageTarget}; then it splits into `(1, 0)` and `(1, 1)`, and so on, each page
 * on its own, so pages stay near one write unit whatever the number of keys. A split page becomes
 * a marker (never deleted): whoever still finds a key's page by an older view of the trie reads
 * the marker and descends, so the trie's shape is known from the pages themselves, and the
 * directory item that lists the splits is only a shortcut.
 *
 * @example
 * const layout = new PageLayout();
 * layout.split(0, 0);
 * layout.pageOf(keyHash('sensor-1')); // { d: 1, b: 0 } or { d: 1, b: 1 }
 */
import { deflateSync, inflateSync } from 'fflate';

/** The deepest a page can be: a 32-bit hash has no more bits to split on. */
const MAX_DEPTH = 32;

/**
 * A key's 32-bit hash (FNV-1a over UTF-16 code units, then murmur3's finalizer, so that keys that
 * differ in their last characters, `sensor-1`, `sensor-2`, spread over the low bits pages use).
 *
 * @example
 * keyHash('sensor-1') === keyHash('sensor-1'); // true, in every container
 */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A page of the trie: the keys whose hash's low `d` bits are `b`.
 *
 * @example
 * const root: PageId = { d: 0, b: 0 };
 */
export interface PageId {
  readonly d: number;
  readonly b: number;
}

/**
 * The sort key of a page item: `p:<d>.<b>` (never a head's `k:`, a chunk's `c:` or the directory's `d`).
 *
 * @example
 * pageSortKey({ d: 3, b: 5 }); // 'p:3.5'
 */
export function pageSortKey(id: PageId): string {
  return `p:${id.d}.${id.b}`;
}

/**
 * The page a sort key names.
 *
 * @example
 * pageOfSortKey('p:3.5'); // { d: 3, b: 5 }
 */
export function pageOfSortKey(sk: string): PageId {
  const dot = sk.indexOf('.');
  return { d: Number(sk.slice(2, dot)), b: Number(sk.slice(dot + 1)) };
}

/** The two pages a page splits into: bit `d` of the hash picks one. */
function children(id: PageId): [PageId, PageId] {
  return [
    { d: id.d + 1, b: id.b },
    { d: id.d + 1, b: id.b + 2 ** id.d },
  ];
}

/**
 * Whether a key's hash falls in page `id`.
 *
 * @example
 * pageHolds({ d: 1, b: 1 }, keyHash(key)); // true for about half the keys
 */
export function pageHolds(id: PageId, hash: number): boolean {
  return id.d === 0 || hash % 2 ** id.d === id.b;
}

/**
 * What one container knows of a namespace's trie: the pages known to be split. Knowledge only
 * grows (a split is never undone), so any two views merge by union, and a view that misses
 * splits only costs a descent through marker pages.
 *
 * @example
 * const view = PageLayout.decode(directoryBits);
 * view.pageOf(keyHash(key));
 */
export class PageLayout {
  readonly #split = new Set<string>();

  /** The leaf page holding keys of this hash, as far as this view knows. */
  pageOf(hash: number): PageId {
    let d = 0;
    let b = 0;
    while (d < MAX_DEPTH && this.#split.has(`${d}.${b}`)) {
      b += ((hash >>> d) & 1) * 2 ** d;
      d++;
    }
    return { d, b };
  }

  /** Records that a page is split; true if this view did not know it. */
  split(d: number, b: number): boolean {
    const id = `${d}.${b}`;
    if (this.#split.has(id)) return false;
    this.#split.add(id);
    return true;
  }

  isSplit(id: PageId): boolean {
    return this.#split.has(`${id.d}.${id.b}`);
  }

  /** How many pages are known to be split. */
  get splits(): number {
    return this.#split.size;
  }

  /** Adds what another view knows. */
  merge(other: PageLayout): void {
    for (const id of other.#split) this.#split.add(id);
  }

  /**
   * The trie in preorder, one bit per node (1: split, 0: a leaf), packed: a few hundred bytes for
   * thousands of pages. Split pages whose parent is unknown here (learned out of order) are
   * dropped; markers still lead readers to them.
   */
  encode(): Uint8Array {
    const bits: number[] = [];
    const visit = (id: PageId) => {
      const split = this.isSplit(id);
      bits.push(split ? 1 : 0);
      if (split) for (const c of children(id)) visit(c);
    };
    visit({ d: 0, b: 0 });
    const out = new Uint8Array(Math.ceil(bits.length / 8));
    for (let i = 0; i < bits.length; i++) if (bits[i]) out[i >> 3] |= 1 << (i & 7);
    return out;
  }

  /** The view {@link encode} wrote. */
  static decode(bytes: Uint8Array | undefined): PageLayout {
    const layout = new PageLayout();
    if (!bytes || bytes.length === 0) return layout;
    let i = 0;
    const bit = () => {
      const v = i < bytes.length * 8 ? (bytes[i >> 3] >> (i & 7)) & 1 : 0;
      i++;
      return v;
    };
    const visit = (id: PageId) => {
      if (!bit()) return;
      layout.split(id.d, id.b);
      for (const c of children(id)) visit(c);
    };
    visit({ d: 0, b: 0 });
    return layout;
  }
}

/**
 * One key's entry in a page: its serialized line (kept as read for keys a write does not change,
 * so they go back byte for byte) and its expiry in epoch seconds, after which it reads as absent,
 * as the item of a key kept on its own would be deleted by TTL.
 *
 * @example
 * const entry: PageEntry = { line: '"k"\t1797103681\t[{"o":3,"v":"1"}]', ttl: 1797103681 };
 */
export interface PageEntry {
  readonly line: string;
  readonly ttl: number;
}

/**
 * The line of one key: its JSON-quoted key, its expiry and its versions' JSON, tab-separated
 * (JSON escapes tabs and newlines inside strings, so neither appears raw in a key or a value).
 *
 * @example
 * pageLine('k', 1797103681, '[{"o":3,"v":"1"}]'); // '"k"\t1797103681\t[{"o":3,"v":"1"}]'
 */
export function pageLine(key: string, ttl: number, versionsJson: string): string {
  return `${JSON.stringify(key)}\t${ttl}\t${versionsJson}`;
}

/**
 * The versions' JSON of a line.
 *
 * @example
 * lineVersions('"k"\t1797103681\t[{"o":3}]'); // '[{"o":3}]'
 */
export function lineVersions(line: string): string {
  return line.slice(line.indexOf('\t', line.indexOf('\t') + 1) + 1);
}

/**
 * A page payload's entries by key ({@link encodePage} wrote it).
 *
 * @example
 * decodePage(encodePage(entries).payload, false).get('k')?.ttl;
 */
export function decodePage(payload: Uint8Array | string, deflated: boolean): Map<string, PageEntry> {
  const text = typeof payload === 'string' ? payload : new TextDecoder().decode(deflated ? inflateSync(payload) : payload);
  const out = new Map<string, PageEntry>();
  if (text.length === 0) return out;
  for (const line of text.split('\n')) {
    const a = line.indexOf('\t');
    const b = line.indexOf('\t', a + 1);
    out.set(JSON.parse(line.slice(0, a)) as string, { line, ttl: Number(line.slice(a + 1, b)) });
  }
  return out;
}

/**
 * A page's encoded payload: its lines, deflated when that makes them smaller (it nearly always
 * does past a few keys: neighbouring states repeat their field names and timestamps).
 *
 * @example
 * const { payload, deflated } = encodePage(entries);
 */
export interface EncodedPage {
  readonly payload: Uint8Array | string;
  readonly deflated: boolean;
  /** Bytes the payload takes in the item. */
  readonly bytes: number;
  /** Bytes of the lines before compression. */
  readonly rawBytes: number;
}

/**
 * Encodes a page's entries.
 *
 * @example
 * encodePage(new Map([['k', { line: pageLine('k', 1, '[]'), ttl: 1 }]])).deflated; // false: too small to pay
 */
export function encodePage(entries: ReadonlyMap<string, PageEntry>): EncodedPage {
  const text = [...entries.values()].map((e) => e.line).join('\n');
  const raw = new TextEncoder().encode(text);
  // Deflate's own framing costs a few bytes: a page of one small key is cheaper as text.
  if (raw.length > 128) {
    const z = deflateSync(raw, { level: 9 });
    if (z.length < raw.length) return { payload: z, deflated: true, bytes: z.length, rawBytes: raw.length };
  }
  return { payload: text, deflated: false, bytes: raw.length, rawBytes: raw.length };
}

/**
 * The payload bytes a page should stay under so that its item, with the partition key, the sort
 * key and its bookkeeping attributes, costs one write unit (1 KB); a long partition key leaves
 * less, and past half a unit the target grows by whole units instead.
 *
 * @example
 * pageTarget(88); // 866
 */
export function pageTarget(partitionKeyBytes: number): number {
  // `pk`, `sk` (up to `p:32.4294967295`), `n`, `ttl` and the payload's attribute names and numbers.
  const overhead = partitionKeyBytes + 70;
  let units = 1;
  while (units * 1024 - overhead < 512) units++;
  return units * 1024 - overhead;
}

/**
 * The pages a split of page `id` makes, planned from its entries (the keys' hashes and the bytes
 * each line takes before compression) and the compression ratio of the page as a whole: pages are
 * split until each is expected to fit `target`, holds one key, or reaches the trie's depth limit,
 * into at most `maxLeaves` pages (a split is one DynamoDB transaction: at most 100 items). `splits`
 * lists the pages that become markers (`id` first), `leaves` the pages left holding keys.
 *
 * @example
 * const { splits, leaves } = planSplit({ d: 0, b: 0 }, [{ key: 'a', hash: 1, bytes: 900 }, { key: 'b', hash: 2, bytes: 900 }], 0.3, 400, 32);
 */
export function planSplit(
  id: PageId,
  entries: readonly { readonly key: string; readonly hash: number; readonly bytes: number }[],
  ratio: number,
  target: number,
  maxLeaves: number,
): { splits: PageId[]; leaves: { id: PageId; keys: string[] }[] } {
  type Node = { id: PageId; entries: typeof entries; bytes: number };
  const size = (es: typeof entries) => es.reduce((n, e) => n + e.bytes + 1, 0);
  const splits: PageId[] = [];
  let leaves: Node[] = [{ id, entries, bytes: size(entries) }];
  // Breadth first, the largest page first, so a capped plan splits where it matters most.
  for (;;) {
    let widest = -1;
    for (let i = 0; i < leaves.length; i++) {
      const n = leaves[i];
      const fits = n.bytes * ratio <= target || n.entries.length <= 1 || n.id.d >= MAX_DEPTH;
      if (!fits && (widest < 0 || n.bytes > leaves[widest].bytes)) widest = i;
    }
    if (widest < 0 || leaves.length >= maxLeaves) break;
    const node = leaves[widest];
    splits.push(node.id);
    const [c0, c1] = children(node.id);
    const e0 = node.entries.filter((e) => pageHolds(c0, e.hash));
    const e1 = node.entries.filter((e) => !pageHolds(c0, e.hash));
    leaves = [
      ...leaves.slice(0, widest),
      { id: c0, entries: e0, bytes: size(e0) },
      { id: c1, entries: e1, bytes: size(e1) },
      ...leaves.slice(widest + 1),
    ];
  }
  return { splits, leaves: leaves.map((n) => ({ id: n.id, keys: n.entries.map((e) => e.key) })) };
}
