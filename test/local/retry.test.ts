import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DeadLetter, KafkaBatchResponse, KafkaEvent } from 'sluice/runtime';
import { toKafkaEvents } from 'sluice/testing';
import { invokeWithRetries } from '../../framework/src/local/retry.js';

const event = (n: number, partitions = 1): KafkaEvent =>
  [
    ...toKafkaEvents(
      Array.from({ length: n * partitions }, (_, i) => ({ key: 'k', value: { i }, timestamp: i, partition: i % partitions })),
      { topic: 't', batchSize: 1000 },
    ),
  ][0];

test('retries a partition from its failed offset, then dead-letters that record and continues after it', async () => {
  const seen: number[][] = [];
  const letters: DeadLetter[] = [];
  const retries: string[] = [];
  const result = await invokeWithRetries(
    async (e): Promise<KafkaBatchResponse> => {
      const offsets = e.records['t-0'].map((r) => r.offset);
      seen.push(offsets);
      return { batchItemFailures: offsets.includes(2) ? [{ itemIdentifier: { partition: 't-0', offset: 2 } }] : [] };
    },
    event(5),
    2,
    { retry: (g, o, n, of) => retries.push(`${g}@${o} ${n}/${of}`), giveUp: (d) => void letters.push(d) },
  );
  assert.deepEqual(seen, [
    [0, 1, 2, 3, 4],
    [2, 3, 4],
    [2, 3, 4],
    [3, 4],
  ]);
  assert.deepEqual(retries, ['t-0@2 1/2', 't-0@2 2/2']);
  assert.deepEqual(
    letters.map((d) => [d.record.offset, d.stage]),
    [[2, 'invoke']],
  );
  assert.match(letters[0].reason, /failed after 3 attempts: the handler reported this record as failed/);
  assert.deepEqual(result, { invocations: 4, retries: 2, deadLettered: 1 });
});

test('a handler that throws fails every partition of the event from its first record; healthy partitions are not resent', async () => {
  let calls = 0;
  const groups: string[][] = [];
  await invokeWithRetries(
    async (e) => {
      calls++;
      groups.push(Object.keys(e.records).sort());
      if (calls === 1) throw new Error('boom');
      return { batchItemFailures: calls === 2 ? [{ itemIdentifier: { partition: 't-1', offset: 0 } }] : [] };
    },
    event(2, 2),
    2,
    { giveUp: () => assert.fail('nothing should be dead-lettered') },
  );
  assert.deepEqual(groups, [['t-0', 't-1'], ['t-0', 't-1'], ['t-1']]);
});

test('with zero retries the first failure goes straight to the dead-letter path', async () => {
  const letters: DeadLetter[] = [];
  await invokeWithRetries(
    async () => {
      throw new Error('always');
    },
    event(2),
    0,
    { giveUp: (d) => void letters.push(d) },
  );
  assert.deepEqual(
    letters.map((d) => d.record.offset),
    [0, 1],
  );
  assert.match(letters[0].reason, /failed after 1 attempts: always/);
});
