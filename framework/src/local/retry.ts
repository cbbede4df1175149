import { errorText } from '../errors.js';
import type { DeadLetter } from '../pipeline/records.js';
import type { KafkaBatchResponse, KafkaEvent, KafkaEventRecord } from '../runtime/msk-event.js';

/**
 * What {@link invokeWithRetries} reports along the way.
 *
 * @example
 * const events: RetryEvents = { retry: (g, o, n, of) => console.error(`retry ${g}@${o} ${n}/${of}`), giveUp: (d) => dlq.push(d) };
 */
export interface RetryEvents {
  retry?(partition: string, offset: number, attempt: number, of: number): void;
  /** A record that kept failing: the on-failure destination gets it, and its partition moves on. */
  giveUp(letter: DeadLetter): Promise<void> | void;
}

/**
 * Invokes a handler with an event the way the event source mapping does on failure: each partition
 * the response lists is retried from its failed offset, up to `maxRetries` times; then the failing
 * record goes to the on-failure destination and the partition continues after it. A handler that
 * throws fails every partition of the event from its first record.
 *
 * @example
 * await invokeWithRetries((e) => handler(e, ctx), event, 2, { giveUp: (d) => dlq.push(d) });
 */
export async function invokeWithRetries(
  invoke: (event: KafkaEvent) => Promise<KafkaBatchResponse>,
  event: KafkaEvent,
  maxRetries: number,
  events: RetryEvents,
): Promise<{ invocations: number; retries: number; deadLettered: number }> {
  let pending: Record<string, readonly KafkaEventRecord[]> = { ...event.records };
  const attempts = new Map<string, number>();
  let invocations = 0;
  let retries = 0;
  let deadLettered = 0;
  while (Object.keys(pending).length > 0) {
    invocations++;
    let failures: Map<string, { offset: number; error: string }>;
    try {
      const response = await invoke({ ...event, records: pending });
      failures = new Map(
        response.batchItemFailures.map((f) => [
          f.itemIdentifier.partition,
          { offset: Number(f.itemIdentifier.offset), error: 'the handler reported this record as failed' },
        ]),
      );
    } catch (e) {
      const error = errorText(e);
      failures = new Map(Object.entries(pending).map(([group, rs]) => [group, { offset: rs[0].offset, error }]));
    }
    const next: Record<string, readonly KafkaEventRecord[]> = {};
    for (const [group, f] of failures) {
      const records = pending[group];
      if (!records) continue;
      let from = records.findIndex((r) => r.offset === f.offset);
      if (from < 0) from = 0;
      const key = `${group}@${records[from].offset}`;
      const n = attempts.get(key) ?? 0;
      if (n < maxRetries) {
        attempts.set(key, n + 1);
        retries++;
        events.retry?.(group, records[from].offset, n + 1, maxRetries);
      } else {
        await events.giveUp({ record: records[from], reason: `failed after ${n + 1} attempts: ${f.error}`, stage: 'invoke' });
        deadLettered++;
        from++;
      }
      if (from < records.length) next[group] = records.slice(from);
    }
    pending = next;
  }
  return { invocations, retries, deadLettered };
}
