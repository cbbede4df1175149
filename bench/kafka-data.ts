/** The Kafka side of the benchmarks' dataset: fresh topics and the seeded stream produced to them. */
import { pathToFileURL } from 'node:url';
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { sensorStream } from './data.js';

/**
 * Deletes the topics that exist (each name once) and creates `create` with 4 partitions and
 * retention off: the records carry 2026 timestamps, and a broker with time-based retention would
 * delete the segments while they are consumed.
 *
 * @example
 * await freshTopics(admin, ['bench-sensor-counts', 'sensor-sums', 'sensor-counts-dlq'], ['bench-sensor-counts', 'sensor-sums']);
 */
export async function freshTopics(admin: Admin, reset: readonly (string | undefined)[], create: readonly string[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const gone = [...new Set(reset)].filter((t): t is string => !!t && existing.has(t));
  if (gone.length > 0) {
    await admin.deleteTopics({ topics: gone, timeout: 30_000 });
    for (let i = 0; i < 100 && (await admin.listTopics()).some((t) => gone.includes(t)); i++) await new Promise((r) => setTimeout(r, 200));
  }
  const keep = [{ name: 'retention.ms', value: '-1' }];
  await admin.createTopics({ topics: create.map((topic) => ({ topic, numPartitions: 4, configEntries: keep })), waitForLeaders: true });
}

/**
 * Produces the seeded sensor stream (`records` over `keys` sensors, 4 partitions) to `topic`, in
 * acknowledged batches of 20,000.
 *
 * @example
 * await produceSensorStream(kafka, 'bench-sensor-counts', 1_000_000, 1_000);
 */
export async function produceSensorStream(kafka: Kafka, topic: string, records: number, keys: number): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    let batch: { key: string; value: string; timestamp: string; partition: number }[] = [];
    for (const r of sensorStream(records, keys, 4)) {
      batch.push({ key: r.key!, value: JSON.stringify(r.value), timestamp: String(r.timestamp), partition: r.partition });
      if (batch.length === 20_000) {
        await producer.send({ topic, acks: -1, messages: batch });
        batch = [];
      }
    }
    if (batch.length > 0) await producer.send({ topic, acks: -1, messages: batch });
  } finally {
    await producer.disconnect();
  }
}

// Run as a script (bench:kafka does, so that producing the dataset does not count in the
// emulator's memory): node --import tsx bench/kafka-data.ts <brokers> <topic> <records> <keys>
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [brokers, topic, records, keys] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: 'sluice-bench-producer', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  await produceSensorStream(kafka, topic, Number(records), Number(keys));
}
