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
 * A message a function produces, before serialization. `id` is deterministic across retries.
 *
 * @example
 * run.outputs[0];
 * // { topic: 'sensor-sums', key: 's1', value: { start: 0, end: 10000, value: 2 }, timestamp: 0,
 * //   headers: { 'sluice-id': 'SensorSums:total:s1:0:10000' }, id: 'SensorSums:total:s1:0:10000' }
 */
export interface OutputMessage {
  readonly topic: string;
  readonly key: string | null;
  readonly value: unknown;
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly id: string;
}

/**
 * A record that can never be processed, with where it came from and why.
 *
 * @example
 * run.deadLetters.map((d) => `${d.record.offset} ${d.stage}: ${d.reason}`); // ['1 validate: value must be a number']
 */
export interface DeadLetter {
  readonly record: KafkaEventRecord;
  readonly reason: string;
  /** The step or stage that rejected it. */
  readonly stage: string;
}

/**
 * A late record, reported once per record with the windows it missed.
 *
 * @example
 * run.late[0]; // { window: 'total', key: 's1', value: { value: 3 }, timestamp: 1000, offset: 3, windows: [[0, 10000]], clock: 20000 }
 */
export interface LateOutput {
  readonly window: string;
  readonly key: string;
  readonly value: unknown;
  readonly timestamp: number;
  readonly offset: number;
  readonly windows: ReadonlyArray<readonly [number, number]>;
  readonly clock: number;
  /** Deterministic id of this late record: function, window, source topic-partition, offset and position in an expand. */
  readonly id: string;
}

/** Decodes Lambda's header arrays (`[{ name: [bytes] }]`) into strings. */
export function decodeHeaders(headers: KafkaEventRecord['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const h of headers) for (const name in h) out[name] = Buffer.from(h[name]).toString('utf8');
  return out;
}
