// Bad input through the real handler, with the in-memory store and DynamoDB Local, in both
// deployment modes: a record whose key or state the store cannot hold is a dead letter with the
// real reason, its partition is never blocked, and the records around it come out right.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collect, keyedState, SluiceError, type sluice, stream, sum } from 'sluice';
import { type DeadLetter, type KafkaEvent, type KafkaEventRecord, manifestOf, unaccounted } from 'sluice/runtime';
import { MemoryStore } from 'sluice/state';
import { toEventRecord } from 'sluice/testing';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { StateStore } from '../../framework/src/state/store.js';
import { run as runCase } from '../support/bad-inputs.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const TOPIC = 'in';

interface StoreCase {
  readonly name: string;
  readonly dynamodb: boolean;
  readonly make: (opts?: { maxValueBytes?: number }) => Promise<StateStore>;
  readonly availability: { skip?: string };
}

let tables = 0;
const stores: StoreCase[] = [
  { name: 'memory', dynamodb: false, make: async () => new MemoryStore(), availability: {} },
  {
    name: 'DynamoDB Local',
    dynamodb: true,
    // A table per test: nothing one test leaves behind is read by another.
    make: async (opts = {}) => {
      const store = new DynamoDBStore({
        table: `sluice-bad-input-${process.pid}-${Date.now()}-${tables++}`,
        endpoint: dynamodbEndpoint,
        ...opts,
      });
      await store.ensureTable();
      return store;
    },
    availability: await dynamodbAvailability(),
  },
];

/** Records of partition 0 from `offset` on, as the event carries them. */
function records(from: number, rs: readonly { key: string | null; value: unknown; timestamp: number }[]): KafkaEventRecord[] {
  return rs.map((r, i) => toEventRecord(r, TOPIC, 0, from + i));
}

function event(rs: KafkaEventRecord[]): KafkaEvent {
  return { eventSource: 'aws:kafka', records: { [`${TOPIC}-0`]: rs } } as KafkaEvent;
}

/** The shared bad-input runner (test/support/bad-inputs.ts), except that a throw fails the test: no bad input may block a partition. */
async function run(def: Parameters<typeof sluice>[0], store: StateStore, partialBatch: boolean, events: KafkaEvent[]) {
  const r = await runCase(def, store, partialBatch, events);
  if (r.error !== undefined) throw r.error;
  return r;
}

/** What a test asserts about dead letters: where they came from, the stage and the reason. */
const described = (ls: readonly DeadLetter[]) =>
  ls.map((l) => ({ offset: l.record.offset, key: keyOf(l.record), stage: l.stage, reason: l.reason }));

function keyOf(r: KafkaEventRecord): string | null {
  return r.key == null ? null : Buffer.from(r.key, 'base64').toString('utf8');
}

/** Window results as `key: value` (one aggregation). */
const results = (ms: readonly { key: string | null; value: unknown }[]) =>
  Object.fromEntries(ms.map((m) => [m.key, (m.value as { value: unknown }).value]));

const noBlock = (r: Awaited<ReturnType<typeof run>>) => {
  assert.deepEqual(
    r.responses,
    r.responses.map(() => ({ batchItemFailures: [] })),
    'no partition is blocked',
  );
  assert.deepEqual(r.logger.at('error'), [], 'no partition failed');
  for (const report of r.reports) assert.deepEqual(report.failed, []);
  // Every record in is applied, filtered, late or dead-lettered: none vanishes.
  for (const report of r.reports) assert.equal(unaccounted(report.stats), 0, `unaccounted records in ${JSON.stringify(report.stats)}`);
};

for (const sc of stores) {
  for (const partialBatch of [true, false]) {
    describe(`bad input, ${sc.name} store, SLUICE_PARTIAL_BATCH=${partialBatch}`, sc.availability, () => {
      test('a 2,000-byte Kafka key among normal records', async () => {
        const def = stream<{ v: number }>(TOPIC, { name: 'keys' }).tumblingWindow('10s').aggregate(sum('v'), { name: 'total' }).to('out');
        const long = 'k'.repeat(2_000);
        const store = await sc.make();
        const r = await run(def, store, partialBatch, [
          event(
            records(100, [
              { key: 'a', value: { v: 1 }, timestamp: 1_000 },
              { key: 'b', value: { v: 2 }, timestamp: 1_000 },
              { key: long, value: { v: 5 }, timestamp: 2_000 },
              { key: 'a', value: { v: 3 }, timestamp: 3_000 },
              { key: 'b', value: { v: 4 }, timestamp: 4_000 },
              { key: 'a', value: { v: 0 }, timestamp: 20_000 },
              { key: 'b', value: { v: 0 }, timestamp: 20_000 },
              { key: long, value: { v: 0 }, timestamp: 20_000 },
            ]),
          ),
        ]);
        noBlock(r);
        if (!sc.dynamodb) {
          // The memory store has no key limit: the long key is a key like any other.
          assert.deepEqual(results(r.messages), { a: 4, b: 6, [long]: 5 });
          assert.deepEqual(r.letters, []);
          return;
        }
        assert.deepEqual(results(r.messages), { a: 4, b: 6 }, 'the windows of the other keys are exact');
        const namespace = new PartitionRunner(manifestOf(def), store).windows[0].namespace;
        const reason =
          `the record key "${'k'.repeat(40)}…" is 2000 bytes, over DynamoDB's 1,024-byte sort key limit (less the 2-byte \`k:\` prefix): ` +
          `state "${namespace}" of function "keys" cannot be kept under it (a key may be at most 1022 bytes); use a shorter key, e.g. a hash of it, with key().`;
        assert.deepEqual(described(r.letters), [
          { offset: 102, key: long, stage: 'state', reason },
          { offset: 107, key: long, stage: 'state', reason },
        ]);
        assert.deepEqual(
          r.reports.map((x) => [x.stats.recordsIn, x.stats.poison]),
          [[8, 2]],
        );
      });

      test('a keyed-state value that is not JSON (NaN) for one record', async () => {
        const roots = keyedState<number>('roots');
        const def = stream<{ v: number }>(TOPIC, { name: 'roots', state: [roots] })
          .map(
            (r) => {
              roots.set((roots.get() ?? 0) + Math.sqrt(r.v));
              return r;
            },
            { name: 'root' },
          )
          .tumblingWindow('10s')
          .aggregate(sum('v'), { name: 'total' })
          .to('out');
        const store = await sc.make();
        const r = await run(def, store, partialBatch, [
          event(
            records(0, [
              { key: 'a', value: { v: 4 }, timestamp: 1_000 },
              { key: 'b', value: { v: 9 }, timestamp: 1_000 },
              { key: 'a', value: { v: -1 }, timestamp: 2_000 },
              { key: 'a', value: { v: 16 }, timestamp: 3_000 },
              { key: 'b', value: { v: 1 }, timestamp: 3_000 },
              { key: 'a', value: { v: 0 }, timestamp: 20_000 },
              { key: 'b', value: { v: 0 }, timestamp: 20_000 },
            ]),
          ),
        ]);
        noBlock(r);
        assert.deepEqual(results(r.messages), { a: 20, b: 10 }, 'the record left out counts in no window');
        assert.deepEqual(described(r.letters), [
          {
            offset: 2,
            key: 'a',
            stage: 'state',
            reason:
              'keyed state "roots" can only hold plain JSON data (numbers, strings, booleans, null, arrays, plain objects); this value holds NaN. Convert it first, e.g. a Date to date.getTime().',
          },
        ]);
        const stored = await store.read({ functionName: 'roots', topic: TOPIC, partition: 0 }, 'keyed:roots', ['a', 'b']);
        assert.deepEqual([...stored].map(([k, v]) => [k, v.value]).sort(), [
          ['a', 6],
          ['b', 4],
        ]);
      });

      test('state over the value cap for one key among others (a collect() that grows past a 380 KB cap)', async () => {
        const def = stream<{ p: string }>(TOPIC, { name: 'sessions' })
          .tumblingWindow('1h', { closeBy: 'partition' })
          .aggregate(
            collect((x: { p: string }) => x.p),
            { name: 'clicks' },
          )
          .to('out');
        const busy = Array.from({ length: 450 }, (_, i) => ({
          key: 'busy',
          value: { p: String(i).padStart(1_000, '.') },
          timestamp: 1_000 + i,
        }));
        const batch = records(0, [
          { key: 'a', value: { p: 'a1' }, timestamp: 500 },
          { key: 'b', value: { p: 'b1' }, timestamp: 500 },
          ...busy,
          { key: 'a', value: { p: 'a2' }, timestamp: 600_000 },
          { key: 'b', value: { p: 'b2' }, timestamp: 600_000 },
        ]);
        const closer = records(batch.length, [{ key: 'a', value: { p: 'a3' }, timestamp: 7_200_000 }]);
        const store = await sc.make({ maxValueBytes: 380 * 1024 });
        const r = await run(def, store, partialBatch, [event(batch), event(closer)]);
        noBlock(r);
        const out = results(r.messages) as Record<string, string[]>;
        assert.deepEqual(out.a, ['a1', 'a2']);
        assert.deepEqual(out.b, ['b1', 'b2']);
        if (!sc.dynamodb) {
          assert.equal(out.busy.length, 450, 'the memory store has no size limit');
          assert.deepEqual(r.letters, []);
          return;
        }
        // The clicks kept are the first ones; each later one would have taken the value over the cap.
        const kept = out.busy.length;
        assert.ok(kept > 300 && kept < 400, `kept ${kept} clicks`);
        assert.deepEqual(
          out.busy,
          busy.slice(0, kept).map((b) => b.value.p),
        );
        const letters = described(r.letters);
        assert.deepEqual(
          letters.map((l) => [l.offset, l.key, l.stage]),
          busy.slice(kept).map((_, i) => [2 + kept + i, 'busy', 'state']),
          'every click left out is a dead letter, and no other record',
        );
        const namespace = new PartitionRunner(manifestOf(def), store).windows[0].namespace.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        for (const l of letters) {
          const m = new RegExp(
            `^state "${namespace}" of function "sessions" for key "busy" \\(partition 0\\) would hold (\\d+) bytes, ` +
              'over the state value cap of the DynamoDB store \\(DynamoDBStoreOptions\\.maxValueBytes\\) \\(389120 bytes\\); ' +
              'use a smaller window, or an aggregation that keeps less \\(e\\.g\\. count/sum instead of collect\\), or raise the cap\\.$',
          ).exec(l.reason);
          assert.ok(m && Number(m[1]) > 380 * 1024, `reason: ${l.reason.slice(0, 300)}`);
        }
        assert.deepEqual(
          r.reports.map((x) => [x.stats.recordsIn, x.stats.poison]),
          [
            [454, 450 - kept],
            [1, 0],
          ],
        );
      });
    });
  }
}

describe('deterministic and retriable partition failures', () => {
  test('a window result whose state cannot be kept is dead-lettered itself; the record that closed its window and the later ones are processed', async () => {
    const last = keyedState<number>('last');
    const def = stream<{ v: number }>(TOPIC, { name: 'results', state: [last] })
      .tumblingWindow('10s')
      .aggregate(sum('v'), { name: 'total' })
      .map(
        (w) => {
          last.set(w.value === 3 ? Number.NaN : w.value);
          return w;
        },
        { name: 'keep' },
      )
      .to('out');
    const store = new MemoryStore();
    const r = await run(def, store, false, [
      event(
        records(
          0,
          [1_000, 2_000, 15_000, 25_000, 35_000].map((timestamp, i) => ({ key: 'a', value: { v: [1, 2, 5, 7, 1][i] }, timestamp })),
        ),
      ),
    ]);
    noBlock(r);
    assert.deepEqual(
      r.messages.map((m) => (m.value as { value: number }).value),
      [5, 7],
    );
    assert.deepEqual(
      r.letters.map((l) => [l.record.offset, l.stage, l.reason, l.result?.id]),
      [
        [
          2,
          'state',
          'window result results:total:a:0:10000: keyed state "last" can only hold plain JSON data (numbers, strings, booleans, null, arrays, plain objects); this value holds NaN. Convert it first, e.g. a Date to date.getTime().',
          'results:total:a:0:10000',
        ],
      ],
    );
    const stored = await store.read({ functionName: 'results', topic: TOPIC, partition: 0 }, 'keyed:last', ['a']);
    assert.equal(stored.get('a')?.value, 7);
  });

  const def = stream<{ v: number }>(TOPIC, { name: 'plain' }).tumblingWindow('10s').aggregate(sum('v'), { name: 'total' }).to('out');
  const input = event(
    records(5, [
      { key: 'a', value: { v: 1 }, timestamp: 1_000 },
      { key: 'b', value: { v: 2 }, timestamp: 1_000 },
    ]),
  );

  for (const partialBatch of [true, false]) {
    test(`a read that no retry can change dead-letters the partition's records with the error; the batch succeeds (SLUICE_PARTIAL_BATCH=${partialBatch})`, async () => {
      const store = new MemoryStore();
      store.read = async () => {
        throw new SluiceError('the store cannot hold this', { retriable: false });
      };
      const r = await run(def, store, partialBatch, [input]);
      assert.deepEqual(r.responses, [{ batchItemFailures: [] }]);
      assert.deepEqual(described(r.letters), [
        { offset: 5, key: 'a', stage: 'state', reason: 'the store cannot hold this' },
        { offset: 6, key: 'b', stage: 'state', reason: 'the store cannot hold this' },
      ]);
      assert.deepEqual(r.logger.at('error'), [
        { sluice: 'partition-dead-lettered', topic: TOPIC, partition: 0, stage: 'read', error: 'the store cannot hold this' },
      ]);
    });
  }

  test('a retriable read failure still fails the partition: partial batch response, or a throw without provisioned pollers', async () => {
    const throttled = () => {
      const store = new MemoryStore();
      store.read = async () => {
        throw new SluiceError('throttled', { retriable: true });
      };
      return store;
    };
    const partial = await run(def, throttled(), true, [input]);
    assert.deepEqual(partial.responses, [{ batchItemFailures: [{ itemIdentifier: { partition: `${TOPIC}-0`, offset: 5 } }] }]);
    assert.deepEqual(partial.letters, []);
    await assert.rejects(run(def, throttled(), false, [input]), /1 partition\(s\) of this batch failed \(first: in-0@5\)/);
  });

  test('a step that throws an unknown error keeps stopping the batch at that record (retried, not dead-lettered)', async () => {
    const failing = stream<{ v: number }>(TOPIC, { name: 'failing' })
      .map(
        (r) => {
          if (r.v === 2) throw new TypeError('boom');
          return r;
        },
        { name: 'check' },
      )
      .to('out');
    const r = await run(failing, new MemoryStore(), true, [input]);
    assert.deepEqual(r.responses, [{ batchItemFailures: [{ itemIdentifier: { partition: `${TOPIC}-0`, offset: 6 } }] }]);
    assert.deepEqual(r.letters, []);
  });

  test('a misuse found at run time (keyed state that is not declared) is the record’s: a dead letter with the reason', async () => {
    const undeclared = keyedState<number>('undeclared');
    const misuse = stream<{ v: number }>(TOPIC, { name: 'misuse' })
      .map(
        (r) => {
          if (r.v === 2) undeclared.set(1);
          return r;
        },
        { name: 'remember' },
      )
      .to('out');
    const r = await run(misuse, new MemoryStore(), false, [input]);
    assert.deepEqual(r.responses, [{ batchItemFailures: [] }]);
    assert.deepEqual(
      r.messages.map((m) => m.value),
      [{ v: 1 }],
    );
    assert.deepEqual(described(r.letters), [
      {
        offset: 6,
        key: 'b',
        stage: 'remember',
        reason:
          'keyed state "undeclared" is not declared on this function; declare it with @keyed() or stream(…, { state: [undeclared] }).',
      },
    ]);
  });
});
