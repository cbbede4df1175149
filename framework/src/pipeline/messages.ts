/**
 * Output messages and every deterministic id Sluice gives them: the one place that sets
 * `sluice-id`. An id depends only on the function, the source position and the step, so a
 * retried batch produces the same ids and consumers can drop duplicates.
 */
import type { RecordPosition } from '../errors.js';
import type { LateOutput, OutputMessage } from './records.js';

/**
 * The header carrying a message's deterministic id.
 *
 * @example
 * message.headers[SLUICE_ID_HEADER]; // 'SensorSums:total:s1:0:10000'
 */
export const SLUICE_ID_HEADER = 'sluice-id';

/**
 * Headers of a late record's message, besides its id.
 *
 * @example
 * message.headers[LATE_HEADERS.window]; // 'total'
 */
export const LATE_HEADERS = { window: 'sluice-late-window', clock: 'sluice-late-clock' } as const;

/**
 * The id of a value derived from a source record: `sub` is its path among the record's children
 * (`0` for the record itself, `3.1` for the second child of the fourth child of an expand).
 *
 * @example
 * recordId('Clicks', { topic: 'clicks', partition: 0, offset: 7 }, '0'); // 'Clicks:clicks-0:7:0'
 */
export function recordId(
  functionName: string,
  source: { readonly topic: string; readonly partition: number },
  offset: number,
  sub: string,
): string {
  return `${functionName}:${source.topic}-${source.partition}:${offset}:${sub}`;
}

/**
 * The id of a window result. Final results are named by their window (or, for count windows, by
 * `#seq`, the index of their first record); an early (`emit: 'current'`) result also carries the
 * offset and sub-path of the record that produced it.
 *
 * @example
 * windowResultId('SensorSums', 'total', { key: 's1', start: 0, end: 10_000, offset: 5, final: true }, '0'); // 'SensorSums:total:s1:0:10000'
 */
export function windowResultId(
  functionName: string,
  window: string,
  r: {
    readonly key: string;
    readonly start: number;
    readonly end: number;
    readonly offset: number;
    readonly final: boolean;
    readonly seq?: number;
  },
  sub: string,
): string {
  return `${functionName}:${window}:${r.key}:${r.seq === undefined ? `${r.start}:${r.end}` : `#${r.seq}`}${r.final ? '' : `@${r.offset}.${sub}`}`;
}

/**
 * The id of a late record: function, window, source topic-partition, offset and sub-path.
 *
 * @example
 * lateId('SensorSums', 'total', { topic: 'sensor-counts', partition: 0 }, 6, '0'); // 'SensorSums:late:total:sensor-counts-0:6:0'
 */
export function lateId(
  functionName: string,
  window: string,
  source: { readonly topic: string; readonly partition: number },
  offset: number,
  sub: string,
): string {
  return `${functionName}:late:${window}:${source.topic}-${source.partition}:${offset}:${sub}`;
}

/**
 * The id of a dead letter: one per source position and function.
 *
 * @example
 * deadLetterId('fn', { topic: 'in', partition: 2, offset: 41 }); // 'fn:dlq:in-2:41'
 */
export function deadLetterId(functionName: string, origin: RecordPosition): string {
  return `${functionName}:dlq:${origin.topic}-${origin.partition}:${origin.offset}`;
}

/**
 * An output message with its id, set once as both `id` and the `sluice-id` header (which
 * replaces a source header of that name).
 *
 * @example
 * outputMessage('sensor-sums', 's1', { value: 6 }, 0, {}, 'SensorSums:total:s1:0:10000');
 */
export function outputMessage(
  topic: string,
  key: string | null,
  value: unknown,
  timestamp: number,
  headers: Readonly<Record<string, string>>,
  id: string,
): OutputMessage {
  return { topic, key, value, timestamp, headers: { ...headers, [SLUICE_ID_HEADER]: id }, id };
}

/**
 * The message of a late record on the function's late topic: the record's key and value, with
 * the window it missed and the clock that closed it in headers.
 *
 * @example
 * lateMessage('sensor-counts.late', late);
 */
export function lateMessage(topic: string, l: LateOutput): OutputMessage {
  const headers = { [SLUICE_ID_HEADER]: l.id, [LATE_HEADERS.window]: l.window, [LATE_HEADERS.clock]: String(l.clock) };
  return { topic, key: l.key, value: l.value, timestamp: l.timestamp, headers, id: l.id };
}
