import { toMs } from '../duration.js';
import { ConfigError } from '../errors.js';
import type { FunctionEntry } from './functions.js';

/** Lambda's 6 MB invocation payload cap, which the event source mapping honours. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

export const STARTING_POSITIONS = ['LATEST', 'TRIM_HORIZON', 'AT_TIMESTAMP'] as const;
export type StartingPosition = (typeof STARTING_POSITIONS)[number];

/**
 * An event source mapping as Sluice emulates it, read from a function's `msk` or `kafka` event and
 * its `sluice` block in serverless.yml.
 */
export interface EsmConfig {
  readonly functionName: string;
  readonly topic: string;
  readonly batchSize: number;
  readonly maximumBatchingWindowMs: number;
  readonly startingPosition: StartingPosition;
  readonly startingPositionTimestamp?: number;
  readonly consumerGroupId: string;
  /** Retries of a failing record before it goes to the on-failure destination. */
  readonly maximumRetryAttempts: number;
  /** The on-failure destination: a Kafka topic. */
  readonly deadLetterTopic: string;
  readonly timeoutMs: number;
}

/** Sluice's own options, under `functions.<name>.sluice` in serverless.yml. */
export const SLUICE_FUNCTION_OPTIONS = ['maximumRetryAttempts', 'deadLetterTopic', 'onFailure', 'provisionedPollers'] as const;

/**
 * Validates and completes a function's event source settings with Lambda's defaults: batch size
 * 100, batching window 500 ms, starting position TRIM_HORIZON unless given.
 */
export function esmConfig(entry: FunctionEntry, service: string, defaults: { timeoutSeconds?: number } = {}): EsmConfig {
  const where = `functions.${entry.name}`;
  const ev = entry.event;
  if (!ev) throw new ConfigError(`${where} in serverless.yml has no msk or kafka event; add one with at least a topic, e.g. events: [{ msk: { arn: …, topic: my-topic } }].`);
  const topic = ev.topic;
  if (typeof topic !== 'string' || topic.length === 0) throw new ConfigError(`${where}.events[].msk.topic must be a topic name; received ${JSON.stringify(topic)}.`);
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
  const group = ev.consumerGroupId ?? `sluice-${service}-${entry.name}`;
  if (typeof group !== 'string' || !/^[a-zA-Z0-9._:-]{1,200}$/.test(group)) {
    throw new ConfigError(`${where} event consumerGroupId must be 1-200 letters, digits, . _ : -; received ${JSON.stringify(ev.consumerGroupId)}.`);
  }
  const opts = entry.sluice ?? {};
  for (const k of Object.keys(opts)) {
    if (!(SLUICE_FUNCTION_OPTIONS as readonly string[]).includes(k)) {
      throw new ConfigError(`unknown option ${where}.sluice.${k} in serverless.yml; allowed: ${SLUICE_FUNCTION_OPTIONS.join(', ')}.`);
    }
  }
  // -1 is Lambda's "until the record expires"; locally that is as many retries as Lambda allows.
  const retries = opts.maximumRetryAttempts === -1 ? 10_000 : (opts.maximumRetryAttempts ?? 2);
  if (typeof retries !== 'number' || !Number.isInteger(retries) || retries < 0 || retries > 10_000) {
    throw new ConfigError(`${where}.sluice.maximumRetryAttempts must be a whole number from -1 (forever) to 10000; received ${JSON.stringify(opts.maximumRetryAttempts)}.`);
  }
  const dlq = opts.deadLetterTopic ?? `${topic}.${entry.name}.dlq`;
  if (typeof dlq !== 'string' || dlq.length === 0) throw new ConfigError(`${where}.sluice.deadLetterTopic must be a topic name; received ${JSON.stringify(dlq)}.`);
  const timeoutS = entry.timeout ?? defaults.timeoutSeconds ?? 60;
  return {
    functionName: entry.name, topic, batchSize, maximumBatchingWindowMs: Math.round(windowS * 1000),
    startingPosition, ...(startingPositionTimestamp !== undefined ? { startingPositionTimestamp } : {}),
    consumerGroupId: group, maximumRetryAttempts: retries, deadLetterTopic: dlq,
    timeoutMs: toMs(timeoutS * 1000, `${where}.timeout`),
  };
}
