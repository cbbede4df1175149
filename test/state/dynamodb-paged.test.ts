import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type AttributeValue, DynamoDBClient, QueryCommand, TransactWriteItemsCommand } from '@aws-sdk/client-dynamodb';
import { SluiceError, StateConflictError } from 'sluice';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { ItemChange, StateScope } from '../../framework/src/state/store.js';
import { dynamodbAvailability, dynamodbEndpoint as endpoint } from '../support/dynamodb.js';

const dynamo = await dynamodbAvailability();
const scope: StateScope = { functionName: 'fn', topic: 'pages', partition: 0 };
const raw = new DynamoDBClient({
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  maxAttempts: 1,
});
let tables = 0;

async function newStore(opts: Partial<ConstructorParameters<typeof DynamoDBStore>[0]> = {}): Promise<DynamoDBStore> {
  const store = new DynamoDBStore({ table: `sluice-paged-${process.pid}-${Date.now()}-${tables++}`, endpoint, ...opts });
  await store.ensureTable();
  return store;
}

/** Another container on the same table: its own view of the pages. */
const reopen = (store: DynamoDBStore, opts: Partial<ConstructorParameters<typeof DynamoDBStore>[0]> = {}) =>
  new DynamoDBStore({ table: store.table, endpoint, ...opts });

/** The sort keys of a namespace's items, by kind (`p` pages, `x` markers, `d` the directory, `k` heads). */
async function itemsOf(store: DynamoDBStore, namespace: string): Promise<Record<string, AttributeValue>[]> {
  const res = await raw.send(
    new QueryCommand({
      TableName: store.table,
      ConsistentRead: true,
      KeyConditionExpression: 'pk = :pk',
      ExpressionAttributeValues: { ':pk': { S: `${scope.functionName}#${scope.topic}#${scope.partition}#${namespace}` } },
    }),
  );
  return res.Items ?? [];
}

/** A batch over `keys` from offset `first`: reads them before `first`, writes value f(key, old) at offsets first, first+1, …. */
async function batch(store: DynamoDBStore, ns: string, keys: readonly string[], first: number, f: (key: string, old: unknown) => unknown) {
  const read = await store.read(scope, ns, keys, { before: first });
  const changes: ItemChange[] = keys.map((key, i) => {
    const item = read.get(key);
    return { namespace: ns, key, value: f(key, item?.value), offset: first + i, ...(item ? { revision: item.revision } : {}) };
  });
  return store.write(scope, changes, { firstOffset: first, lastOffset: first + keys.length - 1 });
}

const sensors = (n: number) => Array.from({ length: n }, (_, i) => `sensor-${i}`);
const state = (key: string, old: unknown) => ({
  c: 1_767_225_604_475,
  w: [[1_767_225_600_000, 1_767_225_610_000, [((old as { n?: number })?.n ?? 0) + key.length]]],
  n: 1,
});

describe('DynamoDBStore pages on DynamoDB Local', dynamo, () => {
  let store: DynamoDBStore;
  before(async () => {
    store = await newStore();
  });

  test('a dense batch writes about its compressed bytes in write units; a sparse one no more than one unit per key', async () => {
    const ns = 'window:dense';
    const keys = sensors(1_000);
    await batch(store, ns, keys, 0, state);
    const units = () => store.stats.consumedWriteUnits;
    let before = units();
    const reads = store.stats.consumedReadUnits;
    await batch(store, ns, keys, 1_000, state);
    const dense = units() - before;
    assert.ok(dense <= 100, `1,000 keys changed: ${dense} write units (one item per key: 1,000)`);
    assert.ok(store.stats.consumedReadUnits - reads <= 100, `read units: ${store.stats.consumedReadUnits - reads}`);
    const pages = (await itemsOf(store, ns)).filter((i) => i.sk.S!.startsWith('p:') && !i.x);
    assert.ok(pages.length >= 10, `${pages.length} pages`);
    for (const p of pages) {
      const bytes = (p.z?.B?.length ?? Buffer.byteLength(p.j?.S ?? '')) + Buffer.byteLength(p.pk.S!) + Buffer.byteLength(p.sk.S!) + 30;
      assert.ok(bytes <= 1_024, `page ${p.sk.S}: ${bytes} bytes, within one write unit`);
    }
    before = units();
    await batch(
      store,
      ns,
      ['sensor-3', 'sensor-300', 'sensor-555', 'sensor-7', 'sensor-999', 'sensor-12', 'sensor-45', 'sensor-678', 'sensor-81', 'sensor-400'],
      2_000,
      state,
    );
    assert.ok(units() - before <= 10, `10 keys changed: ${units() - before} write units`);
    // Another container reads every key back exact, and lists them.
    const fresh = reopen(store);
    const got = await fresh.read(scope, ns, keys, { before: 5_000 });
    assert.equal(got.size, 1_000);
    assert.deepEqual(got.get('sensor-3')?.offset, 2_000);
    assert.deepEqual(got.get('sensor-4')?.offset, 1_004);
    assert.deepEqual((await fresh.keys(scope, ns)).sort(), [...keys].sort());
  });

  test('a container whose view predates splits descends through the markers; the directory saves the splits', async () => {
    const ns = 'window:stale-view';
    const other = reopen(store);
    await batch(store, ns, ['a'], 0, () => 'first');
    // The other container reads now: one page, no directory.
    const early = (await other.read(scope, ns, ['a'])).get('a')!;
    assert.equal(early.value, 'first');
    const keys = sensors(400);
    await batch(store, ns, keys, 1, state);
    const items = await itemsOf(store, ns);
    assert.ok(items.some((i) => i.x) && items.some((i) => i.sk.S === 'd'), 'split pages are markers; a directory was written');
    const readsBefore = other.stats.readRequests;
    const got = await other.read(scope, ns, ['a', ...keys], { before: 1_000 });
    assert.equal(got.size, 401);
    assert.equal(got.get('a')?.value, 'first');
    assert.ok(other.stats.readRequests - readsBefore >= 2, 'it read the markers, then the pages below them');
    // A third container starts from the directory and reads the pages in one round.
    const third = reopen(store);
    await third.read(scope, ns, ['a'], { before: 1_000 });
    const r = third.stats.readRequests;
    await third.read(scope, ns, keys, { before: 1_000 });
    assert.ok(third.stats.readRequests - r <= Math.ceil(keys.length / 100) + 1, `${third.stats.readRequests - r} read requests`);
    // A write from a read before the splits lands where the key lives now: the key itself did not change.
    await other.write(scope, [{ namespace: ns, key: 'a', value: 'second', offset: 1_000, revision: early.revision }], {
      firstOffset: 1_000,
      lastOffset: 1_000,
    });
    assert.equal((await third.read(scope, ns, ['a'])).get('a')?.value, 'second');
  });

  test('compare-and-set stays per key: a page changed by another key is read again; a changed key conflicts', async () => {
    const ns = 'window:cas';
    await batch(store, ns, ['x', 'y', 'z'], 0, (k) => `${k}0`);
    const a = await store.read(scope, ns, ['x', 'y'], { before: 10 });
    const b = await reopen(store).read(scope, ns, ['x', 'y'], { before: 10 });
    // A writes x (the page's count moves on).
    await store.write(scope, [{ namespace: ns, key: 'x', value: 'x1', offset: 10, revision: a.get('x')!.revision }], {
      firstOffset: 10,
      lastOffset: 10,
    });
    // B writes y from its read of the page before A's write: y itself did not change, so it lands.
    const c = store.stats.conditionalCheckFailures;
    await store.write(scope, [{ namespace: ns, key: 'y', value: 'y1', offset: 11, revision: b.get('y')!.revision }], {
      firstOffset: 11,
      lastOffset: 11,
    });
    assert.ok(store.stats.conditionalCheckFailures > c, 'the page condition failed first');
    // B writing x from before A's write is stale.
    await assert.rejects(
      store.write(scope, [{ namespace: ns, key: 'x', value: 'stale', offset: 11, revision: b.get('x')!.revision }], {
        firstOffset: 11,
        lastOffset: 11,
      }),
      StateConflictError,
    );
    const now = await store.read(scope, ns, ['x', 'y', 'z']);
    assert.deepEqual([...now].map(([k, v]) => [k, v.value]).sort(), [
      ['x', 'x1'],
      ['y', 'y1'],
      ['z', 'z0'],
    ]);
  });

  test('a crash right after a split leaves state as before; the retry writes it', async () => {
    const ns = 'window:split-crash';
    const keys = sensors(300);
    await batch(store, ns, keys.slice(0, 20), 0, state);
    let crashed = false;
    const dying = reopen(store, {
      client: {
        async send(command: unknown) {
          if (crashed) throw new Error('injected crash: the process is gone');
          const res = await raw.send(command as never);
          if (command instanceof TransactWriteItemsCommand) crashed = true;
          return res;
        },
      } as unknown as DynamoDBClient,
    });
    await assert.rejects(
      batch(dying, ns, keys, 100, () => 'new'),
      /injected crash/,
    );
    assert.ok(crashed, 'the split landed');
    const after = await reopen(store).read(scope, ns, keys, { before: 100 });
    assert.equal(after.size, 20, 'only the keys written before: the batch wrote nothing but the split');
    assert.ok([...after.values()].every((i) => i.offset < 20));
    await batch(reopen(store), ns, keys, 100, () => 'new');
    const done = await reopen(store).read(scope, ns, keys, { before: 1_000 });
    assert.equal(done.size, 300);
    assert.ok([...done.values()].every((i) => i.value === 'new'));
  });

  test('a key whose every version expired reads as absent, and a rewrite of its page drops it', async () => {
    const short = await newStore({ retentionMs: 1 });
    const ns = 'window:expiring';
    await batch(short, ns, ['old', 'other'], 0, () => 1);
    await new Promise((r) => setTimeout(r, 2_100));
    assert.equal((await short.read(scope, ns, ['old'])).size, 0);
    await batch(short, ns, ['other'], 5, () => 2);
    const page = (await itemsOf(short, ns)).find((i) => i.sk.S!.startsWith('p:'))!;
    assert.ok(!JSON.stringify(page).includes('"old'), 'dropped on rewrite');
  });

  test('state left in the item layout is not silently ignored: the read fails retriably, saying how to upgrade', async () => {
    const ns = 'keyed:upgraded';
    await batch(reopen(store, { layout: 'items' }), ns, ['k'], 0, () => 1);
    await assert.rejects(
      store.read(scope, ns, ['k']),
      (e: unknown) =>
        e instanceof SluiceError &&
        e.retriable &&
        /item layout of Sluice before 0\.2 .* see "Upgrading" in docs\/state\.md/.test(e.message),
    );
  });
});
