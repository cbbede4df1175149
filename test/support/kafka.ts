/**
 * Helpers for tests against the real Kafka broker that the test command starts
 * (scripts/infra/infra.ts). Without a broker those tests are skipped, unless SLUICE_REQUIRE_INFRA
 * is set (as `npm run test:all` and CI do), in which case they fail.
 */
import { type Admin, Kafka, logLevel } from 'kafkajs';
import { endpointOpen } from '../../scripts/infra/port.js';

export const brokers = `127.0.0.1:${process.env.SLUICE_KAFKA_PORT ?? 9092}`;

export function kafkaClient(clientId = 'sluice-test'): Kafka {
  return new Kafka({ clientId, brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 200 } });
}

/** `{ skip: reason }` for node:test when no broker runs and none is required. */
export async function kafkaAvailability(): Promise<{ skip?: string }> {
  if (await endpointOpen(brokers)) return {};
  if (process.env.SLUICE_REQUIRE_INFRA)
    throw new Error(`Kafka is required (SLUICE_REQUIRE_INFRA) but nothing answers on ${brokers}; run npm run infra:up.`);
  return { skip: `no Kafka broker on ${brokers} (npm run infra:up starts one)` };
}

/**
 * Deletes the topics if they exist and creates them fresh, with retention off (`retention.ms=-1`)
 * unless `configEntries` says otherwise: test records carry old timestamps, and a broker with
 * time-based retention would delete them while they are read.
 */
export async function freshTopics(
  admin: Admin,
  topics: { topic: string; numPartitions: number; configEntries?: { name: string; value: string }[] }[],
): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const doomed = topics.map((t) => t.topic).filter((t) => existing.has(t));
  if (doomed.length > 0) {
    await admin.deleteTopics({ topics: doomed, timeout: 10_000 });
    for (let i = 0; i < 50; i++) {
      const left = new Set(await admin.listTopics());
      if (!doomed.some((t) => left.has(t))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  await admin.createTopics({
    topics: topics.map((t) => ({ ...t, configEntries: t.configEntries ?? [{ name: 'retention.ms', value: '-1' }] })),
    waitForLeaders: true,
  });
}

export interface Received {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly key: string | null;
  readonly value: any;
  readonly raw?: string;
  readonly headers: Record<string, string>;
}

/**
 * Reads a topic from the beginning until `done(messages)` or the timeout. A reader that stalls
 * (a kafkajs consumer can, around rebalances) gets one more try with a fresh group before the
 * call fails: what is asserted is the topic's content, not the reader.
 */
export async function readUntil(kafka: Kafka, topic: string, done: (m: Received[]) => boolean, timeoutMs = 60_000): Promise<Received[]> {
  const first = await readOnce(kafka, topic, done, timeoutMs);
  if (first.met) return first.got;
  const second = await readOnce(kafka, topic, done, 30_000);
  if (second.met) return second.got;
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).catch(() => []);
  await admin.disconnect();
  throw new Error(
    `reading ${topic}: condition not met within ${timeoutMs} ms (and a second reader within 30 s); got ${first.got.length} then ${second.got.length} messages; topic end offsets ${ends.map((o) => `p${o.partition}@${o.high}`).join(' ')}`,
  );
}

async function readOnce(
  kafka: Kafka,
  topic: string,
  done: (m: Received[]) => boolean,
  timeoutMs: number,
): Promise<{ got: Received[]; met: boolean }> {
  const consumer = kafka.consumer({ groupId: `sluice-test-reader-${topic}-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got: Received[] = [];
  let met = false;
  let resolveDone!: () => void;
  const finished = new Promise<void>((r) => (resolveDone = r));
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(Array.isArray(v) ? v[0] : v);
      got.push({
        topic,
        partition,
        offset: Number(message.offset),
        key: message.key?.toString() ?? null,
        value: message.value ? parseOrText(message.value.toString()) : null,
        headers,
      });
      if (!met && done(got)) {
        met = true;
        resolveDone();
      }
    },
  });
  const timer = setTimeout(resolveDone, timeoutMs);
  await finished;
  clearTimeout(timer);
  await consumer.disconnect();
  return { got, met };
}

/** Produces JSON values with string keys; `partition` optional. */
export async function produceJson(
  kafka: Kafka,
  topic: string,
  records: { key: string | null; value: unknown; timestamp: number; partition?: number }[],
): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < records.length; i += 5000) {
    await producer.send({
      topic,
      acks: -1,
      messages: records.slice(i, i + 5000).map((r) => ({
        key: r.key,
        value: JSON.stringify(r.value),
        timestamp: String(r.timestamp),
        ...(r.partition === undefined ? {} : { partition: r.partition }),
      })),
    });
  }
  await producer.disconnect();
}

/** JSON values decoded; anything else (a dead-lettered poison record, say) kept as text. */
function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * A group's committed offsets of a topic, read until `done` holds or 10 s pass (then as they are):
 * a transaction's offsets become visible once its commit markers are written, a moment after the
 * commit returns.
 */
export async function groupOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
  done: (partitions: { partition: number; offset: string; metadata: string | null }[]) => boolean,
): Promise<{ partition: number; offset: string; metadata: string | null }[]> {
  const until = Date.now() + 10_000;
  for (;;) {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const partitions = offsets?.partitions ?? [];
    if (done(partitions) || Date.now() > until) return partitions;
    await new Promise((r) => setTimeout(r, 100));
  }
}
