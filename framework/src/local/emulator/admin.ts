import type { Admin, Kafka } from 'kafkajs';
import type { EsmConfig } from '../../config/event-source-mapping.js';
import { errorText, SluiceError } from '../../errors.js';
import type { EndOffsets } from '../../runtime/tick.js';
import type { StateStore } from '../../state/store.js';
import type { LogRange } from './losses.js';
import type { FunctionStats } from './stats.js';

/*
 * What the event source mapping finds or sets up on the broker before it polls: the source topic
 * and its partitions, the topics the function writes to, the group's committed offsets, and the
 * starting position, resolved once.
 */

/**
 * A connected kafkajs admin client; a broker that cannot be reached fails naming `brokers`.
 *
 * @example
 * const admin = await connectAdmin(kafka, '127.0.0.1:9092');
 */
export async function connectAdmin(kafka: Kafka, brokers: string): Promise<Admin> {
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (e) {
    throw new SluiceError(
      `could not reach Kafka at ${brokers || 'the given brokers'}: ${errorText(e)}. Is the broker running (npm run infra:up) and is --brokers right?`,
    );
  }
  return admin;
}

/**
 * The partition count of the function's source topic, after creating the topics it writes to
 * (outputs, late records, dead letters) with that many partitions. A missing source topic fails
 * saying how to create it.
 *
 * @example
 * const partitions = await prepareTopics(admin, config, outputTopics(manifest), notice);
 */
export async function prepareTopics(
  admin: Admin,
  config: EsmConfig,
  outputs: readonly string[],
  notice: (m: string) => void,
): Promise<number> {
  const topics = await retrying(() => admin.fetchTopicMetadata({ topics: [] })).then(
    (m) => new Map(m.topics.map((t) => [t.name, t.partitions.length])),
  );
  const partitions = topics.get(config.topic);
  if (partitions === undefined) {
    throw new SluiceError(
      `topic "${config.topic}" (functions.${config.functionName} event in serverless.yml) does not exist on the broker; create it (e.g. npx sluice produce ${config.functionName} --brokers <host:port>, which also loads its sample) or fix the topic name.`,
    );
  }
  for (const n of config.notices ?? []) notice(n);
  const needed = [...new Set([...outputs, config.deadLetterTopic, ...(config.onFailureTopic ? [config.onFailureTopic] : [])])].filter(
    (t) => !topics.has(t),
  );
  if (needed.length > 0) {
    // Retention off, as on the source topic `sluice produce` creates: results and dead letters
    // carry their records' (often old) timestamps, and must not vanish before they are read.
    await admin.createTopics({
      topics: needed.map((topic) => ({ topic, numPartitions: partitions, configEntries: [{ name: 'retention.ms', value: '-1' }] })),
      waitForLeaders: true,
    });
    notice(`${config.functionName}: created topics ${needed.join(', ')} (retention.ms=-1)`);
  }
  return partitions;
}

/**
 * Reads the consumer group's committed offsets into `stats.committed`, saying so when a run
 * resumes (and that in-memory state from before the restart is gone).
 *
 * @example
 * await resumeOffsets(admin, config, stats, store, notice);
 */
export async function resumeOffsets(
  admin: Admin,
  config: EsmConfig,
  stats: FunctionStats,
  store: StateStore,
  notice: (m: string) => void,
): Promise<void> {
  const committed = await retrying(() => admin.fetchOffsets({ groupId: config.consumerGroupId, topics: [config.topic] }));
  const resumed = committed[0]?.partitions.filter((p) => Number(p.offset) >= 0) ?? [];
  if (resumed.length === 0) return;
  for (const p of resumed) stats.committed.set(p.partition, Number(p.offset));
  notice(
    `${config.functionName}: resuming consumer group ${config.consumerGroupId} from committed offsets ${resumed.map((p) => `p${p.partition}@${p.offset}`).join(', ')}` +
      (store.durable
        ? ''
        : `; state is in memory, so windows and keyed state from before the restart are lost (their earlier records are not read again)`),
  );
}

/**
 * The event source mapping resolves `LATEST` or `AT_TIMESTAMP` once, when it is created. The
 * emulator does the same by committing the resolved offsets of partitions the group has no
 * offset for, before it consumes: a restart before the first batch commits then starts where the
 * first run did, instead of at a newer end of the topic (skipping what was produced meanwhile).
 *
 * @example
 * await pinStartingPosition(admin, config, partitions, stats, notice); // after resumeOffsets
 */
export async function pinStartingPosition(
  admin: Admin,
  config: EsmConfig,
  partitions: number,
  stats: FunctionStats,
  notice: (m: string) => void,
): Promise<void> {
  if (config.startingPosition === 'TRIM_HORIZON') return;
  const missing = Array.from({ length: partitions }, (_, p) => p).filter((p) => !stats.committed.has(p));
  if (missing.length === 0) return;
  const resolved =
    config.startingPosition === 'LATEST'
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
      if (!/no running instances/.test(errorText(e)) || waited >= 20_000) {
        notice(
          `${config.functionName}: could not pin the starting position ${config.startingPosition} of consumer group ${config.consumerGroupId} (${errorText(e)}); the consumer resolves it when it starts instead`,
        );
        return;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
  for (const o of pins) stats.committed.set(o.partition, Number(o.offset));
  notice(
    `${config.functionName}: starting position ${config.startingPosition} pinned for consumer group ${config.consumerGroupId} at ${pins.map((o) => `p${o.partition}@${o.offset}`).join(', ')} (committed now, as the event source mapping records it once)`,
  );
}

/**
 * The offsets one partition's log holds now (its log start and end), as losses.ts asks for them.
 *
 * @example
 * const { low, high } = await partitionLog(admin, 'readings', 0);
 */
export async function partitionLog(admin: Admin, topic: string, partition: number): Promise<LogRange> {
  const o = (await retrying(() => admin.fetchTopicOffsets(topic), 10_000)).find((x) => x.partition === partition);
  if (!o) throw new SluiceError(`the broker reported no offsets for ${topic}-${partition}`);
  return { low: Number(o.low), high: Number(o.high) };
}

/**
 * End offsets read from the broker (each partition's high watermark), as idle ticks need them:
 * what the deployed tick asks the cluster for.
 *
 * @example
 * handler.sluice.configure({ offsets: brokerEndOffsets(admin) });
 */
export function brokerEndOffsets(admin: Admin): EndOffsets {
  return {
    endOffsets: async (topic) =>
      new Map((await retrying(() => admin.fetchTopicOffsets(topic), 10_000)).map((o) => [o.partition, Number(o.high)])),
  };
}

/**
 * Keeps `stats.highWatermarks` current (every second) for the live view's lag; returns the stop.
 *
 * @example
 * const stopRefresh = refreshHighWatermarks(admin, config.topic, stats);
 */
export function refreshHighWatermarks(admin: Admin, topic: string, stats: FunctionStats): () => void {
  const refresh = setInterval(() => {
    admin.fetchTopicOffsets(topic).then(
      (offs) => {
        for (const o of offs) stats.highWatermarks.set(o.partition, Number(o.high));
      },
      () => undefined,
    );
  }, 1000);
  refresh.unref();
  return () => clearInterval(refresh);
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
