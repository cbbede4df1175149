/**
 * Sluice: stateful stream transforms for AWS Lambda on Kafka (MSK).
 *
 * @example
 * import { source, to, tumblingWindow, sum, sluice } from 'sluice';
 *
 * @source('sensor-readings')
 * class SensorSums {
 *   @to('sensor-sums') @tumblingWindow('10s', { grace: '2s' }) total = sum('value');
 * }
 * export const handler = sluice(SensorSums);
 */
import './define/metadata.js';

export {
  source, map, filter, expand, update, key, eventTime, setKey, setTimestamp, to, keyed,
  tumblingWindow, hoppingWindow, slidingWindow, sessionWindow,
  tumblingCountWindow, hoppingCountWindow, slidingCountWindow, score,
} from './define/decorators.js';
export { stream, Stream, WindowBuilder } from './define/stream.js';
export { manifestOf, loadDefinition } from './define/build.js';
export { outputTopics } from './define/manifest.js';
export { sluice } from './runtime/handler.js';
export { partitionsOf } from './runtime/msk-event.js';
export { KeyedState, keyedState } from './state/keyed.js';
export { MemoryStore, type ItemSnapshot } from './state/memory-store.js';
export { Transaction } from './state/transaction.js';
export { count, sum, mean, min, max, first, last, earliest, latest, collect, reduce } from './windows/aggregators.js';
export { json, string, bytes } from './io/serializers.js';
export { CaptureSink, logOutputSink, logDeadLetterSink } from './io/sinks.js';
export { SluiceError, ConfigError, PoisonRecordError, StateConflictError, poison } from './errors.js';
export { toMs } from './duration.js';
export { onnxModel, OnnxModel } from './model/model.js';

export type { Duration } from './duration.js';
export type { RecordContext, LateRecord, Manifest, Step, SourceSpec, KeyedStateSpec } from './define/manifest.js';
export type { SourceOptions, OutputOptions } from './define/metadata.js';
export type { WindowResult, StreamOptions, ScoreOptions } from './define/stream.js';
export type { Scorer, ScoredRow, ScoreStep } from './define/manifest.js';
export type { ModelOutputs, ModelValue, Features, FeatureValues, OnnxModelOptions } from './model/model.js';
export type { ModelSignature, ValueSignature, ElementType } from './model/onnx-file.js';
export type { Definition } from './define/build.js';
export type { SluiceHandler, SluiceAttachment } from './runtime/handler.js';
export type { Runtime, BatchReport } from './runtime/invoke.js';
export type { KafkaEvent, KafkaBatchResponse, KafkaEventRecord, PartitionBatch } from './runtime/msk-event.js';
export type { OutputMessage, DeadLetter, LateOutput } from './pipeline/records.js';
export type { StateStore, StateScope, StoredItem, ItemChange, BatchBounds, WriteStats } from './state/store.js';
export type { KeyedStateOptions } from './state/keyed.js';
export type { Aggregator, AggregationSpec, AggregationResult } from './windows/aggregators.js';
export type { WindowSpec, TimeWindowOptions, CountWindowOptions, EmitMode, ClosingStrategy } from './windows/spec.js';
export type { Serializer, SerializerName } from './io/serializers.js';
export type { OutputSink, DeadLetterSink } from './io/sinks.js';
