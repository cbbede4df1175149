/**
 * One partition of an event, from its records to a result: decoded at the edge, then run by the
 * core ({@link PipelineRunner}).
 */
import type { Manifest } from '../define/manifest.js';
import { type PartitionResult, PipelineRunner, type RunOptions } from '../pipeline/runner.js';
import type { StateStore } from '../state/store.js';
import type { WindowOperator } from '../windows/operators/index.js';
import { SourceDecoder } from './decode.js';
import type { KafkaEventRecord } from './msk-event.js';

/**
 * Options of a partition runner.
 *
 * @example
 * new PartitionRunner(manifest, store, { functionName: 'sensor-sums-dev' });
 */
export interface RunnerOptions {
  /** The function's name in state scopes and message ids (defaults to the manifest name). */
  readonly functionName?: string;
}

/**
 * Runs a function over the records of one partition of a Kafka event: decodes them once with the
 * source serializers (keys cached for as long as the runner lives), then runs the steps. See
 * {@link PipelineRunner} for how a failing step and state are handled.
 *
 * @example
 * const runner = new PartitionRunner(manifest, store);
 * const result = await runner.run('readings', 0, event.records['readings-0']);
 * await sink.send(result.outputs);
 * await result.commit();
 */
export class PartitionRunner {
  readonly pipeline: PipelineRunner;
  readonly #decoder: SourceDecoder;

  constructor(manifest: Manifest, store: StateStore, opts: RunnerOptions = {}) {
    this.pipeline = new PipelineRunner(manifest, store, opts.functionName ?? manifest.name);
    this.#decoder = new SourceDecoder(manifest.source);
  }

  get functionName(): string {
    return this.pipeline.functionName;
  }

  /** The window operators, for the dev summary and `--flush`. */
  get windows(): WindowOperator[] {
    return this.pipeline.windows;
  }

  /**
   * Processes one partition's records (in offset order). With `flush`, closes every open window
   * at the end (a finite input ending; needs a store that can list its keys). `flushOffset` is the
   * input's last offset; the flush writes state just after it.
   */
  run(topic: string, partition: number, records: readonly KafkaEventRecord[], opts: RunOptions = {}): Promise<PartitionResult> {
    return this.pipeline.run(topic, partition, this.#decoder.batch(records), opts);
  }
}
