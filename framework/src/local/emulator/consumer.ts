import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import type { EsmConfig } from '../../config/event-source-mapping.js';
import { errorText } from '../../errors.js';
import { type Converted, type KafkaEventRecord, partitionOverheadBytes, toLambdaRecord } from '../../runtime/msk-event.js';
import type { Batcher } from './batcher.js';
import { OffsetCommitter } from './committer.js';
import type { FailureReasons } from './invocation.js';
import type { LostRecords } from './losses.js';
import { type RecordSource, runPartition } from './partition-loop.js';
import { enterStage, type FunctionStats } from './stats.js';
import { JOIN_TIMEOUT_MS, watchGroupJoin } from './watchdog.js';

/**
 * What {@link MappingConsumer} works with.
 *
 * @example
 * const opts: MappingConsumerOptions = { kafka, config, partitions: 3, stats, batcher, reasons, losses, notice, deadLetter, sleep, stopping: () => false };
 */
export interface MappingConsumerOptions {
  readonly kafka: Kafka;
  readonly config: EsmConfig;
  /** Partitions of the source topic: up to 64 are processed concurrently, like the mapping's pollers. */
  readonly partitions: number;
  readonly stats: FunctionStats;
  readonly batcher: Batcher;
  readonly reasons: FailureReasons;
  /** Says and counts records the broker no longer had when their partition got to them. */
  readonly losses: LostRecords;
  readonly notice: (message: string) => void;
  /** Sends a record that failed every retry to the on-failure topic. */
  deadLetter(record: KafkaEventRecord, reason: string): Promise<void>;
  /** Waits `ms`, or less when the emulator stops. */
  sleep(ms: number): Promise<void>;
  /** True once the emulator is stopping: no more batches, no restarts. */
  stopping(): boolean;
}

/**
 * The kafkajs consumer of one emulated event source mapping: it joins the mapping's consumer
 * group, hands each fetched partition batch to the partition loop ({@link runPartition}) and
 * commits what that loop finished. The mapping keeps polling whatever happens, so this does too:
 * kafkajs restarts its consumer after retriable errors by itself; after any other error (a failed
 * commit, a dead-letter produce the broker refused), or when the consumer never joins its group
 * (watchdog.ts), a fresh consumer takes over from the committed offsets. Either way it is said,
 * never silent.
 *
 * @example
 * const consumer = new MappingConsumer({ kafka, config, partitions, stats, batcher, reasons, losses, notice, deadLetter, sleep, stopping: () => stopped });
 * await consumer.start();
 * // … later
 * await consumer.disconnect();
 */
export class MappingConsumer {
  #current: Consumer | undefined;
  /** Commits through the consumer running now: after a restart, the fresh one. */
  readonly #committer: OffsetCommitter;

  constructor(readonly opts: MappingConsumerOptions) {
    const topic = opts.config.topic;
    this.#committer = new OffsetCommitter(opts.stats, (offsets) =>
      this.#current!.commitOffsets(offsets.map(([partition, next]) => ({ topic, partition, offset: String(next) }))),
    );
  }

  /** Starts a fresh kafkajs consumer in the group; the previous one, if any, is left to stop. */
  async start(): Promise<void> {
    const { kafka, config, stats, notice } = this.opts;
    const fn = config.functionName;
    // A short session, so that after a crash (SIGKILL) the restarted emulator's group rebalances
    // in seconds instead of waiting 30 s for the dead member to time out.
    const c = kafka.consumer({
      groupId: config.consumerGroupId,
      allowAutoTopicCreation: false,
      // kafkajs fetches again only once every partition of a fetch is done, so a whole fetch stays
      // in memory decoded (a record of ~50 bytes on the wire is ~0.7 KB decoded, and old enough to
      // reach V8's old space): its 10 MB default kept the process near 1 GB. 256 KB per partition
      // (~5,000 small records) still fills events of 10,000 across partitions; the total leaves
      // room for every partition, so none waits behind the others' bytes.
      maxBytesPerPartition: FETCH_BYTES_PER_PARTITION,
      maxBytes: Math.min(10 * 1024 * 1024, FETCH_BYTES_PER_PARTITION * this.opts.partitions),
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      rebalanceTimeout: 30_000,
      retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000 },
    });
    this.#current = c;
    const restartFailed = (e: unknown) => notice(`${fn}: the Kafka consumer could not be restarted: ${errorText(e)}`);
    c.on(c.events.CRASH, ({ payload }) => {
      if (this.opts.stopping()) return;
      stats.consumerRestarts++;
      notice(
        `${fn}: the Kafka consumer stopped (${payload.error.message}); ${payload.restart ? 'kafkajs restarts it' : 'starting a fresh one'} from the committed offsets`,
      );
      if (!payload.restart) {
        setTimeout(() => {
          if (!this.opts.stopping()) this.start().catch(restartFailed);
        }, 1_000);
      }
    });
    const watchdog = watchGroupJoin(c);
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      const mine = payload.memberAssignment[config.topic] ?? [];
      notice(`${fn}: joined consumer group ${config.consumerGroupId}, partitions ${mine.join(', ') || '(none)'}`);
    });
    await c.connect();
    // Offsets are pinned (committed) before the consumer starts, so this applies only to a
    // partition whose starting position could not be pinned.
    await c.subscribe({ topic: config.topic, fromBeginning: config.startingPosition !== 'LATEST' });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.min(this.opts.partitions, 64),
      eachBatch: (p) => this.#eachBatch(p),
    });
    watchdog.arm(() => {
      if (this.opts.stopping() || this.#current !== c) return;
      stats.consumerRestarts++;
      notice(
        `${fn}: the Kafka consumer has not joined group ${config.consumerGroupId} after ${JOIN_TIMEOUT_MS / 1000} s; starting a fresh one`,
      );
      c.disconnect()
        .catch(() => undefined)
        .then(() => (this.opts.stopping() ? undefined : this.start()))
        .catch(restartFailed);
    });
  }

  /** Disconnects the consumer running now. */
  async disconnect(): Promise<void> {
    await this.#current?.disconnect();
  }

  /** One fetched batch of one partition, through the partition loop. */
  async #eachBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { config, stats, notice, sleep, batcher, reasons, losses } = this.opts;
    const committer = this.#committer;
    const p = batch.partition;
    // kafkajs calls this only with records; a fetch below the log start was reset silently.
    await losses.check(p, Number(batch.messages[0].offset));
    try {
      await runPartition(p, new FetchedRecords(batch.topic, p, batch.messages), {
        config,
        stats,
        notice,
        heartbeat,
        sleep,
        limit: batcher.limit - partitionOverheadBytes(config.topic, p),
        moreWaiting: Number(batch.highWatermark) > Number(batch.lastOffset()) + 1,
        running: () => !this.opts.stopping() && isRunning() && !isStale(),
        async submit(records, bytes) {
          // kafkajs heartbeats only when asked: keep the group membership alive during a long invocation.
          const beat = setInterval(() => heartbeat().catch(() => undefined), 1_000);
          try {
            return await batcher.submit(p, records, bytes + partitionOverheadBytes(config.topic, p));
          } finally {
            clearInterval(beat);
          }
        },
        async commit(next) {
          committer.request(p, next);
          // The next fetch starts here; unprocessed records past it (a deferred tail) are fetched again.
          resolveOffset(String(next - 1));
        },
        deadLetter: (record, reason) => this.opts.deadLetter(record, reason),
        reason: (from, to) => reasons.take(p, from, to),
      });
    } finally {
      // Every commit of this batch lands before kafkajs gets the partition back (its next fetch, a
      // rebalance, a stop): at most one fetch is ever invoked past the committed offset, and a
      // failed commit fails this batch, restarting the consumer from what the broker has.
      enterStage(stats, p, 'committing');
      try {
        await committer.settle(p);
      } finally {
        enterStage(stats, p, 'waiting');
      }
    }
  }
}

/** Bytes one fetch brings per partition (kafkajs' `maxBytesPerPartition`). */
const FETCH_BYTES_PER_PARTITION = 256 * 1024;

/**
 * A fetched batch's messages as the partition loop reads them: each converted to the event's
 * record shape on first read, and dropped once the loop has moved past it.
 */
class FetchedRecords implements RecordSource {
  readonly #messages: KafkaMessage[];
  readonly #converted: (Converted | undefined)[];

  constructor(
    readonly topic: string,
    readonly partition: number,
    messages: KafkaMessage[],
  ) {
    this.#messages = messages;
    this.#converted = new Array(messages.length);
  }

  get length(): number {
    return this.#converted.length;
  }

  at(index: number): Converted | undefined {
    let c = this.#converted[index];
    if (c === undefined && index >= 0 && index < this.#converted.length) {
      c = this.#converted[index] = toLambdaRecord(this.topic, this.partition, this.#messages[index]);
    }
    return c;
  }

  release(index: number): void {
    for (let i = index - 1; i >= 0 && this.#converted[i] !== undefined; i--) this.#converted[i] = undefined;
  }
}
