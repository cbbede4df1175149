/**
 * Drives a handler through a replay with idle ticks between its invocations, as a deployed
 * function reprocessing a topic from TRIM_HORIZON sees them: the whole input is already on the
 * broker (each partition's end offset is the input's end from the start), the event source
 * mapping delivers it batch by batch, and the schedule's ticks land in between. runFunction's
 * `ticks` run only after the input; this is the interleaved case.
 */
import type { SluiceHandler } from 'sluice';
import type { BatchReport, KafkaEvent, LateOutput, OutputMessage } from 'sluice/runtime';
import { MemoryStore } from 'sluice/state';
import { CaptureSink, type EndOffsets, type InputRecord, lambdaContext, type TickReport, toKafkaEvents } from 'sluice/testing';
import type { StateStore } from '../../framework/src/state/store.js';

export interface ReplayOptions {
  readonly batchSize: number;
  readonly store?: StateStore;
  /** The wall clock of invocation `i` (0-based). */
  readonly clock: (invocation: number) => number;
  /** Tick times to run after invocation `i` but the last, while the rest of the input waits on the broker. */
  readonly between?: (invocation: number) => readonly number[];
  /** Tick times to run once the input is applied (the partitions are caught up). */
  readonly after?: readonly number[];
  /** Close every open window at the end, as runFunction's `flush`. */
  readonly flush?: boolean;
}

export interface Replay {
  readonly outputs: OutputMessage[];
  readonly late: LateOutput[];
  readonly reports: BatchReport[];
  /** Ticks run between invocations. */
  readonly between: TickReport[];
  /** Ticks run after the input. */
  readonly after: TickReport[];
  readonly store: StateStore;
  readonly invocations: number;
  /** How many of `outputs` the invocations produced; the rest came from `after` ticks or the flush. */
  readonly replayed: number;
}

/** Each partition's end offset once the whole input is on the broker. */
export function endOffsetsOf(records: readonly InputRecord[]): EndOffsets {
  const ends = new Map<number, number>();
  for (const r of records) ends.set(r.partition ?? 0, (ends.get(r.partition ?? 0) ?? 0) + 1);
  return { endOffsets: async () => ends };
}

/** Feeds `records` through `handler` with ticks interleaved (see the module comment). */
export async function replay(handler: SluiceHandler, records: readonly InputRecord[], opts: ReplayOptions): Promise<Replay> {
  const capture = new CaptureSink();
  const reports: BatchReport[] = [];
  const store = opts.store ?? new MemoryStore();
  let invocation = 0;
  let replayed = 0;
  const was = handler.sluice.runtime;
  const previous = { ...was, onBatch: was.onBatch, clock: was.clock };
  handler.sluice.configure({
    store,
    sink: capture,
    deadLetters: capture,
    onBatch: (r) => reports.push(r),
    clock: () => opts.clock(invocation),
  });
  const offsets = endOffsetsOf(records);
  const topic = handler.sluice.manifest.source.topic;
  const ctx = lambdaContext(handler.sluice.manifest.name) as never;
  const between: TickReport[] = [];
  const after: TickReport[] = [];
  try {
    const events = [...toKafkaEvents(records, { topic, batchSize: opts.batchSize })];
    for (const event of events) {
      const response = await handler(event as KafkaEvent, ctx);
      if (response.batchItemFailures.length > 0) throw new Error(`invocation ${invocation} failed: ${JSON.stringify(response)}`);
      if (invocation < events.length - 1) {
        for (const now of opts.between?.(invocation) ?? []) between.push(await handler.sluice.tick({ now, offsets }));
      }
      invocation++;
    }
    replayed = capture.messages.length;
    for (const now of opts.after ?? []) after.push(await handler.sluice.tick({ now, offsets }));
    if (opts.flush) {
      for (const [p, end] of await offsets.endOffsets(topic)) await handler.sluice.flush(topic, p, end - 1);
    }
  } finally {
    handler.sluice.configure(previous);
  }
  return {
    outputs: capture.messages,
    late: reports.flatMap((r) => r.late),
    reports,
    between,
    after,
    store,
    invocations: invocation,
    replayed,
  };
}
