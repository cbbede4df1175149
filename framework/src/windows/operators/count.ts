/**
 * Count windows: tumbling (step = count), hopping and sliding (step 1) over each key's records in
 * arrival order. A window closes when it holds `count` records; `start`/`end` are the smallest and
 * largest event times among its records (as in Quix Streams).
 */
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import { isCountWindowFull, newestWindowStart, oldestWindowStart } from '../assign.js';
import type { WindowSpec } from '../spec.js';
import { type Accs, type WindowAggregations, type WindowInput, WindowOperator, type WindowSink } from './base.js';

/** Per-key state of count windows: records seen and open windows [firstIndex, minTs, maxTs, accumulators]. */
interface CountState {
  n: number;
  w: [number, number, number, Accs][];
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
    const st = ns.modify(key, offset, newCountState);
    if (st === undefined) return true;
    const i = st.n++;
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
        sink.result({ key, start: win[1], end: win[2], value: this.result(win[1], win[2], win[3]), offset, final: full, seq: first });
      }
    }
    st.w = w.filter((x) => !isCountWindowFull(x[0], i, count));
    return true;
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    // Count windows close on their count alone; only the end of a finite input (--flush) closes them early.
    if (threshold !== Infinity) return;
    const st = ns.get(key) as CountState | undefined;
    if (!st || st.w.length === 0) return;
    // With emit 'current' every update was already sent: close silently, as time windows do.
    if (this.spec.emit === 'final') {
      for (const [first, startTs, endTs, accs] of st.w) {
        sink.result({ key, start: startTs, end: endTs, value: this.result(startTs, endTs, accs), offset, final: true, seq: first });
      }
    }
    st.w = [];
    ns.touch(key, offset);
  }

  protected earliestEnd(): number | undefined {
    return undefined;
  }
}
