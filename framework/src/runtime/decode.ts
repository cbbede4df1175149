/**
 * The edge's decoding: each record of Lambda's Kafka event becomes a {@link SourceRecord} once,
 * with key and value deserialized by the manifest's source serializers and the record as it
 * arrived kept beside them for the dead-letter path (as Powertools' Kafka consumer does). A record
 * that cannot be deserialized or fails validation becomes a dead letter here. Its timestamp is
 * checked as it becomes a SourceRecord (`kafkaTimestamp`: -1 when missing or invalid); whether a
 * record without one can be processed is decided where event time is used, by the window step.
 * A second record at an offset already seen in the batch (which Lambda never sends) is a dead
 * letter too, so each offset is processed once.
 */
import type { SourceSpec } from '../define/manifest.js';
import { errorText } from '../errors.js';
import { type DeadLetter, type DecodedRecords, type HeadersOf, type SourceBatch, SourceRecord } from '../pipeline/records.js';
import { decodeHeaders, type KafkaEventRecord } from './msk-event.js';

const KEY_CACHE_LIMIT = 100_000;

const headersOf: HeadersOf = (original) => decodeHeaders(original.headers);

/**
 * Decodes event records with a function's source serializers. One per container: keys repeat, so
 * each distinct encoded key is deserialized once (bounded) when the key serializer has a base64
 * fast path, which must be a pure function of its input.
 *
 * @example
 * const decoder = new SourceDecoder(manifest.source);
 * const result = await pipeline.run(topic, partition, decoder.batch(records));
 */
export class SourceDecoder {
  readonly #keys = new Map<string, string | null>();

  constructor(readonly source: SourceSpec) {}

  /**
   * A partition's records as the core takes them; decoded on each `decode` call (a rerun after a
   * failing step decodes again, so it sees values as they arrived).
   */
  batch(records: readonly KafkaEventRecord[]): SourceBatch {
    return { length: records.length, offsetAt: (i) => records[i].offset, decode: (end) => this.decode(records, end) };
  }

  /** Decodes `records[0, end)`: the records that decoded and validated, and dead letters for the rest. */
  decode(records: readonly KafkaEventRecord[], end = records.length): DecodedRecords {
    const { source } = this;
    const out: SourceRecord[] = [];
    const rejected: DeadLetter[] = [];
    const keyFast = source.key.deserializeBase64?.bind(source.key);
    const keys = this.#keys;
    const valueFast = source.value.deserializeBase64?.bind(source.value);
    for (let i = 0; i < end; i++) {
      const r = records[i];
      if (i > 0 && r.offset === records[i - 1].offset) {
        rejected.push(rejectedLetter(r, 'offset', duplicateReason(r)));
        continue;
      }
      let key: string | null = null;
      let value: unknown = null;
      try {
        if (r.key != null) {
          if (keyFast) {
            let k = keys.get(r.key);
            if (k === undefined) {
              if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
              keys.set(r.key, (k = toKey(keyFast(r.key))));
            }
            key = k;
          } else {
            key = toKey(source.key.deserialize(Buffer.from(r.key, 'base64')));
          }
        }
      } catch (e) {
        rejected.push(rejectedLetter(r, 'deserialize key', `key is not valid ${source.key.name}: ${errorText(e)}`));
        continue;
      }
      try {
        if (r.value != null) value = valueFast ? valueFast(r.value) : source.value.deserialize(Buffer.from(r.value, 'base64'));
      } catch (e) {
        rejected.push(rejectedLetter(r, 'deserialize value', `value is not valid ${source.value.name}: ${errorText(e)}`));
        continue;
      }
      if (source.validate) {
        let verdict: true | string;
        try {
          verdict = source.validate(value);
        } catch (e) {
          verdict = `validate() threw: ${errorText(e)}`;
        }
        if (verdict !== true) {
          rejected.push(rejectedLetter(r, 'validate', verdict));
          continue;
        }
      }
      out.push(new SourceRecord(r, key, value, headersOf));
    }
    return { records: out, rejected };
  }
}

/**
 * Lambda never sends an offset twice in one event; if an event does (built by hand, or changed on
 * the way), the first record at the offset is processed and each later one is left out with this
 * reason: an offset is a record's identity for exactly-once state and for the retry position.
 */
function duplicateReason(r: KafkaEventRecord): string {
  return `offset ${r.offset} of ${r.topic}-${r.partition} comes more than once in this event; the first record at that offset was processed and this one left out (Lambda's Kafka event never repeats an offset: check how the event was built).`;
}

function rejectedLetter(r: KafkaEventRecord, stage: string, reason: string): DeadLetter {
  return { record: r, stage, reason };
}

/** A deserialized key as the core keys state by: text (bytes as base64). */
function toKey(k: unknown): string | null {
  if (k === null || k === undefined) return null;
  if (typeof k === 'string') return k;
  if (Buffer.isBuffer(k)) return k.toString('base64');
  return String(k);
}
