import { toMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import { LOCAL_CLUSTER_ARN } from '../runtime/msk-event.js';
import { functionConfig, type GuaranteeOption, onFailureTopic as kafkaTopicOf } from './function-config.js';
import {
  BATCH_SIZE,
  BATCHING_WINDOW_SECONDS,
  CONSUMER_GROUP_ID,
  DEFAULT_STARTING_POSITION,
  INFINITE_RETRIES_WITH_DESTINATION,
  SERVERLESS_DEFAULT_TIMEOUT_SECONDS,
  STARTING_POSITIONS,
  type StartingPosition,
} from './limits.js';
import { declarationOf, type FunctionEntry } from './serverless-yml.js';

/**
 * An event source mapping as Sluice emulates it: a function's {@link functionConfig} with the
 * settings Lambda and Serverless derive from its `msk` or `kafka` event when it is deployed
 * (batching, starting position, timeout) and Lambda's reading of its retry options.
 *
 * @example
 * const config: EsmConfig = esmConfig(entry, 'shop', { stage: 'dev' });
 * config.maximumRetryAttempts; // undefined: without provisioned pollers a batch is retried until it succeeds
 */
export interface EsmConfig {
  readonly functionName: string;
  readonly topic: string;
  readonly batchSize: number;
  readonly maximumBatchingWindowMs: number;
  readonly startingPosition: StartingPosition;
  readonly startingPositionTimestamp?: number;
  readonly consumerGroupId: string;
  /** `aws:kafka` for an `msk` event, `SelfManagedKafka` for a `kafka` event. */
  readonly eventSource: 'aws:kafka' | 'SelfManagedKafka';
  /** The MSK cluster ARN (`msk` events only). */
  readonly eventSourceArn?: string;
  /**
   * Provisioned poller mode. Deployed, only then does Lambda honour partial batch responses,
   * retry limits and the on-failure destination (the plugin sets `SLUICE_ENV.partialBatch` to match).
   */
  readonly provisionedPollers: boolean;
  /**
   * Retries of a failing record before it goes to `onFailureTopic`. Absent: the batch is retried
   * until it succeeds, blocking its partition (Lambda without provisioned pollers).
   */
  readonly maximumRetryAttempts?: number;
  /** The Kafka topic records go to once they have failed every retry (with provisioned pollers). */
  readonly onFailureTopic?: string;
  /** Where the handler sends poison records (`SLUICE_ENV.deadLetterTopic` deployed). */
  readonly deadLetterTopic: string;
  readonly timeoutMs: number;
  /** What differs from the deployed mapping and is worth telling the user once. */
  readonly notices?: readonly string[];
  /** Idle tick period (ms) of the deployed schedule (`sluice.tick`), or false for none. */
  readonly tickMs?: number | false;
  /**
   * The function's `sluice: { guarantee }`, if set; `deployedGuarantee({ name, guarantee },
   * manifest.source.guarantee)` (function-config.ts) gives the guarantee it is deployed with.
   */
  readonly guarantee?: GuaranteeOption;
}

/** An MSK cluster ARN written out, as opposed to an intrinsic or a variable resolved at deploy. */
const CLUSTER_ARN = /^arn:aws[a-zA-Z-]*:kafka:[^:]*:\d*:cluster\/[^/]+\/.+$/;

/**
 * Validates and completes a function's event source settings with the values Lambda and the
 * Serverless plugin use when it is deployed: batch size 100, batching window 500 ms, starting
 * position TRIM_HORIZON, consumer group `sluice-<service>-<stage>-<function>`, timeout 6 s
 * (Serverless's default), and the plugin's reading of the `sluice:` block (retries, destinations
 * and partial batch responses only with provisioned pollers).
 *
 * @example
 * const config = esmConfig(entry, 'sluice-examples', { stage: 'dev', timeoutSeconds: 60 });
 */
export function esmConfig(entry: FunctionEntry, service: string, defaults: { timeoutSeconds?: number; stage?: string } = {}): EsmConfig {
  const where = `functions.${entry.name}`;
  const ev = entry.event;
  if (!ev)
    throw new ConfigError(
      `${where} in serverless.yml has no msk or kafka event; add one with at least a topic, e.g. events: [{ msk: { arn: …, topic: my-topic } }].`,
    );
  // The plugin's own reading of the event and the sluice: block, so both fail on the same input
  // and agree on the topic, the consumer group, the dead-letter topic and the retry settings.
  const fn = functionConfig(entry.name, declarationOf(entry), { service, stage: defaults.stage ?? 'dev' })!;
  const batchSize = ev.batchSize === undefined ? BATCH_SIZE.default : ev.batchSize;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < BATCH_SIZE.min || batchSize > BATCH_SIZE.max) {
    throw new ConfigError(
      `${where} event batchSize must be a whole number from ${BATCH_SIZE.min} to ${BATCH_SIZE.max}; received ${JSON.stringify(ev.batchSize)}.`,
    );
  }
  const windowS = ev.maximumBatchingWindow === undefined ? BATCHING_WINDOW_SECONDS.default : ev.maximumBatchingWindow;
  if (typeof windowS !== 'number' || windowS < BATCHING_WINDOW_SECONDS.min || windowS > BATCHING_WINDOW_SECONDS.max) {
    throw new ConfigError(
      `${where} event maximumBatchingWindow must be seconds from ${BATCHING_WINDOW_SECONDS.min} to ${BATCHING_WINDOW_SECONDS.max}; received ${JSON.stringify(ev.maximumBatchingWindow)}.`,
    );
  }
  const startingPosition = (ev.startingPosition ?? DEFAULT_STARTING_POSITION) as StartingPosition;
  if (!STARTING_POSITIONS.includes(startingPosition)) {
    throw new ConfigError(
      `${where} event startingPosition must be one of ${STARTING_POSITIONS.join(', ')}; received ${JSON.stringify(ev.startingPosition)}.`,
    );
  }
  let startingPositionTimestamp: number | undefined;
  if (startingPosition === 'AT_TIMESTAMP') {
    const ts = ev.startingPositionTimestamp;
    if (typeof ts !== 'number' || ts < 0)
      throw new ConfigError(
        `${where} event startingPositionTimestamp (epoch seconds) is required with AT_TIMESTAMP; received ${JSON.stringify(ts)}.`,
      );
    startingPositionTimestamp = ts * 1000;
  }
  const group = fn.consumerGroupId;
  if (typeof group !== 'string' || !CONSUMER_GROUP_ID.test(group)) {
    throw new ConfigError(
      `${where} event consumerGroupId must be 1-200 letters, digits, . _ : -; received ${JSON.stringify(ev.consumerGroupId)}.`,
    );
  }
  const notices: string[] = [];
  const provisioned = fn.provisionedPollers !== undefined;
  let maximumRetryAttempts: number | undefined;
  let onFailureTopic: string | undefined;
  if (provisioned) {
    const r = fn.maximumRetryAttempts;
    maximumRetryAttempts = r === undefined || r === -1 ? INFINITE_RETRIES_WITH_DESTINATION : r;
    // With provisioned pollers functionConfig always names a destination (the dead-letter topic by default).
    const dest = fn.onFailure!;
    onFailureTopic = kafkaTopicOf(dest);
    if (onFailureTopic === undefined) {
      onFailureTopic = fn.deadLetterTopic;
      notices.push(
        `${entry.name}: the on-failure destination ${dest} (${dest.split(':')[2].toUpperCase()}) is not emulated; locally, records that fail every retry go to the Kafka topic ${onFailureTopic} instead.`,
      );
    }
  }
  let eventSourceArn: string | undefined;
  if (fn.kind === 'msk') {
    const arn = fn.clusterArn;
    if (typeof arn === 'string' && CLUSTER_ARN.test(arn)) eventSourceArn = arn;
    else {
      eventSourceArn = LOCAL_CLUSTER_ARN;
      notices.push(
        `${entry.name}: the msk event's arn (${JSON.stringify(arn)}) is resolved only at deploy time (a CloudFormation intrinsic or a Serverless variable); events carry the placeholder eventSourceArn ${LOCAL_CLUSTER_ARN}.`,
      );
    }
  }
  const timeoutS = entry.timeout ?? defaults.timeoutSeconds ?? SERVERLESS_DEFAULT_TIMEOUT_SECONDS;
  return {
    functionName: entry.name,
    topic: fn.topic,
    batchSize,
    maximumBatchingWindowMs: Math.round(windowS * 1000),
    startingPosition,
    ...(startingPositionTimestamp !== undefined ? { startingPositionTimestamp } : {}),
    consumerGroupId: group,
    eventSource: fn.kind === 'msk' ? 'aws:kafka' : 'SelfManagedKafka',
    ...(eventSourceArn !== undefined ? { eventSourceArn } : {}),
    provisionedPollers: provisioned,
    ...(maximumRetryAttempts !== undefined ? { maximumRetryAttempts } : {}),
    ...(onFailureTopic !== undefined ? { onFailureTopic } : {}),
    deadLetterTopic: fn.deadLetterTopic,
    timeoutMs: toMs(timeoutS * 1000, `${where}.timeout`),
    tickMs: fn.tickMs,
    ...(fn.guarantee ? { guarantee: fn.guarantee } : {}),
    ...(notices.length > 0 ? { notices } : {}),
  };
}
