import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConfigError, SluiceError } from '../errors.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoreCallOptions, StoredItem, WriteStats } from './store.js';
import { conflictError, keepVersions, pickVersion, staleReadError } from './versions.js';

/** DynamoDB's item size limit, less room for the key and bookkeeping attributes. */
const MAX_VALUE_BYTES = 380 * 1024;
/** Bytes of attribute names and numbers per stored version, on top of its value's JSON. */
const VERSION_OVERHEAD_BYTES = 48;

/** One stored version: its offset and its attribute map as DynamoDB returned it (passed back untouched). */
interface StoredVersion {
  readonly o: number;
  readonly av: AttributeValue;
}

/** What a read hands back for the conditional write: the item's write count and its versions. */
interface DynamoRevision {
  readonly n: string;
  readonly versions: readonly StoredVersion[];
}

const ABSENT: readonly StoredVersion[] = [{ o: -1, av: { M: { o: { N: '-1' } } } }];
const BATCH_GET_LIMIT = 100;
const WRITE_CONCURRENCY = 25;
/** How long tombstones and window items live after their last write, unless given. */
const DEFAULT_RETENTION_MS = 7 * 86_400_000;

/** Options of {@link DynamoDBStore}. */
export interface DynamoDBStoreOptions {
  /** Table name; default `process.env.SLUICE_STATE_TABLE`. */
  readonly table?: string;
  /** Endpoint, e.g. DynamoDB Local; default `process.env.SLUICE_DYNAMODB_ENDPOINT` (AWS when unset). */
  readonly endpoint?: string;
  /** A client to use instead of creating one (tests, custom credentials). */
  readonly client?: DynamoDBClient;
  /** Items without their own expiry (windows, tombstones) expire this long after their last write. */
  readonly retentionMs?: number;
}

/** Counters for one store instance, reset by whoever reads them. */
export interface DynamoDBStats {
  readRequests: number;
  writeRequests: number;
  consumedReadUnits: number;
  consumedWriteUnits: number;
  conditionalCheckFailures: number;
  retries: number;
}

let sharedClient: Promise<DynamoDBClient> | undefined;

/** One DynamoDB client per container, created on first use (and imported only then). */
async function defaultClient(endpoint: string | undefined): Promise<DynamoDBClient> {
  sharedClient ??= import('@aws-sdk/client-dynamodb').then(
    ({ DynamoDBClient }) =>
      new DynamoDBClient({
        ...(endpoint
          ? { endpoint, region: process.env.AWS_REGION ?? 'us-east-1', credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'local', secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'local' } }
          : {}),
        maxAttempts: 1, // Sluice retries itself, within the invocation's remaining time.
      }),
  );
  return sharedClient;
}

/**
 * State in a DynamoDB table: partition key `pk` = function#topic#partition#namespace, sort key
 * `sk` = `k:` + record key, the versions in `h` (a list of maps: input offset `o`, value as JSON
 * `v` unless absent, expiry `e` if any; see `versions.ts`), the write count in `n`, and `ttl`.
 *
 * Reads are consistent `BatchGetItem`s of up to 100 keys, in parallel, each item as of just before
 * the batch. Each changed item is one `PutItem` conditional on the write count read: a stale
 * invocation (a timed-out one still running beside its retry) is fenced and fails, and never
 * overwrites newer state. A crash between item writes is safe because the retry reads every item
 * as it was before the batch. Partition-level items are written after the key items.
 *
 * @example
 * const store = new DynamoDBStore({ table: 'sluice-state', endpoint: 'http://127.0.0.1:8000' });
 * handler.sluice.configure({ store });
 */
export class DynamoDBStore implements StateStore {
  readonly kind = 'dynamodb';
  readonly durable = true;
  readonly table: string;
  readonly stats: DynamoDBStats = { readRequests: 0, writeRequests: 0, consumedReadUnits: 0, consumedWriteUnits: 0, conditionalCheckFailures: 0, retries: 0 };
  readonly #endpoint: string | undefined;
  readonly #retentionMs: number;
  #client: DynamoDBClient | undefined;

  constructor(opts: DynamoDBStoreOptions = {}) {
    const table = opts.table ?? process.env.SLUICE_STATE_TABLE;
    if (!table) {
      throw new ConfigError('the DynamoDB state store needs a table name: set SLUICE_STATE_TABLE (the Serverless plugin does) or pass { table }.');
    }
    this.table = table;
    this.#endpoint = opts.endpoint ?? process.env.SLUICE_DYNAMODB_ENDPOINT;
    this.#retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
    this.#client = opts.client;
  }

  async #send<T>(command: unknown, deadline: number): Promise<T> {
    const client = (this.#client ??= await defaultClient(this.#endpoint));
    for (let attempt = 0; ; attempt++) {
      try {
        return (await client.send(command as never)) as T;
      } catch (e) {
        if (!isTransient(e)) throw e;
        // Full jitter, capped, and only while the invocation has time left.
        const delay = Math.random() * Math.min(2_000, 50 * 2 ** attempt);
        if (Date.now() + delay >= deadline) {
          throw new SluiceError(`DynamoDB kept failing (${(e as Error).name}: ${(e as Error).message}) and the invocation ran out of time; Lambda will retry the batch.`, { retriable: true, cause: e });
        }
        this.stats.retries++;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts: StoreCallOptions = {}): Promise<Map<string, StoredItem>> {
    const { BatchGetItemCommand } = await import('@aws-sdk/client-dynamodb');
    const deadline = opts.deadline ?? Date.now() + 60_000;
    const pk = partitionKey(scope, namespace);
    const out = new Map<string, StoredItem>();
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) chunks.push(keys.slice(i, i + BATCH_GET_LIMIT) as string[]);
    await Promise.all(chunks.map(async (chunk) => {
      let pending: Record<string, AttributeValue>[] = chunk.map((k) => ({ pk: { S: pk }, sk: { S: encodeKey(k) } }));
      for (let attempt = 0; pending.length > 0; attempt++) {
        this.stats.readRequests++;
        const res = await this.#send<{ Responses?: Record<string, Record<string, AttributeValue>[]>; UnprocessedKeys?: Record<string, { Keys?: Record<string, AttributeValue>[] }>; ConsumedCapacity?: { CapacityUnits?: number }[] }>(
          new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: 'sk, n, h' } }, ReturnConsumedCapacity: 'TOTAL' }),
          deadline,
        );
        for (const c of res.ConsumedCapacity ?? []) this.stats.consumedReadUnits += c.CapacityUnits ?? 0;
        const now = Date.now();
        for (const item of res.Responses?.[this.table] ?? []) {
          const key = decodeKey(item.sk.S!);
          const versions = (item.h?.L ?? []).map((av): StoredVersion => ({ o: Number(av.M!.o.N), av }));
          const version = pickVersion(versions, opts.before);
          if (!version) throw staleReadError(scope, namespace, key, versions[0]?.o ?? -1, opts.before!);
          // DynamoDB deletes expired items lazily (within days): an expired value reads as absent.
          const m = version.av.M!;
          const expired = m.e?.N !== undefined && Number(m.e.N) < now;
          const revision: DynamoRevision = { n: item.n.N!, versions };
          out.set(key, { value: m.v?.S === undefined || expired ? undefined : JSON.parse(m.v.S), offset: version.o, revision });
        }
        pending = res.UnprocessedKeys?.[this.table]?.Keys ?? [];
        if (pending.length > 0) {
          if (Date.now() >= deadline) throw new SluiceError('DynamoDB left keys unprocessed until the invocation ran out of time; Lambda will retry the batch.', { retriable: true });
          this.stats.retries++;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(1_000, 50 * 2 ** attempt)));
        }
      }
    }));
    return out;
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts: { deadline?: number } = {}): Promise<WriteStats> {
    const { PutItemCommand } = await import('@aws-sdk/client-dynamodb');
    const deadline = opts.deadline ?? Date.now() + 60_000;
    const now = Date.now();
    const items = changes.map((c) => {
      const revision = c.revision as DynamoRevision | undefined;
      const json = c.value === undefined ? undefined : JSON.stringify(c.value);
      const next: StoredVersion = {
        o: c.offset,
        av: { M: { o: { N: String(c.offset) }, ...(json === undefined ? {} : { v: { S: json } }), ...(c.expiresAt === undefined ? {} : { e: { N: String(c.expiresAt) } }) } },
      };
      const versions = keepVersions(revision?.versions ?? ABSENT, bounds.firstOffset, next);
      let bytes = 0;
      let expires = 0;
      for (const v of versions) {
        const m = v.av.M!;
        bytes += VERSION_OVERHEAD_BYTES + (m.v?.S === undefined ? 0 : Buffer.byteLength(m.v.S));
        expires = Math.max(expires, m.e?.N === undefined ? now + this.#retentionMs : Number(m.e.N));
      }
      if (bytes > MAX_VALUE_BYTES) {
        const valueKb = Math.round(Buffer.byteLength(json ?? '') / 1024);
        throw new SluiceError(
          `state "${c.namespace}" of function "${scope.functionName}" for key "${c.key}" (partition ${scope.partition}) would be ${Math.round(bytes / 1024)} KB ` +
            `(the value is ${valueKb} KB, kept with its version from before this batch for retries), over DynamoDB's 400 KB item limit; ` +
            `use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect).`,
          { retriable: false },
        );
      }
      return {
        partitionLevel: c.namespace.endsWith('#partition'),
        input: new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: partitionKey(scope, c.namespace) },
            sk: { S: encodeKey(c.key) },
            n: { N: String(Number(revision?.n ?? 0) + 1) },
            h: { L: versions.map((v) => v.av) },
            ttl: { N: String(Math.ceil(expires / 1000)) },
          },
          ...(revision
            ? { ConditionExpression: 'n = :n', ExpressionAttributeValues: { ':n': { N: revision.n } } }
            : { ConditionExpression: 'attribute_not_exists(pk)' }),
          ReturnConsumedCapacity: 'TOTAL',
        }),
        change: c,
      };
    });
    let conflicts = 0;
    const put = async (group: typeof items) => {
      for (let i = 0; i < group.length; i += WRITE_CONCURRENCY) {
        await Promise.all(group.slice(i, i + WRITE_CONCURRENCY).map(async (it) => {
          this.stats.writeRequests++;
          try {
            const res = await this.#send<{ ConsumedCapacity?: { CapacityUnits?: number } }>(it.input, deadline);
            this.stats.consumedWriteUnits += res.ConsumedCapacity?.CapacityUnits ?? 0;
          } catch (e) {
            if ((e as Error).name === 'ConditionalCheckFailedException') {
              conflicts++;
              this.stats.conditionalCheckFailures++;
              return;
            }
            throw e;
          }
        }));
      }
    };
    // Key items first, then partition-level items (clocks, indexes).
    await put(items.filter((i) => !i.partitionLevel));
    await put(items.filter((i) => i.partitionLevel));
    if (conflicts > 0) throw conflictError(scope, conflicts);
    return { writeRequests: items.length, conflicts };
  }

  /** Creates the table if it does not exist (local development; the plugin creates it in AWS). */
  async ensureTable(): Promise<void> {
    const { CreateTableCommand, DescribeTableCommand, UpdateTimeToLiveCommand } = await import('@aws-sdk/client-dynamodb');
    const deadline = Date.now() + 30_000;
    try {
      await this.#send(new DescribeTableCommand({ TableName: this.table }), deadline);
      return;
    } catch (e) {
      if ((e as Error).name !== 'ResourceNotFoundException') throw e;
    }
    await this.#send(new CreateTableCommand({
      TableName: this.table,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }, { AttributeName: 'sk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }, { AttributeName: 'sk', KeyType: 'RANGE' }],
    }), deadline);
    await this.#send(new UpdateTimeToLiveCommand({ TableName: this.table, TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true } }), deadline).catch(() => undefined);
  }

  /** Keys holding a value in a namespace (a Query on its partition key): for `--flush`. */
  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    const { QueryCommand } = await import('@aws-sdk/client-dynamodb');
    const out: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const res = await this.#send<{ Items?: Record<string, AttributeValue>[]; LastEvaluatedKey?: Record<string, AttributeValue> }>(new QueryCommand({
        TableName: this.table, ConsistentRead: true,
        KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': { S: partitionKey(scope, namespace) } },
        ProjectionExpression: 'sk, h', ...(start ? { ExclusiveStartKey: start } : {}),
      }), Date.now() + 30_000);
      const now = Date.now();
      for (const item of res.Items ?? []) {
        const newest = item.h?.L?.at(-1)?.M;
        if (newest?.v && !(newest.e?.N !== undefined && Number(newest.e.N) < now)) out.push(decodeKey(item.sk.S!));
      }
      start = res.LastEvaluatedKey;
    } while (start);
    return out;
  }
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

const TRANSIENT = new Set([
  'ProvisionedThroughputExceededException', 'ThrottlingException', 'RequestLimitExceeded', 'InternalServerError',
  'ServiceUnavailable', 'TransactionConflictException', 'LimitExceededException',
]);

function isTransient(e: unknown): boolean {
  const err = e as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (err.name && TRANSIENT.has(err.name)) return true;
  if (err.$retryable) return true;
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE'].includes(err.code ?? '') || /socket hang up|ECONNRESET/.test(String((e as Error)?.message));
}
