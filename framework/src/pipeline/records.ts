/**
 * A Kafka record as the Lambda event for Amazon MSK and self-managed Kafka carries it.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
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

/** A message a function produces, before serialization. `id` is deterministic across retries. */
export interface OutputMessage {
  readonly topic: string;
  readonly key: string | null;
  readonly value: unknown;
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly id: string;
}

/** A record that can never be processed, with where it came from and why. */
export interface DeadLetter {
  readonly record: KafkaEventRecord;
  readonly reason: string;
  /** The step or stage that rejected it. */
  readonly stage: string;
}

/** A late record, reported once per record with the windows it missed. */
export interface LateOutput {
  readonly window: string;
  readonly key: string;
  readonly value: unknown;
  readonly timestamp: number;
  readonly offset: number;
  readonly windows: ReadonlyArray<readonly [number, number]>;
  readonly clock: number;
}

/** Decodes Lambda's header arrays (`[{ name: [bytes] }]`) into strings. */
export function decodeHeaders(headers: KafkaEventRecord['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  if (!headers) return out;
  for (const h of headers) for (const name in h) out[name] = Buffer.from(h[name]).toString('utf8');
  return out;
}
