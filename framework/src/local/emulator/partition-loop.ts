import type { EsmConfig } from '../../config/event-source-mapping.js';
import { MAX_PAYLOAD_BYTES } from '../../config/limits.js';
import type { Converted, KafkaEventRecord } from '../../runtime/msk-event.js';
import type { Outcome } from './batcher.js';
import { enterStage, type FunctionStats } from './stats.js';

/*
 * The per-partition loop of the event source mapping: one batch at a time, in order, committing
 * after success, and Lambda's retry rules on failure (retried until it succeeds without
 * provisioned pollers; with them, `maximumRetryAttempts` then the on-failure topic).
 */

/**
 * Pause between attempts of a batch that is retried until it succeeds (no provisioned pollers):
 * doubling from `initialMs` up to `maxMs`. Lambda does not document its own backoff.
 *
 * @example
 * const waitMs = Math.min(BLOCKED_RETRY_BACKOFF.maxMs, BLOCKED_RETRY_BACKOFF.initialMs * 2 ** (attempts - 1));
 */
export const BLOCKED_RETRY_BACKOFF = { initialMs: 500, maxMs: 10_000 } as const;

/**
 * The records of one fetched partition batch as the partition loop reads them: an array, or a view
 * that converts kafkajs messages on first read and forgets them once the loop has moved past them
 * (consumer.ts), so a fetch of tens of thousands of records is never held converted all at once.
 *
 * @example
 * const source: RecordSource = converted; // an array of Converted is one
 */
export interface RecordSource {
  readonly length: number;
  at(index: number): Converted | undefined;
  /** The loop will not read records before `index` again. */
  release?(index: number): void;
}

/**
 * Where the next event's share of a partition ends: at most `batchSize` records and `limit` bytes
 * (each record's bytes plus a separating comma), but always at least one record.
 *
 * @example
 * const { end, bytes } = takeChunk(converted, 0, config.batchSize, limit); // converted[0..end) go next
 */
export function takeChunk(converted: RecordSource, from: number, batchSize: number, limit: number): { end: number; bytes: number } {
  let end = from;
  let bytes = 0;
  while (end < converted.length && end - from < batchSize) {
    const next = converted.at(end)!.bytes + 1;
    if (end > from && bytes + next > limit) break;
    bytes += next;
    end++;
  }
  return { end, bytes };
}

/**
 * What {@link runPartition} needs from the emulator around it (consumer.ts provides it from
 * kafkajs; the unit tests, from a fake).
 *
 * @example
 * const ctx: PartitionContext = { config, stats, limit, submit, commit, deadLetter, reason, notice, heartbeat, running, sleep };
 */
export interface PartitionContext {
  readonly config: EsmConfig;
  readonly stats: FunctionStats;
  /** Bytes an event has for this partition's records. */
  readonly limit: number;
  submit(records: readonly KafkaEventRecord[], bytes: number): Promise<Outcome>;
  /**
   * Commits `next` as the partition's next offset to read. The emulator only asks for the commit
   * here (committer.ts) and invokes the next batch at once, as Lambda does; it throws when an
   * earlier commit of the partition failed.
   */
  commit(next: number): Promise<void>;
  /**
   * True when the broker has records past these: a last chunk short of `batchSize` is then left
   * for the next fetch, which brings it with the records after it, instead of going out short (or
   * waiting out the batching window) only because a fetch ended there. Lambda's poller, which
   * reads on, fills that batch too.
   */
  readonly moreWaiting?: boolean;
  /** Sends a record that failed every retry to the on-failure destination. */
  deadLetter(record: KafkaEventRecord, reason: string): Promise<void>;
  /** The handler's own account of a failure among offsets `from`..`to`, if it gave one. */
  reason(from: number, to: number): { offset: number; reason: string } | undefined;
  notice(message: string): void;
  heartbeat(): Promise<void>;
  /** False once the emulator stops or the partition is taken away (a rebalance). */
  running(): boolean;
  /** Waits `ms`, or less when the emulator stops. */
  sleep(ms: number): Promise<void>;
}

/**
 * Processes the records kafkajs fetched for one partition the way the event source mapping does:
 * in order, one batch at a time, committing after each success (the next batch is invoked once the
 * commit is asked for, not once it lands; see `PartitionContext.commit`). A failure is retried from the
 * failed offset; with provisioned pollers up to `maximumRetryAttempts` times, then the record goes
 * to the on-failure topic and the partition moves on. Without them (no retry limit) the batch is
 * retried until it succeeds, as Lambda does, with backoff, and the partition waits.
 *
 * A record whose event alone would pass 6 MB cannot be delivered: it is never passed to the
 * handler; with provisioned pollers it goes to the on-failure topic at once, without them it
 * blocks its partition like any failing batch.
 *
 * Returns how many records it finished (committed or sent to the on-failure topic); fewer than
 * all when it stopped, or left a short tail for the next fetch (`moreWaiting`).
 *
 * @example
 * await runPartition(batch.partition, batch.messages.map((m) => toLambdaRecord(batch.topic, batch.partition, m)), ctx);
 */
export async function runPartition(partition: number, converted: RecordSource, ctx: PartitionContext): Promise<number> {
  try {
    return await processBatch(partition, converted, ctx);
  } finally {
    enterStage(ctx.stats, partition, 'waiting');
  }
}

/** {@link runPartition}, its stages aside. */
async function processBatch(partition: number, converted: RecordSource, ctx: PartitionContext): Promise<number> {
  const { config, stats } = ctx;
  const commit = async (next: number) => {
    enterStage(stats, partition, 'committing');
    await ctx.commit(next);
    enterStage(stats, partition, 'invoking', true);
  };
  const fn = config.functionName;
  let i = 0;
  let attempts = 0;
  while (i < converted.length) {
    if (!ctx.running()) return i;
    converted.release?.(i);
    const { end, bytes } = takeChunk(converted, i, config.batchSize, ctx.limit);
    if (ctx.moreWaiting && i > 0 && attempts === 0 && end === converted.length && end - i < config.batchSize) return i;
    const chunk: KafkaEventRecord[] = [];
    for (let j = i; j < end; j++) chunk.push(converted.at(j)!.record);
    enterStage(stats, partition, attempts > 0 ? 'retrying' : 'invoking');
    const oversize = bytes > ctx.limit;
    const outcome: Outcome = oversize
      ? {
          failedOffset: chunk[0].offset,
          error: `its event would be ${(bytes + MAX_PAYLOAD_BYTES - ctx.limit).toLocaleString('en-US')} bytes, over Lambda's 6 MB invocation payload limit (${MAX_PAYLOAD_BYTES.toLocaleString('en-US')} bytes), so Lambda cannot invoke the function with it`,
        }
      : await ctx.submit(chunk, bytes);
    if (outcome.failedOffset === undefined) {
      stats.records += chunk.length;
      await commit(chunk[chunk.length - 1].offset + 1);
      stats.blocked.delete(partition);
      i = end;
      attempts = 0;
      await ctx.heartbeat();
      continue;
    }
    const at = Math.max(
      0,
      chunk.findIndex((r) => r.offset === outcome.failedOffset),
    );
    if (at > 0) {
      stats.records += at;
      await commit(chunk[at].offset);
      attempts = 0;
    }
    i += at;
    const failed = chunk[at];
    const own = ctx.reason(failed.offset, chunk[chunk.length - 1].offset);
    const reason = own
      ? own.offset === failed.offset
        ? own.reason
        : `${own.reason} (at ${config.topic}-${partition}@${own.offset}); ${outcome.error}`
      : outcome.error!;
    const where = `${config.topic}-${partition}@${failed.offset}`;
    if (config.maximumRetryAttempts === undefined) {
      attempts++;
      stats.retries++;
      stats.blocked.set(partition, { offset: failed.offset, attempts });
      if (attempts === 1) {
        ctx.notice(
          `${fn}: ${where} failed (${reason}); retrying the whole batch until it succeeds, as Lambda does without provisioned pollers: ` +
            `${config.topic}-${partition} is blocked here, as it would be deployed. To bound this, give functions.${fn}.sluice provisionedPollers ` +
            `and maximumRetryAttempts (failed records then go to the on-failure topic, deadLetterTopic by default).`,
        );
      } else if ((attempts & (attempts - 1)) === 0) {
        ctx.notice(`${fn}: ${where} still failing after ${attempts} attempts (${reason}); ${config.topic}-${partition} stays blocked`);
      }
      enterStage(stats, partition, 'retrying');
      let left = Math.min(BLOCKED_RETRY_BACKOFF.maxMs, BLOCKED_RETRY_BACKOFF.initialMs * 2 ** Math.min(attempts - 1, 20));
      while (left > 0) {
        await ctx.sleep(Math.min(1_000, left));
        left -= 1_000;
        if (!ctx.running()) return i;
        await ctx.heartbeat();
      }
      continue;
    }
    if (!oversize && attempts < config.maximumRetryAttempts) {
      attempts++;
      stats.retries++;
      ctx.notice(`${fn}: ${where} failed (${reason}); retry ${attempts} of ${config.maximumRetryAttempts}`);
    } else {
      const why = oversize ? `not delivered: ${reason}` : `failed after ${attempts + 1} attempts: ${reason}`;
      await ctx.deadLetter(failed, why);
      stats.failedToDeadLetter++;
      stats.records++;
      ctx.notice(`${fn}: ${where} sent to ${config.onFailureTopic} (${why})`);
      await commit(failed.offset + 1);
      stats.blocked.delete(partition);
      i++;
      attempts = 0;
    }
    await ctx.heartbeat();
  }
  return i;
}
