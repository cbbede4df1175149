// KafkaTransactions on the real broker: a transaction that publishes only its position (a batch
// with no outputs) right after one that sent messages commits; the broker answers its
// AddOffsetsToTxn with CONCURRENT_TRANSACTIONS while the previous commit's markers are written,
// and kafkajs retries that for sends but not for sendOffsets.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { sluice, stream } from 'sluice';
import { KafkaTransactions } from '../../framework/src/io/kafka-transactions.js';
import { publishedGroup } from '../../framework/src/io/transactions.js';
import { freshTopics, groupOffsets, kafkaAvailability, kafkaClient } from '../support/kafka.js';

const availability = await kafkaAvailability();
const [IN, OUT] = ['it-txn-offsets-in', 'it-txn-offsets-out'];

describe('KafkaTransactions, consecutive transactions of one partition', { ...availability, timeout: 60_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  before(async () => {
    kafka = kafkaClient('sluice-test-txn-offsets');
    admin = kafka.admin();
    await admin.connect();
    await freshTopics(admin, [
      { topic: IN, numPartitions: 1 },
      { topic: OUT, numPartitions: 1 },
    ]);
  });
  after(async () => {
    await admin?.disconnect();
  });

  test('a transaction without messages right after one with messages commits its position', async () => {
    const { manifest } = sluice(stream<{ n: number }>(IN, { name: 'offsets' }).to(OUT)).sluice;
    const functionName = `it-txn-offsets-${process.pid}-${Date.now().toString(36)}`;
    const transactions = new KafkaTransactions({ kafka: async () => kafka, manifest, functionName });
    try {
      for (let at = 0; at < 10; at++) {
        const txn = await transactions.begin(IN, 0);
        const messages = at % 2 === 0 ? [{ topic: OUT, key: 'k', value: { n: at }, timestamp: at, headers: {}, id: `offsets:${at}` }] : [];
        await txn.send(messages, [], 'offsets');
        await txn.commit({ at });
      }
    } finally {
      await transactions.close();
    }
    const partitions = await groupOffsets(admin, publishedGroup(functionName), IN, (ps) => ps[0]?.offset === '10');
    assert.equal(partitions[0].offset, '10');
  });
});

test('the transactional producers retry after 2 ms, not kafkajs’ 300 ms: a send right after a commit waits out the markers briefly', async () => {
  const created: Record<string, unknown>[] = [];
  const fakeKafka = {
    producer: (opts: Record<string, unknown>) => {
      created.push(opts);
      return { connect: async () => {}, disconnect: async () => {}, transaction: async () => assert.fail('not reached') };
    },
  } as unknown as Kafka;
  const { manifest } = sluice(stream<{ n: number }>(IN, { name: 'offsets' }).to(OUT)).sluice;
  const transactions = new KafkaTransactions({ kafka: async () => fakeKafka, manifest, functionName: 'retry-options' });
  await assert.rejects(transactions.begin(IN, 0));
  assert.equal(created.length, 1);
  assert.equal(created[0].transactionalId, `sluice-retry-options.${IN}-0`);
  assert.deepEqual(created[0].retry, { initialRetryTime: 2, maxRetryTime: 2_000, retries: 14 });
});
