import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { SluiceError } from '../errors.js';
import { deadLetterMessage, KafkaDeadLetterSink, KafkaOutputSink } from '../io/kafka.js';
import { outputTopics } from '../define/manifest.js';
import type { KafkaEventRecord } from '../pipeline/records.js';
import type { KafkaBatchResponse, KafkaEvent } from '../runtime/event.js';
import type { SluiceHandler } from '../runtime/handler.js';
import { MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';
import { type EsmConfig, MAX_PAYLOAD_BYTES } from './esm-config.js';
import { lambdaContext } from './events.js';

/** How long a consumer may take to join its group before the emulator starts a fresh one. */
const JOIN_TIMEOUT_MS = 20_000;

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
}

/** What one invocation's records of one partition came to. */
interface Outcome {
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
 * its first record has passed.
 */
class Batcher {
  #pending: Submission[] = [];
  #count = 0;
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: EsmConfig,
    readonly invoke: (event: KafkaEvent) => Promise<KafkaBatchResponse>,
  ) {}

  submit(partition: number, records: readonly KafkaEventRecord[], bytes: number): Promise<Outcome> {
    return new Promise((resolve) => {
      if (this.#pending.length > 0 && (this.#count + records.length > this.config.batchSize || this.#bytes + bytes > MAX_PAYLOAD_BYTES)) this.#flush();
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
    const event: KafkaEvent = { eventSource: 'SelfManagedKafka', bootstrapServers: '', records };
    this.invoke(event).then(
      (response) => {
        const failed = new Map<number, number>();
        for (const f of response?.batchItemFailures ?? []) {
          const p = Number(f.itemIdentifier.partition.slice(f.itemIdentifier.partition.lastIndexOf('-') + 1));
          failed.set(p, Math.min(failed.get(p) ?? Infinity, Number(f.itemIdentifier.offset)));
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

/** Options of {@link emulateFunction}. */
export interface EmulatorOptions {
  readonly kafka: Kafka;
  readonly handler: SluiceHandler;
  readonly config: EsmConfig;
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

/** Converts a kafkajs message to the record shape of Lambda's Kafka event. */
export function toLambdaRecord(topic: string, partition: number, m: KafkaMessage): { record: KafkaEventRecord; bytes: number } {
  const headers: Record<string, number[]>[] = [];
  if (m.headers) {
    for (const [name, v] of Object.entries(m.headers)) {
      for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined) headers.push({ [name]: [...(Buffer.isBuffer(one) ? one : Buffer.from(String(one)))] });
    }
  }
  const key = m.key ? m.key.toString('base64') : undefined;
  const value = m.value ? m.value.toString('base64') : null;
  const record: KafkaEventRecord = {
    topic, partition, offset: Number(m.offset), timestamp: Number(m.timestamp), timestampType: 'CREATE_TIME',
    ...(key === undefined ? {} : { key }), value, headers,
  };
  // What the record adds to the event JSON, roughly: payloads plus a fixed envelope.
  return { record, bytes: (key?.length ?? 0) + (value?.length ?? 0) + headers.length * 32 + 160 };
}

/**
 * Emulates Lambda's Kafka event source mapping for one function against a real broker: one
 * consumer group, partitions processed strictly in order one batch at a time, events batched
 * across partitions, offsets committed only after success, retries from the failed offset, then
 * the failed record to the dead-letter topic and the partition moves on.
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
  const admin = kafka.admin();
  await connect(admin, kafka);
  const topics = await retrying(() => admin.fetchTopicMetadata({ topics: [] })).then((m) => new Map(m.topics.map((t) => [t.name, t.partitions.length])));
  const partitions = topics.get(config.topic);
  if (partitions === undefined) {
    await admin.disconnect();
    throw new SluiceError(`topic "${config.topic}" (functions.${config.functionName} event in serverless.yml) does not exist on the broker; create it (e.g. npx sluice produce ${config.functionName} --brokers <host:port>, which also loads its sample) or fix the topic name.`);
  }
  // Outputs, late records and dead letters go to topics with the source's partition count.
  const needed = [...outputTopics(manifest), config.deadLetterTopic].filter((t) => !topics.has(t));
  if (needed.length > 0) {
    await admin.createTopics({ topics: needed.map((topic) => ({ topic, numPartitions: partitions })), waitForLeaders: true });
    notice(`${config.functionName}: created topics ${needed.join(', ')}`);
  }

  const stats: FunctionStats = {
    name: config.functionName, records: 0, batches: 0, retries: 0, windowsEmitted: 0, late: 0, poison: 0, failedToDeadLetter: 0, consumerRestarts: 0,
    committed: new Map(), highWatermarks: new Map(),
  };
  const committed = await retrying(() => admin.fetchOffsets({ groupId: config.consumerGroupId, topics: [config.topic] }));
  const resumed = committed[0]?.partitions.filter((p) => Number(p.offset) >= 0) ?? [];
  const store = opts.store ?? new MemoryStore();
  if (resumed.length > 0) {
    for (const p of resumed) stats.committed.set(p.partition, Number(p.offset));
    notice(`${config.functionName}: resuming consumer group ${config.consumerGroupId} from committed offsets ${resumed.map((p) => `p${p.partition}@${p.offset}`).join(', ')}` +
      (store.durable ? '' : `; state is in memory, so windows and keyed state from before the restart are lost (their earlier records are not read again)`));
  } else if (config.startingPosition === 'AT_TIMESTAMP') {
    const offsets = await admin.fetchTopicOffsetsByTimestamp(config.topic, config.startingPositionTimestamp);
    await admin.setOffsets({ groupId: config.consumerGroupId, topic: config.topic, partitions: offsets.map((o) => ({ partition: o.partition, offset: o.offset })) });
  }

  // The handler's own account of why a record failed, for retries' messages and dead-letter headers.
  const lastErrors = new Map<string, string>();
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
        if (p.failedOffset !== undefined) lastErrors.set(`${p.partition}@${p.failedOffset}`, `step "${p.failedStage}": ${String((p.error as Error)?.message ?? p.error)}`);
      }
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
      return await Promise.race([handler({ ...event, bootstrapServers: brokersOf(kafka) }, ctx as never), timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const batcher = new Batcher(config, invoke);
  let stopping = false;
  let consumer!: Consumer;

  const commit = async (partition: number, next: number) => {
    await consumer.commitOffsets([{ topic: config.topic, partition, offset: String(next) }]);
    stats.committed.set(partition, next);
  };

  const eachBatch = async ({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload) => {
    const converted = batch.messages.map((m) => toLambdaRecord(batch.topic, batch.partition, m));
    let i = 0;
    let attempts = 0;
    while (i < converted.length) {
      if (stopping || !isRunning() || isStale()) return;
      let bytes = 0;
      let j = i;
      while (j < converted.length && j - i < config.batchSize && (j === i || bytes + converted[j].bytes <= MAX_PAYLOAD_BYTES)) bytes += converted[j++].bytes;
      const chunk = converted.slice(i, j).map((c) => c.record);
      const outcome = await batcher.submit(batch.partition, chunk, bytes);
      if (outcome.failedOffset === undefined) {
        stats.records += chunk.length;
        await commit(batch.partition, chunk[chunk.length - 1].offset + 1);
        resolveOffset(String(chunk[chunk.length - 1].offset));
        i = j;
        attempts = 0;
      } else {
        const at = Math.max(0, chunk.findIndex((r) => r.offset === outcome.failedOffset));
        if (at > 0) {
          stats.records += at;
          await commit(batch.partition, chunk[at].offset);
          resolveOffset(String(chunk[at - 1].offset));
          attempts = 0;
        }
        i += at;
        const failed = chunk[at];
        const reason = lastErrors.get(`${batch.partition}@${failed.offset}`) ?? outcome.error;
        lastErrors.delete(`${batch.partition}@${failed.offset}`);
        if (attempts < config.maximumRetryAttempts) {
          attempts++;
          stats.retries++;
          notice(`${config.functionName}: ${config.topic}-${batch.partition}@${failed.offset} failed (${reason}); retry ${attempts} of ${config.maximumRetryAttempts}`);
        } else {
          await producer.send({
            topic: config.deadLetterTopic, acks: -1,
            messages: [deadLetterMessage({ record: failed, reason: `failed after ${attempts + 1} attempts: ${reason}`, stage: 'invoke' }, config.functionName)],
          });
          stats.failedToDeadLetter++;
          stats.records++;
          notice(`${config.functionName}: ${config.topic}-${batch.partition}@${failed.offset} sent to ${config.deadLetterTopic} after ${attempts + 1} attempts (${reason})`);
          await commit(batch.partition, failed.offset + 1);
          resolveOffset(String(failed.offset));
          i++;
          attempts = 0;
        }
      }
      await heartbeat();
    }
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
      clearInterval(refresh);
      await consumer.disconnect();
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}

function brokersOf(kafka: Kafka): string {
  return (kafka as unknown as { sluiceBrokers?: string }).sluiceBrokers ?? '';
}

async function connect(admin: Admin, kafka: Kafka): Promise<void> {
  try {
    await admin.connect();
  } catch (e) {
    throw new SluiceError(`could not reach Kafka at ${brokersOf(kafka) || 'the given brokers'}: ${(e as Error).message}. Is the broker running (npm run infra:up) and is --brokers right?`);
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
