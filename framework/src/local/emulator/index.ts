import type { Kafka, Producer } from 'kafkajs';
import type { EsmConfig } from '../../config/event-source-mapping.js';
import type { Guarantee } from '../../define/guarantee.js';
import { outputTopics } from '../../define/manifest.js';
import { deadLetterMessage, KafkaDeadLetterSink, KafkaOutputSink } from '../../io/kafka.js';
import { logDeadLetters } from '../../io/sinks.js';
import type { SluiceHandler } from '../../runtime/handler.js';
import { MemoryStore } from '../../state/memory-store.js';
import type { StateStore } from '../../state/store.js';
import { SluiceError } from '../../errors.js';
import { DEFAULT_TICK_MS } from '../time-options.js';
import {
  brokerEndOffsets,
  connectAdmin,
  partitionLog,
  pinStartingPosition,
  prepareTopics,
  refreshHighWatermarks,
  resumeOffsets,
} from './admin.js';
import { Batcher } from './batcher.js';
import { MappingConsumer } from './consumer.js';
import { FailureReasons, lambdaInvoker } from './invocation.js';
import { LostRecords } from './losses.js';
import { emptyStats, type FunctionStats } from './stats.js';
import { startTicker } from './ticker.js';
import { emulatorTransactions } from './transactions.js';
import { STALL_NOTICE_MS, watchProgress } from './watchdog.js';

/*
 * The event source mapping emulator, split by role as kafkajs splits its consumer:
 *   admin.ts           topics, committed offsets, the pinned starting position
 *   consumer.ts        the kafkajs consumer: group, batches in, restarts
 *   committer.ts       offsets committed after success, pipelined: one request in flight, coalesced
 *   watchdog.ts        a consumer that never joins its group is replaced; a partition that stalls is named
 *   losses.ts          records gone from the broker before they were processed: said and counted
 *   partition-loop.ts  one partition, one batch at a time, Lambda's retry rules
 *   batcher.ts         partitions' records gathered into one event (batchSize, window, 6 MB)
 *   invocation.ts      the handler invoked as Lambda does (context, timeout); its failure reasons
 *   ticker.ts          the deployed tick schedule: idle ticks every period, never piled up
 *   transactions.ts    exactly-once: the function's Kafka transactions, counted, reset on a timeout
 *   stats.ts           the counters the live view shows, and each partition's stage
 * The event format and sizes are runtime/msk-event.ts; the settings, config/event-source-mapping.ts.
 */

/**
 * Options of {@link emulateFunction}.
 *
 * @example
 * const opts: EmulatorOptions = { kafka, brokers: '127.0.0.1:9092', handler, config, notice: console.error };
 */
export interface EmulatorOptions {
  readonly kafka: Kafka;
  /** The bootstrap servers `kafka` connects to, as events carry them (`bootstrapServers`) and errors name them; empty when not given. */
  readonly brokers?: string;
  readonly handler: SluiceHandler;
  readonly config: EsmConfig;
  readonly store?: StateStore;
  /** Told about things worth a line in the terminal (resumes, retries, dead letters, lost records, stalls). */
  readonly notice?: (message: string) => void;
  /** A partition with records waiting that has not committed for this long is named in a notice, with its stage; 60 s by default. */
  readonly stallNoticeMs?: number;
  /**
   * The period of idle ticks in ms (`sluice dev --tick`), one minute by default as deployed; false
   * runs none. A function without idle windows runs none either way.
   */
  readonly tickMs?: number | false;
  /**
   * The delivery guarantee to run with instead of the function's (`sluice dev --guarantee`).
   * Exactly-once sends outputs, late records and dead letters in Kafka transactions.
   */
  readonly guarantee?: Guarantee;
}

/**
 * A running emulated event source mapping.
 *
 * @example
 * const fn: EmulatedFunction = await emulateFunction(opts);
 * fn.stats.records; // records processed so far
 */
export interface EmulatedFunction {
  readonly stats: FunctionStats;
  readonly store: StateStore;
  /** Stops consuming; the batch in flight finishes and commits, or is abandoned uncommitted. */
  stop(): Promise<void>;
}

/**
 * Emulates Lambda's Kafka event source mapping for one function against a real broker: one
 * consumer group, partitions processed strictly in order one batch at a time, events batched
 * across partitions in Lambda's event shape, offsets committed only after success (asynchronously,
as Lambda does: a partition's next batch does not wait for the commit's round trip), and failures
 * handled as the deployed mapping would (see `runPartition`, partition-loop.ts). Records the broker
 * deleted before they were processed are said and counted (`stats.lost`, losses.ts); a partition
 * with records waiting that stops committing is named with its stage (`watchProgress`). A
 * function with idle windows gets idle ticks on the deployed schedule (`tickMs`, ticker.ts).
 *
 * @example
 * const fn = await emulateFunction({ kafka, brokers: '127.0.0.1:9092', handler, config });
 * // … later
 * await fn.stop();
 */
export async function emulateFunction(opts: EmulatorOptions): Promise<EmulatedFunction> {
  const { kafka, handler, config } = opts;
  const brokers = opts.brokers ?? '';
  const notice = opts.notice ?? (() => undefined);
  const manifest = handler.sluice.manifest;
  const store = opts.store ?? new MemoryStore();
  const stats = emptyStats(config.functionName, opts.guarantee ?? handler.sluice.guarantee);
  const tickMs = opts.tickMs ?? DEFAULT_TICK_MS;
  const ticks = tickMs !== false && handler.sluice.idleWindows.length > 0;
  if (ticks && config.topic !== manifest.source.topic) {
    // A tick works on the handler's own source topic (its end offsets, its partitions' state);
    // batches from another topic would never be closed by it. Deployed, `sls package` refuses this.
    throw new SluiceError(
      `function "${config.functionName}": its handler reads topic "${manifest.source.topic}" but its event is on topic "${config.topic}", and its idle windows need ticks on the topic it reads; make them the same, or run without ticks (--tick off).`,
    );
  }
  const admin = await connectAdmin(kafka, brokers);
  let partitions: number;
  try {
    // Outputs, late records and dead letters go to topics with the source's partition count.
    partitions = await prepareTopics(admin, config, outputTopics(manifest), notice);
    await resumeOffsets(admin, config, stats, store, notice);
    await pinStartingPosition(admin, config, partitions, stats, notice);
  } catch (e) {
    await admin.disconnect();
    throw e;
  }

  const reasons = new FailureReasons();
  const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const deadLetters = new KafkaDeadLetterSink(producer, config.deadLetterTopic);
  // Exactly-once: outputs, late records and dead letters go through the function's transactions
  // instead of `sink` and `deadLetters` (runtime/exactly-once.ts).
  const transactions =
    stats.guarantee === 'exactly-once'
      ? emulatorTransactions(
          kafka,
          manifest,
          config,
          logDeadLetters(() => handler.sluice.runtime.logger),
          stats.transactions,
        )
      : undefined;
  handler.sluice.configure({
    store,
    guarantee: stats.guarantee,
    transactions,
    sink: new KafkaOutputSink(producer, manifest),
    deadLetters,
    onBatch: (r) => {
      stats.windowsEmitted += r.stats.windowsEmitted;
      stats.late += r.stats.late;
      stats.poison += r.stats.poison;
      reasons.record(r);
    },
  });

  let stopping = false;
  const sleepers = new Set<() => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(t);
        sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  const consumer = new MappingConsumer({
    kafka,
    config,
    partitions,
    stats,
    reasons,
    losses: new LostRecords({ config, stats, notice, log: (p) => partitionLog(admin, config.topic, p) }),
    notice,
    sleep,
    batcher: new Batcher(
      config,
      brokers,
      lambdaInvoker(handler, config, stats, () => transactions?.reset()),
    ),
    stopping: () => stopping,
    async deadLetter(record, reason) {
      await producer.send({
        topic: config.onFailureTopic!,
        acks: -1,
        messages: [deadLetterMessage({ record, reason, stage: 'invoke' }, config.functionName)],
      });
    },
  });
  await consumer.start();
  const stopRefresh = refreshHighWatermarks(admin, config.topic, stats);
  const ticker = ticks ? startTicker({ handler, config, offsets: brokerEndOffsets(admin), stats, periodMs: tickMs, notice }) : undefined;
  const stopWatch = watchProgress(stats, {
    topic: config.topic,
    functionName: config.functionName,
    timeoutMs: config.timeoutMs,
    stallMs: opts.stallNoticeMs ?? STALL_NOTICE_MS,
    notice,
  });

  return {
    stats,
    store,
    async stop() {
      stopping = true;
      for (const wake of [...sleepers]) wake();
      // A tick in flight still sends through the producer and reads through the admin.
      await ticker?.stop();
      stopRefresh();
      stopWatch();
      await consumer.disconnect();
      await transactions?.close();
      await producer.disconnect();
      await admin.disconnect();
    },
  };
}
