import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { filter, keyed, type KeyedState, keyedState, map, SluiceError, source, stream, sum, to } from 'sluice';
import { type BatchBounds, type ItemChange, MemoryStore, type StateScope, type StateStore } from 'sluice/state';
import { CaptureLogger, type InputRecord, runFunction } from 'sluice/testing';

interface Click {
  readonly n: number;
}

const clicks = (...pairs: [key: string, n: number][]): InputRecord[] =>
  pairs.map(([key, n], i) => ({ key, value: { n }, timestamp: 1_000 * (i + 1) }));

// Keys a, b, a, c, a, b: running totals a 1 → 4 → 9, b 2 → 8, c 4.
const SIX = clicks(['a', 1], ['b', 2], ['a', 3], ['c', 4], ['a', 5], ['b', 6]);
const SIX_TOTALS = [1, 2, 4, 4, 9, 8];

@source('clicks', { name: 'click-totals' })
class ClickTotals {
  @keyed() total!: KeyedState<number>;

  @to('click-totals')
  @map()
  add(r: Click): number {
    const t = (this.total.get() ?? 0) + r.n;
    this.total.set(t);
    return t;
  }
}

const total = keyedState<number>('total');
const clickTotals = stream<Click>('clicks', { name: 'click-totals', state: [total] })
  .map(
    (r) => {
      const t = (total.get() ?? 0) + r.n;
      total.set(t);
      return t;
    },
    { name: 'add' },
  )
  .to('click-totals');

const stored = (store: MemoryStore) => store.dump()['click-totals/clicks/0/keyed:total'];

describe('running totals per key', () => {
  for (const [form, definition] of [
    ['@keyed() field', ClickTotals],
    ['keyedState() + stream(…, { state })', clickTotals],
  ] as const) {
    test(`via ${form}`, async () => {
      const run = await runFunction(definition, SIX);
      assert.deepEqual(run.values('click-totals'), SIX_TOTALS);
      assert.deepEqual(
        run.outputs.map((m) => m.key),
        ['a', 'b', 'a', 'c', 'a', 'b'],
      );
      assert.deepEqual(run.state(), {
        'click-totals/clicks/0/keyed:total': { a: { value: 9, offset: 4 }, b: { value: 8, offset: 5 }, c: { value: 4, offset: 3 } },
      });
    });
  }

  test('the two forms store state under the same names, so they can take over from each other', async () => {
    const store = new MemoryStore();
    await runFunction(ClickTotals, SIX.slice(0, 3), { store });
    const run = await runFunction(clickTotals, SIX.slice(3), { store, startOffset: 3 });
    assert.deepEqual(run.values('click-totals'), SIX_TOTALS.slice(3));
  });
});

describe('read-your-writes within one batch', () => {
  test('a key written earlier in the batch is read back, with one read and one write for the whole batch', async () => {
    const store = new MemoryStore();
    const run = await runFunction(clickTotals, SIX, { store });
    assert.equal(run.responses.length, 1, 'one event');
    assert.deepEqual(run.values('click-totals'), SIX_TOTALS);
    assert.deepEqual([store.reads, store.writes], [1, 1]);
  });

  test('a delete is visible to the next record of the same key in the batch', async () => {
    const counter = keyedState<number>('count');
    const run = await runFunction(
      stream<{ reset?: boolean }>('events', { state: [counter] })
        .map(
          (r) => {
            if (r.reset) {
              counter.delete();
              return counter.get() ?? 'deleted';
            }
            const n = (counter.get() ?? 0) + 1;
            counter.set(n);
            return n;
          },
          { name: 'count' },
        )
        .to('counts'),
      [
        { key: 'k', value: {}, timestamp: 1 },
        { key: 'k', value: {}, timestamp: 2 },
        { key: 'k', value: { reset: true }, timestamp: 3 },
        { key: 'k', value: {}, timestamp: 4 },
      ],
    );
    assert.deepEqual(run.values('counts'), [1, 2, 'deleted', 1]);
  });
});

describe('dedupe with filter', () => {
  @source('orders', { name: 'dedupe' })
  class Dedupe {
    @keyed() seen!: KeyedState<boolean>;

    @to('unique-orders')
    @filter()
    firstTime(_: { id: string }): boolean {
      if (this.seen.get()) return false;
      this.seen.set(true);
      return true;
    }
  }

  const orders = (...ids: string[]): InputRecord[] => ids.map((id, i) => ({ key: id, value: { id }, timestamp: i }));

  test('drops repeats within a batch and across batches', async () => {
    const store = new MemoryStore();
    const first = await runFunction(Dedupe, orders('o1', 'o2', 'o1', 'o3', 'o2'), { store });
    assert.deepEqual(first.values('unique-orders'), [{ id: 'o1' }, { id: 'o2' }, { id: 'o3' }]);
    const second = await runFunction(Dedupe, orders('o3', 'o4', 'o1'), { store, startOffset: 5 });
    assert.deepEqual(second.values('unique-orders'), [{ id: 'o4' }]);
  });

  test('with one record per batch', async () => {
    const run = await runFunction(Dedupe, orders('o1', 'o1', 'o2', 'o1'), { batchSize: 1 });
    assert.equal(run.responses.length, 4);
    assert.deepEqual(run.values('unique-orders'), [{ id: 'o1' }, { id: 'o2' }]);
  });
});

describe('persistence across batches', () => {
  test('values persist across invocations through a shared MemoryStore', async () => {
    const store = new MemoryStore();
    const first = await runFunction(clickTotals, SIX.slice(0, 2), { store });
    assert.deepEqual(first.values('click-totals'), [1, 2]);
    const second = await runFunction(clickTotals, SIX.slice(2), { store, startOffset: 2 });
    assert.deepEqual(second.values('click-totals'), SIX_TOTALS.slice(2));
    assert.deepEqual(stored(store), { a: { value: 9, offset: 4 }, b: { value: 8, offset: 5 }, c: { value: 4, offset: 3 } });
  });

  test('batches of one record give the same totals as one batch', async () => {
    const store = new MemoryStore();
    const run = await runFunction(ClickTotals, SIX, { store, batchSize: 1 });
    assert.equal(run.responses.length, 6);
    assert.deepEqual(run.values('click-totals'), SIX_TOTALS);
    assert.equal(store.writes, 6);
  });
});

describe('exactly-once under replays', () => {
  test('replaying the same offsets leaves the state unchanged', async () => {
    const store = new MemoryStore();
    await runFunction(clickTotals, SIX, { store });
    const before = store.dump();
    const replay = await runFunction(clickTotals, SIX, { store });
    assert.deepEqual(replay.responses, [{ batchItemFailures: [] }]);
    assert.deepEqual(replay.values('click-totals'), SIX_TOTALS, 'the replay computes the same totals again');
    assert.deepEqual(store.dump(), before);
  });

  test('a retry after a crash mid-write reads the state from before its batch, however it is re-batched', async () => {
    const eight = [...SIX, ...clicks(['a', 7], ['c', 8]).map((r, i) => ({ ...r, timestamp: 7_000 + i * 1_000 }))];
    const clean = await runFunction(clickTotals, eight);

    const store = new MemoryStore();
    const first = await runFunction(clickTotals, eight.slice(0, 3), { store });
    // The batch [3, 8) writes its first item, then the invocation dies.
    let writes = 0;
    store.beforeItemWrite = () => {
      if (++writes > 1) throw new Error('crash mid-write');
    };
    const crashed = await runFunction(clickTotals, eight.slice(3), { store, startOffset: 3, logger: new CaptureLogger() });
    assert.equal(writes, 2, 'one item was written, the second write crashed');
    assert.deepEqual(
      crashed.responses.flatMap((r) => r.batchItemFailures.map((f) => f.itemIdentifier.offset)),
      [3],
      'the whole batch is reported failed',
    );
    store.beforeItemWrite = undefined;
    // Lambda retries from offset 3, this time in batches of two.
    const retry = await runFunction(clickTotals, eight.slice(3), { store, startOffset: 3, batchSize: 2 });
    assert.deepEqual(stored(store), clean.state()['click-totals/clicks/0/keyed:total']);
    assert.deepEqual(
      [...first.values('click-totals'), ...retry.values('click-totals')],
      clean.values('click-totals'),
      "totals computed during the retry are the first run's",
    );
  });

  test('a shorter retry of the batch that deleted a key reads the value from before it; the next batch deletes it again', async () => {
    const store = new MemoryStore();
    const input: InputRecord[] = [
      { key: 'a', value: { n: 1 }, timestamp: 1 },
      { key: 'a', value: { n: 2 }, timestamp: 2 },
      { key: 'a', value: { n: 0, reset: true }, timestamp: 3 },
    ];
    const resettable = keyedState<number>('total');
    const definition = stream<Click & { reset?: boolean }>('clicks', { name: 'click-totals', state: [resettable] }).update(
      (r) => (r.reset ? resettable.delete() : resettable.set((resettable.get() ?? 0) + r.n)),
      { name: 'apply' },
    );
    const scope = { functionName: 'click-totals', topic: 'clicks', partition: 0 };
    const read = async (before: number) => {
      const item = (await store.read(scope, 'keyed:total', ['a'], { before })).get('a');
      return item && { value: item.value, offset: item.offset };
    };
    await runFunction(definition, input, { store });
    assert.deepEqual(stored(store), {}, 'the deleted key is gone');
    await runFunction(definition, input.slice(0, 2), { store });
    assert.deepEqual(await read(2), { value: 3, offset: 1 }, 'the shorter retry left the state as of its last record');
    await runFunction(definition, input.slice(2), { store, startOffset: 2 });
    assert.deepEqual(stored(store), {});
    assert.deepEqual(await read(3), { value: undefined, offset: 2 });
  });
});

describe('delete', () => {
  test('removes the value of the current key only', async () => {
    const store = new MemoryStore();
    const resettable = keyedState<number>('total');
    const run = await runFunction(
      stream<Click & { reset?: boolean }>('clicks', { name: 'click-totals', state: [resettable] })
        .map(
          (r) => {
            if (r.reset) {
              resettable.delete();
              return 0;
            }
            const t = (resettable.get() ?? 0) + r.n;
            resettable.set(t);
            return t;
          },
          { name: 'add' },
        )
        .to('click-totals'),
      [
        { key: 'a', value: { n: 1 }, timestamp: 1 },
        { key: 'b', value: { n: 10 }, timestamp: 2 },
        { key: 'a', value: { n: 2 }, timestamp: 3 },
        { key: 'a', value: { n: 0, reset: true }, timestamp: 4 },
        { key: 'a', value: { n: 5 }, timestamp: 5 },
        { key: 'b', value: { n: 0, reset: true }, timestamp: 6 },
      ],
      { store, batchSize: 2 },
    );
    assert.deepEqual(run.values('click-totals'), [1, 10, 3, 0, 5, 0]);
    assert.deepEqual(stored(store), { a: { value: 5, offset: 4 } });
  });
});

describe('ttl', () => {
  test('each write carries expiresAt = wall-clock write time + ttl, not event time', async () => {
    const writes: ItemChange[] = [];
    const inner = new MemoryStore();
    const store: StateStore = {
      kind: 'spy',
      durable: false,
      read: (s, ns, keys, opts) => inner.read(s, ns, keys, opts),
      write: (s: StateScope, changes: readonly ItemChange[], bounds: BatchBounds) => {
        writes.push(...changes);
        return inner.write(s, changes, bounds);
      },
    };
    const lastSeen = keyedState<number>('lastSeen', { ttl: '1h' });
    const before = Date.now();
    await runFunction(
      stream<Click>('clicks', { state: [lastSeen] }).update((_, c) => lastSeen.set(c.timestamp), { name: 'remember' }),
      [
        { key: 'a', value: { n: 1 }, timestamp: 5_000 },
        { key: 'b', value: { n: 1 }, timestamp: 7_000 },
      ],
      { store },
    );
    const after = Date.now();
    assert.deepEqual(
      writes.map(({ expiresAt, ...rest }) => rest),
      [
        { namespace: 'keyed:lastSeen', key: 'a', value: 5_000, offset: 0 },
        { namespace: 'keyed:lastSeen', key: 'b', value: 7_000, offset: 1 },
      ],
    );
    for (const w of writes) {
      assert.ok(
        w.expiresAt! >= before + 3_600_000 && w.expiresAt! <= after + 3_600_000,
        `expiresAt ${w.expiresAt} not within the write time + 1h`,
      );
    }
  });
});

describe('misuse', () => {
  test('using keyed state outside a step throws a SluiceError that says where to use it', () => {
    assert.throws(
      () => total.get(),
      (e: unknown) => e instanceof SluiceError && /keyed state "total" was used outside a step/.test(e.message),
    );
  });

  // A keyless record cannot use keyed state, whatever the retry: it is poison, like a keyless
  // record at a window step, so it never stops its partition. A window step makes the same
  // record poison (runner.ts, #applyWindow).
  test('a record without a key that touches keyed state is a dead letter, not a failure that blocks its partition', async () => {
    const run = await runFunction(
      clickTotals,
      [
        { key: null, value: { n: 1 }, timestamp: 1 },
        { key: 'a', value: { n: 2 }, timestamp: 2 },
      ],
      { logger: new CaptureLogger() },
    );
    assert.deepEqual(run.responses, [{ batchItemFailures: [] }]);
    assert.deepEqual(
      run.deadLetters.map((d) => d.record.offset),
      [0],
    );
    assert.match(run.deadLetters[0]?.reason ?? '', /needs a record key/);
    assert.deepEqual(run.values('click-totals'), [2]);
  });
});

describe('keyed state in a step after a window', () => {
  // The step before the window loads the batch's keys once; the window can then emit results for
  // keys that were not in the batch, and the keyed step after it reads keys that were never loaded.
  const lastTotal = keyedState<number>('lastTotal');
  const definition = (closeBy: 'key' | 'partition') =>
    stream<Click>('clicks', { name: 'window-then-state', state: [lastTotal] })
      .map((r) => r, { name: 'passThrough' })
      .tumblingWindow('10s', { closeBy })
      .aggregate(sum('n'), { name: 'perTen' })
      .map(
        (w) => {
          lastTotal.set(w.value);
          return w.value;
        },
        { name: 'remember' },
      )
      .to('totals');

  // Results of keys the batch did not touch (closed by the partition clock) must have their keyed
  // state loaded before the steps after the window run, or the partition would never move on.
  test('with closeBy partition, a window of a key that is not in the batch closes and its result reaches keyed state', async () => {
    const store = new MemoryStore();
    const logger = new CaptureLogger();
    await runFunction(definition('partition'), [{ key: 'a', value: { n: 2 }, timestamp: 1_000 }], { store, logger });
    const second = await runFunction(definition('partition'), [{ key: 'b', value: { n: 3 }, timestamp: 25_000 }], {
      store,
      startOffset: 1,
      logger,
    });
    assert.deepEqual(second.responses, [{ batchItemFailures: [] }]);
    assert.deepEqual(second.values('totals'), [2]);
    assert.equal(store.dump()['window-then-state/clicks/0/keyed:lastTotal']?.a?.value, 2);
  });

  // A flush runs its results through the keyed steps after the window like any other result.
  test('flush emits the open windows through a keyed step', async () => {
    const run = await runFunction(definition('key'), [{ key: 'a', value: { n: 2 }, timestamp: 1_000 }], { flush: true });
    assert.deepEqual(run.values('totals'), [2]);
  });
});
