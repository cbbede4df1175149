import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SLUICE_ENV, readEnv } from '../env.js';
import { ConfigError, errorText, SluiceError, StateValueError } from '../errors.js';
import { defaultClient, sdk, sendWithRetries } from './dynamodb-client.js';
import { STATE_TABLE_TTL_ATTRIBUTE, stateTableKeys } from './dynamodb-table.js';
import type { BatchBounds, ItemChange, StateScope, StoreCallOptions, WriteStats } from './store.js';
import { type ItemLimit, type ItemPut, type KeyLimit, type RawItem, VersionedStore, type VersionFormat } from './versioned-store.js';

/** One stored version: its offset and its attribute map as DynamoDB returned it (passed back untouched). */
interface StoredVersion {
  readonly o: number;
  readonly av: AttributeValue;
}

/** An item as read: its versions and its write count `n`, which the conditional put compares. */
type DynamoItem = RawItem<StoredVersion, string>;

/**
 * Versions as attribute maps `{ o: N, v: S (the value's JSON), e: N }`. Decoding parses only the
 * version a batch reads; the versions a write keeps go back as they came, so a write encodes one
 * value per item, never the ones kept for retries.
 */
const dynamoVersions: VersionFormat<StoredVersion> = {
  encode(o, value, e) {
    const m: Record<string, AttributeValue> = { o: { N: String(o) } };
    const json = value === undefined ? undefined : JSON.stringify(value);
    if (json !== undefined) m.v = { S: json };
    if (e !== undefined) m.e = { N: String(e) };
    return { o, av: { M: m } };
  },
  decode(version) {
    const json = version.av.M!.v?.S;
    return json === undefined ? undefined : JSON.parse(json);
  },
  holdsValue: (version) => version.av.M!.v !== undefined,
  expiresAt(version) {
    const e = version.av.M!.e?.N;
    return e === undefined ? undefined : Number(e);
  },
};

/** DynamoDB's 400 KB per item, counted on the values' JSON plus a fixed cost per version. */
const ITEM_LIMIT: ItemLimit<StoredVersion> = {
  // Less room for the key and bookkeeping attributes.
  maxBytes: 380 * 1024,
  // Attribute names and numbers per stored version, on top of its value's JSON.
  versionOverheadBytes: 48,
  name: "DynamoDB's 400 KB item limit",
  valueBytes(version) {
    const json = version.av.M!.v?.S;
    return json === undefined ? 0 : Buffer.byteLength(json);
  },
};

/** DynamoDB's key limits: 1,024 bytes of sort key (`k:` + the record key), 2,048 of partition key. */
const KEY_LIMIT: KeyLimit = {
  maxKeyBytes: 1_024 - encodeKey('').length,
  keyName: "DynamoDB's 1,024-byte sort key limit (less the 2-byte `k:` prefix)",
  maxScopeBytes: 2_048,
  scopeName: "DynamoDB's 2,048-byte partition key limit",
  scopeBytes: (scope, namespace) => Buffer.byteLength(partitionKey(scope, namespace)),
};

const BATCH_GET_LIMIT = 100;
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
 * partition key `pk` = function#topic#partition#namespace, sort key
 * `sk` = `k:` + record key, the versions in `h` (a list of maps: input offset `o`, value as JSON
 * `v` unless absent, expiry `e` if any; see `versions.ts`), the write count in `n`, and `ttl`.
 *
 * Reads are consistent `BatchGetItem`s of up to 100 keys, in parallel. Each changed item is one
 * `PutItem` conditional on the write count read (`ConditionalCheckFailedException` is a conflict,
 * which the base counts); throttling and network errors are retried with backoff within the
 * invocation's time, then raised as a retriable SluiceError. Items also get a `ttl`: the latest
 * expiry of their versions, or `retentionMs` after the write for versions without one.
 *
 * @example
 * const store = new DynamoDBStore({ table: 'sluice-state', endpoint: 'http://127.0.0.1:8000' });
 * handler.sluice.configure({ store });
 */
export class DynamoDBStore extends VersionedStore<StoredVersion, string> {
  readonly kind = 'dynamodb';
  readonly durable = true;
  readonly table: string;
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
  #client: DynamoDBClient | undefined;

  constructor(opts: DynamoDBStoreOptions = {}) {
    // DynamoDB stores JSON.stringify's text, so values are not checked for plain JSON here: that
    // would newly reject values it keeps today (a Date is stored as its ISO string).
    super({ format: dynamoVersions, itemLimit: ITEM_LIMIT, keyLimit: KEY_LIMIT });
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
    const { BatchGetItemCommand } = await sdk();
    const deadline = opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS;
    const pk = partitionKey(scope, namespace);
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) chunks.push(keys.slice(i, i + BATCH_GET_LIMIT) as string[]);
    await Promise.all(
      chunks.map(async (chunk) => {
        let pending: Record<string, AttributeValue>[] = chunk.map((k) => ({ pk: { S: pk }, sk: { S: encodeKey(k) } }));
        for (let attempt = 0; pending.length > 0; attempt++) {
          this.stats.readRequests++;
          const res = await this.#send<{
            Responses?: Record<string, Record<string, AttributeValue>[]>;
            UnprocessedKeys?: Record<string, { Keys?: Record<string, AttributeValue>[] }>;
            ConsumedCapacity?: { CapacityUnits?: number }[];
          }>(
            new BatchGetItemCommand({
              RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: 'sk, n, h' } },
              ReturnConsumedCapacity: 'TOTAL',
            }),
            deadline,
          );
          for (const c of res.ConsumedCapacity ?? []) this.stats.consumedReadUnits += c.CapacityUnits ?? 0;
          for (const item of res.Responses?.[this.table] ?? []) {
            found(decodeKey(item.sk.S!), { versions: storedVersions(item.h), token: item.n.N! });
          }
          pending = res.UnprocessedKeys?.[this.table]?.Keys ?? [];
          if (pending.length > 0) {
            if (Date.now() >= deadline)
              throw new SluiceError('DynamoDB left keys unprocessed until the invocation ran out of time; Lambda will retry the batch.', {
                retriable: true,
              });
            this.stats.retries++;
            await new Promise((r) => setTimeout(r, Math.random() * Math.min(1_000, 50 * 2 ** attempt)));
          }
        }
      }),
    );
  }

  protected async putItems(scope: StateScope, puts: readonly ItemPut<StoredVersion, string>[], opts: StoreCallOptions): Promise<number> {
    const { PutItemCommand } = await sdk();
    const deadline = opts.deadline ?? Date.now() + DEFAULT_DEADLINE_MS;
    const now = Date.now();
    let conflicts = 0;
    const put = async ({ change, versions, expected }: ItemPut<StoredVersion, string>) => {
      let expires = 0;
      for (const v of versions) expires = Math.max(expires, dynamoVersions.expiresAt(v) ?? now + this.#retentionMs);
      this.stats.writeRequests++;
      try {
        const res = await this.#send<{ ConsumedCapacity?: { CapacityUnits?: number } }>(
          new PutItemCommand({
            TableName: this.table,
            Item: {
              pk: { S: partitionKey(scope, change.namespace) },
              sk: { S: encodeKey(change.key) },
              n: { N: String(Number(expected?.token ?? 0) + 1) },
              // The versions read are passed back as DynamoDB returned them: only the new one is encoded.
              h: { L: versions.map((v) => v.av) },
              ttl: { N: String(Math.ceil(expires / 1000)) },
            },
            ...(expected
              ? { ConditionExpression: 'n = :n', ExpressionAttributeValues: { ':n': { N: expected.token } } }
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
    for (let i = 0; i < puts.length; i += WRITE_CONCURRENCY) await Promise.all(puts.slice(i, i + WRITE_CONCURRENCY).map(put));
    return conflicts;
  }

  protected async listItems(
    scope: StateScope,
    namespace: string,
    found: (key: string, versions: readonly StoredVersion[]) => void,
  ): Promise<void> {
    const { QueryCommand } = await sdk();
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.#send<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>(
        new QueryCommand({
          TableName: this.table,
          ConsistentRead: true,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': { S: partitionKey(scope, namespace) } },
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
