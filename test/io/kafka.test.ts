// Dead-letter messages: the original record's key, value and headers, repeated header names included.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { DEAD_LETTER_HEADERS, deadLetterMessage } from '../../framework/src/io/kafka.js';
import { resultLetter } from '../../framework/src/pipeline/dead-letters.js';
import type { DeadLetter } from '../../framework/src/pipeline/records.js';
import { freshTopics, kafkaAvailability, kafkaClient } from '../support/kafka.js';

const letter: DeadLetter = {
  record: {
    topic: 'in',
    partition: 2,
    offset: 41,
    timestamp: 1_700_000_000_000,
    timestampType: 'CREATE_TIME',
    key: Buffer.from('k1').toString('base64'),
    value: Buffer.from('{"n":1}').toString('base64'),
    headers: [
      { trace: [...Buffer.from('a')] },
      { origin: [...Buffer.from('box')] },
      { trace: [...Buffer.from('b')] },
      { trace: [...Buffer.from('c')] },
    ],
  },
  reason: 'n must be a number',
  stage: 'validate',
};

test('a repeated header name keeps every value, in order; a single one stays a single value', () => {
  const m = deadLetterMessage(letter, 'fn');
  assert.deepEqual(m.headers!.trace, [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
  assert.deepEqual(m.headers!.origin, Buffer.from('box'));
  assert.equal(m.headers![DEAD_LETTER_HEADERS.sourceOffset], '41');
  assert.deepEqual(m.key, Buffer.from('k1'));
  assert.deepEqual(m.value, Buffer.from('{"n":1}'));
});

describe('dead letters on a real broker', { ...(await kafkaAvailability()), timeout: 60_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  before(async () => {
    kafka = kafkaClient('sluice-io-kafka-test');
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await admin?.disconnect();
  });

  test('repeated headers reach the topic as repeated headers, in order', async () => {
    const topic = 'it-io-dlq-headers';
    await freshTopics(admin, [{ topic, numPartitions: 1 }]);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [deadLetterMessage(letter, 'fn')] });
    await producer.disconnect();
    const consumer = kafka.consumer({ groupId: `it-io-dlq-headers-${process.pid}-${Date.now()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nothing read from ${topic} within 30 s`)), 30_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          clearTimeout(timer);
          resolve(message.headers ?? {});
        },
      });
    });
    await consumer.disconnect();
    const text = (v: unknown) => (Array.isArray(v) ? v.map(String) : String(v));
    assert.deepEqual(text(got.trace), ['a', 'b', 'c']);
    assert.equal(text(got.origin), 'box');
    assert.equal(text(got[DEAD_LETTER_HEADERS.error]), 'n must be a number');
  });
});

test("a window result's dead letter is the message of its record view: same bytes, same headers in the same order", () => {
  const closing = { topic: 'speeds', partition: 1, offset: 9, timestampType: 'CREATE_TIME' };
  const d = resultLetter(
    closing,
    { id: 'speeds:avg:ghost:0:10000', key: 'ghost', value: { start: 0, end: 10_000, n: 1 }, timestamp: 0 },
    'score',
    'window result speeds:avg:ghost:0:10000: not a number',
  );
  const direct = deadLetterMessage(d, 'speeds');
  const viaRecord = deadLetterMessage({ record: d.record, reason: d.reason, stage: d.stage }, 'speeds');
  assert.deepEqual(direct, viaRecord);
  assert.deepEqual(Object.keys(direct.headers!), Object.keys(viaRecord.headers!));
  assert.deepEqual(direct.key, Buffer.from('ghost'));
  assert.deepEqual(JSON.parse(String(direct.value)), { start: 0, end: 10_000, n: 1 });
  assert.equal(direct.headers![DEAD_LETTER_HEADERS.id], 'speeds:dlq:speeds-1:9');
  assert.equal(direct.headers![DEAD_LETTER_HEADERS.sourceOffset], '9');
});
