// What a store can hold, asked before anything is read or written: key sizes (checkKey) and the
// values of a write set (checkWrite), and how a transaction uses the answers.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StateValueError } from 'sluice';
import { MemoryStore } from 'sluice/state';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { ItemChange, StateScope, StateStore } from '../../framework/src/state/store.js';
import { Transaction } from '../../framework/src/state/transaction.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const scope: StateScope = { functionName: 'fn', topic: 'in', partition: 0 };
const dynamo = await dynamodbAvailability();

/** A DynamoDB store that is never asked anything over the network (checks are local). */
const offline = () => new DynamoDBStore({ table: 'never-used', endpoint: 'http://127.0.0.1:1' });

describe('checkKey', () => {
  test('DynamoDB: a record key may take 1,022 bytes of UTF-8 (1,024 less the `k:` prefix), counted as UTF-8', () => {
    const store = offline();
    const ok = ['a'.repeat(1_022), 'é'.repeat(511), '😀'.repeat(255) + 'ab', 'ह'.repeat(340) + 'ab', ''];
    for (const key of ok) assert.equal(store.checkKey(scope, 'keyed:k', key), undefined, `${key.length} UTF-16 units`);
    for (const key of ['a'.repeat(1_023), 'é'.repeat(512), '😀'.repeat(256), 'ह'.repeat(341)]) {
      const e = store.checkKey(scope, 'keyed:k', key);
      assert.ok(e instanceof StateValueError && !e.retriable, `${key.length} UTF-16 units`);
    }
    assert.equal(
      store.checkKey(scope, 'keyed:seen', 'x'.repeat(2_000))?.message,
      `the record key "${'x'.repeat(40)}…" is 2000 bytes, over DynamoDB's 1,024-byte sort key limit (less the 2-byte \`k:\` prefix): ` +
        'state "keyed:seen" of function "fn" cannot be kept under it (a key may be at most 1022 bytes); use a shorter key, e.g. a hash of it, with key().',
    );
  });

  test("DynamoDB: the function, topic, partition and namespace share the partition key's 2,048 bytes", () => {
    const store = offline();
    const namespace = `window:${'w'.repeat(2_040)}`;
    assert.equal(
      store.checkKey(scope, namespace, 'k')?.message,
      `state "${namespace}" of function "fn" on topic "in" needs a 2055-byte store key, over DynamoDB's 2,048-byte partition key limit; use shorter function, topic, window or state names.`,
    );
    assert.equal(store.checkKey(scope, `window:${'w'.repeat(2_033)}`, 'k'), undefined, '2,048 bytes exactly');
  });

  test('the memory store holds any key', () => {
    assert.equal(new MemoryStore().checkKey(scope, 'keyed:k', 'x'.repeat(100_000)), undefined);
  });

  test(
    'DynamoDB Local agrees: a 1,022-byte key is stored, a 1,023-byte one is refused as a StateValueError, not retried',
    dynamo,
    async () => {
      // The item layout, where the record key is DynamoDB's sort key (in pages it is inside the page, checked by checkKey only).
      const store = new DynamoDBStore({ table: `sluice-limits-${process.pid}-${Date.now()}`, endpoint: dynamodbEndpoint, layout: 'items' });
      await store.ensureTable();
      const longest = 'é'.repeat(511);
      await store.write(scope, [{ namespace: 'keyed:k', key: longest, value: 1, offset: 3 }], { firstOffset: 3, lastOffset: 3 });
      assert.equal((await store.read(scope, 'keyed:k', [longest])).get(longest)?.value, 1);
      // Asked directly, past the check: DynamoDB's ValidationException, translated once.
      await assert.rejects(
        store.read(scope, 'keyed:k', ['a'.repeat(1_023)]),
        (e: unknown) =>
          e instanceof StateValueError &&
          !e.retriable &&
          /^DynamoDB refused a state request of table "sluice-limits-.*" as invalid: /.test(e.message),
      );
    },
  );
});

describe('checkWrite', () => {
  const change = (key: string, value: unknown, offset = 1): ItemChange => ({ namespace: 'keyed:k', key, value, offset });

  test('lists each change the store would refuse with its error; write then refuses the same, and writes nothing', async () => {
    const store = new MemoryStore();
    const changes = [change('a', 1), change('b', Number.NaN), change('c', { at: new Date(0) })];
    const refused = store.checkWrite(scope, changes, { firstOffset: 1, lastOffset: 1 });
    assert.deepEqual(
      refused.map((r) => [r.change.key, r.error instanceof StateValueError, r.error.message]),
      [
        [
          'b',
          true,
          'state "keyed:k" for key "b" holds NaN, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.',
        ],
        [
          'c',
          true,
          'state "keyed:k" for key "c" holds Date, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.',
        ],
      ],
    );
    await assert.rejects(store.write(scope, changes, { firstOffset: 1, lastOffset: 1 }), refused[0].error);
    assert.deepEqual(store.dump(), {});
  });

  test('DynamoDB: a value over the cap (maxValueBytes, 6 MiB by default), counted in UTF-8 bytes of JSON; a 390 KB value is fine', () => {
    const big = (bytes: number) => ['x'.repeat(bytes - 4)]; // ["…"] takes 4 bytes of JSON
    assert.deepEqual(offline().checkWrite(scope, [change('busy', big(390 * 1024))], { firstOffset: 1, lastOffset: 1 }), []);
    assert.deepEqual(offline().checkWrite(scope, [change('busy', big(6 * 1024 * 1024))], { firstOffset: 1, lastOffset: 1 }), []);
    const [r, ...more] = offline().checkWrite(scope, [change('small', 1), change('busy', big(6 * 1024 * 1024 + 1))], {
      firstOffset: 1,
      lastOffset: 1,
    });
    assert.deepEqual(more, []);
    assert.equal(r.change.key, 'busy');
    assert.ok(r.error instanceof StateValueError && !r.error.retriable);
    assert.equal(
      r.error.message,
      'state "keyed:k" of function "fn" for key "busy" (partition 0) would hold 6291457 bytes, over the state value cap of the DynamoDB store ' +
        '(DynamoDBStoreOptions.maxValueBytes) (6291456 bytes); use a smaller window, or an aggregation that keeps less (e.g. count/sum instead of collect), or raise the cap.',
    );
    const capped = new DynamoDBStore({ table: 'never-used', endpoint: 'http://127.0.0.1:1', maxValueBytes: 1_000 });
    assert.deepEqual(
      capped
        .checkWrite(scope, [change('a', big(1_000)), change('b', big(1_001)), change('c', 'é'.repeat(499)), change('d', 'é'.repeat(500))], {
          firstOffset: 1,
          lastOffset: 1,
        })
        .map((x) => x.change.key),
      ['b', 'd'],
      '"é" takes 2 bytes: 499 of them and the quotes are 1,000 bytes, 500 are 1,002',
    );
  });

  test('a checked write set is written as checked; a write without a check still checks', async () => {
    const store = new MemoryStore();
    const changes = [change('a', 1)];
    assert.deepEqual(store.checkWrite(scope, changes, { firstOffset: 1, lastOffset: 1 }), []);
    await store.write(scope, changes, { firstOffset: 1, lastOffset: 1 });
    assert.deepEqual(store.dump()['fn/in/0/keyed:k'], { a: { value: 1, offset: 1 } });
    await assert.rejects(
      store.write(scope, [change('z', Number.POSITIVE_INFINITY, 2)], { firstOffset: 2, lastOffset: 2 }),
      StateValueError,
    );
  });
});

describe('a transaction and the checks', () => {
  /** A DynamoDB-limited store whose reads are recorded, over memory. */
  function limited(): StateStore & { asked: string[][] } {
    const memory = new MemoryStore();
    const limits = offline();
    const asked: string[][] = [];
    return Object.assign(memory, {
      asked,
      checkKey: (s: StateScope, ns: string, k: string) => limits.checkKey(s, ns, k),
      read: async (s: StateScope, ns: string, keys: readonly string[], opts?: { before?: number }) => {
        asked.push([...keys]);
        return MemoryStore.prototype.read.call(memory, s, ns, keys, opts);
      },
    });
  }

  test("does not read a key the store cannot hold; using it throws the store's error, the other keys work", async () => {
    const store = limited();
    const long = 'x'.repeat(1_100);
    const tx = new Transaction(store, scope, { before: 0 });
    await tx.load('keyed:k', ['a', long, 'b']);
    await tx.load('keyed:k', [long]);
    assert.deepEqual(store.asked, [['a', 'b']], 'one read, without the long key, and no second try');
    const ns = tx.namespace('keyed:k');
    ns.set('a', 1, 0);
    for (const use of [() => ns.get(long), () => ns.set(long, 1, 0), () => ns.isApplied(long, 0), () => ns.modify(long, 0, () => 0)]) {
      assert.throws(
        use,
        (e: unknown) => e instanceof StateValueError && /^the record key "x{40}…" is 1100 bytes, over DynamoDB's/.test(e.message),
      );
    }
    assert.equal(ns.has(long), false);
  });

  test('check lists what the store would refuse; commit writes the write set that was checked', async () => {
    const store = new MemoryStore();
    const tx = new Transaction(store, scope, { before: 0 });
    await tx.load('keyed:k', ['a', 'b']);
    const ns = tx.namespace('keyed:k');
    ns.set('a', 1, 0);
    ns.set('b', Number.NaN, 1);
    assert.deepEqual(
      tx.check({ firstOffset: 0, lastOffset: 1 }).map((r) => [r.change.key, r.change.offset]),
      [['b', 1]],
    );
    await assert.rejects(tx.commit({ firstOffset: 0, lastOffset: 1 }), StateValueError);
  });
});
