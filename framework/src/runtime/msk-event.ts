/**
 * The Lambda event for Amazon MSK (`aws:kafka`) and self-managed Kafka (`SelfManagedKafka`), and
 * the partial batch response: the one place that knows this wire format. Parsing an event into
 * partitions, building events and records (local runs, the emulator, tests), and the size a
 * record takes in the event's JSON all live here, so the shape cannot drift between them. (Over
 * 350 lines on purpose: splitting the parser from the builders is what let them drift before.)
 *
 * - Event: https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
 * - Partial batch response: https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 */
import type { KafkaMessage } from 'kafkajs';
import { SluiceError } from '../errors.js';
import { SLUICE_ID_HEADER } from '../pipeline/messages.js';

/**
 * A Kafka record as the Lambda event for Amazon MSK and self-managed Kafka carries it.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
 *
 * @example
 * const record: KafkaEventRecord = {
 *   topic: 'readings', partition: 0, offset: 7, timestamp: 1_000, timestampType: 'CREATE_TIME',
 *   key: 'czE=', value: 'eyJ2YWx1ZSI6Mn0=', // 's1' and '{"value":2}' in base64
 *   headers: [{ source: [116, 101, 115, 116] }], // source: 'test'
 * };
 */
export interface KafkaEventRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly timestampType?: 'CREATE_TIME' | 'LOG_APPEND_TIME' | string;
  /** base64; absent for a null key. */
  readonly key?: string | null;
  /** base64; absent or null for a tombstone. */
  readonly value?: string | null;
  /** Each header is an object with one name mapping to the value's bytes. */
  readonly headers?: ReadonlyArray<Readonly<Record<string, readonly number[]>>>;
}

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
 * problem when the event is not a Kafka event as Lambda sends it (no `records` object, a group
 * that is not an array or not named `<topic>-<partition>`, a record without a whole-number
 * offset): such an event was built by hand or changed on the way, and no record of it can be
 * placed, so none is processed.
 *
 * @example
 * for (const p of partitionsOf(event)) console.log(p.topic, p.partition, p.records.length);
 */
export function partitionsOf(event: unknown): PartitionBatch[] {
  const e = event as KafkaEvent;
  if (!e || typeof e !== 'object' || !e.records || typeof e.records !== 'object') {
    throw new SluiceError(
      `the Lambda event has no "records" object, so it is not an MSK or self-managed Kafka event (eventSource: ${JSON.stringify((e as { eventSource?: unknown })?.eventSource)}); trigger this function from an msk or kafka event.`,
    );
  }
  const out: PartitionBatch[] = [];
  for (const [group, records] of Object.entries(e.records)) {
    if (!Array.isArray(records)) throw malformed(`records[${JSON.stringify(group)}] is ${typeName(records)}, not an array of records`);
    const named = GROUP_NAME.exec(group);
    if (!named) throw malformed(`records[${JSON.stringify(group)}] is not named <topic>-<partition> (e.g. "readings-0")`);
    if (records.length === 0) continue;
    let sorted = true;
    for (let i = 0; i < records.length; i++) {
      const r = records[i] as KafkaEventRecord | null;
      if (typeof r !== 'object' || r === null || !Number.isSafeInteger(r.offset) || r.offset < 0) {
        throw malformed(
          `record ${i} of records[${JSON.stringify(group)}] has offset ${typeof r === 'object' && r !== null ? JSON.stringify(r.offset) : `(it is ${typeName(r)})`}, not a whole number of at least 0`,
        );
      }
      if (i > 0 && r.offset < records[i - 1].offset) sorted = false;
    }
    const first = records[0] as KafkaEventRecord;
    const topic = typeof first.topic === 'string' ? first.topic : named[1];
    const partition = typeof first.partition === 'number' ? first.partition : Number(named[2]);
    out.push({ topic, partition, records: sorted ? records : [...records].sort((a, b) => a.offset - b.offset) });
  }
  return out;
}

const GROUP_NAME = /^(.+)-(\d+)$/;

function malformed(what: string): SluiceError {
  return new SluiceError(
    `the Lambda event is not a Kafka event as Lambda sends it: ${what}; no record of it was processed. Check how the event was built (sluice/testing's toKafkaEvents builds valid ones).`,
  );
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/**
 * Decodes Lambda's header arrays (`[{ name: [bytes] }]`) into strings; a repeated name keeps its
 * last value.
 *
 * @example
 * decodeHeaders([{ source: [116, 101, 115, 116] }]); // { source: 'test' }
 */
export function decodeHeaders(headers: KafkaEventRecord['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const h of headers) for (const name in h) out[name] = Buffer.from(h[name]).toString('utf8');
  return out;
}

/**
 * The MSK cluster ARN local events carry when the real one is not known (it is resolved at deploy
 * time, or there is no cluster at all).
 *
 * @example
 * const event: KafkaEvent = { eventSource: 'aws:kafka', eventSourceArn: LOCAL_CLUSTER_ARN, records: {} };
 */
export const LOCAL_CLUSTER_ARN = 'arn:aws:kafka:us-east-1:123456789012:cluster/sluice-local/00000000-0000-0000-0000-000000000000-1';

/**
 * A record as users write it in input files and tests.
 *
 * @example
 * const r: InputRecord = { key: 's1', value: { value: 2 }, timestamp: 1_000, partition: 1, headers: { source: 'test' } };
 */
export interface InputRecord {
  readonly key: string | null;
  readonly value: unknown;
  readonly timestamp: number;
  readonly partition?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Encodes one record the way Lambda delivers it: base64 key and value, headers as byte arrays.
 *
 * @example
 * toEventRecord({ key: 's1', value: { value: 2 }, timestamp: 1_000 }, 'readings', 0, 7);
 * // { topic: 'readings', partition: 0, offset: 7, timestamp: 1000, timestampType: 'CREATE_TIME', key: 'czE=', value: 'eyJ2YWx1ZSI6Mn0=', headers: [] }
 */
export function toEventRecord(r: InputRecord, topic: string, partition: number, offset: number): KafkaEventRecord {
  const headers = r.headers ? Object.entries(r.headers).map(([name, v]) => ({ [name]: [...Buffer.from(String(v), 'utf8')] })) : [];
  return {
    topic,
    partition,
    offset,
    timestamp: r.timestamp,
    timestampType: 'CREATE_TIME',
    ...(r.key === null || r.key === undefined ? {} : { key: Buffer.from(String(r.key), 'utf8').toString('base64') }),
    value:
      r.value === undefined
        ? null
        : Buffer.from(typeof r.value === 'string' && (r as { raw?: boolean }).raw ? r.value : JSON.stringify(r.value), 'utf8').toString(
            'base64',
          ),
    headers,
  };
}

/**
 * Turns records into MSK-shaped events of at most `batchSize` records per partition, as the
 * event source mapping would: offsets count up per partition from `startOffset`, and one event may
 * hold several partitions.
 *
 * @example
 * for (const event of toKafkaEvents(records, { topic: 'readings', batchSize: 100 })) await handler(event, ctx);
 */
export function* toKafkaEvents(
  records: Iterable<InputRecord>,
  opts: { topic: string; batchSize?: number; startOffset?: number },
): Generator<KafkaEvent> {
  const size = opts.batchSize ?? 100;
  const offsets = new Map<number, number>();
  let groups = new Map<string, KafkaEventRecord[]>();
  let fullest = 0;
  const emit = (): KafkaEvent => {
    const event: KafkaEvent = {
      eventSource: 'aws:kafka',
      eventSourceArn: LOCAL_CLUSTER_ARN,
      bootstrapServers: '127.0.0.1:9092',
      records: Object.fromEntries(groups),
    };
    groups = new Map();
    fullest = 0;
    return event;
  };
  for (const r of records) {
    const partition = r.partition ?? 0;
    const offset = offsets.get(partition) ?? opts.startOffset ?? 0;
    offsets.set(partition, offset + 1);
    const group = `${opts.topic}-${partition}`;
    let list = groups.get(group);
    if (!list) groups.set(group, (list = []));
    list.push(toEventRecord(r, opts.topic, partition, offset));
    if (list.length > fullest) fullest = list.length;
    if (fullest >= size) yield emit();
  }
  if (groups.size > 0) yield emit();
}

/**
 * Where an event says it comes from: `aws:kafka` with the cluster ARN for MSK, `SelfManagedKafka`
 * otherwise (the emulator's event source mapping config has this shape).
 *
 * @example
 * const source: EventSource = { eventSource: 'aws:kafka', eventSourceArn: LOCAL_CLUSTER_ARN };
 */
export interface EventSource {
  readonly eventSource: 'aws:kafka' | 'SelfManagedKafka';
  readonly eventSourceArn?: string;
}

/**
 * The event Lambda sends for these records: `aws:kafka` with the cluster ARN for MSK, `SelfManagedKafka` otherwise.
 *
 * @example
 * await handler(lambdaEvent({ eventSource: 'SelfManagedKafka' }, '127.0.0.1:9092', { 'in-0': records }), ctx);
 */
export function lambdaEvent(config: EventSource, bootstrapServers: string, records: KafkaEvent['records']): KafkaEvent {
  return {
    eventSource: config.eventSource,
    ...(config.eventSource === 'aws:kafka' && config.eventSourceArn ? { eventSourceArn: config.eventSourceArn } : {}),
    bootstrapServers,
    records,
  };
}

/**
 * Bytes of an event's JSON besides its records: what every invocation's payload starts with.
 *
 * @example
 * const room = MAX_PAYLOAD_BYTES - eventOverheadBytes(config, '127.0.0.1:9092');
 */
export function eventOverheadBytes(config: EventSource, bootstrapServers: string): number {
  return Buffer.byteLength(JSON.stringify(lambdaEvent(config, bootstrapServers, {})));
}

/**
 * Bytes one partition's group adds to the event: `"<topic>-<p>":[` … `]` and a separating comma.
 *
 * @example
 * partitionOverheadBytes('in', 0); // 10: "in-0":[ and ] and a comma
 */
export function partitionOverheadBytes(topic: string, partition: number): number {
  return Buffer.byteLength(JSON.stringify(`${topic}-${partition}`)) + 4;
}

const digits = (n: number) => String(n).length;
const jsonBytes = (s: string) => Buffer.byteLength(JSON.stringify(s));

/**
 * The bytes a record takes in the event's JSON, as `JSON.stringify` writes it (plus nothing for
 * separators; callers add one per record). Headers count as Lambda sends them, arrays of byte
 * numbers, so a header byte costs up to 4 characters: a 100 KB header is up to 400 KB of event.
 *
 * @example
 * recordJsonBytes(record) === Buffer.byteLength(JSON.stringify(record)) + 1; // true
 */
export function recordJsonBytes(r: KafkaEventRecord): number {
  let n = 9 + jsonBytes(r.topic) + 13 + digits(r.partition) + 10 + digits(r.offset) + 13 + digits(r.timestamp);
  if (r.timestampType !== undefined) n += 17 + jsonBytes(r.timestampType);
  if (r.key !== undefined) n += 7 + (r.key === null ? 4 : r.key.length + 2);
  if (r.value !== undefined) n += 9 + (r.value === null ? 4 : r.value.length + 2);
  if (r.headers !== undefined) {
    n += 11 + 2 + Math.max(0, r.headers.length - 1);
    for (const h of r.headers) {
      // {"name":[104,105]}: braces, then per name its JSON, a colon, brackets, and commas between.
      let names = 0;
      for (const name in h) {
        const bytes = h[name];
        names++;
        n += jsonBytes(name) + 3 + Math.max(0, bytes.length - 1);
        for (const b of bytes) n += b < 10 ? 1 : b < 100 ? 2 : 3;
      }
      n += 2 + Math.max(0, names - 1);
    }
  }
  return n + 1;
}

/**
 * A record of Lambda's Kafka event and the bytes it takes in the event's JSON.
 *
 * @example
 * const { record, bytes }: Converted = toLambdaRecord('in', 0, message);
 */
export interface Converted {
  readonly record: KafkaEventRecord;
  readonly bytes: number;
}

/**
 * Converts a kafkajs message to the record shape of Lambda's Kafka event, with its size in the event.
 *
 * @example
 * const converted = batch.messages.map((m) => toLambdaRecord(batch.topic, batch.partition, m));
 */
export function toLambdaRecord(topic: string, partition: number, m: KafkaMessage): Converted {
  const headers: Record<string, number[]>[] = [];
  if (m.headers) {
    for (const [name, v] of Object.entries(m.headers)) {
      for (const one of Array.isArray(v) ? v : [v])
        if (one !== undefined) headers.push({ [name]: [...(Buffer.isBuffer(one) ? one : Buffer.from(String(one)))] });
    }
  }
  const key = m.key ? m.key.toString('base64') : undefined;
  const value = m.value ? m.value.toString('base64') : null;
  const record: KafkaEventRecord = {
    topic,
    partition,
    offset: Number(m.offset),
    timestamp: Number(m.timestamp),
    timestampType: 'CREATE_TIME',
    ...(key === undefined ? {} : { key }),
    value,
    headers,
  };
  return { record, bytes: recordJsonBytes(record) };
}

/**
 * A window result as a record of the event, at the position of the record that closed it: its key
 * as UTF-8, its value as JSON, and its id in a `sluice-id` header. This is how a dead letter of a
 * window result shows as a record (`DeadLetter.record`).
 *
 * @example
 * resultRecord({ topic: 'speeds', partition: 0, offset: 3 }, 0, 'ghost', { start: 0, end: 10_000, n: 1 }, 'speeds:avg:ghost:0:10000');
 */
export function resultRecord(
  at: { readonly topic: string; readonly partition: number; readonly offset: number; readonly timestampType?: string },
  timestamp: number,
  key: string | null,
  value: unknown,
  id: string,
): KafkaEventRecord {
  return {
    topic: at.topic,
    partition: at.partition,
    offset: at.offset,
    timestamp,
    timestampType: at.timestampType,
    key: key === null ? null : Buffer.from(key, 'utf8').toString('base64'),
    value: Buffer.from(JSON.stringify(value) ?? 'null', 'utf8').toString('base64'),
    headers: [{ [SLUICE_ID_HEADER]: [...Buffer.from(id, 'utf8')] }],
  };
}
