import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ConfigError, SluiceError, StateConflictError } from '../errors.js';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoredItem, WriteStats } from './store.js';

/** DynamoDB's item size limit, less room for the key and bookkeeping attributes. */
const MAX_VALUE_BYTES = 380 * 1024;
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
 * `sk` = `k:` + record key, the value as JSON in `v`, the last applied input offset in `o`, and `ttl`.
 *
 * Reads are consistent `BatchGetItem`s of up to 100 keys, in parallel. Each changed item is one
 * conditional `PutItem` that succeeds only if the stored offset is older than the new one: a
 * stale invocation (a timed-out one still running beside its retry) is fenced and fails, and
 * never overwrites newer state. A crash between item writes is safe because every item remembers
 * the last offset applied to it. Partition-level items are written after the key items, so they
 * are never ahead of them.
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

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts: { deadline?: number } = {}): Promise<Map<string, StoredItem>> {
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
          new BatchGetItemCommand({ RequestItems: { [this.table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: 'sk, v, o, #ttl', ExpressionAttributeNames: { '#ttl': 'ttl' } } }, ReturnConsumedCapacity: 'TOTAL' }),
          deadline,
        );
        for (const c of res.ConsumedCapacity ?? []) this.stats.consumedReadUnits += c.CapacityUnits ?? 0;
        const nowS = Date.now() / 1000;
        for (const item of res.Responses?.[this.table] ?? []) {
          // DynamoDB deletes expired items lazily (within days): an expired value reads as absent,
          // but its offset still counts, so replays stay no-ops.
          const expired = item.ttl?.N !== undefined && Number(item.ttl.N) < nowS;
          out.set(decodeKey(item.sk.S!), { value: item.v?.S === undefined || expired ? undefined : JSON.parse(item.v.S), offset: Number(item.o.N) });
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

  async write(scope: StateScope, changes: readonly ItemChange[], _bounds: BatchBounds, opts: { deadline?: number } = {}): Promise<WriteStats> {
    const { PutItemCommand } = await import('@aws-sdk/client-dynamodb');
    const deadline = opts.deadline ?? Date.now() + 60_000;
    const now = Date.now();
    const items = changes.map((c) => {
      const json = c.value === undefined ? undefined : JSON.stringify(c.value);
      if (json !== undefined && Buffer.byteLength(json) > MAX_VALUE_BYTES) {
        throw new SluiceError(
          `state "${c.namespace}" of function "${scope.functionName}" for key "${c.key}" (partition ${scope.partition}) would be ${Math.round(Buffer.byteLength(json) / 1024)} KB, over DynamoDB's 400 KB item limit; use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect).`,
          { retriable: false },
        );
      }
      const expires = c.expiresAt ?? now + this.#retentionMs;
      return {
        partitionLevel: c.namespace.endsWith('#partition'),
        input: new PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: partitionKey(scope, c.namespace) },
            sk: { S: encodeKey(c.key) },
            o: { N: String(c.offset) },
            ttl: { N: String(Math.ceil(expires / 1000)) },
            ...(json === undefined ? {} : { v: { S: json } }),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR o < :o',
          ExpressionAttributeValues: { ':o': { N: String(c.offset) } },
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
    // Key items first, then partition-level items (clocks, indexes), so those are never ahead.
    await put(items.filter((i) => !i.partitionLevel));
    await put(items.filter((i) => i.partitionLevel));
    if (conflicts > 0) {
      throw new StateConflictError(`${conflicts} state item(s) of function "${scope.functionName}", partition ${scope.partition}, were already written by a newer invocation; this invocation is stale and stops without overwriting them.`);
    }
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
        ProjectionExpression: 'sk, v', ...(start ? { ExclusiveStartKey: start } : {}),
      }), Date.now() + 30_000);
      for (const item of res.Items ?? []) if (item.v) out.push(decodeKey(item.sk.S!));
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
