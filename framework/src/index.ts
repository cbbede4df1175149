/**
 * Sluice: stateful stream transforms for AWS Lambda on Kafka (MSK). This is the authoring API:
 * decorators and the `stream()` chain, aggregators, serializers, keyed state, models, `sluice()`
 * and the errors. The rest lives behind subpaths: `sluice/testing` (run a function in memory),
 * `sluice/state` (state stores), `sluice/runtime` (event, sink and logger contracts for adapters).
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
  source,
  map,
  filter,
  expand,
  update,
  key,
  eventTime,
  to,
  keyed,
  tumblingWindow,
  hoppingWindow,
  slidingWindow,
  sessionWindow,
  tumblingCountWindow,
  hoppingCountWindow,
  slidingCountWindow,
  score,
} from './define/decorators.js';
export { stream } from './define/stream.js';
export { sluice } from './runtime/handler.js';
export { keyedState } from './state/keyed.js';
export { count, sum, mean, min, max, first, last, earliest, latest, collect, reduce } from './windows/aggregators.js';
export { json, string, bytes } from './io/serializers.js';
export { onnxModel } from './model/model.js';
export {
  SluiceError,
  ConfigError,
  PoisonRecordError,
  StateConflictError,
  StateValueError,
  StepError,
  OnnxFormatError,
  poison,
} from './errors.js';

export type { Duration } from './duration.js';
export type { Definition } from './define/build.js';
export type { RecordContext, LateRecord, Scorer, ScoredRow } from './define/manifest.js';
export type { SourceOptions, OutputOptions } from './define/metadata.js';
export type { Stream, WindowBuilder, WindowResult, StreamOptions, ScoreOptions } from './define/stream.js';
export type { Serializer, SerializerName } from './io/serializers.js';
export type { OnnxModel, ModelOutputs, ModelValue, Features, FeatureValues, OnnxModelOptions } from './model/model.js';
export type { SluiceHandler, SluiceAttachment } from './runtime/handler.js';
export type { KeyedState, KeyedStateOptions } from './state/keyed.js';
export type { Aggregator, AggregationSpec, AggregationResult } from './windows/aggregators.js';
export type { TimeWindowOptions, CountWindowOptions, EmitMode, ClosingStrategy } from './windows/spec.js';
