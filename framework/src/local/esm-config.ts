import { toMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import { DEPLOY_OPTIONS, deployOptions } from '../serverless/options.js';
import { LOCAL_CLUSTER_ARN } from '../runtime/msk-event.js';
import type { FunctionEntry } from './functions.js';

/** Lambda's 6 MB invocation payload cap, which the event source mapping honours. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** Serverless Framework's default function timeout, in seconds, when serverless.yml sets none. */
export const SERVERLESS_DEFAULT_TIMEOUT_SECONDS = 6;

/**
 * Lambda's own retry cap for Kafka when retries are infinite (-1, the default) and an on-failure
 * destination is configured. https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html
 */
export const INFINITE_RETRIES_WITH_DESTINATION = 10;

export const STARTING_POSITIONS = ['LATEST', 'TRIM_HORIZON', 'AT_TIMESTAMP'] as const;
export type StartingPosition = (typeof STARTING_POSITIONS)[number];

/**
 * An event source mapping as Sluice emulates it, read from a function's `msk` or `kafka` event and
 * its `sluice` block in serverless.yml, with the settings the Serverless plugin deploys.
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
   * retry limits and the on-failure destination (the plugin sets `SLUICE_PARTIAL_BATCH` to match).
   */
  readonly provisionedPollers: boolean;
  /**
   * Retries of a failing record before it goes to `onFailureTopic`. Absent: the batch is retried
   * until it succeeds, blocking its partition (Lambda without provisioned pollers).
   */
  readonly maximumRetryAttempts?: number;
  /** The Kafka topic records go to once they have failed every retry (with provisioned pollers). */
  readonly onFailureTopic?: string;
  /** Where the handler sends poison records (`SLUICE_DEAD_LETTER_TOPIC` deployed). */
  readonly deadLetterTopic: string;
  readonly timeoutMs: number;
  /** What differs from the deployed mapping and is worth telling the user once. */
  readonly notices?: readonly string[];
}

/** Sluice's own options, under `functions.<name>.sluice` in serverless.yml (the plugin's list). */
export const SLUICE_FUNCTION_OPTIONS = DEPLOY_OPTIONS;

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
  if (!ev) throw new ConfigError(`${where} in serverless.yml has no msk or kafka event; add one with at least a topic, e.g. events: [{ msk: { arn: …, topic: my-topic } }].`);
  const kind = entry.eventKind ?? 'msk';
  const topic = ev.topic;
  if (typeof topic !== 'string' || topic.length === 0) throw new ConfigError(`${where}.events[].${kind}.topic must be a topic name; received ${JSON.stringify(topic)}.`);
  const batchSize = ev.batchSize === undefined ? 100 : ev.batchSize;
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new ConfigError(`${where} event batchSize must be a whole number from 1 to 10000; received ${JSON.stringify(ev.batchSize)}.`);
  }
  const windowS = ev.maximumBatchingWindow === undefined ? 0.5 : ev.maximumBatchingWindow;
  if (typeof windowS !== 'number' || windowS < 0 || windowS > 300) {
    throw new ConfigError(`${where} event maximumBatchingWindow must be seconds from 0 to 300; received ${JSON.stringify(ev.maximumBatchingWindow)}.`);
  }
  const startingPosition = (ev.startingPosition ?? 'TRIM_HORIZON') as StartingPosition;
  if (!STARTING_POSITIONS.includes(startingPosition)) {
    throw new ConfigError(`${where} event startingPosition must be one of ${STARTING_POSITIONS.join(', ')}; received ${JSON.stringify(ev.startingPosition)}.`);
  }
  let startingPositionTimestamp: number | undefined;
  if (startingPosition === 'AT_TIMESTAMP') {
    const ts = ev.startingPositionTimestamp;
    if (typeof ts !== 'number' || ts < 0) throw new ConfigError(`${where} event startingPositionTimestamp (epoch seconds) is required with AT_TIMESTAMP; received ${JSON.stringify(ts)}.`);
    startingPositionTimestamp = ts * 1000;
  }
  // The plugin's own reading of the event and the sluice: block, so both fail on the same input
  // and agree on the consumer group, the dead-letter topic and the retry settings.
  const deploy = deployOptions(entry.name, { events: [{ [kind]: ev }], ...(entry.sluice ? { sluice: { ...entry.sluice } } : {}) }, { service, stage: defaults.stage ?? 'dev' })!;
  const group = deploy.consumerGroupId;
  if (typeof group !== 'string' || !/^[a-zA-Z0-9._:-]{1,200}$/.test(group)) {
    throw new ConfigError(`${where} event consumerGroupId must be 1-200 letters, digits, . _ : -; received ${JSON.stringify(ev.consumerGroupId)}.`);
  }
  const notices: string[] = [];
  const provisioned = deploy.provisionedPollers !== undefined;
  let maximumRetryAttempts: number | undefined;
  let onFailureTopic: string | undefined;
  if (provisioned) {
    const r = deploy.maximumRetryAttempts;
    maximumRetryAttempts = r === undefined || r === -1 ? INFINITE_RETRIES_WITH_DESTINATION : r;
    const dest = deploy.onFailure ?? `kafka://${deploy.deadLetterTopic}`;
    if (dest.startsWith('kafka://')) onFailureTopic = dest.slice('kafka://'.length);
    else {
      onFailureTopic = deploy.deadLetterTopic;
      notices.push(`${entry.name}: the on-failure destination ${dest} (${dest.split(':')[2].toUpperCase()}) is not emulated; locally, records that fail every retry go to the Kafka topic ${onFailureTopic} instead.`);
    }
  }
  let eventSourceArn: string | undefined;
  if (kind === 'msk') {
    const arn = deploy.clusterArn;
    if (typeof arn === 'string' && /^arn:aws[a-zA-Z-]*:kafka:[^:]*:\d*:cluster\/[^/]+\/.+$/.test(arn)) eventSourceArn = arn;
    else {
      eventSourceArn = LOCAL_CLUSTER_ARN;
      notices.push(`${entry.name}: the msk event's arn (${JSON.stringify(arn)}) is resolved only at deploy time (a CloudFormation intrinsic or a Serverless variable); events carry the placeholder eventSourceArn ${LOCAL_CLUSTER_ARN}.`);
    }
  }
  const timeoutS = entry.timeout ?? defaults.timeoutSeconds ?? SERVERLESS_DEFAULT_TIMEOUT_SECONDS;
  return {
    functionName: entry.name, topic, batchSize, maximumBatchingWindowMs: Math.round(windowS * 1000),
    startingPosition, ...(startingPositionTimestamp !== undefined ? { startingPositionTimestamp } : {}),
    consumerGroupId: group,
    eventSource: kind === 'msk' ? 'aws:kafka' : 'SelfManagedKafka',
    ...(eventSourceArn !== undefined ? { eventSourceArn } : {}),
    provisionedPollers: provisioned,
    ...(maximumRetryAttempts !== undefined ? { maximumRetryAttempts } : {}),
    ...(onFailureTopic !== undefined ? { onFailureTopic } : {}),
    deadLetterTopic: deploy.deadLetterTopic,
    timeoutMs: toMs(timeoutS * 1000, `${where}.timeout`),
    ...(notices.length > 0 ? { notices } : {}),
  };
}
