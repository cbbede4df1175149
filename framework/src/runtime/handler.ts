import middy, { type MiddyfiedHandler } from '@middy/core';
import type { Context } from 'aws-lambda';
import { type Definition, loadDefinition } from '../define/build.js';
import type { Manifest } from '../define/manifest.js';
import { SluiceError } from '../errors.js';
import { defaultSinks } from '../io/lambda-kafka.js';
import type { DeadLetterSink, OutputSink } from '../io/sinks.js';
import type { LateOutput } from '../pipeline/records.js';
import { type BatchStats, type PartitionResult, PartitionRunner } from '../pipeline/runner.js';
import { DynamoDBStore } from '../state/dynamodb-store.js';
import { MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';
import { type KafkaBatchResponse, type KafkaEvent, partitionsOf } from './msk-event.js';

/**
 * The adapters a handler runs with. Lambda gets defaults; `sluice dev` and tests swap them.
 *
 * @example
 * const runtime: Runtime = { store: new MemoryStore(), sink: logOutputSink, deadLetters: logDeadLetterSink };
 * handler.sluice.configure(runtime);
 */
export interface Runtime {
  store: StateStore;
  sink: OutputSink;
  deadLetters: DeadLetterSink;
  /** Called after each invocation with what it did (the dev view and metrics use it). */
  onBatch?: (report: BatchReport) => void;
}

/**
 * A partition of an invocation that failed whole, and why.
 *
 * @example
 * const f: PartitionFailure = { topic: 'readings', partition: 0, stage: 'read', error: new StateConflictError('…') };
 */
export interface PartitionFailure {
  readonly topic: string;
  readonly partition: number;
  readonly stage: 'read' | 'commit';
  readonly error: unknown;
}

/**
 * What one invocation did.
 *
 * @example
 * handler.sluice.configure({ onBatch: (r) => console.log(r.stats.recordsIn, r.late.length, r.response.batchItemFailures) });
 */
export interface BatchReport {
  readonly partitions: readonly PartitionResult[];
  /** Partitions that failed whole: their state could not be read, or not committed. Lambda retries them. */
  readonly failed: readonly PartitionFailure[];
  readonly late: readonly LateOutput[];
  readonly stats: BatchStats;
  readonly response: KafkaBatchResponse;
  /** State store requests of this invocation (stores that count them: DynamoDB). */
  readonly state?: Readonly<Record<string, number>>;
}

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
  /** Swaps adapters (store, sinks) for local runs and tests. */
  configure(runtime: Partial<Runtime>): void;
  readonly runtime: Runtime;
  /**
   * Closes every open window of a partition (end of a finite input, `sluice dev --flush`).
   * `lastOffset` is the input's last offset in that partition: state is written at it.
   */
  flush(topic: string, partition: number, lastOffset: number): Promise<PartitionResult>;
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
  const store: StateStore = stateful && process.env.SLUICE_STATE_TABLE ? new DynamoDBStore() : new MemoryStore();
  // Deployed by the plugin, outputs and dead letters go to Kafka; otherwise they are logged.
  const defaults = defaultSinks(manifest);
  const runtime: Runtime = { store, sink: defaults.sink, deadLetters: defaults.deadLetters };
  let runner = new PartitionRunner(manifest, runtime.store);

  let warned = false;
  const base = async (event: KafkaEvent, context?: Context): Promise<KafkaBatchResponse> => {
    defaults.kafka?.useBrokers(event.bootstrapServers);
    if (!warned && process.env.AWS_LAMBDA_FUNCTION_NAME && !runtime.store.durable && stateful) {
      warned = true;
      console.warn(JSON.stringify({ sluice: 'warning', message: `function "${manifest.name}" keeps its window and keyed state in memory: it is lost when this container stops. Configure the DynamoDB state store for production.` }));
    }
    const partitions = partitionsOf(event);
    // Leave a second to fail cleanly (and let Lambda retry) rather than be cut off mid-write.
    const remaining = typeof context?.getRemainingTimeInMillis === 'function' ? context.getRemainingTimeInMillis() : undefined;
    const deadline = remaining === undefined ? undefined : Date.now() + Math.max(0, remaining - 1_000);
    const before = storeStats(runtime.store);
    const settled = await Promise.all(partitions.map((p) => runner.run(p.topic, p.partition, p.records, deadline === undefined ? {} : { deadline }).then(
      (result) => ({ p, result }),
      (error: unknown) => ({ p, error }),
    )));
    const response: KafkaBatchResponse = { batchItemFailures: [] };
    const fail = (topic: string, partition: number, offset: number) =>
      response.batchItemFailures.push({ itemIdentifier: { partition: `${topic}-${partition}`, offset } });
    const done: PartitionResult[] = [];
    const failed: PartitionFailure[] = [];
    for (const s of settled) {
      if ('error' in s) {
        // State could not be read: nothing of this partition is committed; Lambda retries it whole.
        console.error(JSON.stringify({ sluice: 'partition-failed', topic: s.p.topic, partition: s.p.partition, error: String((s.error as Error)?.message ?? s.error) }));
        failed.push({ topic: s.p.topic, partition: s.p.partition, stage: 'read', error: s.error });
        fail(s.p.topic, s.p.partition, s.p.records[0].offset);
      } else done.push(s.result);
    }
    // Outputs and dead letters leave before any state is committed (at-least-once output).
    const messages = done.flatMap((r) => r.outputs);
    if (messages.length > 0) await runtime.sink.send(messages);
    const letters = done.flatMap((r) => r.deadLetters);
    if (letters.length > 0) await runtime.deadLetters.send(letters, manifest.name);
    await Promise.all(done.map(async (r) => {
      try {
        await r.commit();
        if (r.failedOffset !== undefined) {
          console.error(JSON.stringify({ sluice: 'record-failed', topic: r.topic, partition: r.partition, offset: r.failedOffset, step: r.failedStage, error: String((r.error as Error)?.message ?? r.error) }));
          fail(r.topic, r.partition, r.failedOffset);
        }
      } catch (e) {
        console.error(JSON.stringify({ sluice: 'commit-failed', topic: r.topic, partition: r.partition, error: String((e as Error)?.message ?? e) }));
        failed.push({ topic: r.topic, partition: r.partition, stage: 'commit', error: e });
        const first = partitions.find((p) => p.topic === r.topic && p.partition === r.partition)!;
        fail(r.topic, r.partition, first.records[0].offset);
      }
    }));
    const after = storeStats(runtime.store);
    const state = before && after ? Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]])) : undefined;
    if (state && !runtime.onBatch) {
      // One metrics line per invocation, for CloudWatch (metric filters or Logs Insights).
      console.log(JSON.stringify({ sluice: 'state-metrics', function: manifest.name, records: partitions.reduce((n, p) => n + p.records.length, 0), ...state }));
    }
    if (runtime.onBatch) {
      const stats: BatchStats = { recordsIn: 0, messagesOut: 0, windowsEmitted: 0, late: 0, poison: 0 };
      for (const r of done) for (const k of Object.keys(stats) as (keyof BatchStats)[]) stats[k] += r.stats[k];
      runtime.onBatch({ partitions: done, failed, late: done.flatMap((r) => r.late), stats, response, ...(state ? { state } : {}) });
    }
    // With on-demand pollers Lambda ignores partial batch responses for Kafka (the plugin says so
    // in SLUICE_PARTIAL_BATCH): fail the whole batch instead, so no failed record is committed.
    if (process.env.SLUICE_PARTIAL_BATCH === 'false' && response.batchItemFailures.length > 0) {
      const [first] = response.batchItemFailures;
      throw new SluiceError(
        `${response.batchItemFailures.length} partition(s) of this batch failed (first: ${first.itemIdentifier.partition}@${first.itemIdentifier.offset}); ` +
          `partial batch responses need provisioned pollers, so the whole batch fails and Lambda retries it.`,
        { retriable: true },
      );
    }
    return response;
  };

  const handler = middy<KafkaEvent, KafkaBatchResponse, Error, Context>(base) as SluiceHandler;
  const attachment: SluiceAttachment = {
    manifest,
    runtime,
    configure(next) {
      Object.assign(runtime, next);
      if (next.store) runner = new PartitionRunner(manifest, runtime.store);
    },
    async flush(topic, partition, lastOffset) {
      const result = await runner.run(topic, partition, [], { flush: true, flushOffset: lastOffset });
      if (result.failedOffset !== undefined) {
        throw new SluiceError(`closing the open windows of ${topic}-${partition} failed in step "${result.failedStage}": ${String((result.error as Error)?.message ?? result.error)}`, { cause: result.error });
      }
      if (result.outputs.length > 0) await runtime.sink.send(result.outputs);
      await result.commit();
      return result;
    },
  };
  Object.defineProperty(handler, 'sluice', { value: attachment, enumerable: false });
  return handler;
}

/** A copy of a store's request counters, if it keeps any (the DynamoDB store does). */
function storeStats(store: StateStore): Record<string, number> | undefined {
  const stats = (store as { stats?: Record<string, number> }).stats;
  return stats ? { ...stats } : undefined;
}
