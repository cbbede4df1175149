/**
 * The DynamoDB adapter of the state protocol: get, put and list items, large values in chunk
 * items. One concept, a little over 350 lines; the client, its retries and batched reads live in
 * `dynamodb-client.ts`, the value layout in `dynamodb-values.ts`, the page layout in
 * `dynamodb-pages.ts` (pure) and `dynamodb-paged.ts` (I/O), the table shape in `dynamodb-table.ts`.
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SLUICE_ENV, readEnv } from '../env.js';
import { ConfigError, errorText, SluiceError, StateConflictError, StateValueError } from '../errors.js';
import { batchGetConsistent, defaultClient, sdk, sendWithRetries } from './dynamodb-client.js';
import { STATE_TABLE_TTL_ATTRIBUTE, stateTableKeys } from './dynamodb-table.js';
import { type PagePut, PagedItems, type PageRead } from './dynamodb-paged.js';
import {
  CHUNK_TTL_MARGIN_MS,
  chunkInfo,
  chunkItems,
  chunkSortKey,
  DEFAULT_MAX_VALUE_BYTES,
  INLINE_MAX_BYTES,
  ITEM_LIMIT,
  isChunked,
  PAGE_INLINE_MAX_BYTES,
  type StoredVersion,
  valueLimit,
  versionFormat,
} from './dynamodb-values.js';
import { isPartitionNamespace } from './namespaces.js';
import type { BatchBounds, ItemChange, StateScope, StoreCallOptions, WriteStats } from './store.js';
import { type ItemPut, type KeyLimit, type RawItem, VersionedStore } from './versioned-store.js';

/**
 * What a conditional put compares: an item's write count `n` (item layout), or the page the key
 * was read from (page layout).
 */
type Token = string | PageRead;
/** An item as read: its versions and its token. */
type DynamoItem = RawItem<StoredVersion, Token>;

/** DynamoDB's key limits: 1,024 bytes of sort key (`k:` + the record key), 2,048 of partition key. */
const KEY_LIMIT: KeyLimit = {
  maxKeyBytes: 1_024 - encodeKey('').length,
  keyName: "DynamoDB's 1,024-byte sort key limit (less the 2-byte `k:` prefix)",
  maxScopeBytes: 2_048,
  scopeName: "DynamoDB's 2,048-byte partition key limit",
  scopeBytes: (scope, namespace) => Buffer.byteLength(partitionKey(scope, namespace)),
};

const WRITE_CONCURRENCY = 25;
/** How long a read or a write may retry throttled requests when the caller gives no deadline. */
const DEFAULT_DEADLINE_MS = 60_000;
/** How long tombstones and window items live after their last write, unless given. */
const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/**
 * Options of {@link DynamoDBStore}.
 *
 * @example
 * const opts: DynamoDBStoreOptions = { table: 'sluice-state', endpoint: 'http://127.0.0.1:8000', retentionMs: 86_400_000 };
 */
export interface DynamoDBStoreOptions {
  /** Table name; default the environment's SLUICE_STATE_TABLE (`SLUICE_ENV.stateTable`). */
  readonly table?: string;
  /** Endpoint, e.g. DynamoDB Local; default SLUICE_DYNAMODB_ENDPOINT (`SLUICE_ENV.dynamodbEndpoint`; AWS when unset). */
  readonly endpoint?: string;
  /** A client to use instead of creating one (tests, custom credentials). */
  readonly client?: DynamoDBClient;
  /** Items without their own expiry (windows, tombstones) expire this long after their last write. */
  readonly retentionMs?: number;
  /**
   * The most bytes of JSON one value (a key's window or keyed state) may take; default 6 MiB.
   * Values over 64 KB are split over chunk items; a record that would take a value over this cap
   * is a dead letter, before any output leaves for it.
   */
  readonly maxValueBytes?: number;
  /**
   * How keys' state is laid out: `'pages'` (default) packs the small states of a namespace's keys
   * into shared page items of about one write unit, deflated, and writes only the pages a batch
   * changed; `'items'` keeps one item per key (Sluice before 0.2; see docs/state.md). Partition-level
   * items (clocks, the idle item) are kept one per key in both.
   */
  readonly layout?: 'pages' | 'items';
  /**
   * Compressed bytes a page aims at before it splits; default what keeps a page item within one
   * write unit (1 KB with its keys). Larger pages cost fewer read units and more write units per
   * key changed; tests set it small to split often.
   */
  readonly pageBytes?: number;
}

/**
 * Counters for one store instance, reset by whoever reads them.
 *
 * @example
 * const { writeRequests, conditionalCheckFailures } = store.stats;
 */
export interface DynamoDBStats {
  readRequests: number;
  writeRequests: number;
  consumedReadUnits: number;
  consumedWriteUnits: number;
  conditionalCheckFailures: number;
  retries: number;
}

/**
 * State in a DynamoDB table, the adapter under {@link VersionedStore} (which owns the protocol):
 * partition key `pk` = function#topic#partition#namespace. Keys' state is packed into deflated page
 * items `p:<d>.<b>` of about one write unit (`dynamodb-paged.ts`, `dynamodb-pages.ts`); partition-level
 * items, and every key with `layout: 'items'`, keep an item of their own, sort key `k:` + record key,
 * the versions in `h` (a list of maps: input offset `o`, value as JSON `v` unless absent, expiry `e`
 * if any; see `versions.ts`), the write count in `n`, and `ttl`. Values over 1 KB in pages (64 KB
 * in items) are kept in chunk items written before their head (`dynamodb-values.ts`), up to
 * `maxValueBytes`.
 *
 * Reads are consistent `BatchGetItem`s of up to 100 pages or items, in parallel (then the chunks of
 * the versions picked, if any are chunked). Each changed page or item is one `PutItem` conditional
 * on the write count read (`ConditionalCheckFailedException` is a conflict, which the base counts;
 * a page is read again and its unchanged keys written on it); throttling and network errors are
 * retried with backoff within the invocation's time, then raised as a retriable SluiceError. Items
 * also get a `ttl`: the latest expiry of their versions, or `retentionMs` after the write for
 * versions without one. See docs/state.md.
 *
 * @example
 * const store = new DynamoDBStore({ table: 'sluice-state', endpoint: 'http://127.0.0.1:8000' });
 * handler.sluice.configure({ store });
 */
export class DynamoDBStore extends VersionedStore<StoredVersion, Token> {
  readonly kind = 'dynamodb';
  readonly durable = true;
  readonly table: string;
  /** How keys' state is laid out ({@link DynamoDBStoreOptions.layout}). */
  readonly layout: 'pages' | 'items';
  readonly stats: DynamoDBStats = {
    readRequests: 0,
    writeRequests: 0,
    consumedReadUnits: 0,
    consumedWriteUnits: 0,
    conditionalCheckFailures: 0,
    retries: 0,
  };
  readonly #endpoint: string | undefined;
  readonly #retentionMs: number;
  readonly #paged: boolean;
  readonly #pages: PagedItems;
  #client: DynamoDBClient | undefined;

  constructor(opts: DynamoDBStoreOptions = {}) {
    // DynamoDB stores JSON.stringify's text, so values are not checked for plain JSON here: that
    // would newly reject values it keeps today (a Date is stored as its ISO string).
    const paged = stateLayout(opts.layout) === 'pages';
    super({
      format: versionFormat(paged ? PAGE_INLINE_MAX_BYTES : INLINE_MAX_BYTES),
      itemLimit: ITEM_LIMIT,
      keyLimit: KEY_LIMIT,
      valueLimit: valueLimit(opts.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES),
    });
    const table = opts.table ?? readEnv('stateTable');
    if (!table) {
      throw new ConfigError(
        `the DynamoDB state store needs a table name: set ${SLUICE_ENV.stateTable} (the Serverless plugin does) or pass { table }.`,
      );
    }
    this.table = table;
    this.#endpoint = opts.endpoint ?? readEnv('dynamodbEndpoint');
    this.#retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    this.#client = opts.client;
    this.#paged = paged;
    this.layout = paged ? 'pages' : 'items';
    this.#pages = new PagedItems({
      table,
      pageBytes: opts.pageBytes,
      stats: this.stats,
      send: (command, deadline) => this.#send(command, deadline),
      putChunks: (version, pk, ttl, deadline) => this.#putChunks(version, pk, ttl, deadline),
      oldLayoutError: (pk) =>
        new SluiceError(
          `the state table "${table}" holds state of "${pk}" in the item layout of Sluice before 0.2 (one item per key), which this version does not read: ` +
            `it keeps keys in pages. Let the old version drain the input and start this one on a new table (SLUICE_STATE_TABLE), or delete the old state; ` +
            `see "Upgrading" in docs/state.md.`,
          { retriable: true },
        ),
    });
  }

  /** Whether a namespace's keys live in pages (partition-level items never do: they are few and written last). */
  #isPaged(namespace: string): boolean {
    return this.#paged && !isPartitionNamespace(namespace);
  }

  async #send<T>(command: unknown, deadline: number): Promise<T> {
    const client = (this.#client ??= await defaultClient(this.#endpoint));
    try {
      return await sendWithRetries<T>(client, command, deadline, () => this.stats.retries++);
    } catch (e) {
      // A request DynamoDB refuses as invalid (a key or item it cannot hold that the checks did not
      // catch) is refused again on every retry: deterministic, not a reason to retry the batch.
      if ((e as { name?: unknown }).name === 'ValidationException') {
        throw new StateValueError(`DynamoDB refused a state request of table "${this.table}" as invalid: ${errorText(e)}`, { cause: e });
      }
      throw e;
    }
  }

  /** One deadline for the whole write set, key items and partition-level items alike. */
  override write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts: StoreCallOptions = {}): Promise<WriteStats> {
    return super.write(
      scope,
      changes,
      bounds,
      opts.deadline === undefined ? { ...opts, deadline: Date.now() + DEFAULT_DEADLINE_MS } : opts,
    );
  }

  protected async getItems(
    scope: StateScope,
    namespace: string,
    keys: readonly string[],
    opts: StoreCallOptions,
    found: (key: string, item: DynamoItem) => void,
  ): Promise<void> {
    const pk = partitionKey(scope, namespace);
    if (this.#isPaged(namespace)) return this.#pages.get(pk, keys, opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS, found);
    await batchGetConsistent(
      (command, deadline) => this.#send(command, deadline),
      this.table,
      this.stats,
      keys.map((k) => ({ pk: { S: pk }, sk: { S: encodeKey(k) } })),
      'sk, n, h',
      opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS,
      (item) => found(decodeKey(item.sk.S!), { versions: storedVersions(item.h), token: item.n.N! }),
    );
  }

  /** Reads the chunks of the picked versions that keep their value in chunk items. */
  protected override async loadValues(
    scope: StateScope,
    namespace: string,
    picked: readonly { readonly key: string; readonly version: StoredVersion }[],
    opts: StoreCallOptions,
  ): Promise<void> {
    const pk = partitionKey(scope, namespace);
    const wanted: Record<string, AttributeValue>[] = [];
    const parts = new Map<string, Uint8Array>();
    const chunked: { key: string; version: StoredVersion }[] = [];
    for (const p of picked) {
      if (!isChunked(p.version) || p.version.json !== undefined) continue;
      chunked.push(p);
      const { count } = chunkInfo(p.version);
      for (let i = 0; i < count; i++) wanted.push({ pk: { S: pk }, sk: { S: chunkSortKey(p.version, i) } });
    }
    if (wanted.length === 0) return;
    await batchGetConsistent(
      (command, deadline) => this.#send(command, deadline),
      this.table,
      this.stats,
      wanted,
      'sk, d',
      opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS,
      (item) => parts.set(item.sk.S!, item.d.B!),
    );
    const now = Date.now();
    for (const { key, version } of chunked) {
      const { count, ttl } = chunkInfo(version);
      const data: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const d = parts.get(chunkSortKey(version, i));
        if (d) data.push(d);
      }
      if (data.length === count) version.json = Buffer.concat(data).toString('utf8');
      // Chunks are deleted only by TTL: gone before it, something else deleted them.
      else if (ttl * 1000 > now) throw missingChunksError(scope, namespace, key, version, count - data.length);
      // Expired with its chunks (a head DynamoDB's lazy TTL has not removed yet): absent, as the item would be.
      else version.json = null;
    }
  }

  protected async putItems(scope: StateScope, puts: readonly ItemPut<StoredVersion, Token>[], opts: StoreCallOptions): Promise<number> {
    const { PutItemCommand } = await sdk();
    const deadline = opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS;
    const now = Date.now();
    let conflicts = 0;
    const expiry = (versions: readonly StoredVersion[]) => {
      let expires = 0;
      for (const v of versions) {
        const e = v.av.M!.e?.N;
        expires = Math.max(expires, e === undefined ? now + this.#retentionMs : Number(e));
      }
      return expires;
    };
    const pages = new Map<string, PagePut[]>();
    const items: ItemPut<StoredVersion, Token>[] = [];
    for (const p of puts) {
      if (!this.#isPaged(p.change.namespace)) {
        items.push(p);
        continue;
      }
      const pk = partitionKey(scope, p.change.namespace);
      let list = pages.get(pk);
      if (!list) pages.set(pk, (list = []));
      list.push({ key: p.change.key, versions: p.versions, expected: p.expected, expires: expiry(p.versions) });
    }
    for (const [pk, list] of pages) conflicts += await this.#pages.put(pk, list, deadline);
    const put = async ({ change, versions, expected }: ItemPut<StoredVersion, Token>) => {
      const expires = expiry(versions);
      const pk = partitionKey(scope, change.namespace);
      // A chunked value's chunks before the head that references them: a crash in between leaves
      // only chunks nothing references, which TTL removes.
      for (const v of versions) if (v.chunks) await this.#putChunks(v, pk, Math.ceil((expires + CHUNK_TTL_MARGIN_MS) / 1000), deadline);
      this.stats.writeRequests++;
      try {
        const res = await this.#send<{ ConsumedCapacity?: { CapacityUnits?: number } }>(
          new PutItemCommand({
            TableName: this.table,
            Item: {
              pk: { S: pk },
              sk: { S: encodeKey(change.key) },
              n: { N: String(Number((expected?.token as string | undefined) ?? 0) + 1) },
              // The versions read are passed back as DynamoDB returned them: only the new one is encoded.
              h: { L: versions.map((v) => v.av) },
              ttl: { N: String(Math.ceil(expires / 1000)) },
            },
            ...(expected
              ? { ConditionExpression: 'n = :n', ExpressionAttributeValues: { ':n': { N: expected.token as string } } }
              : { ConditionExpression: 'attribute_not_exists(pk)' }),
            ReturnConsumedCapacity: 'TOTAL',
          }),
          deadline,
        );
        this.stats.consumedWriteUnits += res.ConsumedCapacity?.CapacityUnits ?? 0;
      } catch (e) {
        // The one SDK error that is part of the protocol: the item changed since it was read.
        if ((e as { name?: unknown }).name !== 'ConditionalCheckFailedException') throw e;
        conflicts++;
        this.stats.conditionalCheckFailures++;
      }
    };
    for (let i = 0; i < items.length; i += WRITE_CONCURRENCY) await Promise.all(items.slice(i, i + WRITE_CONCURRENCY).map(put));
    return conflicts;
  }

  /** Puts a new version's chunk items, in parallel and unconditionally: no other write has its write id. */
  async #putChunks(version: StoredVersion, pk: string, ttl: number, deadline: number): Promise<void> {
    const { PutItemCommand } = await sdk();
    await Promise.all(
      chunkItems(version, pk, ttl).map(async (Item) => {
        this.stats.writeRequests++;
        const res = await this.#send<{ ConsumedCapacity?: { CapacityUnits?: number } }>(
          new PutItemCommand({ TableName: this.table, Item, ReturnConsumedCapacity: 'TOTAL' }),
          deadline,
        );
        this.stats.consumedWriteUnits += res.ConsumedCapacity?.CapacityUnits ?? 0;
      }),
    );
  }

  protected async listItems(
    scope: StateScope,
    namespace: string,
    found: (key: string, versions: readonly StoredVersion[]) => void,
  ): Promise<void> {
    if (this.#isPaged(namespace)) return this.#pages.list(partitionKey(scope, namespace), found);
    const { QueryCommand } = await sdk();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.#send<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>(
        new QueryCommand({
          TableName: this.table,
          ConsistentRead: true,
          // Heads only: chunk items (`c:`) are not keys.
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :k)',
          ExpressionAttributeValues: { ':pk': { S: partitionKey(scope, namespace) }, ':k': { S: encodeKey('') } },
          ProjectionExpression: 'sk, h',
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
        Date.now() + 30_000,
      );
      for (const item of res.Items ?? []) found(decodeKey(item.sk.S!), storedVersions(item.h));
      start = res.LastEvaluatedKey;
    } while (start);
  }

  /** Creates the table if it does not exist (local development; the plugin creates it in AWS). */
  async ensureTable(): Promise<void> {
    const { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand } = await sdk();
    const deadline = Date.now() + 30_000;
    try {
      await this.#send(new DescribeTableCommand({ TableName: this.table }), deadline);
      return;
    } catch (e) {
      if ((e as { name?: unknown }).name !== 'ResourceNotFoundException') throw e;
    }
    await this.#send(
      new CreateTableCommand({
        TableName: this.table,
        BillingMode: 'PAY_PER_REQUEST',
        ...stateTableKeys(),
      }),
      deadline,
    );
    await this.#send(
      new UpdateTimeToLiveCommand({
        TableName: this.table,
        TimeToLiveSpecification: { AttributeName: STATE_TABLE_TTL_ATTRIBUTE, Enabled: true },
      }),
      deadline,
    ).catch(() => undefined);
  }
}

/** An item's versions as read, each with its offset parsed; the rest stays as DynamoDB sent it. */
function storedVersions(h: AttributeValue | undefined): StoredVersion[] {
  return (h?.L ?? []).map((av) => ({ o: Number(av.M!.o.N), av }));
}

/** Sort keys are prefixed: DynamoDB rejects an empty string, and Kafka keys can be empty. */
function encodeKey(key: string): string {
  return `k:${key}`;
}

function decodeKey(sk: string): string {
  return sk.slice(2);
}

function partitionKey(scope: StateScope, namespace: string): string {
  return `${scope.functionName}#${scope.topic}#${scope.partition}#${namespace}`;
}

/** The error for a picked version whose chunks are gone before their expiry: retried, as a conflict. */
function missingChunksError(
  scope: StateScope,
  namespace: string,
  key: string,
  version: StoredVersion,
  missing: number,
): StateConflictError {
  return new StateConflictError(
    `state "${namespace}" of function "${scope.functionName}" for key "${key}" (partition ${scope.partition}): ${missing} chunk item(s) of its version ` +
      `at offset ${version.o} are missing though the item references them; chunk items must only be removed by TTL. Lambda will retry the batch.`,
  );
}

/** The layout a store uses: the option, else SLUICE_STATE_LAYOUT, else pages; anything else fails at load. */
function stateLayout(option: DynamoDBStoreOptions['layout']): 'pages' | 'items' {
  const layout = option ?? (readEnv('stateLayout') || 'pages');
  if (layout !== 'pages' && layout !== 'items') {
    throw new ConfigError(
      `${SLUICE_ENV.stateLayout} must be "pages" (the default: keys' small states packed in shared items) or "items" (one item per key, the layout of Sluice 0.1); received ${JSON.stringify(layout)}.`,
    );
  }
  return layout;
}
