import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type AttributeValue, DynamoDBClient, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { SluiceError, StateConflictError } from 'sluice';
import { MemoryStore, type StoredItem } from 'sluice/state';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { StateScope, StateStore } from '../../framework/src/state/store.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const endpoint = dynamodbEndpoint;

let rawClient: DynamoDBClient | undefined;
/** A client of its own, for looking at the table as it is. */
function client(): DynamoDBClient {
  return (rawClient ??= new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1,
  }));
}

/** Every item of a namespace of `scope`, heads and chunks, as stored. */
async function itemsOf(table: string, namespace: string): Promise<Record<string, AttributeValue>[]> {
  const out: Record<string, AttributeValue>[] = [];
  let start: Record<string, AttributeValue> | undefined;
  do {
    const res = await client().send(
      new QueryCommand({
        TableName: table,
        ConsistentRead: true,
        KeyConditionExpression: 'pk = :pk',
        ExpressionAttributeValues: { ':pk': { S: `fn#readings#3#${namespace}` } },
        ExclusiveStartKey: start,
      }),
    );
    out.push(...(res.Items ?? []));
    start = res.LastEvaluatedKey;
  } while (start);
  return out;
}

/** A client that crashes (as a killed invocation would) on its `n`th PutItem, counting from 1. */
function failingPut(n: number): DynamoDBClient {
  let puts = 0;
  return {
    send(command: unknown) {
      if (command instanceof PutItemCommand && ++puts === n) return Promise.reject(new Error(`injected crash at PutItem ${n}`));
      return client().send(command as never);
    },
  } as unknown as DynamoDBClient;
}

const scope: StateScope = { functionName: 'fn', topic: 'readings', partition: 3 };

/** What a read returned, without the store's opaque revision. */
const plain = (items: Map<string, StoredItem>) => new Map([...items].map(([k, { value, offset }]) => [k, { value, offset }]));

async function readOne(store: StateStore, namespace: string, key: string, before?: number) {
  const item = (await store.read(scope, namespace, [key], before === undefined ? {} : { before })).get(key);
  return item && { value: item.value, offset: item.offset };
}

/** Writes one item as a batch [first, offset] would: read as of `first`, then written back. */
async function writeOne(store: StateStore, namespace: string, key: string, value: unknown, offset: number, first = offset) {
  const read = (await store.read(scope, namespace, [key], { before: first })).get(key);
  return store.write(scope, [{ namespace, key, value, offset, ...(read ? { revision: read.revision } : {}) }], {
    firstOffset: first,
    lastOffset: offset,
  });
}

/** The same contract, for both stores: what the fault suite relies on. */
function contract(name: string, make: () => Promise<StateStore>, opts: { skip?: string } = {}) {
  describe(`${name}: the state store contract`, opts, () => {
    let store: StateStore;
    before(async () => {
      store = await make();
    });

    test('writes and reads back values and offsets; missing keys are absent; scopes are apart', async () => {
      await store.write(
        scope,
        [
          { namespace: 'keyed:total', key: 'a', value: { n: 1.5, list: [1, 'x', null] }, offset: 10 },
          { namespace: 'keyed:total', key: 'b', value: 7, offset: 11 },
          { namespace: 'keyed:total', key: '', value: 'empty key', offset: 11 },
        ],
        { firstOffset: 10, lastOffset: 11 },
      );
      const got = await store.read(scope, 'keyed:total', ['a', 'b', '', 'zzz'], { before: 12 });
      assert.deepEqual(
        plain(got),
        new Map<string, unknown>([
          ['a', { value: { n: 1.5, list: [1, 'x', null] }, offset: 10 }],
          ['b', { value: 7, offset: 11 }],
          ['', { value: 'empty key', offset: 11 }],
        ]),
      );
      assert.deepEqual(await store.read({ ...scope, partition: 4 }, 'keyed:total', ['a']), new Map(), 'another partition is another scope');
    });

    test('a batch reads each item as it was just before its first offset', async () => {
      await writeOne(store, 'keyed:asof', 'k', 'v10', 10);
      await writeOne(store, 'keyed:asof', 'k', 'v20', 20, 15);
      assert.deepEqual(await readOne(store, 'keyed:asof', 'k', 15), { value: 'v10', offset: 10 }, 'a retry of the batch from 15');
      assert.deepEqual(await readOne(store, 'keyed:asof', 'k', 21), { value: 'v20', offset: 20 }, 'the next batch');
      assert.deepEqual(await readOne(store, 'keyed:asof', 'k'), { value: 'v20', offset: 20 }, 'without a batch: the newest');
      // The batch from 21 no longer needs the version from 10.
      await writeOne(store, 'keyed:asof', 'k', 'v30', 30, 21);
      await assert.rejects(
        readOne(store, 'keyed:asof', 'k', 12),
        (e: unknown) =>
          e instanceof StateConflictError &&
          e.retriable &&
          /state "keyed:asof" of function "fn" for key "k" \(partition 3\) holds only versions from offset 20 on, but this batch starts at offset 12/.test(
            e.message,
          ),
      );
    });

    test('a retry keeps the version another attempt of its batch wrote, for the batch after a shorter retry', async () => {
      await writeOne(store, 'keyed:retry', 'k', 'through 9', 9, 0); // attempt 1 of [0, 9], then it died
      await writeOne(store, 'keyed:retry', 'k', 'through 4', 4, 0); // attempt 2, [0, 4], committed
      assert.deepEqual(await readOne(store, 'keyed:retry', 'k', 0), { value: undefined, offset: -1 }, 'attempt 3 would start from nothing');
      assert.deepEqual(await readOne(store, 'keyed:retry', 'k', 5), { value: 'through 4', offset: 4 });
      assert.deepEqual(await readOne(store, 'keyed:retry', 'k', 10), { value: 'through 9', offset: 9 });
    });

    test('an item changed since it was read is not overwritten: StateConflictError; the other items are written', async () => {
      await writeOne(store, 'keyed:fence', 'k', 'first', 50);
      const stale = (await store.read(scope, 'keyed:fence', ['k'], { before: 60 })).get('k')!;
      await writeOne(store, 'keyed:fence', 'k', 'newer', 65, 60);
      await assert.rejects(
        store.write(
          scope,
          [
            { namespace: 'keyed:fence', key: 'k', value: 'stale', offset: 62, revision: stale.revision },
            { namespace: 'keyed:fence', key: 'other', value: 'fresh', offset: 62 },
          ],
          { firstOffset: 60, lastOffset: 62 },
        ),
        (e: unknown) =>
          e instanceof StateConflictError &&
          e.retriable &&
          /1 state item\(s\) of function "fn", partition 3, were changed by another invocation since this one read them/.test(e.message),
      );
      assert.deepEqual(await readOne(store, 'keyed:fence', 'k'), { value: 'newer', offset: 65 });
      assert.deepEqual(await readOne(store, 'keyed:fence', 'other'), { value: 'fresh', offset: 62 });
      await assert.rejects(
        store.write(scope, [{ namespace: 'keyed:fence', key: 'other', value: 'blind', offset: 70 }], { firstOffset: 70, lastOffset: 70 }),
        StateConflictError,
        'a write that did not read an existing item is fenced too',
      );
    });

    test('a delete keeps the value before it for retries, and the key is no longer listed', async () => {
      await writeOne(store, 'keyed:del', 'k', 1, 5);
      await writeOne(store, 'keyed:del', 'k', undefined, 6);
      assert.deepEqual(await readOne(store, 'keyed:del', 'k'), { value: undefined, offset: 6 });
      assert.deepEqual(await readOne(store, 'keyed:del', 'k', 6), { value: 1, offset: 5 });
      assert.deepEqual(await store.keys!(scope, 'keyed:del'), []);
    });

    test('an item past its TTL reads as absent but keeps its offset (DynamoDB deletes lazily)', async () => {
      await store.write(
        scope,
        [
          { namespace: 'keyed:seen', key: 'old', value: true, offset: 3, expiresAt: Date.now() - 5_000 },
          { namespace: 'keyed:seen', key: 'new', value: true, offset: 4, expiresAt: Date.now() + 60_000 },
        ],
        { firstOffset: 3, lastOffset: 4 },
      );
      assert.deepEqual(await readOne(store, 'keyed:seen', 'old', 5), { value: undefined, offset: 3 });
      assert.deepEqual(await readOne(store, 'keyed:seen', 'new', 5), { value: true, offset: 4 });
      assert.deepEqual(await store.keys!(scope, 'keyed:seen'), ['new']);
    });
  });
}

contract('MemoryStore', async () => new MemoryStore());

const dynamo = await dynamodbAvailability();
contract(
  'DynamoDBStore on DynamoDB Local',
  async () => {
    const store = new DynamoDBStore({ table: `sluice-test-${process.pid}-${Date.now()}`, endpoint });
    await store.ensureTable();
    await store.ensureTable(); // idempotent
    return store;
  },
  dynamo,
);

describe('DynamoDBStore against DynamoDB Local', dynamo, () => {
  let store: DynamoDBStore;
  before(async () => {
    store = new DynamoDBStore({ table: `sluice-test-${process.pid}-${Date.now()}-d`, endpoint });
    await store.ensureTable();
  });

  test('reads more than 100 keys in parallel batches, consistently; one write request per item; counts conditional-check failures', async () => {
    // The item layout (one item per key); pages are tested below.
    const store = new DynamoDBStore({ table: `sluice-test-${process.pid}-${Date.now()}-i`, endpoint, layout: 'items' });
    await store.ensureTable();
    const keys = Array.from({ length: 250 }, (_, i) => `key-${i}`);
    const readsBefore = store.stats.readRequests;
    const writesBefore = store.stats.writeRequests;
    await store.write(
      scope,
      keys.map((key, i) => ({ namespace: 'window:w', key, value: { c: i }, offset: i })),
      { firstOffset: 0, lastOffset: 249 },
    );
    assert.equal(store.stats.writeRequests - writesBefore, 250, 'one write request per changed item');
    const got = await store.read(scope, 'window:w', keys, { before: 250 });
    assert.equal(got.size, 250);
    assert.deepEqual(plain(got).get('key-249'), { value: { c: 249 }, offset: 249 });
    assert.equal(store.stats.readRequests - readsBefore, 3, '250 keys in 3 BatchGetItem requests');
    assert.deepEqual((await store.keys(scope, 'window:w')).sort(), [...keys].sort());
    const failuresBefore = store.stats.conditionalCheckFailures;
    await assert.rejects(
      store.write(scope, [{ namespace: 'window:w', key: 'key-1', value: 0, offset: 300 }], { firstOffset: 300, lastOffset: 300 }),
      StateConflictError,
    );
    assert.equal(store.stats.conditionalCheckFailures - failuresBefore, 1);
  });

  test('a value over 64 KB is split over chunk items, written before its head; small values stay inline', async () => {
    // The item layout's heads (`k:`); in pages, values over 1 KB are chunked (tested below).
    const store = new DynamoDBStore({ table: `sluice-test-${process.pid}-${Date.now()}-h`, endpoint, layout: 'items' });
    await store.ensureTable();
    const big = { list: Array.from({ length: 1_200 }, (_, i) => `${i}`.padStart(1_000, 'é')) }; // about 2.4 MB of JSON
    await store.write(
      scope,
      [
        { namespace: 'window:collector', key: 'busy', value: big, offset: 1 },
        { namespace: 'window:collector', key: 'small', value: [1], offset: 1 },
      ],
      { firstOffset: 1, lastOffset: 1 },
    );
    const items = await itemsOf(store.table, 'window:collector');
    const bytes = Buffer.byteLength(JSON.stringify(big));
    const chunks = items.filter((i) => i.sk.S!.startsWith('c:'));
    assert.equal(chunks.length, Math.ceil(bytes / (384 * 1024)), `${bytes} bytes in chunks of 384 KB`);
    const head = items.find((i) => i.sk.S === 'k:busy')!;
    const version = head.h.L!.at(-1)!;
    assert.deepEqual(Object.keys(version.M!).sort(), ['b', 'c', 'o', 't', 'w']);
    assert.equal(version.M!.b.N, String(bytes));
    assert.ok(Number(version.M!.t.N) >= Number(head.ttl.N) + 3 * 86_400 - 1, 'chunks outlive the head by three days');
    for (const c of chunks) assert.equal(c.ttl.N, version.M!.t.N);
    assert.deepEqual(items.find((i) => i.sk.S === 'k:small')!.h.L!.at(-1)!.M!.v, { S: '[1]' }, 'inline, as before');
    // Another store instance (a new container) reads it back exact, and keys() lists heads only.
    const fresh = new DynamoDBStore({ table: store.table, endpoint, layout: 'items' });
    assert.deepEqual(await readOne(fresh, 'window:collector', 'busy', 2), { value: big, offset: 1 });
    assert.deepEqual((await fresh.keys(scope, 'window:collector')).sort(), ['busy', 'small']);
    // The next batch keeps the version it read for retries, by reference: its chunks are not written again.
    const writesBefore = store.stats.writeRequests;
    await writeOne(store, 'window:collector', 'busy', { ...big, more: 1 }, 5, 2);
    assert.equal(store.stats.writeRequests - writesBefore, chunks.length + 1, "the new version's chunks and the head");
    assert.deepEqual(await readOne(fresh, 'window:collector', 'busy', 2), { value: big, offset: 1 }, 'a retry of the batch from 2');
    assert.deepEqual(await readOne(fresh, 'window:collector', 'busy', 6), { value: { ...big, more: 1 }, offset: 5 });
  });

  test('a crash between chunk writes and the head leaves the item as it was; the retry writes it whole', async () => {
    const value = ['x'.repeat(1_000_000)];
    await writeOne(store, 'window:crash', 'k', ['before'], 1);
    for (const failAt of [1, 3, 4]) {
      // 1,000,000 bytes: 3 chunks, then the head (the 4th put).
      const crashing = new DynamoDBStore({ table: store.table, endpoint, client: failingPut(failAt) });
      await assert.rejects(writeOne(crashing, 'window:crash', 'k', value, 9, 2), /injected crash at PutItem/);
      assert.deepEqual(await readOne(store, 'window:crash', 'k', 2), { value: ['before'], offset: 1 }, `crash at put ${failAt}`);
      assert.deepEqual(await readOne(store, 'window:crash', 'k'), { value: ['before'], offset: 1 }, 'nothing references the chunks');
    }
    await writeOne(store, 'window:crash', 'k', value, 9, 2);
    assert.deepEqual(await readOne(store, 'window:crash', 'k', 10), { value, offset: 9 });
    const chunks = (await itemsOf(store.table, 'window:crash')).filter((i) => i.sk.S!.startsWith('c:'));
    // Chunks are put in parallel: the other two of a crashed attempt land anyway. Orphans are left to TTL.
    assert.equal(chunks.length, 2 + 2 + 3 + 3, 'orphans of the three crashed attempts, and the chunks of the one that committed');
  });

  test('chunks that are gone before their expiry fail the read as a conflict (retried)', async () => {
    await writeOne(store, 'window:gone', 'k', ['y'.repeat(100_000)], 1);
    const { DeleteItemCommand } = await import('@aws-sdk/client-dynamodb');
    const chunk = (await itemsOf(store.table, 'window:gone')).find((i) => i.sk.S!.startsWith('c:'))!;
    await client().send(new DeleteItemCommand({ TableName: store.table, Key: { pk: chunk.pk, sk: chunk.sk } }));
    await assert.rejects(
      readOne(store, 'window:gone', 'k', 2),
      (e: unknown) =>
        e instanceof StateConflictError &&
        e.retriable &&
        /^state "window:gone" of function "fn" for key "k" \(partition 3\): 1 chunk item\(s\) of its version at offset 1 are missing/.test(
          e.message,
        ),
    );
  });

  test('a value over the cap is rejected naming the function, key, state and cap; nothing is truncated or written', async () => {
    const capped = new DynamoDBStore({ table: store.table, endpoint, maxValueBytes: 200 * 1024 });
    await writeOne(capped, 'window:capped', 'growing', ['x'.repeat(150 * 1024)], 1);
    await assert.rejects(
      writeOne(capped, 'window:capped', 'growing', ['x'.repeat(250 * 1024)], 2),
      (e: unknown) =>
        e instanceof SluiceError &&
        !e.retriable &&
        /^state "window:capped" of function "fn" for key "growing" \(partition 3\) would hold 256004 bytes, over the state value cap .*\(204800 bytes\)/.test(
          e.message,
        ),
    );
    assert.deepEqual((await readOne(store, 'window:capped', 'growing'))?.offset, 1);
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
