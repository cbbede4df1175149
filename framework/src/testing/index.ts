/**
 * `sluice/testing`: run a function on records in memory and look at everything it produced.
 * Works with node:test and any esbuild-based runner.
 *
 * @example
 * import { test } from 'node:test';
 * import assert from 'node:assert/strict';
 * import { runFunction } from 'sluice/testing';
 * import { handler } from '../functions/sensor-sums/handler.js';
 *
 * test('sums per sensor', async () => {
 *   const run = await runFunction(handler, [{ key: 's1', value: { value: 2 }, timestamp: 1_000 }], { flush: true });
 *   assert.deepEqual(run.values('sensor-sums'), [{ start: 0, end: 10_000, value: 2 }]);
 * });
 */
import type { Definition } from '../define/build.js';
import { CaptureSink } from '../io/sinks.js';
import type { DeadLetter, LateOutput, OutputMessage } from '../pipeline/records.js';
import { sluice, type SluiceHandler } from '../runtime/handler.js';
import type { BatchReport, Runtime } from '../runtime/invoke.js';
import { lambdaContext } from '../runtime/lambda-context.js';
import type { LogEntry, Logger } from '../runtime/logger.js';
import { type InputRecord, type KafkaBatchResponse, type KafkaEvent, toKafkaEvents } from '../runtime/msk-event.js';
import type { EndOffsets, TickReport } from '../runtime/tick.js';
import { type ItemSnapshot, MemoryStore } from '../state/memory-store.js';
import type { StateStore } from '../state/store.js';

export type { InputRecord } from '../runtime/msk-event.js';
export { toKafkaEvents, toEventRecord } from '../runtime/msk-event.js';
export { CaptureSink } from '../io/sinks.js';
export { lambdaContext } from '../runtime/lambda-context.js';
export type { LogEntry, Logger } from '../runtime/logger.js';
export type { EndOffsets, TickReport, TickPartitionReport } from '../runtime/tick.js';
export { TICK_EVENT } from '../runtime/tick.js';

/**
 * Options of {@link runFunction}.
 *
 * @example
 * const first = await runFunction(handler, records, { batchSize: 10 });
 * const next = await runFunction(handler, more, { store: first.store, startOffset: records.length, flush: true });
 */
export interface RunOptions {
  /** Records per partition per event (default 100, as Lambda). */
  readonly batchSize?: number;
  /** Close every open window at the end of the input (default false, as Quix Streams). */
  readonly flush?: boolean;
  /** State store; a fresh MemoryStore by default. Pass the same one to continue a run. */
  readonly store?: StateStore;
  /** First offset of every partition (default 0). */
  readonly startOffset?: number;
  /** Where the handler's log entries go during the run, e.g. a {@link CaptureLogger} (default: the handler's own). */
  readonly logger?: Logger;
  /**
   * The wall clock during the run (epoch ms), read once per invocation: when records arrive, for
   * idle closing and the clock guard (default `Date.now`).
   */
  readonly wallClock?: () => number;
  /**
   * Idle ticks to run after the input (before `flush`), at these wall-clock times, as the deployed
   * schedule would: each partition of the input counts as caught up at its last record.
   */
  readonly ticks?: readonly number[];
}

/**
 * Everything a run produced.
 *
 * @example
 * const run: TestRun = await runFunction(handler, records);
 * assert.equal(run.deadLetters.length, 0);
 * assert.deepEqual(run.responses, [{ batchItemFailures: [] }]);
 */
export interface TestRun {
  readonly outputs: OutputMessage[];
  readonly late: LateOutput[];
  readonly deadLetters: DeadLetter[];
  readonly responses: KafkaBatchResponse[];
  /** One report per invocation: its stats add up (`recordsIn === applied + filtered + late + deadLettered`). */
  readonly reports: BatchReport[];
  /** One report per tick of `ticks`, in order. */
  readonly ticks: TickReport[];
  readonly store: StateStore;
  /** Output values sent to one topic, in order. */
  values(topic: string): unknown[];
  /** Stored items (MemoryStore only), by table then key. */
  state(): Record<string, Record<string, ItemSnapshot>>;
}

/**
 * Feeds records through a function's real Lambda handler as MSK events, with in-memory state.
 * Accepts a handler from `sluice(...)` or a definition (decorated class or stream chain).
 *
 * @example
 * const run = await runFunction(SensorSums, [{ key: 's1', value: { value: 2 }, timestamp: 1_000 }], { flush: true });
 * run.values('sensor-sums'); // [{ start: 0, end: 10000, value: 2 }]
 */
export async function runFunction(
  target: SluiceHandler | Definition,
  records: readonly InputRecord[],
  opts: RunOptions = {},
): Promise<TestRun> {
  const handler = isHandler(target) ? target : sluice(target);
  const capture = new CaptureSink();
  const late: LateOutput[] = [];
  const reports: BatchReport[] = [];
  const store = opts.store ?? new MemoryStore();
  const was = handler.sluice.runtime;
  const previous: Partial<Runtime> = { ...was, onBatch: was.onBatch, clock: was.clock };
  handler.sluice.configure({
    store,
    sink: capture,
    deadLetters: capture,
    onBatch: (r) => {
      late.push(...r.late);
      reports.push(r);
    },
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.wallClock ? { clock: opts.wallClock } : {}),
  });
  const ticks: TickReport[] = [];
  const responses: KafkaBatchResponse[] = [];
  const topic = handler.sluice.manifest.source.topic;
  const ctx = lambdaContext(handler.sluice.manifest.name);
  try {
    for (const event of toKafkaEvents(records, { topic, batchSize: opts.batchSize ?? 100, startOffset: opts.startOffset ?? 0 })) {
      responses.push(await handler(event as KafkaEvent, ctx as never));
    }
    const counts = new Map<number, number>();
    for (const r of records) counts.set(r.partition ?? 0, (counts.get(r.partition ?? 0) ?? 0) + 1);
    const ends = new Map([...counts].map(([p, n]) => [p, (opts.startOffset ?? 0) + n]));
    const offsets: EndOffsets = { endOffsets: async () => ends };
    for (const now of opts.ticks ?? []) ticks.push(await handler.sluice.tick({ now, offsets }));
    if (opts.flush) {
      for (const [p, n] of counts) await handler.sluice.flush(topic, p, (opts.startOffset ?? 0) + n - 1);
    }
  } finally {
    handler.sluice.configure(previous);
  }
  return {
    outputs: capture.messages,
    late,
    deadLetters: capture.deadLetters,
    responses,
    reports,
    ticks,
    store,
    values: (t) => capture.messages.filter((m) => m.topic === t).map((m) => m.value),
    state: () => (store instanceof MemoryStore ? store.dump() : {}),
  };
}

/**
 * A level of {@link Logger}.
 *
 * @example
 * const level: LogLevel = 'error';
 */
export type LogLevel = keyof Logger;

/**
 * A logger that keeps every entry in memory, for tests: inject it instead of patching `console`.
 * Entries are kept as the console logger would print them (a JSON round trip), so what a test
 * asserts is what would reach the logs.
 *
 * @example
 * const logger = new CaptureLogger();
 * handler.sluice.configure({ logger });
 * await handler(event, ctx);
 * logger.at('error').map((e) => e.sluice); // ['record-failed']
 */
export class CaptureLogger implements Logger {
  readonly entries: { readonly level: LogLevel; readonly entry: Record<string, unknown> }[] = [];
  error(entry: LogEntry): void {
    this.#add('error', entry);
  }
  warn(entry: LogEntry): void {
    this.#add('warn', entry);
  }
  info(entry: LogEntry): void {
    this.#add('info', entry);
  }
  /** The entries of one level, in order. */
  at(level: LogLevel): Record<string, unknown>[] {
    return this.entries.filter((e) => e.level === level).map((e) => e.entry);
  }
  #add(level: LogLevel, entry: LogEntry): void {
    this.entries.push({ level, entry: JSON.parse(JSON.stringify(entry)) as Record<string, unknown> });
  }
}

function isHandler(x: unknown): x is SluiceHandler {
  return typeof x === 'function' && !!(x as Partial<SluiceHandler>).sluice;
}
