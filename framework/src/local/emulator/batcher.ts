import type { EsmConfig } from '../../config/event-source-mapping.js';
import { MAX_PAYLOAD_BYTES } from '../../config/limits.js';
import { errorText } from '../../errors.js';
import {
  eventOverheadBytes,
  type KafkaBatchResponse,
  type KafkaEvent,
  type KafkaEventRecord,
  lambdaEvent,
} from '../../runtime/msk-event.js';

/**
 * What one invocation's records of one partition came to.
 *
 * @example
 * const outcome: Outcome = { failedOffset: 42, error: 'the handler reported this record as failed' };
 */
export interface Outcome {
  /** The offset to retry from; absent when the records succeeded. */
  readonly failedOffset?: number;
  readonly error?: string;
}

interface Submission {
  readonly partition: number;
  readonly records: readonly KafkaEventRecord[];
  readonly bytes: number;
  resolve(o: Outcome): void;
}

/**
 * Gathers records of several partitions into one event, as the event source mapping does: an
 * event is sent when it holds `batchSize` records, would pass 6 MB, or the batching window since
 * its first record has passed. Without provisioned pollers a partial batch response is ignored:
 * any failure fails the whole event, as the handler does deployed (`SLUICE_ENV.partialBatch` false).
 *
 * @example
 * const batcher = new Batcher(config, '127.0.0.1:9092', (event) => handler(event, ctx));
 * const outcome = await batcher.submit(0, records, bytes);
 */
export class Batcher {
  #pending: Submission[] = [];
  #count = 0;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Bytes left for partitions' records once the event's own fields are counted. */
  readonly limit: number;

  constructor(
    readonly config: Pick<
      EsmConfig,
      'topic' | 'batchSize' | 'maximumBatchingWindowMs' | 'eventSource' | 'eventSourceArn' | 'provisionedPollers'
    >,
    readonly bootstrapServers: string,
    readonly invoke: (event: KafkaEvent) => Promise<KafkaBatchResponse>,
  ) {
    this.limit = MAX_PAYLOAD_BYTES - eventOverheadBytes(config, bootstrapServers);
  }

  /**
   * Adds one partition's records (at most one submission per partition at a time); `bytes` is
   * their share of the event, {@link partitionOverheadBytes} included.
   */
  submit(partition: number, records: readonly KafkaEventRecord[], bytes: number): Promise<Outcome> {
    return new Promise((resolve) => {
      if (this.#pending.length > 0 && (this.#count + records.length > this.config.batchSize || this.#bytes + bytes > this.limit))
        this.#flush();
      this.#pending.push({ partition, records, bytes, resolve });
      this.#count += records.length;
      this.#bytes += bytes;
      if (this.#count >= this.config.batchSize || this.config.maximumBatchingWindowMs === 0) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.config.maximumBatchingWindowMs);
    });
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const subs = this.#pending;
    this.#pending = [];
    this.#count = 0;
    this.#bytes = 0;
    if (subs.length === 0) return;
    const records: Record<string, KafkaEventRecord[]> = {};
    for (const s of subs) (records[`${this.config.topic}-${s.partition}`] ??= []).push(...s.records);
    this.invoke(lambdaEvent(this.config, this.bootstrapServers, records)).then(
      (response) => {
        const failed = new Map<number, number>();
        for (const f of response?.batchItemFailures ?? []) {
          const p = Number(f.itemIdentifier.partition.slice(f.itemIdentifier.partition.lastIndexOf('-') + 1));
          failed.set(p, Math.min(failed.get(p) ?? Infinity, Number(f.itemIdentifier.offset)));
        }
        if (failed.size > 0 && !this.config.provisionedPollers) {
          const [p, offset] = [...failed][0];
          const error = `the handler reported ${this.config.topic}-${p}@${offset} as failed, and without provisioned pollers partial batch responses are off, so the whole batch failed`;
          for (const s of subs) s.resolve({ failedOffset: s.records[0].offset, error });
          return;
        }
        for (const s of subs)
          s.resolve(
            failed.has(s.partition) ? { failedOffset: failed.get(s.partition)!, error: 'the handler reported this record as failed' } : {},
          );
      },
      (e: unknown) => {
        const error = errorText(e);
        for (const s of subs) s.resolve({ failedOffset: s.records[0].offset, error });
      },
    );
  }
}
