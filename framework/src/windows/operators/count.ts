/**
 * Count windows: tumbling (step = count), hopping and sliding (step 1) over each key's records in
 * arrival order. A window closes when it holds `count` records; `start`/`end` are the smallest and
 * largest event times among its records (as in Quix Streams).
 */
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import { isCountWindowFull, newestWindowStart, oldestWindowStart } from '../assign.js';
import type { WindowSpec } from '../spec.js';
import { type Accs, type WindowAggregations, type WindowInput, WindowOperator, type WindowSink } from './base.js';

/**
 * Per-key state of count windows: records seen, open windows [firstIndex, minTs, maxTs,
 * accumulators] (indices counted from `b`), and for idle flushing the offset of the key's last
 * record `o` and the index `b` its windows restarted from after a flush (state from before idle
 * flushing has neither: -1 and 0).
 */
interface CountState {
  n: number;
  w: [number, number, number, Accs][];
  o?: number;
  b?: number;
}

function newCountState(): CountState {
  return { n: 0, w: [] };
}

/**
 * Tumbling, hopping and sliding count windows.
 *
 * @example
 * const op = new CountWindowOperator({ kind: 'tumblingCount', count: 100, emit: 'final' }, aggs, 'batches');
 */
export class CountWindowOperator extends WindowOperator {
  readonly #count: number;
  readonly #step: number;

  constructor(
    spec: Extract<WindowSpec, { kind: 'tumblingCount' | 'hoppingCount' | 'slidingCount' }>,
    aggs: WindowAggregations,
    name: string,
  ) {
    super(spec, aggs, name);
    this.#count = spec.count;
    this.#step = spec.kind === 'tumblingCount' ? spec.count : spec.kind === 'hoppingCount' ? spec.step : 1;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): boolean {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    // Keeps the partition item (where idle flushing indexes keys) when idle flushing is on.
    this.partitionClock(tx, input);
    const st = ns.modify(key, offset, newCountState);
    if (st === undefined) {
      this.reindex(tx, key, ns.get(key), offset);
      return true;
    }
    // Windows the key had open when an idle tick's floor (an offset) was set are flushed first.
    const floor = this.floor(tx);
    if (floor >= 0 && st.w.length > 0 && (st.o ?? -1) <= floor) this.expire(ns, key, floor, offset, sink);
    const base = st.b ?? 0;
    const i = st.n++ - base;
    const w = st.w;
    const count = this.#count;
    const step = this.#step;
    const newest = newestWindowStart(i, step);
    for (let first = oldestWindowStart(i, count, step); first <= newest; first += step) {
      let win = w.find((x) => x[0] === first);
      if (!win) w.push((win = [first, ts, ts, this.initAccs()]));
      if (ts < win[1]) win[1] = ts;
      if (ts > win[2]) win[2] = ts;
      this.addTo(win[3], input.value, ts, offset);
      const full = isCountWindowFull(first, i, count);
      if (this.spec.emit === 'current' || full) {
        const seq = first + base;
        sink.result({ key, start: win[1], end: win[2], value: this.result(win[1], win[2], win[3]), offset, final: full, seq });
      }
    }
    st.w = w.filter((x) => !isCountWindowFull(x[0], i, count));
    st.o = offset;
    this.reindex(tx, key, st, offset);
    return true;
  }

  /**
   * Flushes the key's open (partial) windows if its last record is at or before `threshold`, an
   * offset: the idle floor, or Infinity at the end of a finite input (--flush). Its next record
   * starts new windows, numbered after the flushed ones.
   */
  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as CountState | undefined;
    if (!st || st.w.length === 0 || (st.o ?? -1) > threshold) return;
    const base = st.b ?? 0;
    // With emit 'current' every update was already sent: close silently, as time windows do.
    if (this.spec.emit === 'final') {
      for (const [first, startTs, endTs, accs] of st.w) {
        sink.result({ key, start: startTs, end: endTs, value: this.result(startTs, endTs, accs), offset, final: true, seq: first + base });
      }
    }
    st.w = [];
    st.b = st.n;
    ns.touch(key, offset);
  }

  /** Idle windows are indexed by the offset of the key's last record (see {@link dueThreshold}). */
  protected earliestEnd(state: unknown): number | undefined {
    const st = state as CountState | undefined;
    return st && st.w.length > 0 ? (st.o ?? -1) : undefined;
  }

  /** The idle floor is an offset: keys whose last record is at or before it are due. */
  protected override dueThreshold(_partitionClock: number, floor: number): number | undefined {
    return floor < 0 ? undefined : floor;
  }
}
