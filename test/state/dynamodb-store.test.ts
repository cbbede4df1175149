import assert from 'node:assert/strict';
import net from 'node:net';
import { before, describe, test } from 'node:test';
import { SluiceError, StateConflictError } from 'sluice';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { StateScope } from '../../framework/src/state/store.js';

const endpoint = `http://127.0.0.1:${process.env.SLUICE_DYNAMODB_PORT ?? 8000}`;

async function availability(): Promise<{ skip?: string }> {
  const open = await new Promise<boolean>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: Number(new URL(endpoint).port) });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
  if (open) return {};
  if (process.env.SLUICE_REQUIRE_INFRA) throw new Error(`DynamoDB Local is required (SLUICE_REQUIRE_INFRA) but nothing answers on ${endpoint}; run npm run infra:up.`);
  return { skip: `no DynamoDB Local on ${endpoint} (npm run infra:up starts one)` };
}

const scope: StateScope = { functionName: 'fn', topic: 'readings', partition: 3 };

describe('DynamoDBStore against DynamoDB Local', await availability(), () => {
  let store: DynamoDBStore;
  before(async () => {
    store = new DynamoDBStore({ table: `sluice-test-${process.pid}-${Date.now()}`, endpoint });
    await store.ensureTable();
    await store.ensureTable(); // idempotent
  });

  test('writes and reads back values and offsets; missing keys are absent', async () => {
    await store.write(scope, [
      { namespace: 'keyed:total', key: 'a', value: { n: 1.5, list: [1, 'x', null] }, offset: 10 },
      { namespace: 'keyed:total', key: 'b', value: 7, offset: 11 },
    ], { firstOffset: 10, lastOffset: 11 });
    const got = await store.read(scope, 'keyed:total', ['a', 'b', 'zzz']);
    assert.deepEqual(got, new Map<string, unknown>([['a', { value: { n: 1.5, list: [1, 'x', null] }, offset: 10 }], ['b', { value: 7, offset: 11 }]]));
    assert.deepEqual(await store.read({ ...scope, partition: 4 }, 'keyed:total', ['a']), new Map(), 'another partition is another scope');
  });

  test('a write older than or equal to the stored offset is fenced: StateConflictError, stored value kept', async () => {
    await store.write(scope, [{ namespace: 'keyed:fence', key: 'k', value: 'new', offset: 50 }], { firstOffset: 50, lastOffset: 50 });
    const conflictsBefore = store.stats.conditionalCheckFailures;
    await assert.rejects(
      store.write(scope, [
        { namespace: 'keyed:fence', key: 'k', value: 'stale', offset: 40 },
        { namespace: 'keyed:fence', key: 'other', value: 'fresh', offset: 40 },
      ], { firstOffset: 40, lastOffset: 40 }),
      (e: unknown) => e instanceof StateConflictError && e.retriable && /already written by a newer invocation/.test(e.message),
    );
    assert.equal(store.stats.conditionalCheckFailures - conflictsBefore, 1);
    const got = await store.read(scope, 'keyed:fence', ['k', 'other']);
    assert.deepEqual(got.get('k'), { value: 'new', offset: 50 });
    assert.deepEqual(got.get('other'), { value: 'fresh', offset: 40 }, 'items with nothing newer stored are still written');
    await assert.rejects(store.write(scope, [{ namespace: 'keyed:fence', key: 'k', value: 'same', offset: 50 }], { firstOffset: 50, lastOffset: 50 }), StateConflictError);
  });

  test('a deleted item stays as a tombstone that remembers its offset', async () => {
    await store.write(scope, [{ namespace: 'keyed:del', key: 'k', value: 1, offset: 5 }], { firstOffset: 5, lastOffset: 5 });
    await store.write(scope, [{ namespace: 'keyed:del', key: 'k', value: undefined, offset: 6 }], { firstOffset: 6, lastOffset: 6 });
    assert.deepEqual((await store.read(scope, 'keyed:del', ['k'])).get('k'), { value: undefined, offset: 6 });
    assert.deepEqual(await store.keys(scope, 'keyed:del'), [], 'tombstones are not listed as keys with a value');
  });

  test('reads more than 100 keys in parallel batches, consistently, and lists keys', async () => {
    const keys = Array.from({ length: 250 }, (_, i) => `key-${i}`);
    const readsBefore = store.stats.readRequests;
    const writesBefore = store.stats.writeRequests;
    await store.write(scope, keys.map((key, i) => ({ namespace: 'window:w', key, value: { c: i }, offset: i })), { firstOffset: 0, lastOffset: 249 });
    assert.equal(store.stats.writeRequests - writesBefore, 250, 'one write request per changed item');
    const got = await store.read(scope, 'window:w', keys);
    assert.equal(got.size, 250);
    assert.deepEqual(got.get('key-249'), { value: { c: 249 }, offset: 249 });
    assert.equal(store.stats.readRequests - readsBefore, 3, '250 keys in 3 BatchGetItem requests');
    assert.deepEqual((await store.keys(scope, 'window:w')).sort(), [...keys].sort());
  });

  test('state over the 400 KB item limit is rejected naming the function, key and state; nothing is truncated', async () => {
    const big = 'x'.repeat(400 * 1024);
    await assert.rejects(
      store.write(scope, [{ namespace: 'window:collector', key: 'busy', value: [big], offset: 1 }], { firstOffset: 1, lastOffset: 1 }),
      (e: unknown) => e instanceof SluiceError && !e.retriable && /state "window:collector" of function "fn" for key "busy" \(partition 3\) would be 400 KB, over DynamoDB's 400 KB item limit/.test(e.message),
    );
    assert.deepEqual(await store.read(scope, 'window:collector', ['busy']), new Map());
  });

  test('needs a table name, and says where to set it', () => {
    const saved = process.env.SLUICE_STATE_TABLE;
    delete process.env.SLUICE_STATE_TABLE;
    try {
      assert.throws(() => new DynamoDBStore({ endpoint }), /needs a table name: set SLUICE_STATE_TABLE/);
    } finally {
      if (saved !== undefined) process.env.SLUICE_STATE_TABLE = saved;
    }
  });
});

describe('expired state', await availability(), () => {
  test('an item past its TTL reads as absent but keeps its offset (DynamoDB deletes lazily), in both stores', async () => {
    const { MemoryStore } = await import('sluice');
    const ddb = new DynamoDBStore({ table: `sluice-test-ttl-${process.pid}-${Date.now()}`, endpoint });
    await ddb.ensureTable();
    for (const store of [ddb, new MemoryStore()]) {
      await store.write(scope, [
        { namespace: 'keyed:seen', key: 'old', value: true, offset: 3, expiresAt: Date.now() - 5_000 },
        { namespace: 'keyed:seen', key: 'new', value: true, offset: 4, expiresAt: Date.now() + 60_000 },
      ], { firstOffset: 3, lastOffset: 4 });
      const got = await store.read(scope, 'keyed:seen', ['old', 'new']);
      assert.deepEqual(got.get('old'), { value: undefined, offset: 3 }, store.kind);
      assert.deepEqual(got.get('new'), { value: true, offset: 4 }, store.kind);
    }
  });
});
