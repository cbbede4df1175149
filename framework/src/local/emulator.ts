import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import type { EsmConfig } from '../config/event-source-mapping.js';
import { MAX_PAYLOAD_BYTES } from '../config/limits.js';
import { SluiceError } from '../errors.js';
import { deadLetterMessage, KafkaDeadLetterSink, KafkaOutputSink } from '../io/kafka.js';
import { outputTopics } from '../define/manifest.js';
import { lambdaContext } from '../runtime/lambda-context.js';
import {
  type Converted, eventOverheadBytes, type KafkaBatchResponse, type KafkaEvent, type KafkaEventRecord, lambdaEvent, partitionOverheadBytes, toLambdaRecord,
} from '../runtime/msk-event.js';
import type { SluiceHandler } from '../runtime/handler.js';
import { MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';

/** How long a consumer may take to join its group before the emulator starts a fresh one. */
const JOIN_TIMEOUT_MS = 20_000;

/**
 * Pause between attempts of a batch that is retried until it succeeds (no provisioned pollers):
 * doubling from `initialMs` up to `maxMs`. Lambda does not document its own backoff.
 */
export const BLOCKED_RETRY_BACKOFF = { initialMs: 500, maxMs: 10_000 } as const;

/** Live counters of one emulated function. */
export interface FunctionStats {
  readonly name: string;
  records: number;
  batches: number;
  retries: number;
  windowsEmitted: number;
  late: number;
  poison: number;
  failedToDeadLetter: number;
  /** Times the Kafka consumer crashed and was started again (each one is also a notice). */
  consumerRestarts: number;
  /** Next offset to consume per partition (committed). */
  readonly committed: Map<number, number>;
  /** Log end offset per partition (refreshed periodically). */
  readonly highWatermarks: Map<number, number>;
  /** Partitions held at a batch that keeps failing and is retried until it succeeds. */
  readonly blocked: Map<number, { readonly offset: number; readonly attempts: number }>;
}

/** A fresh set of counters. */
export function emptyStats(name: string): FunctionStats {
  return {
    name, records: 0, batches: 0, retries: 0, windowsEmitted: 0, late: 0, poison: 0, failedToDeadLetter: 0, consumerRestarts: 0,
    committed: new Map(), highWatermarks: new Map(), blocked: new Map(),
  };
}

/** What one invocation's records of one partition came to. */
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
 * any failure fails the whole event, as the handler does deployed (`SLUICE_PARTIAL_BATCH=false`).
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
    readonly config: Pick<EsmConfig, 'topic' | 'batchSize' | 'maximumBatchingWindowMs' | 'eventSource' | 'eventSourceArn' | 'provisionedPollers'>,
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
      if (this.#pending.length > 0 && (this.#count + records.length > this.config.batchSize || this.#bytes + bytes > this.limit)) this.#flush();
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
        for (const s of subs) s.resolve(failed.has(s.partition) ? { failedOffset: failed.get(s.partition)!, error: 'the handler reported this record as failed' } : {});
      },
      (e: unknown) => {
        const error = String((e as Error)?.message ?? e);
        for (const s of subs) s.resolve({ failedOffset: s.records[0].offset, error });
      },
    );
  }
}

/**
 * Where the next event's share of a partition ends: at most `batchSize` records and `limit` bytes
 * (each record's bytes plus a separating comma), but always at least one record.
 */
export function takeChunk(converted: readonly Converted[], from: number, batchSize: number, limit: number): { end: number; bytes: number } {
  let end = from;
  let bytes = 0;
  while (end < converted.length && end - from < batchSize && (end === from || bytes + converted[end].bytes + 1 <= limit)) bytes += converted[end++].bytes + 1;
  return { end, bytes };
}

/** What {@link runPartition} needs from the emulator around it. */
export interface PartitionContext {
  readonly config: EsmConfig;
  readonly stats: FunctionStats;
  /** Bytes an event has for this partition's records. */
  readonly limit: number;
  submit(records: readonly KafkaEventRecord[], bytes: number): Promise<Outcome>;
  /** Commits `next` as the partition's next offset to read. */
  commit(next: number): Promise<void>;
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
 * in order, one batch at a time, committing after each success. A failure is retried from the
 * failed offset; with provisioned pollers up to `maximumRetryAttempts` times, then the record goes
 * to the on-failure topic and the partition moves on. Without them (no retry limit) the batch is
 * retried until it succeeds, as Lambda does, with backoff, and the partition waits.
 *
 * A record whose event alone would pass 6 MB cannot be delivered: it is never passed to the
 * handler; with provisioned pollers it goes to the on-failure topic at once, without them it
 * blocks its partition like any failing batch.
 */
export async function runPartition(partition: number, converted: readonly Converted[], ctx: PartitionContext): Promise<void> {
  const { config, stats } = ctx;
  const fn = config.functionName;
  let i = 0;
  let attempts = 0;
  while (i < converted.length) {
    if (!ctx.running()) return;
    const { end, bytes } = takeChunk(converted, i, config.batchSize, ctx.limit);
    const chunk = converted.slice(i, end).map((c) => c.record);
    const oversize = bytes > ctx.limit;
    const outcome: Outcome = oversize
      ? { failedOffset: chunk[0].offset, error: `its event would be ${(bytes + MAX_PAYLOAD_BYTES - ctx.limit).toLocaleString('en-US')} bytes, over Lambda's 6 MB invocation payload limit (${MAX_PAYLOAD_BYTES.toLocaleString('en-US')} bytes), so Lambda cannot invoke the function with it` }
      : await ctx.submit(chunk, bytes);
    if (outcome.failedOffset === undefined) {
      stats.records += chunk.length;
      await ctx.commit(chunk[chunk.length - 1].offset + 1);
      stats.blocked.delete(partition);
      i = end;
      attempts = 0;
      await ctx.heartbeat();
      continue;
    }
    const at = Math.max(0, chunk.findIndex((r) => r.offset === outcome.failedOffset));
    if (at > 0) {
      stats.records += at;
      await ctx.commit(chunk[at].offset);
      attempts = 0;
    }
    i += at;
    const failed = chunk[at];
    const own = ctx.reason(failed.offset, chunk[chunk.length - 1].offset);
    const reason = own ? (own.offset === failed.offset ? own.reason : `${own.reason} (at ${config.topic}-${partition}@${own.offset}); ${outcome.error}`) : outcome.error!;
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
      let left = Math.min(BLOCKED_RETRY_BACKOFF.maxMs, BLOCKED_RETRY_BACKOFF.initialMs * 2 ** Math.min(attempts - 1, 20));
      while (left > 0) {
        await ctx.sleep(Math.min(1_000, left));
        left -= 1_000;
        if (!ctx.running()) return;
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
      await ctx.commit(failed.offset + 1);
      stats.blocked.delete(partition);
      i++;
      attempts = 0;
    }
    await ctx.heartbeat();
  }
}

/** Options of {@link emulateFunction}. */
export interface EmulatorOptions {
  readonly kafka: Kafka;
  readonly handler: SluiceHandler;
  readonly config: EsmConfig;
  /** The bootstrap servers, as events carry them (`bootstrapServers`); default: the CLI's --brokers. */
  readonly brokers?: string;
  readonly store?: StateStore;
  /** Told about things worth a line in the terminal (resumes, retries, dead letters). */
  readonly notice?: (message: string) => void;
}

/** A running emulated event source mapping. */
export interface EmulatedFunction {
  readonly stats: FunctionStats;
  readonly store: StateStore;
  /** Stops consuming; the batch in flight finishes and commits, or is abandoned uncommitted. */
  stop(): Promise<void>;
}

/**
 * Emulates Lambda's Kafka event source mapping for one function against a real broker: one
 * consumer group, partitions processed strictly in order one batch at a time, events batched
 * across partitions in Lambda's event shape, offsets committed only after success, and failures
 * handled as the deployed mapping would (see {@link runPartition}).
 *
 * @example
 * const fn = await emulateFunction({ kafka, handler, config });
 * // … later
 * await fn.stop();
 */
export async function emulateFunction(opts: EmulatorOptions): Promise<EmulatedFunction> {
  const { kafka, handler, config } = opts;
  const notice = opts.notice ?? (() => undefined);
  const manifest = handler.sluice.manifest;
  const brokers = opts.brokers ?? brokersOf(kafka);
  const admin = kafka.admin();
  await connect(admin, brokers);
  const topics = await retrying(() => admin.fetchTopicMetadata({ topics: [] })).then((m) => new Map(m.topics.map((t) => [t.name, t.partitions.length])));
  const partitions = topics.get(config.topic);
  if (partitions === undefined) {
    await admin.disconnect();
    throw new SluiceError(`topic "${config.topic}" (functions.${config.functionName} event in serverless.yml) does not exist on the broker; create it (e.g. npx sluice produce ${config.functionName} --brokers <host:port>, which also loads its sample) or fix the topic name.`);
  }
  for (const n of config.notices ?? []) notice(n);
  // Outputs, late records and dead letters go to topics with the source's partition count.
  const needed = [...new Set([...outputTopics(manifest), config.deadLetterTopic, ...(config.onFailureTopic ? [config.onFailureTopic] : [])])].filter((t) => !topics.has(t));
  if (needed.length > 0) {
    await admin.createTopics({ topics: needed.map((topic) => ({ topic, numPartitions: partitions })), waitForLeaders: true });
    notice(`${config.functionName}: created topics ${needed.join(', ')}`);
  }

  const stats = emptyStats(config.functionName);
  const committed = await retrying(() => admin.fetchOffsets({ groupId: config.consumerGroupId, topics: [config.topic] }));
  const resumed = committed[0]?.partitions.filter((p) => Number(p.offset) >= 0) ?? [];
  const store = opts.store ?? new MemoryStore();
  if (resumed.length > 0) {
    for (const p of resumed) stats.committed.set(p.partition, Number(p.offset));
    notice(`${config.functionName}: resuming consumer group ${config.consumerGroupId} from committed offsets ${resumed.map((p) => `p${p.partition}@${p.offset}`).join(', ')}` +
      (store.durable ? '' : `; state is in memory, so windows and keyed state from before the restart are lost (their earlier records are not read again)`));
  }
  await pinStartingPosition(admin, config, partitions, stats, notice);

  // The handler's own account of why a record failed, per partition, for retries' messages and
  // dead-letter headers (offset -1: the partition failed whole).
  const lastErrors = new Map<number, { offset: number; reason: string }>();
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  handler.sluice.configure({
    store,
    sink: new KafkaOutputSink(producer, manifest),
    deadLetters: new KafkaDeadLetterSink(producer, config.deadLetterTopic),
    onBatch: (r) => {
      stats.windowsEmitted += r.stats.windowsEmitted;
      stats.late += r.stats.late;
      stats.poison += r.stats.poison;
      for (const p of r.partitions) {
        if (p.failedOffset !== undefined) lastErrors.set(p.partition, { offset: p.failedOffset, reason: `step "${p.failedStage}": ${String((p.error as Error)?.message ?? p.error)}` });
      }
      for (const f of r.failed) lastErrors.set(f.partition, { offset: -1, reason: `state ${f.stage} failed: ${String((f.error as Error)?.message ?? f.error)}` });
    },
  });

  const invoke = async (event: KafkaEvent): Promise<KafkaBatchResponse> => {
    stats.batches++;
    const ctx = lambdaContext(config.functionName, config.timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Task timed out after ${(config.timeoutMs / 1000).toFixed(2)} seconds`)), config.timeoutMs);
    });
    try {
      return await Promise.race([handler(event, ctx as never), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const batcher = new Batcher(config, brokers, invoke);
  let stopping = false;
  const sleepers = new Set<() => void>();
  const sleep = (ms: number) => new Promise<void>((resolve) => {
    const wake = () => {
      clearTimeout(t);
      sleepers.delete(wake);
      resolve();
    };
    const t = setTimeout(wake, ms);
    sleepers.add(wake);
  });
  let consumer!: Consumer;

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    const p = batch.partition;
    await runPartition(p, batch.messages.map((m) => toLambdaRecord(batch.topic, p, m)), {
      config, stats, notice, heartbeat, sleep,
      limit: batcher.limit - partitionOverheadBytes(config.topic, p),
      running: () => !stopping && isRunning() && !isStale(),
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
        await consumer.commitOffsets([{ topic: config.topic, partition: p, offset: String(next) }]);
        stats.committed.set(p, next);
        resolveOffset(String(next - 1));
      },
      async deadLetter(record, reason) {
        await producer.send({ topic: config.onFailureTopic!, acks: -1, messages: [deadLetterMessage({ record, reason, stage: 'invoke' }, config.functionName)] });
      },
      reason(from, to) {
        const e = lastErrors.get(p);
        if (!e || (e.offset !== -1 && (e.offset < from || e.offset > to))) return undefined;
        lastErrors.delete(p);
        return e.offset === -1 ? { offset: from, reason: e.reason } : e;
      },
    });
  };

  /**
   * The event source mapping keeps polling whatever happens, so the emulator does too: kafkajs
   * restarts its consumer after retriable errors by itself; after any other error (a failed
   * commit, a dead-letter produce the broker refused) a fresh consumer takes over from the
   * committed offsets. Either way it is said, never silent.
   */
  const startConsumer = async (): Promise<void> => {
    // A short session, so that after a crash (SIGKILL) the restarted emulator's group rebalances
    // in seconds instead of waiting 30 s for the dead member to time out.
    const c = kafka.consumer({
      groupId: config.consumerGroupId, allowAutoTopicCreation: false, maxBytesPerPartition: 4 * 1024 * 1024,
      sessionTimeout: 10_000, heartbeatInterval: 1_000, rebalanceTimeout: 30_000,
      retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 5_000 },
    });
    consumer = c;
    c.on(c.events.CRASH, ({ payload }) => {
      if (stopping) return;
      stats.consumerRestarts++;
      notice(`${config.functionName}: the Kafka consumer stopped (${payload.error.message}); ${payload.restart ? 'kafkajs restarts it' : 'starting a fresh one'} from the committed offsets`);
      if (!payload.restart) {
        setTimeout(() => {
          if (!stopping) startConsumer().catch((e) => notice(`${config.functionName}: the Kafka consumer could not be restarted: ${(e as Error).message}`));
        }, 1_000);
      }
    });
    let joined = false;
    c.on(c.events.GROUP_JOIN, ({ payload }) => {
      joined = true;
      const mine = payload.memberAssignment[config.topic] ?? [];
      notice(`${config.functionName}: joined consumer group ${config.consumerGroupId}, partitions ${mine.join(', ') || '(none)'}`);
    });
    await c.connect();
    // Offsets are pinned (committed) before the consumer starts, so this applies only to a
    // partition whose starting position could not be pinned.
    await c.subscribe({ topic: config.topic, fromBeginning: config.startingPosition !== 'LATEST' });
    await c.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: Math.min(partitions, 64), eachBatch });
    // A consumer that never joins its group (a coordinator still loading after the broker
    // started, a rebalance that stalls) would poll nothing forever: start a fresh one.
    const watchdog = setTimeout(() => {
      if (joined || stopping || consumer !== c) return;
      stats.consumerRestarts++;
      notice(`${config.functionName}: the Kafka consumer has not joined group ${config.consumerGroupId} after ${JOIN_TIMEOUT_MS / 1000} s; starting a fresh one`);
      c.disconnect().catch(() => undefined).then(() => (stopping ? undefined : startConsumer())).catch((e) => notice(`${config.functionName}: the Kafka consumer could not be restarted: ${(e as Error).message}`));
    }, JOIN_TIMEOUT_MS);
    watchdog.unref();
  };
  await startConsumer();

  const refresh = setInterval(() => {
    admin.fetchTopicOffsets(config.topic).then(
      (offs) => { for (const o of offs) stats.highWatermarks.set(o.partition, Number(o.high)); },
      () => undefined,
    );
  }, 1000);
  refresh.unref();

  return {
    stats,
    store,
    async stop() {
      stopping = true;
      for (const wake of [...sleepers]) wake();
      clearInterval(refresh);
      await consumer.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

/**
 * The event source mapping resolves `LATEST` or `AT_TIMESTAMP` once, when it is created. The
 * emulator does the same by committing the resolved offsets of partitions the group has no
 * offset for, before it consumes: a restart before the first batch commits then starts where the
 * first run did, instead of at a newer end of the topic (skipping what was produced meanwhile).
 */
async function pinStartingPosition(admin: Admin, config: EsmConfig, partitions: number, stats: FunctionStats, notice: (m: string) => void): Promise<void> {
  if (config.startingPosition === 'TRIM_HORIZON') return;
  const missing = Array.from({ length: partitions }, (_, p) => p).filter((p) => !stats.committed.has(p));
  if (missing.length === 0) return;
  const resolved = config.startingPosition === 'LATEST'
    ? (await retrying(() => admin.fetchTopicOffsets(config.topic))).map((o) => ({ partition: o.partition, offset: o.high }))
    : await retrying(() => admin.fetchTopicOffsetsByTimestamp(config.topic, config.startingPositionTimestamp));
  const pins = resolved.filter((o) => missing.includes(o.partition)).sort((a, b) => a.partition - b.partition);
  // setOffsets needs a group without members; a member of a run that was killed stays until its
  // session times out (10 s).
  for (let waited = 0; ; waited += 1_000) {
    try {
      await admin.setOffsets({ groupId: config.consumerGroupId, topic: config.topic, partitions: pins });
      break;
    } catch (e) {
      if (!/no running instances/.test((e as Error).message) || waited >= 20_000) {
        notice(`${config.functionName}: could not pin the starting position ${config.startingPosition} of consumer group ${config.consumerGroupId} (${(e as Error).message}); the consumer resolves it when it starts instead`);
        return;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  for (const o of pins) stats.committed.set(o.partition, Number(o.offset));
  notice(`${config.functionName}: starting position ${config.startingPosition} pinned for consumer group ${config.consumerGroupId} at ${pins.map((o) => `p${o.partition}@${o.offset}`).join(', ')} (committed now, as the event source mapping records it once)`);
}

function brokersOf(kafka: Kafka): string {
  return (kafka as unknown as { sluiceBrokers?: string }).sluiceBrokers ?? '';
}

async function connect(admin: Admin, brokers: string): Promise<void> {
  try {
    await admin.connect();
  } catch (e) {
    throw new SluiceError(`could not reach Kafka at ${brokers || 'the given brokers'}: ${(e as Error).message}. Is the broker running (npm run infra:up) and is --brokers right?`);
  }
}

/**
 * Retries an admin call while Kafka answers with a retriable error (a coordinator still loading
 * after the broker started, a leader election), for up to 30 s.
 */
async function retrying<T>(call: () => Promise<T>, deadlineMs = 30_000): Promise<T> {
  const until = Date.now() + deadlineMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await call();
    } catch (e) {
      if (!(e as { retriable?: boolean }).retriable || Date.now() + delay > until) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
