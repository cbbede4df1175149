import { readEnv } from '../env.js';
import { SluiceError, errorText } from '../errors.js';
import { DynamoDBStore } from '../state/dynamodb-store.js';
import { MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';

/** The `--state` values of `sluice dev`. */
export const STATE_KINDS = ['memory', 'dynamodb'] as const;

/**
 * The store `sluice dev --state <kind>` runs with: in memory (default), or DynamoDB (Local) at
 * `--dynamodb-endpoint` (default SLUICE_DYNAMODB_ENDPOINT or http://127.0.0.1:8000), table
 * SLUICE_STATE_TABLE or `sluice-<service>-state`, created if missing.
 *
 * @example
 * const store = await devStateStore('dynamodb', undefined, 'sluice-examples');
 */
export async function devStateStore(kind: string | undefined, endpoint: string | undefined, service: string): Promise<StateStore> {
  if (kind === undefined || kind === 'memory') {
    if (endpoint !== undefined) throw new SluiceError('--dynamodb-endpoint needs --state dynamodb.');
    return new MemoryStore();
  }
  if (kind !== 'dynamodb') throw new SluiceError(`--state must be one of ${STATE_KINDS.join(', ')}; received ${JSON.stringify(kind)}.`);
  const url = endpoint ?? readEnv('dynamodbEndpoint') ?? 'http://127.0.0.1:8000';
  if (!/^https?:\/\/[^\s/]+/.test(url))
    throw new SluiceError(`--dynamodb-endpoint must be a URL such as http://127.0.0.1:8000; received ${JSON.stringify(url)}.`);
  const store = new DynamoDBStore({ table: readEnv('stateTable') ?? `sluice-${service}-state`, endpoint: url });
  try {
    await store.ensureTable();
  } catch (e) {
    throw new SluiceError(
      `could not reach DynamoDB at ${url} to create table ${store.table}: ${errorText(e)}. Is DynamoDB Local running (npm run infra:up)?`,
      { cause: e },
    );
  }
  return store;
}
