import middy, { type MiddyfiedHandler } from '@middy/core';
import type { Context } from 'aws-lambda';
import { type Definition, loadDefinition } from '../define/build.js';
import { type Guarantee, guaranteeOf } from '../define/guarantee.js';
import type { Manifest } from '../define/manifest.js';
import { readEnv } from '../env.js';
import { ConfigError, SluiceError } from '../errors.js';
import { defaultSinks } from '../io/lambda-kafka.js';
import type { PartitionResult } from '../pipeline/runner.js';
import { DynamoDBStore } from '../state/dynamodb-store.js';
import { MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';
import { flushPartition, type Invocation, invoke, type Runtime } from './invoke.js';
import { consoleLogger } from './logger.js';
import { type KafkaBatchResponse, type KafkaEvent, partitionsOf } from './msk-event.js';
import { PartitionRunner } from './partition-runner.js';
import { answer } from './response.js';
import { type EndOffsets, isTickEvent, type TickReport, tick } from './tick.js';
import type { IdleWindow } from '../windows/idle.js';
import { eventTimeLimit } from '../windows/event-time.js';

/**
 * What a Sluice handler carries besides being a Lambda handler, as `handler.sluice`.
 *
 * @example
 * handler.sluice.manifest.name; // 'SensorSums'
 * handler.sluice.configure({ store: new MemoryStore(), sink: new CaptureSink() });
 * await handler.sluice.flush('sensor-counts', 0, 99);
 */
export interface SluiceAttachment {
  readonly manifest: Manifest;
  /**
   * Swaps adapters (store, sinks, logger) for local runs and tests; `guarantee` overrides the
   * function's (`sluice dev --guarantee`; exactly-once also needs `transactions`).
   */
  configure(runtime: Partial<Runtime> & { readonly guarantee?: Guarantee }): void;
  readonly runtime: Runtime;
  /**
   * Closes every open window of a partition (end of a finite input, `sluice dev --flush`).
   * `lastOffset` is the input's last offset in that partition: state is written at it.
   */
  flush(topic: string, partition: number, lastOffset: number): Promise<PartitionResult>;
  /**
   * Runs one idle tick at wall-clock `now` (default: the runtime's clock), asking `offsets`
   * (default: the runtime's, the Kafka cluster when deployed) for the partitions' end offsets.
   * What the deployed schedule's `{ "sluice": "tick" }` event runs.
   */
  tick(opts?: { readonly now?: number; readonly offsets?: EndOffsets }): Promise<TickReport>;
  /** The delivery guarantee the handler runs with (the source's, or SLUICE_GUARANTEE deployed). */
  readonly guarantee: Guarantee;
  /** The windows with idle closing (empty: ticks do nothing, so `sluice dev --brokers` runs none). */
  readonly idleWindows: readonly IdleWindow[];
}

/**
 * The Lambda handler {@link sluice} returns: a middy handler for Kafka events that answers with a
 * partial batch response, plus `.sluice` ({@link SluiceAttachment}).
 *
 * @example
 * export const handler: SluiceHandler = sluice(SensorSums);
 * const response = await handler(event, context); // { batchItemFailures: [] }
 */
export type SluiceHandler = MiddyfiedHandler<KafkaEvent, KafkaBatchResponse, Error, Context> & { readonly sluice: SluiceAttachment };

/**
 * Turns a function definition (decorated class or `stream(...)` chain) into an AWS Lambda handler
 * for MSK / self-managed Kafka events, built on middy so any middy middleware can be `.use()`d.
 * The definition is validated here, at module load.
 *
 * @example
 * export const handler = sluice(SensorSums);
 * // serverless.yml: handler: functions/sensor-sums/handler.handler
 */
export function sluice(definition: Definition): SluiceHandler {
  const { manifest } = loadDefinition(definition);
  const stateful = manifest.state.length > 0 || manifest.steps.some((s) => s.kind === 'window');
  // Deployed, the plugin sets SLUICE_STATE_TABLE; a function without state never touches DynamoDB.
  const store: StateStore = stateful && readEnv('stateTable') ? new DynamoDBStore() : new MemoryStore();
  // Deployed by the plugin, outputs and dead letters go to Kafka; otherwise they are logged.
  const guarantee = guaranteeOf(manifest);
  const defaults = defaultSinks(manifest, () => runtime.logger, guarantee);
  const runtime: Runtime = {
    store,
    sink: defaults.sink,
    deadLetters: defaults.deadLetters,
    logger: consoleLogger,
    ...(defaults.transactions ? { transactions: defaults.transactions } : {}),
  };
  const run: { -readonly [K in keyof Invocation]: Invocation[K] } = {
    manifest,
    guarantee,
    runtime,
    runner: new PartitionRunner(manifest, store),
  };

  const runTick = (opts: { readonly now?: number; readonly offsets?: EndOffsets } = {}, remainingMs?: number): Promise<TickReport> => {
    const offsets = opts.offsets ?? runtime.offsets ?? defaults.kafka;
    if (!offsets) {
      throw new SluiceError(
        `function "${manifest.name}" got a tick but has no way to read its partitions' end offsets: deployed by the plugin it asks the Kafka cluster; locally run ticks through \`sluice dev --brokers\` or runFunction's \`ticks\`.`,
      );
    }
    return tick(run, offsets, opts.now ?? (runtime.clock ?? Date.now)(), remainingMs);
  };

  let warned = false;
  const base = async (event: KafkaEvent, context?: Context): Promise<KafkaBatchResponse> => {
    const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
    if (isTickEvent(event)) {
      // The schedule's tick: answered with what it did (the schedule ignores the answer).
      const wall = (runtime.clock ?? Date.now)();
      const report = await runTick(tickEventOptions(event, eventTimeLimit(wall, manifest.source.maxClockSkewMs)), remaining);
      return { batchItemFailures: [], tick: { windowsClosed: report.windowsClosed, partitions: report.partitions } } as KafkaBatchResponse;
    }
    defaults.kafka?.useBrokers(event.bootstrapServers);
    if (!warned && process.env.AWS_LAMBDA_FUNCTION_NAME && !runtime.store.durable && stateful) {
      warned = true;
      runtime.logger.warn({
        sluice: 'warning',
        message: `function "${manifest.name}" keeps its window and keyed state in memory: it is lost when this container stops. Configure the DynamoDB state store for production.`,
      });
    }
    const partitions = partitionsOf(event);
    const report = await invoke(run, partitions, remaining);
    return answer(report.response);
  };

  const handler = middy<KafkaEvent, KafkaBatchResponse, Error, Context>(base) as SluiceHandler;
  const attachment: SluiceAttachment = {
    manifest,
    runtime,
    get guarantee() {
      return run.guarantee ?? guarantee;
    },
    configure({ guarantee: chosen, ...next }) {
      Object.assign(runtime, next);
      if (chosen) run.guarantee = chosen;
      if (next.store) run.runner = new PartitionRunner(manifest, runtime.store);
    },
    flush: (topic, partition, lastOffset) => flushPartition(run, topic, partition, lastOffset),
    tick: (opts) => runTick(opts),
    get idleWindows() {
      return run.runner.pipeline.idleWindows;
    },
  };
  Object.defineProperty(handler, 'sluice', { value: attachment, enumerable: false });
  return handler;
}

/**
 * A tick event's own wall clock: `{ "sluice": "tick", "now": <epoch ms> }` ticks as if it were
 * then (tests and replays drive a packaged function this way); the schedule sends no `now`. A
 * `now` ahead of the wall clock by more than the clock guard allows event times (`limit`) is
 * refused: floors never go back, so one tick from the far future would close every window early.
 */
function tickEventOptions(event: unknown, limit: number): { now?: number } {
  const now = (event as { now?: unknown }).now;
  if (now === undefined) return {};
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0)
    throw new ConfigError(
      `the tick event's "now" must be epoch milliseconds (a whole number), or absent for the clock; received ${JSON.stringify(now)}.`,
    );
  if (now > limit)
    throw new ConfigError(
      `the tick event's "now" (${new Date(now).toISOString()}) is further ahead of the wall clock than maxClockSkew allows event times (up to ${new Date(limit).toISOString()}); ` +
        `floors never move back, so such a tick would close windows early for good. Send a "now" at most that far ahead, or none for the clock.`,
    );
  return { now };
}
