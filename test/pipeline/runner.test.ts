import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyedState, stream, sum } from 'sluice';
import { MemoryStore } from 'sluice/state';
import { type KafkaEventRecord, manifestOf, type OutputMessage } from 'sluice/runtime';
import { toEventRecord } from 'sluice/testing';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';

const TOPIC = 'in';
const PARTITION = 3;

function rec(offset: number, key: string | null, value: unknown, timestamp = 1_000 + offset): KafkaEventRecord {
  return toEventRecord({ key, value, timestamp }, TOPIC, PARTITION, offset);
}

/** Offsets of the outputs of stateless steps, read back from their deterministic ids. */
function sourceOffset(m: OutputMessage): number {
  const match = /:in-3:(\d+):\d+$/.exec(m.id);
  assert.ok(match, `id ${m.id} is a record id`);
  return Number(match[1]);
}

describe('PartitionRunner: stateless steps', () => {
  test('records flow through map, filter, expand, key and timestamp in offset order', async () => {
    const seen: number[] = [];
    const def = stream<{ n: number }>(TOPIC, { name: 'flow' })
      .update((_, ctx) => seen.push(ctx.offset), { name: 'watch' })
      .map((v) => ({ n: v.n, sq: v.n * v.n }), { name: 'square' })
      .filter((v) => v.n % 3 !== 0, { name: 'notThirds' })
      .expand(
        (v) => [
          { ...v, part: 'a' },
          { ...v, part: 'b' },
        ],
        { name: 'split' },
      )
      .key((v) => `k${v.n % 2}`, { name: 'parity' })
      .timestamp((v) => 5_000 + v.n * 10 + (v.part === 'b' ? 1 : 0), { name: 'eventTime' })
      .to('out');
    const records = Array.from({ length: 10 }, (_, n) => rec(100 + n, 'original', { n }));
    const runner = new PartitionRunner(manifestOf(def), new MemoryStore());

    const result = await runner.run(TOPIC, PARTITION, records);

    assert.deepEqual(
      seen,
      records.map((r) => r.offset),
    );
    assert.equal(result.failedOffset, undefined);
    assert.deepEqual(result.deadLetters, []);
    const expected = [1, 2, 4, 5, 7, 8].flatMap((n) =>
      (['a', 'b'] as const).map((part, sub) => ({
        topic: 'out',
        key: `k${n % 2}`,
        value: { n, sq: n * n, part },
        timestamp: 5_000 + n * 10 + sub,
        headers: { 'sluice-id': `flow:in-3:${100 + n}:${sub}` },
        id: `flow:in-3:${100 + n}:${sub}`,
      })),
    );
    assert.deepEqual(result.outputs, expected);
    assert.equal(result.stats.recordsIn, 10);
    assert.equal(result.stats.messagesOut, expected.length);
  });

  test('a fractional event time is floored, a numeric key becomes a string', async () => {
    const def = stream<{ n: number }>(TOPIC, { name: 'coerce' })
      .key((v) => v.n as unknown as string, { name: 'numericKey' })
      .timestamp((v) => v.n + 0.75, { name: 'fractional' })
      .to('out');
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(TOPIC, PARTITION, [rec(0, 'x', { n: 7 })]);
    assert.deepEqual(
      result.outputs.map((m) => [m.key, m.timestamp]),
      [['7', 7]],
    );
  });

  test('expand children get distinct ids, also after nested expands', async () => {
    const def = stream<{ n: number }>(TOPIC, { name: 'fan' })
      .expand((v) => Array.from({ length: v.n }, (_, i) => i), { name: 'outer' })
      .to('outer')
      .expand((i) => [`${i}-x`, `${i}-y`, `${i}-z`], { name: 'inner' })
      .to('inner');
    const records = [rec(0, 'a', { n: 4 }), rec(1, 'a', { n: 0 }), rec(2, 'a', { n: 3 })];
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(TOPIC, PARTITION, records);

    const outer = result.outputs.filter((m) => m.topic === 'outer');
    const inner = result.outputs.filter((m) => m.topic === 'inner');
    assert.equal(outer.length, 7);
    assert.equal(inner.length, 21);
    for (const list of [outer, inner]) {
      const ids = list.map((m) => m.id);
      assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids.join(' ')}`);
      assert.deepEqual(
        list.map((m) => m.headers['sluice-id']),
        ids,
      );
    }
    assert.deepEqual(
      inner.slice(0, 3).map((m) => m.value),
      ['0-x', '0-y', '0-z'],
    );
  });

  test('expand children get distinct ids when an inner expand yields more than 1024 values', async () => {
    const def = stream<{ n: number }>(TOPIC, { name: 'wide' })
      .expand(() => [0, 1], { name: 'pairs' })
      .expand((i) => Array.from({ length: 1_100 }, (_, j) => `${i}:${j}`), { name: 'many' })
      .to('out');
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(TOPIC, PARTITION, [rec(0, 'a', { n: 1 })]);
    assert.equal(result.outputs.length, 2_200);
    const byId = new Map<string, unknown[]>();
    for (const m of result.outputs) byId.set(m.id, [...(byId.get(m.id) ?? []), m.value]);
    const clashes = [...byId].filter(([, values]) => values.length > 1);
    assert.deepEqual(clashes.slice(0, 3), [], `${clashes.length} ids are shared by different outputs`);
  });
});

describe('PartitionRunner: a failing step', () => {
  const N = 12;
  const START = 200;
  const keys = ['a', 'b', 'c'];
  const records = Array.from({ length: N }, (_, i) => rec(START + i, keys[i % 3], { n: i }, i * 400));

  interface Failure {
    /** `explode` runs on the records (after an expand); `afterWindow` on a window's current results. */
    readonly step: 'explode' | 'afterWindow';
    readonly k: number;
    /** Fail only on the second expand child of record k. */
    readonly secondChild?: boolean;
  }

  /** Keyed state before the failing step, window state before or after it. */
  function definition(fail: Failure | undefined) {
    const total = keyedState<number>('total');
    const failsAt = (step: Failure['step'], offset: number, child: number) =>
      fail !== undefined && fail.step === step && offset === START + fail.k && (!fail.secondChild || child === 1);
    return stream<{ n: number }>(TOPIC, { name: 'failing', state: [total] })
      .update((v) => total.set((total.get() ?? 0) + v.n), { name: 'accumulate' })
      .expand(
        (v) => [
          { n: v.n, child: 0 },
          { n: v.n, child: 1 },
        ],
        { name: 'twins' },
      )
      .map(
        (v, ctx) => {
          if (failsAt('explode', ctx.offset, v.child)) throw new Error(`boom at ${ctx.offset}`);
          return { n: v.n * 10 + v.child };
        },
        { name: 'explode' },
      )
      .to('passed')
      .tumblingWindow('1s', { emit: 'current' })
      .aggregate(sum('n'), { name: 'running' })
      .map(
        (w, ctx) => {
          if (failsAt('afterWindow', ctx.offset, 0)) throw new Error(`boom at ${ctx.offset}`);
          return w;
        },
        { name: 'afterWindow' },
      )
      .to('running');
  }

  async function committed(def: ReturnType<typeof definition>, input: readonly KafkaEventRecord[]) {
    const store = new MemoryStore();
    const result = await new PartitionRunner(manifestOf(def), store).run(TOPIC, PARTITION, input);
    await result.commit();
    return { result, state: store.dump() };
  }

  const variants: Omit<Failure, 'k'>[] = [{ step: 'explode' }, { step: 'explode', secondChild: true }, { step: 'afterWindow' }];
  for (const variant of variants) {
    test(`in ${variant.step}${variant.secondChild ? ' (second expand child)' : ''} at offset k: failedOffset k, outputs and committed state of the records before k only`, async () => {
      const full = await committed(definition(undefined), records);
      assert.deepEqual(
        Object.keys(full.state)
          .map((t) => t.split('/')[3].split(':')[0])
          .sort(),
        ['keyed', 'window'],
        'the full run stores keyed and window state',
      );
      for (let k = 0; k < N; k++) {
        const { result, state } = await committed(definition({ ...variant, k }), records);
        const reference = await committed(definition(undefined), records.slice(0, k));

        assert.equal(result.failedOffset, START + k);
        assert.equal(result.failedStage, variant.step);
        assert.match(String((result.error as Error).message), new RegExp(`boom at ${START + k}`));
        assert.deepEqual(result.outputs, reference.result.outputs, `outputs when failing at ${START + k}`);
        for (const m of result.outputs.filter((o) => o.topic === 'passed')) assert.ok(sourceOffset(m) < START + k, m.id);
        assert.equal(result.outputs.filter((o) => o.topic === 'passed').length, 2 * k);
        assert.deepEqual(state, reference.state, `committed state when failing at ${START + k}`);
        assert.deepEqual(result.deadLetters, []);
      }
    });
  }

  test('committing twice writes once', async () => {
    const store = new MemoryStore();
    const result = await new PartitionRunner(manifestOf(definition({ step: 'explode', k: 5 })), store).run(TOPIC, PARTITION, records);
    await result.commit();
    await result.commit();
    assert.equal(store.writes, 1);
  });
});

describe('PartitionRunner: poison from key and timestamp steps', () => {
  test('a timestamp step returning a negative number, NaN, Infinity or a non-number makes that record poison, naming the step', async () => {
    const bad: Record<string, unknown> = { neg: -1, nan: NaN, inf: Infinity, text: '1000', none: undefined };
    const def = stream<{ t: string }>(TOPIC, { name: 'times' })
      .timestamp((v) => (v.t in bad ? bad[v.t] : Number(v.t)) as number, { name: 'eventTimeOf' })
      .to('out');
    const input = ['10', 'neg', '20', 'nan', 'inf', 'text', 'none', '0', '30'];
    const records = input.map((t, i) => rec(50 + i, 'k', { t }));
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(TOPIC, PARTITION, records);

    assert.equal(result.failedOffset, undefined);
    assert.deepEqual(
      result.outputs.map((m) => [m.timestamp, (m.value as { t: string }).t]),
      [
        [10, '10'],
        [20, '20'],
        [0, '0'],
        [30, '30'],
      ],
    );
    assert.deepEqual(
      result.deadLetters.map((d) => d.record.offset),
      [51, 53, 54, 55, 56],
    );
    for (const d of result.deadLetters) {
      assert.equal(d.stage, 'eventTimeOf');
      assert.match(d.reason, /"eventTimeOf"/);
    }
    assert.match(result.deadLetters[0].reason, /-1/);
    assert.match(result.deadLetters[1].reason, /NaN/);
    assert.equal(result.stats.poison, 5);
  });

  test('a key step returning an object (or an array, a boolean, undefined) makes that record poison, naming the step', async () => {
    const returns: Record<string, unknown> = { obj: { id: 1 }, arr: ['a'], bool: true, undef: undefined, str: 's', nul: null };
    const def = stream<{ r: string }>(TOPIC, { name: 'keys' })
      .key((v) => returns[v.r] as string, { name: 'pickKey' })
      .to('out');
    const input = ['str', 'obj', 'arr', 'nul', 'bool', 'undef', 'str'];
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(
      TOPIC,
      PARTITION,
      input.map((r, i) => rec(i, 'orig', { r })),
    );

    assert.equal(result.failedOffset, undefined);
    assert.deepEqual(
      result.outputs.map((m) => [sourceOffset(m), m.key]),
      [
        [0, 's'],
        [3, null],
        [6, 's'],
      ],
    );
    assert.deepEqual(
      result.deadLetters.map((d) => d.record.offset),
      [1, 2, 4, 5],
    );
    for (const d of result.deadLetters) {
      assert.equal(d.stage, 'pickKey');
      assert.match(d.reason, /"pickKey"/);
    }
    assert.match(result.deadLetters[0].reason, /object/);
  });
});

describe('PartitionRunner: decoded record keys', () => {
  function keyEcho() {
    return stream<{ i: number }>(TOPIC, { name: 'echo' })
      .map((v, ctx) => ({ i: v.i, seen: ctx.key }), { name: 'echoKey' })
      .to('out');
  }

  test('5 distinct keys repeated over many records and batches decode to the right key every time', async () => {
    const distinct = ['sensor-1', 'ключ', '🔑 key', '', 'sensor-10'];
    const runner = new PartitionRunner(manifestOf(keyEcho()), new MemoryStore());
    let offset = 0;
    for (let batch = 0; batch < 4; batch++) {
      const keys = Array.from({ length: 250 }, (_, i) => (i % 17 === 0 ? null : distinct[(i * 7 + batch) % distinct.length]));
      const result = await runner.run(
        TOPIC,
        PARTITION,
        keys.map((k, i) => rec(offset + i, k, { i })),
      );
      offset += keys.length;
      assert.deepEqual(
        result.outputs.map((m) => m.key),
        keys,
      );
      assert.deepEqual(
        result.outputs.map((m) => (m.value as { seen: string | null }).seen),
        keys,
      );
    }
  });

  test('keys stay right after more distinct keys than the cache holds', async () => {
    const runner = new PartitionRunner(manifestOf(keyEcho()), new MemoryStore());
    const many = Array.from({ length: 100_050 }, (_, i) => `key-${i}`);
    const first = await runner.run(
      TOPIC,
      PARTITION,
      many.map((k, i) => rec(i, k, { i })),
    );
    assert.equal(first.outputs.length, many.length);
    const wrong = first.outputs.findIndex((m, i) => m.key !== many[i]);
    assert.equal(wrong, -1, `first wrong key at index ${wrong}`);
    const again = [many[0], many[99_999], many[100_049], many[1], many[0]];
    const second = await runner.run(
      TOPIC,
      PARTITION,
      again.map((k, i) => rec(many.length + i, k, { i })),
    );
    assert.deepEqual(
      second.outputs.map((m) => m.key),
      again,
    );
  });

  test('a key serializer without a base64 fast path decodes every key', async () => {
    const def = stream<{ i: number }>(TOPIC, { name: 'raw', key: 'bytes' })
      .map((v, ctx) => ({ i: v.i, seen: ctx.key }), { name: 'echoKey' })
      .to('out');
    const keys = ['a', 'b', 'a', 'é'];
    const result = await new PartitionRunner(manifestOf(def), new MemoryStore()).run(
      TOPIC,
      PARTITION,
      keys.map((k, i) => rec(i, k, { i })),
    );
    assert.deepEqual(
      result.outputs.map((m) => m.key),
      keys.map((k) => Buffer.from(k, 'utf8').toString('base64')),
    );
  });
});
