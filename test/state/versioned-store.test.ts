// The state protocol of state/versioned-store.ts, as a table run against every adapter (the point
// of one base: both stores must answer the same), plus the base's own rules on a recording adapter.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { StateConflictError, StateValueError } from '../../framework/src/errors.js';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import { MemoryStore } from '../../framework/src/state/memory-store.js';
import type { ItemChange, StateScope, StateStore, StoreCallOptions } from '../../framework/src/state/store.js';
import { type ItemPut, type RawItem, type StoreRules, VersionedStore } from '../../framework/src/state/versioned-store.js';
import type { Version } from '../../framework/src/state/versions.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const scope: StateScope = { functionName: 'fn', topic: 'protocol', partition: 1 };

/** One batch of one key: read as of `first`, then written back at `offset`. */
interface Batch {
  readonly first: number;
  readonly offset: number;
  readonly value: unknown;
  readonly expiresAt?: number;
}

/** What a batch starting at `before` (none: the newest) reads: a value and offset, nothing, or a refusal. */
type Expect = { readonly value: unknown; readonly offset: number } | 'absent' | 'stale';

interface Row {
  readonly name: string;
  readonly batches: readonly Batch[];
  readonly reads: readonly { readonly before?: number; readonly expect: Expect }[];
  /** Whether `keys()` lists the key afterwards. */
  readonly listed: boolean;
}

const hourAgo = Date.now() - 3_600_000;

const rows: readonly Row[] = [
  { name: 'never written: absent, not listed', batches: [], reads: [{ before: 5, expect: 'absent' }, { expect: 'absent' }], listed: false },
  {
    name: 'one batch: the next batch and a plain read see it; its own retry sees the item as absent',
    batches: [{ first: 10, offset: 12, value: 'a' }],
    reads: [
      { before: 13, expect: { value: 'a', offset: 12 } },
      { expect: { value: 'a', offset: 12 } },
      { before: 10, expect: { value: undefined, offset: -1 } },
    ],
    listed: true,
  },
  {
    name: 'a batch reads the newest version older than its first offset; older batches are refused as stale',
    batches: [
      { first: 0, offset: 4, value: 'x' },
      { first: 5, offset: 9, value: 'y' },
    ],
    reads: [
      { before: 5, expect: { value: 'x', offset: 4 } },
      { before: 10, expect: { value: 'y', offset: 9 } },
      { before: 3, expect: 'stale' },
    ],
    listed: true,
  },
  {
    name: 'a shorter retry keeps the version the longer attempt wrote, for the batch after it',
    batches: [
      { first: 0, offset: 9, value: 'through 9' },
      { first: 0, offset: 4, value: 'through 4' },
    ],
    reads: [
      { before: 0, expect: { value: undefined, offset: -1 } },
      { before: 5, expect: { value: 'through 4', offset: 4 } },
      { before: 10, expect: { value: 'through 9', offset: 9 } },
    ],
    listed: true,
  },
  {
    name: 'a retry writing the same offset again replaces that version',
    batches: [
      { first: 0, offset: 3, value: 'first run' },
      { first: 0, offset: 3, value: 'retry' },
    ],
    reads: [{ before: 4, expect: { value: 'retry', offset: 3 } }],
    listed: true,
  },
  {
    name: 'a delete reads as absent and keeps the value before it for retries; the key is not listed',
    batches: [
      { first: 5, offset: 5, value: { n: 1 } },
      { first: 6, offset: 6, value: undefined },
    ],
    reads: [{ expect: { value: undefined, offset: 6 } }, { before: 6, expect: { value: { n: 1 }, offset: 5 } }],
    listed: false,
  },
  {
    name: 'an expired value reads as absent but keeps its offset; the key is not listed',
    batches: [{ first: 3, offset: 3, value: true, expiresAt: hourAgo }],
    reads: [{ before: 4, expect: { value: undefined, offset: 3 } }],
    listed: false,
  },
  {
    name: 'a value that has not expired yet is live',
    batches: [{ first: 3, offset: 3, value: [1, 'x', null], expiresAt: Date.now() + 3_600_000 }],
    reads: [{ before: 4, expect: { value: [1, 'x', null], offset: 3 } }],
    listed: true,
  },
];

async function runBatch(store: StateStore, namespace: string, b: Batch): Promise<void> {
  const read = (await store.read(scope, namespace, ['k'], { before: b.first })).get('k');
  const change: ItemChange = {
    namespace,
    key: 'k',
    value: b.value,
    offset: b.offset,
    ...(b.expiresAt === undefined ? {} : { expiresAt: b.expiresAt }),
    ...(read ? { revision: read.revision } : {}),
  };
  await store.write(scope, [change], { firstOffset: b.first, lastOffset: b.offset });
}

async function readAs(store: StateStore, namespace: string, before: number | undefined): Promise<Expect> {
  try {
    const item = (await store.read(scope, namespace, ['k'], before === undefined ? {} : { before })).get('k');
    return item ? { value: item.value, offset: item.offset } : 'absent';
  } catch (e) {
    if (e instanceof StateConflictError && /holds only versions from offset/.test(e.message)) return 'stale';
    throw e;
  }
}

/** The protocol table and the write rules, against one adapter. */
function protocol(name: string, make: () => Promise<StateStore>, opts: { skip?: string } = {}) {
  describe(`${name}: the state protocol`, opts, () => {
    let store: StateStore;
    before(async () => {
      store = await make();
    });

    rows.forEach((row, i) => {
      test(row.name, async () => {
        const namespace = `keyed:row${i}`;
        for (const b of row.batches) await runBatch(store, namespace, b);
        for (const r of row.reads) assert.deepEqual(await readAs(store, namespace, r.before), r.expect, `read before ${r.before}`);
        assert.deepEqual(await store.keys!(scope, namespace), row.listed ? ['k'] : []);
      });
    });

    test('conflicts of key items and partition-level items are counted together into one StateConflictError; the rest is written', async () => {
      const seed: ItemChange[] = [
        { namespace: 'window:c', key: 'a', value: 1, offset: 1 },
        { namespace: 'window:c#partition', key: 'p', value: 1, offset: 1 },
      ];
      await store.write(scope, seed, { firstOffset: 1, lastOffset: 1 });
      // Blind writes (no revision) of existing items: both fenced; a new item goes through.
      await assert.rejects(
        store.write(
          scope,
          [
            { namespace: 'window:c#partition', key: 'p', value: 2, offset: 2 },
            { namespace: 'window:c', key: 'a', value: 2, offset: 2 },
            { namespace: 'window:c', key: 'b', value: 2, offset: 2 },
          ],
          { firstOffset: 2, lastOffset: 2 },
        ),
        (e: unknown) =>
          e instanceof StateConflictError &&
          e.retriable &&
          /^2 state item\(s\) of function "fn", partition 1, were changed by another invocation/.test(e.message),
      );
      const items = await store.read(scope, 'window:c', ['a', 'b']);
      assert.deepEqual(
        [...items].map(([k, it]) => [k, it.value, it.offset]),
        [
          ['a', 1, 1],
          ['b', 2, 2],
        ],
      );
    });

    test('a revision read before another batch wrote the item is stale: nothing is overwritten', async () => {
      const ns = 'keyed:race';
      await runBatch(store, ns, { first: 0, offset: 0, value: 'v0' });
      const stale = (await store.read(scope, ns, ['k'], { before: 1 })).get('k')!;
      await runBatch(store, ns, { first: 1, offset: 1, value: 'live' });
      await assert.rejects(
        store.write(scope, [{ namespace: ns, key: 'k', value: 'stale', offset: 1, revision: stale.revision }], {
          firstOffset: 1,
          lastOffset: 1,
        }),
        StateConflictError,
      );
      assert.deepEqual(await readAs(store, ns, undefined), { value: 'live', offset: 1 });
    });

    test('reads hand out copies: mutating what was read changes nothing stored', async () => {
      const ns = 'keyed:copies';
      await runBatch(store, ns, { first: 0, offset: 0, value: { list: [1] } });
      const read = (await store.read(scope, ns, ['k'])).get('k')!.value as { list: number[] };
      read.list.push(2);
      assert.deepEqual(await readAs(store, ns, undefined), { value: { list: [1] }, offset: 0 });
    });
  });
}

protocol('MemoryStore', async () => new MemoryStore());
const dynamo = await dynamodbAvailability();
protocol(
  'DynamoDBStore on DynamoDB Local',
  async () => {
    const store = new DynamoDBStore({ table: `sluice-protocol-${process.pid}-${Date.now()}`, endpoint: dynamodbEndpoint });
    await store.ensureTable();
    return store;
  },
  dynamo,
);

describe('value checks: a value the store cannot keep fails the whole write, retried or not, with StateValueError', () => {
  test('the memory store keeps objects: values must be plain JSON data', async () => {
    const store = new MemoryStore();
    for (const [value, holds] of [
      [new Date(0), 'Date'],
      [Number.NaN, 'NaN'],
      [{ f: () => 1 }, 'function'],
      [[1, Infinity], 'Infinity'],
    ] as const) {
      await assert.rejects(
        store.write(
          scope,
          [
            { namespace: 'keyed:ok', key: 'fine', value: 1, offset: 1 },
            { namespace: 'keyed:bad', key: 'b', value, offset: 1 },
          ],
          { firstOffset: 1, lastOffset: 1 },
        ),
        (e: unknown) =>
          e instanceof StateValueError &&
          !e.retriable &&
          e.message ===
            `state "keyed:bad" for key "b" holds ${holds}, which is not plain JSON data; keep state as numbers, strings, booleans, null, arrays and plain objects.`,
      );
    }
    assert.deepEqual(store.dump(), {}, 'nothing written, not even the valid item');
  });

  test('the memory store has no item size limit (only DynamoDB sets one)', async () => {
    const store = new MemoryStore();
    await store.write(scope, [{ namespace: 'window:big', key: 'k', value: ['x'.repeat(500 * 1024)], offset: 1 }], {
      firstOffset: 1,
      lastOffset: 1,
    });
    assert.equal((store.dump()['fn/protocol/1/window:big'].k.value as string[])[0].length, 500 * 1024);
  });

  test('DynamoDB: a value over its cap', dynamo, async () => {
    const store = new DynamoDBStore({
      table: `sluice-protocol-${process.pid}-${Date.now()}-v`,
      endpoint: dynamodbEndpoint,
      maxValueBytes: 300 * 1024,
    });
    await store.ensureTable();
    await assert.rejects(
      store.write(
        scope,
        [
          { namespace: 'keyed:ok', key: 'fine', value: 1, offset: 1 },
          { namespace: 'window:big', key: 'k', value: ['x'.repeat(390 * 1024)], offset: 1 },
        ],
        { firstOffset: 1, lastOffset: 1 },
      ),
      (e: unknown) => e instanceof StateValueError && !e.retriable && /would hold 399364 bytes, over the state value cap/.test(e.message),
    );
    assert.deepEqual(await store.read(scope, 'keyed:ok', ['fine']), new Map(), 'nothing written, not even the valid item');
  });
});

// ---------- the base's rules, on an adapter that records what it is asked ----------

/** A versioned store over one Map that records each putItems call. */
class RecordingStore extends VersionedStore<Version, number> {
  readonly kind = 'recording';
  readonly durable = false;
  readonly items = new Map<string, RawItem<Version, number>>();
  readonly putCalls: string[][] = [];
  constructor(rules: Partial<StoreRules<Version>> = {}) {
    super({
      format: {
        encode: (o, v, e) => ({ o, v, e }),
        decode: (x) => structuredClone(x.v),
        holdsValue: (x) => x.v !== undefined,
        expiresAt: (x) => x.e,
      },
      ...rules,
    });
  }

  protected async getItems(
    _s: StateScope,
    namespace: string,
    keys: readonly string[],
    _o: StoreCallOptions,
    found: (key: string, item: RawItem<Version, number>) => void,
  ) {
    for (const k of keys) {
      const item = this.items.get(`${namespace}/${k}`);
      if (item) found(k, item);
    }
  }

  protected async putItems(_s: StateScope, puts: readonly ItemPut<Version, number>[]) {
    this.putCalls.push(puts.map((p) => `${p.change.namespace}/${p.change.key}`));
    let conflicts = 0;
    for (const p of puts) {
      const id = `${p.change.namespace}/${p.change.key}`;
      const stored = this.items.get(id);
      if (stored?.token !== p.expected?.token) conflicts++;
      else this.items.set(id, { versions: p.versions, token: (stored?.token ?? 0) + 1 });
    }
    return conflicts;
  }

  protected async listItems(_s: StateScope, namespace: string, found: (key: string, versions: readonly Version[]) => void) {
    for (const [id, item] of this.items) if (id.startsWith(`${namespace}/`)) found(id.slice(namespace.length + 1), item.versions);
  }
}

describe('VersionedStore, the base', () => {
  test('key items are put first, in one call, then partition-level items, whatever the order of the write set', async () => {
    const store = new RecordingStore();
    const stats = await store.write(
      scope,
      [
        { namespace: 'window:w#partition', key: 'clock', value: 1, offset: 1 },
        { namespace: 'window:w', key: 'a', value: 1, offset: 1 },
        { namespace: 'keyed:s', key: 'a', value: 1, offset: 1 },
      ],
      { firstOffset: 1, lastOffset: 1 },
    );
    assert.deepEqual(store.putCalls, [['window:w/a', 'keyed:s/a'], ['window:w#partition/clock']]);
    assert.deepEqual(stats, { writeRequests: 3, conflicts: 0 });
    await store.write(
      scope,
      [{ namespace: 'keyed:s', key: 'a', value: 2, offset: 2, revision: (await store.read(scope, 'keyed:s', ['a'])).get('a')!.revision }],
      { firstOffset: 2, lastOffset: 2 },
    );
    assert.deepEqual(store.putCalls.at(-1), ['keyed:s/a'], 'no call for an empty group');
  });

  test('the kept versions: the one read, those at or after the batch, and the new one', async () => {
    const store = new RecordingStore();
    const write = async (first: number, offset: number, value: number) => {
      const revision = (await store.read(scope, 'keyed:v', ['k'], { before: first })).get('k')?.revision;
      await store.write(scope, [{ namespace: 'keyed:v', key: 'k', value, offset, ...(revision ? { revision } : {}) }], {
        firstOffset: first,
        lastOffset: offset,
      });
    };
    await write(0, 9, 9);
    await write(0, 4, 4);
    await write(5, 7, 7);
    assert.deepEqual(
      store.items.get('keyed:v/k')!.versions.map((v) => v.o),
      [4, 7, 9],
    );
  });

  test('an item limit counts every kept version, names the item, and nothing is put', async () => {
    const store = new RecordingStore({
      itemLimit: {
        maxBytes: 2048,
        versionOverheadBytes: 10,
        name: 'a 2 KB test limit',
        valueBytes: (v) => (v.v === undefined ? 0 : JSON.stringify(v.v).length),
      },
    });
    await store.write(scope, [{ namespace: 'window:w', key: 'k', value: 'x'.repeat(1000), offset: 1 }], { firstOffset: 1, lastOffset: 1 });
    const { revision } = (await store.read(scope, 'window:w', ['k'], { before: 2 })).get('k')!;
    await assert.rejects(
      store.write(scope, [{ namespace: 'window:w', key: 'k', value: 'x'.repeat(1100), offset: 2, revision }], {
        firstOffset: 2,
        lastOffset: 2,
      }),
      (e: unknown) =>
        e instanceof StateValueError &&
        e.message.startsWith(
          'state "window:w" of function "fn" for key "k" (partition 1) would be 2 KB (the value is 1 KB, kept with its version from before this batch for retries), over a 2 KB test limit;',
        ),
    );
    assert.equal(store.putCalls.length, 1, 'only the first write');
  });

  test('without plainJson, values are not checked (the store encodes them itself)', async () => {
    const store = new RecordingStore();
    await store.write(scope, [{ namespace: 'keyed:d', key: 'k', value: new Date(0), offset: 1 }], { firstOffset: 1, lastOffset: 1 });
    assert.equal(store.putCalls.length, 1);
  });
});
