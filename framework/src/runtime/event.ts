import { SluiceError } from '../errors.js';
import type { KafkaEventRecord } from '../pipeline/records.js';

/**
 * The Lambda event for Amazon MSK (`aws:kafka`) and self-managed Kafka (`SelfManagedKafka`).
 * https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
 *
 * @example
 * const event: KafkaEvent = {
 *   eventSource: 'aws:kafka',
 *   records: { 'readings-0': [{ topic: 'readings', partition: 0, offset: 7, timestamp: 1_000, key: 'czE=', value: 'eyJ2YWx1ZSI6Mn0=' }] },
 * };
 */
export interface KafkaEvent {
  readonly eventSource: 'aws:kafka' | 'SelfManagedKafka' | string;
  readonly eventSourceArn?: string;
  readonly bootstrapServers?: string;
  /** Records grouped by `"<topic>-<partition>"`. */
  readonly records: Readonly<Record<string, readonly KafkaEventRecord[]>>;
}

/**
 * The Kafka partial batch response: Lambda resumes each listed partition from the given offset.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 *
 * @example
 * // partition 0 of 'readings' failed at offset 42: Lambda retries from there
 * const response: KafkaBatchResponse = { batchItemFailures: [{ itemIdentifier: { partition: 'readings-0', offset: 42 } }] };
 */
export interface KafkaBatchResponse {
  batchItemFailures: { itemIdentifier: { partition: string; offset: number } }[];
}

/**
 * One partition's records, in offset order.
 *
 * @example
 * const batches: PartitionBatch[] = partitionsOf(event);
 * batches.map((b) => `${b.topic}-${b.partition}: ${b.records.length}`); // ['readings-0: 1']
 */
export interface PartitionBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: readonly KafkaEventRecord[];
}

/**
 * Splits a Kafka event into its partitions, each sorted by offset. Throws a SluiceError naming the
 * problem when the event is not a Kafka event at all.
 *
 * @example
 * for (const p of partitionsOf(event)) console.log(p.topic, p.partition, p.records.length);
 */
export function partitionsOf(event: unknown): PartitionBatch[] {
  const e = event as KafkaEvent;
  if (!e || typeof e !== 'object' || !e.records || typeof e.records !== 'object') {
    throw new SluiceError(`the Lambda event has no "records" object, so it is not an MSK or self-managed Kafka event (eventSource: ${JSON.stringify((e as { eventSource?: unknown })?.eventSource)}); trigger this function from an msk or kafka event.`);
  }
  const out: PartitionBatch[] = [];
  for (const [group, records] of Object.entries(e.records)) {
    if (!Array.isArray(records) || records.length === 0) continue;
    const first = records[0] as KafkaEventRecord;
    const topic = typeof first.topic === 'string' ? first.topic : group.slice(0, group.lastIndexOf('-'));
    const partition = typeof first.partition === 'number' ? first.partition : Number(group.slice(group.lastIndexOf('-') + 1));
    let sorted = true;
    for (let i = 1; i < records.length; i++) if (records[i].offset < records[i - 1].offset) sorted = false;
    out.push({ topic, partition, records: sorted ? records : [...records].sort((a, b) => a.offset - b.offset) });
  }
  return out;
}
