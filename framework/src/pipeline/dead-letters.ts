/**
 * The core's two kinds of dead letter: a source record (its original bytes travel on untouched)
 * and a window result (its decoded key and value travel on; the sinks serialize them).
 *
 * The one place the core calls into the wire format: `DeadLetter.record` is public, so a result
 * letter shows its result in the event's record shape too, built by `runtime/msk-event.ts` only
 * if someone reads it (tests, user sinks). Sluice's own sinks read `result` and never build it.
 */
import { type KafkaEventRecord, resultRecord } from '../runtime/msk-event.js';
import type { DeadLetter, DeadResult, SourceRecord } from './records.js';

/**
 * A dead letter for a source record, carrying the record as it arrived.
 *
 * @example
 * deadLetters.push(recordLetter(source, 'validate', 'value must be a number'));
 */
export function recordLetter(source: SourceRecord, stage: string, reason: string): DeadLetter {
  return { record: source.original, stage, reason };
}

/**
 * A dead letter for a record as the event carried it, when none of it could be processed (its
 * partition's state could not be read or written, for a reason no retry changes).
 *
 * @example
 * deadLetters.push(eventLetter(event.records['readings-0'][0], 'state', 'DynamoDB refused …'));
 */
export function eventLetter(record: KafkaEventRecord, stage: string, reason: string): DeadLetter {
  return { record, stage, reason };
}

/**
 * A dead letter for a window result, reported at the record that closed its window. Its
 * `record` (the public view of the result as an event record) is built only if someone reads it;
 * the sinks use `result`.
 *
 * @example
 * deadLetters.push(resultLetter(closing, { id, key: 'ghost', value: { n: 1 }, timestamp: 0 }, 'score', 'window result …: not a number'));
 */
export function resultLetter(
  closing: Pick<SourceRecord, 'topic' | 'partition' | 'offset' | 'timestampType'>,
  r: Omit<DeadResult, 'origin'>,
  stage: string,
  reason: string,
): DeadLetter {
  const result: DeadResult = {
    id: r.id,
    key: r.key,
    value: r.value,
    timestamp: r.timestamp,
    origin: { topic: closing.topic, partition: closing.partition, offset: closing.offset, timestampType: closing.timestampType },
  };
  let record: DeadLetter['record'] | undefined;
  return {
    get record() {
      return (record ??= resultRecord(result.origin, result.timestamp, result.key, result.value, result.id));
    },
    stage,
    reason,
    result,
  };
}
