/**
 * Tumbling and hopping windows over event time: [start, start + size) every `step` (tumbling:
 * step = size). The hot path of a typical function, so it allocates nothing per record beyond
 * a new window's accumulators.
 */
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import { closeThreshold, isClosed, newestWindowStart, oldestWindowStart } from '../assign.js';
import type { WindowSpec } from '../spec.js';
import { type Accs, type WindowAggregations, type WindowInput, WindowOperator, type WindowSink } from './base.js';

/** Per-key state of time windows: clock and open windows [start, end, accumulators], by start. */
interface TimeState {
  c: number;
  w: [number, number, Accs][];
}

function newTimeState(): TimeState {
  return { c: -1, w: [] };
}

/**
 * Tumbling (step = size) and hopping windows over event time.
 *
 * @example
 * const op = new TimeWindowOperator({ kind: 'tumbling', sizeMs: 10_000, graceMs: 2_000, emit: 'final', closeBy: 'key' }, aggs, 'total');
 */
export class TimeWindowOperator extends WindowOperator {
  readonly #size: number;
  readonly #step: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'tumbling' | 'hopping' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    this.#size = spec.sizeMs;
    this.#step = spec.kind === 'hopping' ? spec.stepMs : spec.sizeMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): boolean {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    const partitionClock = this.partitionClock(tx, input);
    const st = ns.modify(key, offset, newTimeState);
    if (st === undefined) {
      // The key's item already holds this record, the partition item may not (a crash wrote one
      // and not the other): index the key again, or its windows never close by the partition clock.
      this.reindex(tx, key, ns.get(key), offset);
      return true;
    }
    if (ts > st.c) st.c = ts;
    const clock = this.clockAtLeastFloor(tx, this.byPartition ? partitionClock : st.c);
    const threshold = closeThreshold(clock, this.#grace);
    const size = this.#size;
    const step = this.#step;
    const current = this.spec.emit === 'current';
    let missed: [number, number][] | undefined;
    let accepted = false;
    const w = st.w;
    // Oldest window first, so w stays sorted by start.
    const newest = newestWindowStart(ts, step);
    for (let start = oldestWindowStart(ts, size, step); start <= newest; start += step) {
      const end = start + size;
      if (isClosed(end, threshold)) {
        (missed ??= []).push([start, end]);
        continue;
      }
      let win: [number, number, Accs] | undefined;
      for (let i = 0; i < w.length; i++) {
        if (w[i][0] === start) {
          win = w[i];
          break;
        }
        if (w[i][0] > start) {
          win = [start, end, this.initAccs()];
          w.splice(i, 0, win);
          break;
        }
      }
      if (!win) w.push((win = [start, end, this.initAccs()]));
      this.addTo(win[2], input.value, ts, offset);
      accepted = true;
      if (current) sink.result({ key, start, end, value: this.result(start, end, win[2]), offset, final: false });
    }
    if (missed) sink.late({ input, windows: missed, clock });
    if (w.length > 0 && isClosed(w[0][1], threshold)) this.expire(ns, key, threshold, offset, sink);
    this.reindex(tx, key, st, offset);
    return accepted;
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as TimeState | undefined;
    if (!st || st.w.length === 0 || !isClosed(st.w[0][1], threshold)) return;
    const w = st.w;
    let n = 0;
    // Sorted by start, and all windows share a size, so closed windows are a prefix.
    while (n < w.length && isClosed(w[n][1], threshold)) {
      const [start, end, accs] = w[n++];
      if (this.spec.emit === 'final') sink.result({ key, start, end, value: this.result(start, end, accs), offset, final: true });
    }
    w.splice(0, n);
    ns.touch(key, offset);
  }

  protected earliestEnd(state: unknown): number | undefined {
    const st = state as TimeState | undefined;
    return st && st.w.length > 0 ? st.w[0][1] : undefined;
  }
}
