/**
 * The DynamoDB client side of the state store: the SDK imported once on first use, one client per
 * container, and sending with retries of throttling and network errors within the invocation's
 * remaining time. SDK errors are classified here, once.
 *
 * @example
 * const client = await defaultClient('http://127.0.0.1:8000');
 * await sendWithRetries(client, new DescribeTableCommand({ TableName: 't' }), Date.now() + 5_000);
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { errorText, SluiceError } from '../errors.js';

let sdkModule: Promise<typeof import('@aws-sdk/client-dynamodb')> | undefined;

/**
 * The SDK, imported on first use (a function without state never loads it) and kept: each
 * dynamic `import()` resolves the module again, through the loader hooks when some are
 * registered (tsx), which cost more than a batch of items to encode.
 */
export function sdk(): Promise<typeof import('@aws-sdk/client-dynamodb')> {
  // CommonJS: bundled (an ESM chunk), its exports sit on `default` only.
  type Sdk = typeof import('@aws-sdk/client-dynamodb');
  sdkModule ??= import('@aws-sdk/client-dynamodb').then((m) => (m as unknown as { default?: Sdk }).default ?? m);
  return sdkModule;
}

let sharedClient: Promise<DynamoDBClient> | undefined;

/** One DynamoDB client per container, created on first use. */
export async function defaultClient(endpoint: string | undefined): Promise<DynamoDBClient> {
  sharedClient ??= sdk().then(
    ({ DynamoDBClient }) =>
      new DynamoDBClient({
        ...(endpoint
          ? {
              endpoint,
              region: process.env.AWS_REGION ?? 'us-east-1',
              credentials: {
                accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'local',
                secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'local',
              },
            }
          : {}),
        maxAttempts: 1, // Sluice retries itself, within the invocation's remaining time.
      }),
  );
  return sharedClient;
}

/**
 * Sends a command, retrying throttling and network errors with full jitter while the deadline
 * allows; then a retriable SluiceError (Lambda retries the batch). Other errors are thrown as the
 * SDK raised them.
 *
 * @example
 * const res = await sendWithRetries(client, new PutItemCommand(input), deadline, () => stats.retries++);
 */
export async function sendWithRetries<T>(client: DynamoDBClient, command: unknown, deadline: number, onRetry?: () => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.send(command as never)) as T;
    } catch (e) {
      if (!isTransient(e)) throw e;
      // Full jitter, capped, and only while the invocation has time left.
      const delay = Math.random() * Math.min(2_000, 50 * 2 ** attempt);
      if (Date.now() + delay >= deadline) {
        throw new SluiceError(
          `DynamoDB kept failing (${(e as { name?: string }).name}: ${errorText(e)}) and the invocation ran out of time; Lambda will retry the batch.`,
          { retriable: true, cause: e },
        );
      }
      onRetry?.();
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

const TRANSIENT = new Set([
  'ProvisionedThroughputExceededException',
  'ThrottlingException',
  'RequestLimitExceeded',
  'InternalServerError',
  'ServiceUnavailable',
  'TransactionConflictException',
  'LimitExceededException',
]);

function isTransient(e: unknown): boolean {
  const err = e as { name?: string; code?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (err.name && TRANSIENT.has(err.name)) return true;
  if (err.$retryable) return true;
  const status = err.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  return ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE'].includes(err.code ?? '') || /socket hang up|ECONNRESET/.test(errorText(e));
}

/** BatchGetItem allows at most 100 keys per request. */
const BATCH_GET_LIMIT = 100;

/** The request counters a read updates (the store's stats). */
export interface ReadCounters {
  readRequests: number;
  consumedReadUnits: number;
  retries: number;
}

/**
 * Consistent BatchGetItems of up to 100 keys, in parallel, retrying unprocessed keys (a response
 * is at most 16 MB, so large chunk reads come back in parts) until the deadline; then a retriable
 * SluiceError.
 *
 * @example
 * await batchGetConsistent((c, d) => sendWithRetries(client, c, d), 'sluice-state', stats, keys, 'sk, n, h', deadline, (item) => seen.push(item));
 */
export async function batchGetConsistent(
  send: <T>(command: unknown, deadline: number) => Promise<T>,
  table: string,
  counters: ReadCounters,
  keys: readonly Record<string, AttributeValue>[],
  projection: string,
  deadline: number,
  found: (item: Record<string, AttributeValue>) => void,
): Promise<void> {
  const { BatchGetItemCommand } = await sdk();
  const requests: Record<string, AttributeValue>[][] = [];
  for (let i = 0; i < keys.length; i += BATCH_GET_LIMIT) requests.push(keys.slice(i, i + BATCH_GET_LIMIT));
  await Promise.all(
    requests.map(async (request) => {
      let pending = request;
      for (let attempt = 0; pending.length > 0; attempt++) {
        counters.readRequests++;
        const res = await send<{
          Responses?: Record<string, Record<string, AttributeValue>[]>;
          UnprocessedKeys?: Record<string, { Keys?: Record<string, AttributeValue>[] }>;
          ConsumedCapacity?: { CapacityUnits?: number }[];
        }>(
          new BatchGetItemCommand({
            RequestItems: { [table]: { Keys: pending, ConsistentRead: true, ProjectionExpression: projection } },
            ReturnConsumedCapacity: 'TOTAL',
          }),
          deadline,
        );
        for (const c of res.ConsumedCapacity ?? []) counters.consumedReadUnits += c.CapacityUnits ?? 0;
        for (const item of res.Responses?.[table] ?? []) found(item);
        pending = res.UnprocessedKeys?.[table]?.Keys ?? [];
        if (pending.length > 0) {
          if (Date.now() >= deadline) {
            throw new SluiceError('DynamoDB left keys unprocessed until the invocation ran out of time; Lambda will retry the batch.', {
              retriable: true,
            });
          }
          counters.retries++;
          await new Promise((r) => setTimeout(r, Math.random() * Math.min(1_000, 50 * 2 ** attempt)));
        }
      }
    }),
  );
}
