import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SluiceError } from 'sluice';
import { Transaction } from '../../framework/src/state/transaction.js';
import {
  type BatchBounds,
  type ItemChange,
  MemoryStore,
  type StateScope,
  type StateStore,
  type StoredItem,
  type WriteStats,
} from 'sluice/state';
import type { StoreCallOptions } from '../../framework/src/state/store.js';

/** What a read returned, without the store's opaque revision. */
const plain = (items: Map<string, StoredItem>) => new Map([...items].map(([k, { value, offset }]) => [k, { value, offset }]));

const scope: StateScope = { functionName: 'fn', topic: 'readings', partition: 3 };

/** A MemoryStore that records every call it gets. */
class RecordingStore implements StateStore {
  readonly kind = 'recording';
  readonly durable = false;
  readonly inner = new MemoryStore();
  readonly readCalls: { namespace: string; keys: string[] }[] = [];
  readonly writeCalls: { changes: ItemChange[]; bounds: BatchBounds }[] = [];

  async read(s: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>> {
    this.readCalls.push({ namespace, keys: [...keys] });
    return this.inner.read(s, namespace, keys, opts);
  }

  async write(s: StateScope, changes: readonly ItemChange[], bounds: BatchBounds): Promise<WriteStats> {
    this.writeCalls.push({ changes: [...changes], bounds });
    return this.inner.write(s, changes, bounds);
  }
}

/** Stores items through a committed transaction, as an earlier batch would have. */
async function seed(store: StateStore, namespace: string, items: Record<string, [value: unknown, offset: number]>) {
  const tx = new Transaction(store, scope);
  await tx.load(namespace, Object.keys(items));
  const ns = tx.namespace(namespace);
  for (const [key, [value, offset]] of Object.entries(items)) ns.set(key, value, offset);
  await tx.commit({ firstOffset: 0, lastOffset: 0 });
}

describe('Transaction.load', () => {
  test('reads once per namespace, and only the keys it has not seen yet', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a', 'b']);
    await tx.load('keyed:total', ['a', 'c', 'b', 'd']);
    await tx.load('keyed:total', ['d', 'a']);
    await tx.load('keyed:seen', ['a']);
    assert.deepEqual(store.readCalls, [
      { namespace: 'keyed:total', keys: ['a', 'b'] },
      { namespace: 'keyed:total', keys: ['c', 'd'] },
      { namespace: 'keyed:seen', keys: ['a'] },
    ]);
  });

  test('does not call the store for an empty key set', async () => {
    const store = new RecordingStore();
    await new Transaction(store, scope).load('keyed:total', []);
    assert.equal(store.readCalls.length, 0);
  });

  test('serves stored values, and undefined for keys the store does not have', async () => {
    const store = new RecordingStore();
    await seed(store, 'keyed:total', { a: [41, 7] });
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a', 'b']);
    const ns = tx.namespace('keyed:total');
    assert.equal(ns.get('a'), 41);
    assert.equal(ns.get('b'), undefined);
    assert.equal(ns.has('b'), true);
  });

  test('keeps what this transaction wrote when a key is loaded again (read-your-writes)', async () => {
    const store = new RecordingStore();
    await seed(store, 'keyed:total', { a: [1, 1] });
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').set('a', 2, 5);
    await tx.load('keyed:total', ['a']);
    assert.equal(tx.namespace('keyed:total').get('a'), 2);
  });
});

describe('NamespaceView before load', () => {
  for (const [op, call] of [
    ['get', (ns: ReturnType<Transaction['namespace']>) => ns.get('sensor-9')],
    ['set', (ns: ReturnType<Transaction['namespace']>) => ns.set('sensor-9', 1, 1)],
    ['delete', (ns: ReturnType<Transaction['namespace']>) => ns.delete('sensor-9', 1)],
    ['isApplied', (ns: ReturnType<Transaction['namespace']>) => ns.isApplied('sensor-9', 1)],
  ] as const) {
    test(`${op} throws a SluiceError naming the key and the namespace`, () => {
      const tx = new Transaction(new MemoryStore(), scope);
      assert.throws(
        () => call(tx.namespace('keyed:total')),
        (e: unknown) => {
          assert.ok(e instanceof SluiceError);
          assert.equal(e.name, 'SluiceError');
          assert.match(e.message, /state key "sensor-9" of "keyed:total" was used before it was loaded/);
          return true;
        },
      );
    });
  }
});

describe('NamespaceView.modify', () => {
  test('creates an absent item with init and marks it changed at the offset', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('window:w', ['a']);
    const ns = tx.namespace('window:w');
    const live = ns.modify('a', 4, () => ({ n: 0 }));
    assert.deepEqual(live, { n: 0 });
    live!.n = 1;
    assert.equal(ns.get('a'), live, 'the value returned is the stored one, not a copy');
    await tx.commit({ firstOffset: 4, lastOffset: 4 });
    assert.deepEqual(store.writeCalls[0].changes, [{ namespace: 'window:w', key: 'a', value: { n: 1 }, offset: 4 }]);
  });

  test('returns the stored value without calling init, and keeps the highest offset', async () => {
    const store = new RecordingStore();
    await seed(store, 'window:w', { a: [{ n: 1 }, 1] });
    const tx = new Transaction(store, scope);
    await tx.load('window:w', ['a']);
    const ns = tx.namespace('window:w');
    const init = (): { n: number } => assert.fail('init must not run for a stored item');
    ns.modify('a', 9, init)!.n = 2;
    ns.modify('a', 5, init)!.n = 3;
    await tx.commit({ firstOffset: 5, lastOffset: 9 });
    assert.deepEqual(
      store.writeCalls.at(-1)!.changes.map(({ value, offset }) => ({ value, offset })),
      [{ value: { n: 3 }, offset: 9 }],
    );
  });

  test('returns undefined for a replayed record and marks nothing', async () => {
    const store = new RecordingStore();
    await seed(store, 'window:w', { a: [{ n: 1 }, 7] });
    store.writeCalls.length = 0;
    const tx = new Transaction(store, scope);
    await tx.load('window:w', ['a']);
    const ns = tx.namespace('window:w');
    assert.equal(
      ns.modify('a', 6, () => ({ n: 0 })),
      undefined,
    );
    assert.equal(
      ns.modify('a', 7, () => ({ n: 0 })),
      undefined,
    );
    assert.deepEqual(ns.get('a'), { n: 1 });
    assert.deepEqual(await tx.commit({ firstOffset: 6, lastOffset: 7 }), { writeRequests: 0 });
    assert.equal(store.writeCalls.length, 0);
  });

  test('throws a SluiceError for a key that was not loaded', () => {
    const tx = new Transaction(new MemoryStore(), scope);
    assert.throws(
      () => tx.namespace('window:w').modify('sensor-9', 1, () => 0),
      (e: unknown) => {
        assert.ok(e instanceof SluiceError);
        assert.match(e.message, /state key "sensor-9" of "window:w" was used before it was loaded/);
        return true;
      },
    );
  });
});

describe('Transaction.commit', () => {
  test('writes only the dirty items, in one store call, with the batch bounds', async () => {
    const store = new RecordingStore();
    await seed(store, 'keyed:total', { a: [1, 1], b: [2, 2], c: [3, 3] });
    store.writeCalls.length = 0;

    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a', 'b', 'c']);
    await tx.load('keyed:seen', ['x']);
    tx.namespace('keyed:total').set('a', 10, 20);
    tx.namespace('keyed:total').delete('b', 21);
    tx.namespace('keyed:seen').set('x', true, 22, 99_000);
    const stats = await tx.commit({ firstOffset: 20, lastOffset: 22 });

    assert.equal(store.writeCalls.length, 1);
    assert.deepEqual(store.writeCalls[0].bounds, { firstOffset: 20, lastOffset: 22 });
    const [ra, rb, rx] = store.writeCalls[0].changes.map((c) => c.revision);
    assert.ok(ra !== undefined && rb !== undefined, 'items that were stored carry the revision they were read with');
    assert.equal(rx, undefined, 'an item that was absent carries none');
    assert.deepEqual(store.writeCalls[0].changes, [
      { namespace: 'keyed:total', key: 'a', value: 10, offset: 20, revision: ra },
      { namespace: 'keyed:total', key: 'b', value: undefined, offset: 21, revision: rb },
      { namespace: 'keyed:seen', key: 'x', value: true, offset: 22, expiresAt: 99_000 },
    ]);
    assert.deepEqual(stats, { writeRequests: 3, conflicts: 0 });
  });

  test('does not call the store when nothing changed', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').get('a');
    assert.deepEqual(await tx.commit({ firstOffset: 0, lastOffset: 0 }), { writeRequests: 0 });
    assert.equal(store.writeCalls.length, 0);
  });

  test('writes an item mutated in place once it is touched', async () => {
    const store = new RecordingStore();
    await seed(store, 'window:w', { a: [{ n: 1 }, 1] });
    const tx = new Transaction(store, scope);
    await tx.load('window:w', ['a']);
    const ns = tx.namespace('window:w');
    (ns.get('a') as { n: number }).n = 2;
    ns.touch('a', 9);
    await tx.commit({ firstOffset: 9, lastOffset: 9 });
    assert.deepEqual(store.inner.dump()['fn/readings/3/window:w'], { a: { value: { n: 2 }, offset: 9 } });
  });

  test('keeps the highest offset an item has seen', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').set('a', 'later', 30);
    tx.namespace('keyed:total').set('a', 'earlier', 25);
    await tx.commit({ firstOffset: 25, lastOffset: 30 });
    assert.deepEqual(store.writeCalls.at(-1)!.changes, [{ namespace: 'keyed:total', key: 'a', value: 'earlier', offset: 30 }]);
  });

  test('a second commit throws a SluiceError and writes nothing', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').set('a', 1, 1);
    await tx.commit({ firstOffset: 1, lastOffset: 1 });
    await assert.rejects(tx.commit({ firstOffset: 1, lastOffset: 1 }), (e: unknown) => {
      assert.ok(e instanceof SluiceError);
      assert.match(e.message, /committed twice/);
      return true;
    });
    assert.equal(store.writeCalls.length, 1);
  });

  test('a commit that was never called leaves the store untouched', async () => {
    const store = new RecordingStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').set('a', 1, 1);
    assert.deepEqual(store.inner.dump(), {});
  });
});

describe('replays and tombstones', () => {
  test('isApplied is true up to the stored offset, false after it and for new keys', async () => {
    const store = new MemoryStore();
    await seed(store, 'keyed:total', { a: [5, 7] });
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a', 'new']);
    const ns = tx.namespace('keyed:total');
    assert.equal(ns.isApplied('a', 6), true);
    assert.equal(ns.isApplied('a', 7), true);
    assert.equal(ns.isApplied('a', 8), false);
    assert.equal(ns.isApplied('new', 0), false);
  });

  test('isApplied follows the stored offset, not writes of the current batch', async () => {
    const store = new MemoryStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    const ns = tx.namespace('keyed:total');
    ns.set('a', 1, 10);
    assert.equal(ns.isApplied('a', 11), false);
    assert.equal(ns.isApplied('a', 10), false);
  });

  test('a delete leaves a tombstone that keeps its offset, so isApplied stays true', async () => {
    const store = new MemoryStore();
    await seed(store, 'keyed:total', { a: [5, 7] });
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').delete('a', 9);
    await tx.commit({ firstOffset: 9, lastOffset: 9 });

    const next = new Transaction(store, scope);
    await next.load('keyed:total', ['a']);
    const ns = next.namespace('keyed:total');
    assert.equal(ns.get('a'), undefined);
    assert.equal(ns.isApplied('a', 8), true, 'a replay of a record before the delete must not resurrect the value');
    assert.equal(ns.isApplied('a', 9), true);
    assert.equal(ns.isApplied('a', 10), false);
    assert.deepEqual(plain(await store.read(scope, 'keyed:total', ['a'])), new Map([['a', { value: undefined, offset: 9 }]]));
    assert.deepEqual(
      plain(await store.read(scope, 'keyed:total', ['a'], { before: 9 })),
      new Map([['a', { value: 5, offset: 7 }]]),
      'a retry of the deleting batch still reads the value',
    );
  });

  test('tombstones are hidden from keys() and dump()', async () => {
    const store = new MemoryStore();
    await seed(store, 'keyed:total', { a: [1, 1], b: [2, 2] });
    const tx = new Transaction(store, scope);
    await tx.load('keyed:total', ['a']);
    tx.namespace('keyed:total').delete('a', 3);
    await tx.commit({ firstOffset: 3, lastOffset: 3 });
    assert.deepEqual(await store.keys(scope, 'keyed:total'), ['b']);
    assert.deepEqual(store.dump(), { 'fn/readings/3/keyed:total': { b: { value: 2, offset: 2 } } });
  });
});

describe('MemoryStore', () => {
  test('keeps items serialized: mutating what was read does not change what is stored', async () => {
    const store = new MemoryStore();
    await seed(store, 'window:w', { a: [{ sum: 1 }, 1] });
    const first = await store.read(scope, 'window:w', ['a']);
    (first.get('a')!.value as { sum: number }).sum = 999;
    const again = await store.read(scope, 'window:w', ['a']);
    assert.deepEqual(plain(again).get('a'), { value: { sum: 1 }, offset: 1 });
  });

  test('scopes items by function, topic and partition', async () => {
    const store = new MemoryStore();
    await seed(store, 'keyed:total', { a: [1, 1] });
    for (const other of [
      { ...scope, partition: 4 },
      { ...scope, topic: 'other' },
      { ...scope, functionName: 'other' },
    ]) {
      assert.equal((await store.read(other, 'keyed:total', ['a'])).size, 0, JSON.stringify(other));
    }
    assert.equal((await store.read(scope, 'keyed:other', ['a'])).size, 0);
  });

  test('counts one read per load and one write per commit', async () => {
    const store = new MemoryStore();
    const tx = new Transaction(store, scope);
    await tx.load('keyed:a', ['x', 'y']);
    await tx.load('keyed:b', ['x']);
    tx.namespace('keyed:a').set('x', 1, 1);
    tx.namespace('keyed:b').set('x', 1, 1);
    await tx.commit({ firstOffset: 1, lastOffset: 1 });
    assert.deepEqual([store.reads, store.writes], [2, 1]);
  });
});
