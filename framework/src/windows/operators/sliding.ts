/**
 * Sliding windows (Quix Streams semantics): every accepted record at `t` defines the window
 * [max(0, t - size), t], inclusive at both ends, holding the records with timestamps in it. A window
 * closes when `t < clock - grace`; a record is late when `ts < clock - grace - size`. Values are
 * computed from the buffered records, so a window made by an out-of-order record includes the
 * earlier records it covers.
 */
import { ConfigError } from '../../errors.js';
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import { closeThreshold, inSlidingWindow, isSlidingClosed, isSlidingLate, slidingRetainFrom, slidingWindowStart } from '../assign.js';
import type { WindowSpec } from '../spec.js';
import { type WindowAggregations, type WindowInput, WindowOperator, type WindowSink } from './base.js';

/**
 * Per-key state of sliding windows: clock, accepted records [ts, value, offset] in arrival order,
 * open window ends. State written before offsets were kept has [ts, value]: those records came
 * first, so they count as position -1.
 */
interface SlidingState {
  c: number;
  r: [number, unknown, number?][];
  e: number[];
}

function newSlidingState(): SlidingState {
  return { c: -1, r: [], e: [] };
}

/**
 * Sliding windows over event time; they close by each key's clock only.
 *
 * @example
 * const op = new SlidingWindowOperator({ kind: 'sliding', sizeMs: 10_000, graceMs: 0, emit: 'final', closeBy: 'key' }, aggs, 'recent');
 */
export class SlidingWindowOperator extends WindowOperator {
  readonly #size: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'sliding' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    if (spec.closeBy === 'partition') {
      // As in Quix Streams ("Sliding window only support the 'key' closing strategy").
      throw new ConfigError(
        `slidingWindow "${name}" cannot close by partition (received closeBy: 'partition'): sliding windows support only closeBy: 'key', since each key's own records make its windows. Use closeBy: 'key' (the default), or a hoppingWindow to close windows by the partition clock.`,
      );
    }
    this.#size = spec.sizeMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): boolean {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    this.partitionClock(tx, input);
    const st = ns.modify(key, offset, newSlidingState);
    if (st === undefined) {
      this.reindex(tx, key, ns.get(key), offset);
      return true;
    }
    if (ts > st.c) st.c = ts;
    const clock = this.clockAtLeastFloor(tx, st.c);
    const threshold = closeThreshold(clock, this.#grace);
    if (isSlidingLate(ts, threshold, this.#size)) {
      sink.late({ input, windows: [[slidingWindowStart(ts, this.#size), ts]], clock });
      this.expire(ns, key, threshold, offset, sink);
      this.reindex(tx, key, st, offset);
      return false;
    }
    st.r.push([ts, input.value, offset]);
    if (!isSlidingClosed(ts, threshold) && !st.e.includes(ts)) {
      let at = st.e.findIndex((e) => e > ts);
      if (at < 0) at = st.e.length;
      st.e.splice(at, 0, ts);
    }
    if (this.spec.emit === 'current') {
      for (const end of st.e) if (inSlidingWindow(ts, end, this.#size)) this.#emit(st, key, end, offset, false, sink);
    }
    this.expire(ns, key, threshold, offset, sink);
    this.reindex(tx, key, st, offset);
    return true;
  }

  #emit(st: SlidingState, key: string, end: number, offset: number, final: boolean, sink: WindowSink): void {
    const start = slidingWindowStart(end, this.#size);
    const accs = this.initAccs();
    for (const [t, v, o] of st.r) if (inSlidingWindow(t, end, this.#size)) this.addTo(accs, v, t, o ?? -1);
    sink.result({ key, start, end, value: this.result(start, end, accs), offset, final });
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as SlidingState | undefined;
    if (!st) return;
    let n = 0;
    while (n < st.e.length && isSlidingClosed(st.e[n], threshold)) {
      if (this.spec.emit === 'final') this.#emit(st, key, st.e[n], offset, true, sink);
      n++;
    }
    if (n > 0) st.e.splice(0, n);
    const retainFrom = slidingRetainFrom(threshold, st.e.length > 0 ? st.e[0] : undefined, this.#size);
    if (st.r.length > 0 && (n > 0 || st.r[0][0] < retainFrom)) st.r = st.r.filter(([t]) => t >= retainFrom);
    if (n > 0) ns.touch(key, offset);
  }

  /** The earliest open window's end + 1: due positions close at `<= threshold`, sliding ends at `< threshold`. */
  protected earliestEnd(state: unknown): number | undefined {
    const st = state as SlidingState | undefined;
    return st && st.e.length > 0 ? st.e[0] + 1 : undefined;
  }
}
