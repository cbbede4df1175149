// The coordinator cache of Sluice's transactional producers (io/kafkajs-coordinators.ts): kafkajs
// asks for the transaction and group coordinators before every transactional request; with the
// cache, a producer asks once per coordinator, and a failed transaction forgets them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka, ProducerConfig } from 'kafkajs';
import { sluice, stream } from 'sluice';
import { KafkaTransactions } from '../../framework/src/io/kafka-transactions.js';
import { freshTopics, kafkaAvailability, kafkaClient } from '../support/kafka.js';

const availability = await kafkaAvailability();
const [IN, OUT] = [`it-coord-in-${process.pid}`, `it-coord-out-${process.pid}`];

describe('the coordinator cache on a real broker', { ...availability, timeout: 60_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  const requests = new Map<string, number>();
  before(async () => {
    kafka = kafkaClient('sluice-test-coordinators');
    // Counts every request Sluice's producers make (kafkajs' instrumentation events).
    const producer = kafka.producer.bind(kafka);
    kafka.producer = (config?: ProducerConfig) => {
      const p = producer(config);
      p.on(p.events.REQUEST, (e) => requests.set(e.payload.apiName, (requests.get(e.payload.apiName) ?? 0) + 1));
      return p;
    };
    admin = kafka.admin();
    await admin.connect();
    await freshTopics(admin, [
      { topic: IN, numPartitions: 1 },
      { topic: OUT, numPartitions: 1 },
    ]);
  });
  after(async () => {
    await admin?.deleteTopics({ topics: [IN, OUT] }).catch(() => {});
    await admin?.disconnect();
  });

  test('ten transactions ask for each coordinator once, not before every request', async () => {
    const { manifest } = sluice(stream<{ n: number }>(IN, { name: 'coord' }).to(OUT)).sluice;
    const transactions = new KafkaTransactions({ kafka: async () => kafka, manifest, functionName: `it-coord-${process.pid}` });
    try {
      for (let at = 0; at < 10; at++) {
        const txn = await transactions.begin(IN, 0);
        await txn.send([{ topic: OUT, key: 'k', value: { n: at }, timestamp: at, headers: {}, id: `coord:${at}` }], [], 'coord');
        await txn.commit({ at });
      }
    } finally {
      await transactions.close();
    }
    assert.equal(requests.get('EndTxn'), 10);
    assert.equal(requests.get('TxnOffsetCommit'), 10);
    // InitProducerId's lookup, then one each for the transaction and group coordinators: kafkajs
    // alone asks before every AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn (40+).
    const lookups = requests.get('GroupCoordinator') ?? 0; // kafkajs' name for FindCoordinator
    assert.ok(lookups >= 1 && lookups <= 3, JSON.stringify([...requests]));
  });
});
