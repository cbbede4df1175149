import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sluice, stream } from 'sluice';
import type { OutputTransaction, OutputTransactions, Published } from '../../framework/src/io/transactions.js';
import { CaptureSink, lambdaContext, toKafkaEvents } from 'sluice/testing';

/** Transactions that record what went through them (nothing published before). */
class RecordingTransactions implements OutputTransactions {
  readonly sent: unknown[] = [];
  readonly commits: Published[] = [];
  async begin(): Promise<OutputTransaction> {
    return {
      published: { at: -1 },
      send: async (messages) => void this.sent.push(...messages.map((m) => m.value)),
      commit: async (to) => void this.commits.push(to),
      abort: async () => {},
    };
  }
  async published(): Promise<Published> {
    return { at: -1 };
  }
  async close(): Promise<void> {}
}

test('configure({ guarantee }) switches the delivery order of a loaded handler both ways (sluice dev --guarantee)', async () => {
  const handler = sluice(stream<{ n: number }>('in', { name: 'copy' }).to('out'));
  assert.equal(handler.sluice.guarantee, 'at-least-once');
  const sink = new CaptureSink();
  const transactions = new RecordingTransactions();
  handler.sluice.configure({ sink, transactions, guarantee: 'exactly-once' });
  assert.equal(handler.sluice.guarantee, 'exactly-once');
  assert.equal((handler.sluice.runtime as unknown as Record<string, unknown>).guarantee, undefined, 'not an adapter');
  const [event] = toKafkaEvents(
    [1, 2].map((n) => ({ key: 'k', value: { n }, timestamp: n })),
    { topic: 'in', batchSize: 10 },
  );
  await handler(event, lambdaContext('copy') as never);
  assert.deepEqual(transactions.sent, [{ n: 1 }, { n: 2 }]);
  assert.deepEqual(transactions.commits, [{ at: 1 }]);
  assert.equal(sink.messages.length, 0, 'exactly-once outputs go through the transaction only');

  handler.sluice.configure({ guarantee: 'at-least-once' });
  assert.equal(handler.sluice.guarantee, 'at-least-once');
  const [next] = toKafkaEvents([{ key: 'k', value: { n: 3 }, timestamp: 3 }], { topic: 'in', batchSize: 10 });
  await handler(next, lambdaContext('copy') as never);
  assert.deepEqual(
    sink.messages.map((m) => m.value),
    [{ n: 3 }],
  );
  assert.equal(transactions.commits.length, 1);
});
