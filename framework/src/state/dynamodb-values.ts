/**
 * How the DynamoDB store keeps a version's value: inline in the head item when it is small (the
 * common case, exactly as before), split over chunk items when it is not. The head item keeps the
 * write count `n` and the version list `h`; a chunked version's map holds, instead of `v`, a
 * write id `w`, the chunk count `c`, the value's bytes `b` and the chunks' expiry `t`. Its chunks
 * are the items `c:<w>#<i>` in the same partition key, attribute `d` (binary: the value's JSON as
 * UTF-8, cut every {@link CHUNK_BYTES}), written before the head that references them and never
 * rewritten: the write id is random per write, so two attempts of a batch never share a chunk
 * item, whatever they computed (keyed state may hold `Date.now()`). See docs/state.md.
 *
 * @example
 * const v = versionFormat(INLINE_MAX_BYTES).encode(41, bigObject, undefined); // v.chunks: the chunk items' data
 * chunkSortKey(v, 0); // 'c:Xk3…#0'
 */
import { randomBytes } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import type { ItemLimit, ValueLimit, VersionFormat } from './versioned-store.js';

/** One stored version: its offset and its attribute map as DynamoDB returned it (passed back untouched). */
export interface StoredVersion {
  readonly o: number;
  readonly av: AttributeValue;
  /** A version encoded by this container whose value is chunked: the chunks to write before its head. */
  readonly chunks?: readonly Uint8Array[];
  /** A chunked version's JSON, once its chunks are read; null when they expired with it (absent). */
  json?: string | null;
}

/** Values up to this many bytes of JSON stay in the head item (`v`); larger ones are chunked. */
export const INLINE_MAX_BYTES = 64 * 1024;
/**
 * In the page layout, values up to this many bytes stay in their page; larger ones are chunked, so
 * that a page stays near one write unit and a big value is written only when it changes.
 */
export const PAGE_INLINE_MAX_BYTES = 1024;
/** Bytes of value per chunk item: with the keys and `ttl`, under DynamoDB's 400 KB item limit. */
export const CHUNK_BYTES = 384 * 1024;
/** Default cap on one value, chunked or not (`DynamoDBStoreOptions.maxValueBytes`). */
export const DEFAULT_MAX_VALUE_BYTES = 6 * 1024 * 1024;
/**
 * Chunks outlive the head's expiry by this much: DynamoDB's TTL deletes lazily (within days), and a
 * head found after its own expiry must still find the chunks of the version it picks.
 */
export const CHUNK_TTL_MARGIN_MS = 3 * 86_400_000;

/**
 * Versions as attribute maps `{ o: N, v: S (the value's JSON), e: N }`, or for a chunked value
 * `{ o, w: S, c: N, b: N, t: N, e }` (`t` is filled in by the put, which knows the item's expiry),
 * chunked when the value's JSON is over `inlineMaxBytes`. Decoding parses only the version a batch
 * reads; the versions a write keeps go back as they came.
 *
 * @example
 * versionFormat(1024).decode(versionFormat(1024).encode(3, { n: 1 }, undefined)); // { n: 1 }
 */
export function versionFormat(inlineMaxBytes: number): VersionFormat<StoredVersion> {
  return {
    encode(o, value, e) {
      const m: Record<string, AttributeValue> = { o: { N: String(o) } };
      const json = value === undefined ? undefined : JSON.stringify(value);
      let chunks: Uint8Array[] | undefined;
      if (json !== undefined) {
        // A UTF-16 code unit is at most 3 UTF-8 bytes: small values need no counting.
        if (json.length * 3 <= inlineMaxBytes || Buffer.byteLength(json) <= inlineMaxBytes) m.v = { S: json };
        else {
          const bytes = Buffer.from(json);
          chunks = [];
          for (let i = 0; i < bytes.length; i += CHUNK_BYTES) chunks.push(bytes.subarray(i, i + CHUNK_BYTES));
          m.w = { S: randomBytes(12).toString('base64url') };
          m.c = { N: String(chunks.length) };
          m.b = { N: String(bytes.length) };
        }
      }
      if (e !== undefined) m.e = { N: String(e) };
      return chunks ? { o, av: { M: m }, chunks } : { o, av: { M: m } };
    },
    decode(version) {
      const m = version.av.M!;
      if (m.v) return JSON.parse(m.v.S!);
      if (!m.w) return undefined;
      // The store reads the chunks of every version a batch picks before decoding it.
      if (version.json === undefined) throw new Error(`the chunks of the state version at offset ${version.o} were not read`);
      return version.json === null ? undefined : JSON.parse(version.json);
    },
    holdsValue: (version) => version.av.M!.v !== undefined || version.av.M!.w !== undefined,
    expiresAt(version) {
      const e = version.av.M!.e?.N;
      return e === undefined ? undefined : Number(e);
    },
  };
}

/**
 * Versions as the JSON a page keeps them in: each version's attribute map as a plain object (every
 * attribute is a number or a string), `[{"o":41,"v":"{\"n\":1}"}]`.
 *
 * @example
 * versionsFromJson(versionsToJson(versions)); // the same versions
 */
export function versionsToJson(versions: readonly StoredVersion[]): string {
  const out: Record<string, number | string>[] = [];
  for (const v of versions) {
    const plain: Record<string, number | string> = {};
    for (const [name, attr] of Object.entries(v.av.M!)) plain[name] = attr.N !== undefined ? Number(attr.N) : attr.S!;
    out.push(plain);
  }
  return JSON.stringify(out);
}

/**
 * The versions {@link versionsToJson} wrote, as the store handles them.
 *
 * @example
 * versionsFromJson('[{"o":41,"v":"1"}]')[0].o; // 41
 */
export function versionsFromJson(json: string): StoredVersion[] {
  return (JSON.parse(json) as Record<string, number | string>[]).map((plain) => {
    const m: Record<string, AttributeValue> = {};
    for (const [name, x] of Object.entries(plain)) m[name] = typeof x === 'number' ? { N: String(x) } : { S: x };
    return { o: Number(plain.o), av: { M: m } };
  });
}

/**
 * DynamoDB's 400 KB per item, counted on the head: inline values' JSON plus a fixed cost per
 * version (a chunked version costs only its reference).
 *
 * @example
 * ITEM_LIMIT.valueBytes(versionFormat(INLINE_MAX_BYTES).encode(1, 'x', undefined)); // 3
 */
export const ITEM_LIMIT: ItemLimit<StoredVersion> = {
  // Less room for the key and bookkeeping attributes.
  maxBytes: 380 * 1024,
  // Attribute names and numbers per stored version, on top of its value's JSON.
  versionOverheadBytes: 48,
  name: "DynamoDB's 400 KB item limit",
  valueBytes(version) {
    const m = version.av.M!;
    if (m.w) return 48;
    const json = m.v?.S;
    return json === undefined ? 0 : Buffer.byteLength(json);
  },
};

/**
 * The cap on one value, inline or chunked.
 *
 * @example
 * valueLimit(6 * 1024 * 1024).maxBytes; // 6291456
 */
export function valueLimit(maxBytes: number): ValueLimit<StoredVersion> {
  return {
    maxBytes,
    name: 'the state value cap of the DynamoDB store (DynamoDBStoreOptions.maxValueBytes)',
    valueBytes(version) {
      const m = version.av.M!;
      if (m.b) return Number(m.b.N);
      const json = m.v?.S;
      // Inline values are under INLINE_MAX_BYTES, far below any cap worth setting; count only when close.
      return json === undefined ? 0 : json.length * 3 <= maxBytes ? 0 : Buffer.byteLength(json);
    },
  };
}

/**
 * The version's chunks as items to put (before its head), each expiring at `ttl` (epoch seconds);
 * records `t` in the version's map. Only for versions encoded here (`chunks` set).
 *
 * @example
 * for (const item of chunkItems(version, pk, ttl)) await put(item);
 */
export function chunkItems(version: StoredVersion, pk: string, ttl: number): Record<string, AttributeValue>[] {
  const m = version.av.M!;
  m.t = { N: String(ttl) };
  return (version.chunks ?? []).map((d, i) => ({
    pk: { S: pk },
    sk: { S: chunkSortKey(version, i) },
    d: { B: d },
    ttl: { N: String(ttl) },
  }));
}

/**
 * Whether a version read from a head keeps its value in chunk items.
 *
 * @example
 * isChunked(version) && chunkSortKey(version, 0);
 */
export function isChunked(version: StoredVersion): boolean {
  return version.av.M!.w !== undefined;
}

/**
 * The sort key of a chunked version's chunk `i`: `c:` never starts a head's sort key (`k:`).
 *
 * @example
 * chunkSortKey(version, 2); // 'c:Xk3…#2'
 */
export function chunkSortKey(version: StoredVersion, i: number): string {
  return `c:${version.av.M!.w!.S}#${i}`;
}

/**
 * How many chunks a chunked version has, and when they expire (epoch seconds; 0 if unknown).
 *
 * @example
 * const { count } = chunkInfo(version);
 */
export function chunkInfo(version: StoredVersion): { count: number; ttl: number } {
  const m = version.av.M!;
  return { count: Number(m.c?.N ?? 0), ttl: Number(m.t?.N ?? 0) };
}
