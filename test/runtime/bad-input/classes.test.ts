// Every class of bad input in test/support/bad-inputs.ts through the real handler, with the
// in-memory store and DynamoDB Local, in both deployment modes: exactly the bad records are dead
// letters, with the exact reason; no partition is blocked; every record is accounted for. A
// malformed event (not a Kafka event as Lambda sends it) is the one case where the handler throws.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { unaccounted } from 'sluice/runtime';
import { MemoryStore, type StateStore } from 'sluice/state';
import { DynamoDBStore } from '../../../framework/src/state/dynamodb-store.js';
import { badInputCases, described, judge, run, type StoreKind } from '../../support/bad-inputs.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../../support/dynamodb.js';

let tables = 0;
const stores: { kind: StoreKind; make: () => Promise<StateStore>; availability: { skip?: string } }[] = [
  { kind: 'memory', make: async () => new MemoryStore(), availability: {} },
  {
    kind: 'dynamodb',
    // A table per test: nothing one test leaves behind is read by another.
    make: async () => {
      const store = new DynamoDBStore({ table: `sluice-bad-classes-${process.pid}-${Date.now()}-${tables++}`, endpoint: dynamodbEndpoint });
      await store.ensureTable();
      return store;
    },
    availability: await dynamodbAvailability(),
  },
];

const prototypeBefore = Object.getOwnPropertyNames(Object.prototype).sort();

for (const sc of stores) {
  for (const partialBatch of [true, false]) {
    describe(`bad input classes, ${sc.kind} store, SLUICE_PARTIAL_BATCH=${partialBatch}`, sc.availability, () => {
      for (const c of badInputCases) {
        test(c.name, async () => {
          const store = await sc.make();
          const r = await run(c.definition, store, partialBatch, c.events());
          const expected = c.expect(sc.kind);
          if ('error' in expected) {
            // The event itself is malformed: a clear error, and nothing of it processed.
            assert.ok(r.error instanceof Error, 'the handler throws');
            assert.equal(r.error.message, expected.error);
            assert.deepEqual([r.messages, r.letters, r.reports], [[], [], []]);
          } else {
            assert.equal(r.error, undefined, 'the handler does not throw');
            assert.deepEqual(
              r.responses,
              r.responses.map(() => ({ batchItemFailures: [] })),
              'no partition is blocked',
            );
            assert.deepEqual(r.logger.at('error'), [], 'no partition failed');
            assert.deepEqual(described(r.letters), expected.letters, 'exactly the bad records are dead letters, with the reason');
            assert.equal(r.reports.length, r.responses.length);
            for (const report of r.reports)
              assert.equal(unaccounted(report.stats), 0, `unaccounted records in ${JSON.stringify(report.stats)}`);
            assert.equal(
              r.reports.reduce((n, x) => n + x.stats.deadLettered, 0),
              expected.letters.length,
            );
          }
          await c.check?.(r, sc.kind, store);
          assert.deepEqual(judge(c, r, sc.kind), { blockedPartitions: 0, innocentDeadLetters: 0, unaccounted: 0, problems: [] });
          assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeBefore, 'Object.prototype unchanged');
        });
      }
    });
  }
}

test('the memory store keeps an own __proto__ key of a state value as data when it is read back', async () => {
  const store = new MemoryStore();
  const scope = { functionName: 'proto', topic: 'in', partition: 0 };
  const value = JSON.parse('{"__proto__":{"polluted":true},"v":1}');
  await store.write(scope, [{ namespace: 'keyed:kept', key: 'a', value, offset: 0 }], { firstOffset: 0, lastOffset: 0 });
  const back = (await store.read(scope, 'keyed:kept', ['a'])).get('a')?.value;
  assert.equal(JSON.stringify(back), '{"__proto__":{"polluted":true},"v":1}');
});
