/**
 * What flows in and out of the core: decoded source records in (the edge, `runtime/`, decodes
 * them once), output messages, dead letters and late records out. Nothing here knows base64.
 */
import type { RecordPosition } from '../errors.js';
import type { KafkaEventRecord } from '../runtime/msk-event.js';
import type { Outcome } from './stats.js';

/** Kafka's "no timestamp" (`RecordBatch.NO_TIMESTAMP`). */
const NO_TIMESTAMP = -1;
/** The largest time a JavaScript Date can hold (year 275760). */
const MAX_TIMESTAMP = 8.64e15;

/**
 * A record timestamp as the core uses it: the value if it is epoch milliseconds (a number from 0
 * to year 275760), else -1, Kafka's own "no timestamp". Missing, non-numeric, NaN and negative
 * timestamps all become -1, once, here: a window then dead-letters the record (it has no event
 * time), and an output made from it carries -1, which Kafka stores as "no timestamp".
 *
 * @example
 * kafkaTimestamp(1_700_000_000_000); // 1700000000000
 * kafkaTimestamp(undefined);         // -1
 * kafkaTimestamp(Number.NaN);        // -1
 */
export function kafkaTimestamp(t: unknown): number {
  return typeof t === 'number' && t >= 0 && t <= MAX_TIMESTAMP ? t : NO_TIMESTAMP;
}

/**
 * How the edge turns a record's headers into text (the core does not know their encoding).
 *
 * @example
 * const headersOf: HeadersOf = (r) => decodeHeaders(r.headers);
 */
export type HeadersOf = (original: KafkaEventRecord) => Record<string, string>;

/**
 * A source record as the core sees it: key and value deserialized with the manifest's source
 * serializers, headers as text (decoded on first read), and the record as it arrived
 * (`original`) kept beside them for the dead-letter path, which republishes its bytes untouched.
 * The edge (`runtime/decode.ts`) makes them.
 *
 * It is also the first item of its own path through the steps: `key`, `value` and `ts` (event
 * time) are updated in place as steps run, rather than every record being copied (this is the
 * hot path; fields are assigned in the constructor, not declared, for the same reason). A run
 * works on fresh records: a rerun decodes them again.
 *
 * @example
 * const r = new SourceRecord(original, 's1', { value: 2 }, (o) => decodeHeaders(o.headers));
 * `${r.topic}-${r.partition}@${r.offset}: ${r.key} ${JSON.stringify(r.value)} ${r.headers.source}`;
 */
export class SourceRecord {
  /** The record as the event carried it; the core hands it to dead letters and never reads its payload. */
  declare readonly original: KafkaEventRecord;
  declare key: string | null;
  declare value: unknown;
  /** Event time: the record's timestamp ({@link kafkaTimestamp}: -1 if it has none) until a timestamp step sets it. */
  declare ts: number;
  /** How the record's path through the steps ended so far (see pipeline/stats.ts); 0 while on its way. */
  declare outcome: Outcome;
  declare private readonly headersOf: HeadersOf;
  declare private decoded: Record<string, string> | undefined;

  constructor(original: KafkaEventRecord, key: string | null, value: unknown, headersOf: HeadersOf) {
    this.original = original;
    this.key = key;
    this.value = value;
    this.ts = kafkaTimestamp(original.timestamp);
    this.outcome = 0;
    this.headersOf = headersOf;
    this.decoded = undefined;
  }

  /** Records an outcome of (part of) this record; the strongest one wins (see `OUTCOME`). */
  settle(o: Outcome): void {
    if (o > this.outcome) this.outcome = o;
  }

  get topic(): string {
    return this.original.topic;
  }
  get partition(): number {
    return this.original.partition;
  }
  get offset(): number {
    return this.original.offset;
  }
  /** The timestamp as the event carried it (possibly invalid; `ts` holds the checked one). */
  get timestamp(): number {
    return this.original.timestamp;
  }
  get timestampType(): string | undefined {
    return this.original.timestampType;
  }
  /** Header values as UTF-8 text; a repeated name keeps its last value. */
  get headers(): Readonly<Record<string, string>> {
    return (this.decoded ??= this.headersOf(this.original));
  }
  /** As an item: the record itself, not a child of an expand (see pipeline/item.ts). */
  get sub(): string {
    return '0';
  }
  /** As an item: the record it came from, itself. */
  get source(): SourceRecord {
    return this;
  }
}

/**
 * The records of a batch the edge could decode and validate, and dead letters for the others.
 *
 * @example
 * const { records, rejected } = batch.decode(batch.length);
 */
export interface DecodedRecords {
  readonly records: SourceRecord[];
  readonly rejected: DeadLetter[];
}

/**
 * One partition's batch as the edge hands it to the core. The core may stop at a failing record
 * and run the records before it again: each `decode` returns fresh values, so a step that
 * mutates its input in place sees every record as it arrived on every run.
 *
 * @example
 * const batch: SourceBatch = decoder.batch(event.records['readings-0']);
 * const result = await pipeline.run('readings', 0, batch);
 */
export interface SourceBatch {
  /** Records in the batch, rejected ones included. */
  readonly length: number;
  /** Offset of the `i`-th record (in offset order). */
  offsetAt(i: number): number;
  /** Decodes the records `[0, end)`. */
  decode(end: number): DecodedRecords;
}

/**
 * A message a function produces, before serialization. `id` is deterministic across retries and
 * is also the message's `sluice-id` header.
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
 * A window result that was rejected after its window closed (a model could not score it, or a
 * step declared it poison): its decoded key and value, to be serialized by the sink.
 *
 * @example
 * letter.result; // { id: 'speeds:avg:ghost:0:10000', key: 'ghost', value: { start: 0, end: 10000, n: 1 }, timestamp: 0, origin: { topic: 'speeds', partition: 0, offset: 3 } }
 */
export interface DeadResult {
  readonly id: string;
  readonly key: string | null;
  readonly value: unknown;
  /** The result's event time (its window's start). */
  readonly timestamp: number;
  /** The record that closed the window; the result is reported at its position. */
  readonly origin: RecordPosition & { readonly timestampType?: string };
}

/**
 * A record that can never be processed, with where it came from and why.
 *
 * `record` is the rejected record as it arrived (its original bytes, as the event carried them).
 * For a rejected window result, `result` holds the result itself, and `record` shows it as a record
 * of the event at the position of the record that closed the window (key as UTF-8, value as JSON),
 * built only when read.
 *
 * @example
 * run.deadLetters.map((d) => `${d.record.offset} ${d.stage}: ${d.reason}`); // ['1 validate: value must be a number']
 */
export interface DeadLetter {
  readonly record: KafkaEventRecord;
  readonly reason: string;
  /** The step or stage that rejected it. */
  readonly stage: string;
  readonly result?: DeadResult;
}

/**
 * Where a dead letter came from: the rejected record, or the record that closed a rejected
 * window result's window.
 *
 * @example
 * const { topic, partition, offset } = letterOrigin(letter);
 */
export function letterOrigin(d: DeadLetter): RecordPosition {
  return d.result ? d.result.origin : d.record;
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
