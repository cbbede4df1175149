// Records gone from the broker before the emulator processed them, on the real broker: the head
// of a partition is deleted (DeleteRecords, as retention does by segments) behind the group's
// committed offset; the emulator must say so, count them, and go on with the records after.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { esmConfig } from '../../framework/src/config/event-source-mapping.js';
import { readServerless } from '../../framework/src/config/serverless-yml.js';
import { emulateFunction } from '../../framework/src/local/emulator/index.js';
import { loadHandler, resolveFunction } from '../../framework/src/local/functions.js';
import type { SluiceHandler } from '../../framework/src/runtime/handler.js';
import type { KafkaEvent } from '../../framework/src/runtime/msk-event.js';
import { brokers, freshTopics, kafkaAvailability, kafkaClient, produceJson } from '../support/kafka.js';

const project = path.resolve(import.meta.dirname, '../fixtures/kafka-project');
const availability = await kafkaAvailability();
const TOPIC = 'it-lost-in';

describe('records deleted from the broker before the emulator processed them', { ...availability, timeout: 120_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  before(async () => {
    kafka = kafkaClient();
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await admin?.disconnect();
  });

  test('are said at once with the partition, offsets and count, counted as lost, and the records after them are processed', async () => {
    await freshTopics(admin, [{ topic: TOPIC, numPartitions: 2 }]);
    const t0 = 1_767_225_600_000;
    await produceJson(kafka, TOPIC, [
      ...Array.from({ length: 100 }, (_, n) => ({ key: `k${n}`, value: { n }, timestamp: t0 + n, partition: 0 })),
      ...Array.from({ length: 20 }, (_, n) => ({ key: `k${n}`, value: { n }, timestamp: t0 + n, partition: 1 })),
    ]);
    const service = readServerless(path.join(project, 'serverless.yml'));
    const entry = resolveFunction('passthrough', project);
    const config = {
      ...esmConfig(entry, service.service, service),
      topic: TOPIC,
      consumerGroupId: `it-lost-${Date.now()}`,
      deadLetterTopic: `${TOPIC}.dlq`,
    };
    // The function had processed partition 0 up to offset 10 when the broker dropped its head up
    // to offset 60 (retention deletes whole segments the same way).
    await admin.setOffsets({
      groupId: config.consumerGroupId,
      topic: TOPIC,
      partitions: [
        { partition: 0, offset: '10' },
        { partition: 1, offset: '0' },
      ],
    });
    await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '60' }] });
    const low = (await admin.fetchTopicOffsets(TOPIC)).find((o) => o.partition === 0)!.low;
    assert.equal(low, '60', 'the log of partition 0 starts at 60 now');

    // Records the handler was invoked with, per partition; it produces nothing, so no topic
    // another test reads is touched.
    const real = await loadHandler(entry);
    const seen = new Map<number, number[]>([
      [0, []],
      [1, []],
    ]);
    const handler = Object.assign(
      async (event: KafkaEvent) => {
        for (const rs of Object.values(event.records)) for (const r of rs) seen.get(r.partition)!.push(r.offset);
        return { batchItemFailures: [] };
      },
      { sluice: real.sluice },
    ) as unknown as SluiceHandler;
    const notes: string[] = [];
    const fn = await emulateFunction({ kafka, handler, config, brokers, notice: (m) => notes.push(m) });
    try {
      for (let i = 0; i < 300 && (seen.get(0)!.length < 40 || seen.get(1)!.length < 20); i++) await new Promise((r) => setTimeout(r, 100));
      const explain = `notices:\n${notes.join('\n')}\nstats: ${JSON.stringify({ ...fn.stats, committed: [...fn.stats.committed] })}`;
      assert.deepEqual(
        seen.get(0),
        Array.from({ length: 40 }, (_, i) => 60 + i),
        `partition 0 goes on from the log start, in order, once each; ${explain}`,
      );
      assert.deepEqual(
        seen.get(1),
        Array.from({ length: 20 }, (_, i) => i),
        `partition 1 lost nothing; ${explain}`,
      );
      assert.equal(fn.stats.lost, 50, explain);
      assert.equal(fn.stats.records, 60, explain);
      const lost = notes.filter((n) => n.includes('LOST'));
      assert.deepEqual(
        lost,
        [
          `passthrough: ${TOPIC}-0: LOST 50 records, offsets 10–59, never processed: they were gone from the broker when the function got to them ` +
            "(the partition's log now starts at 60: retention by time or size, deleted records, or a recreated topic). " +
            'Going on from offset 60, as the event source mapping does. To keep records whatever their timestamps, set retention.ms=-1 on the topic.',
        ],
        explain,
      );
      for (let i = 0; i < 50 && fn.stats.committed.get(0) !== 100; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(fn.stats.committed.get(0), 100, `the mapping commits past the lost records; ${explain}`);
    } finally {
      await fn.stop();
    }
    const committed = await admin.fetchOffsets({ groupId: config.consumerGroupId, topics: [TOPIC] });
    assert.deepEqual(committed[0].partitions.map((p) => [p.partition, p.offset]).sort(), [
      [0, '100'],
      [1, '20'],
    ]);
  });
});
