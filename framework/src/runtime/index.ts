/**
 * `sluice/runtime`: the seams between a Sluice function and the world, for adapters and tools
 * (custom sinks, loggers, metrics, other event sources): the Lambda event format, the manifest a
 * definition produces, the invocation's report, and the sink and logger contracts.
 *
 * @example
 * import type { OutputSink, BatchReport } from 'sluice/runtime';
 * const sink: OutputSink = { async send(messages) { for (const m of messages) await post(m.topic, m.value); } };
 * handler.sluice.configure({ sink, onBatch: (r: BatchReport) => metrics.add(r.stats.recordsIn) });
 */
export { manifestOf, loadDefinition } from '../define/build.js';
export { outputTopics } from '../define/manifest.js';
export { toMs } from '../duration.js';
export { logOutputSink, logDeadLetterSink, logOutputs, logDeadLetters } from '../io/sinks.js';
export { consoleLogger } from './logger.js';
export { partitionsOf } from './msk-event.js';
export { TICK_EVENT, isTickEvent } from './tick.js';
export { unaccounted } from '../pipeline/stats.js';

export type {
  Manifest,
  Step,
  SourceSpec,
  KeyedStateSpec,
  ScoreStep,
  FunctionStep,
  WindowStep,
  OutputStep,
  StepKind,
} from '../define/manifest.js';
export type { OutputSink, DeadLetterSink } from '../io/sinks.js';
export type { OutputMessage, DeadLetter, LateOutput } from '../pipeline/records.js';
export type { BatchStats } from '../pipeline/stats.js';
export type { WindowSpec } from '../windows/spec.js';
export type { Runtime, BatchReport, PartitionFailure } from './invoke.js';
export type { LogEntry, Logger } from './logger.js';
export type { KafkaEvent, KafkaBatchResponse, KafkaEventRecord, PartitionBatch } from './msk-event.js';
export type { EndOffsets, TickReport, TickPartitionReport } from './tick.js';
