import type { KafkaEventRecord } from '../runtime/msk-event.js';

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
