import { ConfigError } from '../errors.js';
import type { NamespaceView, Transaction } from '../state/transaction.js';
import type { Aggregator } from './aggregators.js';
import { countWindowStarts } from './assign.js';
import { type WindowSpec, windowSignature } from './spec.js';

/** A record as a window sees it: its key, value, event time and source offset. */
export interface WindowInput {
  readonly key: string;
  readonly value: unknown;
  readonly ts: number;
  readonly offset: number;
}

/** A window result on its way out. `final` is false for `emit: 'current'` updates. */
export interface WindowOutput {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: Record<string, unknown>;
  /** Offset of the input record whose processing produced this result. */
  readonly offset: number;
  readonly final: boolean;
  /** Identifies the window among the key's windows when start/end do not (count windows). */
  readonly seq?: number;
}

/** A record that arrived after the windows it belongs to had closed. */
export interface LateInput {
  readonly input: WindowInput;
  /** The closed windows the record missed, as [start, end) pairs. */
  readonly windows: ReadonlyArray<readonly [number, number]>;
  /** The clock that had closed them. */
  readonly clock: number;
}

/** Where a window operator sends what it produces. */
export interface WindowSink {
  result(out: WindowOutput): void;
  late(late: LateInput): void;
}

/** Named aggregators of one window step. `single`: the result carries `value`, not names. */
export interface WindowAggregations {
  readonly single: boolean;
  readonly entries: ReadonlyArray<readonly [string, Aggregator<any, any>]>;
}

type Accs = unknown[];
/** Per-key state of time windows: clock and open windows [start, end, accumulators], by start. */
interface TimeState { c: number; w: [number, number, Accs][] }
/** Per-key state of sessions: clock and open sessions [start, lastTs, accumulators], by start. */
interface SessionState { c: number; w: [number, number, Accs][] }
/** Per-key state of count windows: records seen and open windows [firstIndex, minTs, maxTs, accumulators]. */
interface CountState { n: number; w: [number, number, number, Accs][] }
/** Partition clock and, per key, the earliest end among its open windows. */
interface PartitionState { c: number; k: Record<string, number> }

// Not '': DynamoDB rejects an empty string as a sort key.
const PARTITION_ITEM = 'partition';

/**
 * Runs one window step over records of one partition batch. Window math is the pure functions
 * of `assign.ts`; this class applies them to state in a {@link Transaction}, with the closing
 * rules of Quix Streams: a window closes when `end <= clock - grace`; a record for a closed window
 * is late and never changes an emitted result.
 *
 * @example
 * const op = createWindowOperator(spec, aggs, 'total');
 * await tx.load(op.namespace, keys);
 * for (const r of records) op.process(tx, r, sink);
 * await op.finish(tx, sink);
 */
export abstract class WindowOperator {
  readonly namespace: string;
  readonly partitionNamespace: string;

  constructor(
    readonly spec: WindowSpec,
    readonly aggs: WindowAggregations,
    readonly name: string,
  ) {
    this.namespace = `window:${name}:${windowSignature(spec)}:${aggs.entries.map(([n, a]) => `${n}=${a.signature ?? a.kind ?? 'custom'}`).join(',')}`;
    this.partitionNamespace = `${this.namespace}#partition`;
  }

  get byPartition(): boolean {
    return 'closeBy' in this.spec && this.spec.closeBy === 'partition';
  }

  /** Loads the state the given keys need. Called once per batch before `process`. */
  async load(tx: Transaction, keys: Iterable<string>): Promise<void> {
    await tx.load(this.namespace, keys);
    if (this.byPartition) await tx.load(this.partitionNamespace, [PARTITION_ITEM]);
  }

  abstract process(tx: Transaction, input: WindowInput, sink: WindowSink): void;

  /** After the batch: with the partition clock, close windows of keys the batch did not touch. */
  async finish(tx: Transaction, sink: WindowSink, lastOffset: number): Promise<void> {
    if (!this.byPartition) return;
    const pns = tx.namespace(this.partitionNamespace);
    const p = pns.get(PARTITION_ITEM) as PartitionState | undefined;
    if (!p) return;
    const threshold = p.c - (this.spec as { graceMs: number }).graceMs;
    const due = Object.keys(p.k).filter((k) => p.k[k] <= threshold);
    if (due.length === 0) return;
    await tx.load(this.namespace, due);
    const ns = tx.namespace(this.namespace);
    for (const key of due.sort()) {
      this.expire(ns, key, threshold, lastOffset, sink);
      this.index(pns, key, ns.get(key), lastOffset);
    }
  }

  /** Emits every open window of the given keys as final (end of a finite input: `--flush`). */
  async closeAll(tx: Transaction, keys: readonly string[], sink: WindowSink, lastOffset: number): Promise<void> {
    await this.load(tx, keys);
    const ns = tx.namespace(this.namespace);
    for (const key of [...keys].sort()) {
      this.expire(ns, key, Infinity, lastOffset, sink);
      if (this.byPartition) this.index(tx.namespace(this.partitionNamespace), key, ns.get(key), lastOffset);
    }
  }

  /** Emits and removes the windows of `key` that are closed at `threshold`. */
  protected abstract expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void;

  /** Earliest end among the open windows in a key's state, or undefined if none. */
  protected abstract earliestEnd(state: unknown): number | undefined;

  protected index(pns: NamespaceView, key: string, state: unknown, offset: number): void {
    const p = pns.get(PARTITION_ITEM) as PartitionState;
    const end = this.earliestEnd(state);
    if (p.k[key] === end) return;
    if (end === undefined) delete p.k[key];
    else p.k[key] = end;
    pns.touch(PARTITION_ITEM, offset);
  }

  /**
   * Advances the partition clock for this input (partition strategy) and returns it. Called before
   * the per-key replay check: the partition item is fenced by its own offset.
   */
  protected partitionClock(tx: Transaction, input: WindowInput): number {
    if (!this.byPartition) return -1;
    const pns = tx.namespace(this.partitionNamespace);
    let p = pns.get(PARTITION_ITEM) as PartitionState | undefined;
    if (!p) pns.set(PARTITION_ITEM, (p = { c: -1, k: {} }), input.offset);
    if (input.ts > p.c && !pns.isApplied(PARTITION_ITEM, input.offset)) {
      p.c = input.ts;
      pns.touch(PARTITION_ITEM, input.offset);
    }
    return p.c;
  }

  protected initAccs(): Accs {
    const e = this.aggs.entries;
    const accs = new Array(e.length);
    for (let i = 0; i < e.length; i++) accs[i] = e[i][1].initialize();
    return accs;
  }

  /** `position`: the input's offset, so aggregators can tell arrival order across a merge. */
  protected addTo(accs: Accs, value: unknown, ts: number, position: number): void {
    const e = this.aggs.entries;
    for (let i = 0; i < e.length; i++) accs[i] = e[i][1].add(accs[i], value, ts, position);
  }

  protected mergeAccs(a: Accs, b: Accs): Accs {
    const e = this.aggs.entries;
    return e.map(([, agg], i) => agg.merge!(a[i], b[i]));
  }

  protected result(start: number, end: number, accs: Accs): Record<string, unknown> {
    const e = this.aggs.entries;
    const out: Record<string, unknown> = { start, end };
    for (let i = 0; i < e.length; i++) out[e[i][0]] = e[i][1].result(accs[i]);
    return out;
  }
}

/** Tumbling (step = size) and hopping windows over event time. */
class TimeWindowOperator extends WindowOperator {
  readonly #size: number;
  readonly #step: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'tumbling' | 'hopping' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    this.#size = spec.sizeMs;
    this.#step = spec.kind === 'hopping' ? spec.stepMs : spec.sizeMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): void {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    const partitionClock = this.byPartition ? this.partitionClock(tx, input) : -1;
    const st = ns.modify(key, offset, (): TimeState => ({ c: -1, w: [] }));
    if (st === undefined) {
      // The key's item already holds this record, the partition item may not (a crash wrote one
      // and not the other): index the key again, or its windows never close by the partition clock.
      if (this.byPartition) this.index(tx.namespace(this.partitionNamespace), key, ns.get(key), offset);
      return;
    }
    if (ts > st.c) st.c = ts;
    const clock = this.byPartition ? partitionClock : st.c;
    const threshold = clock - this.#grace;
    const size = this.#size;
    const current = this.spec.emit === 'current';
    let missed: [number, number][] | undefined;
    const w = st.w;
    // Starts run from the oldest window containing ts to the newest, so w stays sorted by start.
    const newest = ts - (ts % this.#step);
    let start = newest;
    while (start - this.#step > ts - size && start - this.#step >= 0) start -= this.#step;
    for (; start <= newest; start += this.#step) {
      const end = start + size;
      if (end <= threshold) {
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
      if (current) sink.result({ key, start, end, value: this.result(start, end, win[2]), offset, final: false });
    }
    if (missed) sink.late({ input, windows: missed, clock });
    if (w.length > 0 && w[0][1] <= threshold) this.expire(ns, key, threshold, offset, sink);
    if (this.byPartition) this.index(tx.namespace(this.partitionNamespace), key, st, offset);
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as TimeState | undefined;
    if (!st || st.w.length === 0 || st.w[0][1] > threshold) return;
    const w = st.w;
    let n = 0;
    // Sorted by start, and all windows share a size, so closed windows are a prefix.
    while (n < w.length && w[n][1] <= threshold) {
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

/**
 * Session windows: records of a key closer than `gap` to each other form one session, reported as
 * [first record's time, last record's time + gap). A record that bridges sessions merges them.
 */
class SessionWindowOperator extends WindowOperator {
  readonly #gap: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'session' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    for (const [n, a] of aggs.entries) {
      if (typeof a.merge !== 'function') {
        throw new ConfigError(`aggregation "${n}" of sessionWindow "${name}" has no merge(a, b); session windows merge when a record bridges two sessions. Add merge to the aggregator or use a time window.`);
      }
    }
    this.#gap = spec.gapMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): void {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    const partitionClock = this.partitionClock(tx, input);
    if (ns.isApplied(key, offset)) {
      // As for time windows: re-index the key in a partition item that may have missed it.
      if (this.byPartition) this.index(tx.namespace(this.partitionNamespace), key, ns.get(key), offset);
      return;
    }
    let st = ns.get(key) as SessionState | undefined;
    if (!st) st = { c: -1, w: [] };
    if (ts > st.c) st.c = ts;
    const clock = this.byPartition ? partitionClock : st.c;
    const threshold = clock - this.#grace;
    const gap = this.#gap;
    // Other keys may have advanced the partition clock past this key's sessions: close those
    // before joining, so a record never lands in a session that is already closed.
    if (this.byPartition) this.expire(ns, key, threshold, offset, sink);
    const w = st.w;
    let first = -1;
    let lastJoined = -1;
    for (let i = 0; i < w.length; i++) {
      if (ts > w[i][0] - gap && ts < w[i][1] + gap) {
        if (first < 0) first = i;
        lastJoined = i;
      }
    }
    let session: [number, number, Accs];
    if (first < 0) {
      if (ts + gap <= threshold) {
        ns.set(key, st, offset);
        sink.late({ input, windows: [[ts, ts + gap]], clock });
        return;
      }
      session = [ts, ts, this.initAccs()];
      let at = w.findIndex((s) => s[0] > ts);
      if (at < 0) at = w.length;
      w.splice(at, 0, session);
    } else {
      session = w[first];
      // Sessions are disjoint and sorted, so the joined ones are contiguous.
      for (let i = first + 1; i <= lastJoined; i++) {
        session[1] = Math.max(session[1], w[i][1]);
        session[2] = this.mergeAccs(session[2], w[i][2]);
      }
      w.splice(first + 1, lastJoined - first);
      if (ts < session[0]) session[0] = ts;
      if (ts > session[1]) session[1] = ts;
    }
    this.addTo(session[2], input.value, ts, offset);
    ns.set(key, st, offset);
    if (this.spec.emit === 'current') {
      sink.result({ key, start: session[0], end: session[1] + gap, value: this.result(session[0], session[1] + gap, session[2]), offset, final: false });
    }
    this.expire(ns, key, threshold, offset, sink);
    if (this.byPartition) this.index(tx.namespace(this.partitionNamespace), key, st, offset);
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as SessionState | undefined;
    if (!st || st.w.length === 0) return;
    const gap = this.#gap;
    const keep: SessionState['w'] = [];
    for (const s of st.w) {
      const end = s[1] + gap;
      if (end > threshold) keep.push(s);
      else if (this.spec.emit === 'final') sink.result({ key, start: s[0], end, value: this.result(s[0], end, s[2]), offset, final: true });
    }
    if (keep.length !== st.w.length) {
      st.w = keep;
      ns.touch(key, offset);
    }
  }

  protected earliestEnd(state: unknown): number | undefined {
    const st = state as SessionState | undefined;
    if (!st || st.w.length === 0) return undefined;
    let min = Infinity;
    for (const s of st.w) if (s[1] + this.#gap < min) min = s[1] + this.#gap;
    return min;
  }
}

/**
 * Count windows: tumbling (step = count), hopping and sliding (step 1) over each key's records in
 * arrival order. A window closes when it holds `count` records; `start`/`end` are the smallest and
 * largest event times among its records (as in Quix Streams).
 */
class CountWindowOperator extends WindowOperator {
  readonly #count: number;
  readonly #step: number;

  constructor(spec: Extract<WindowSpec, { kind: 'tumblingCount' | 'hoppingCount' | 'slidingCount' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    this.#count = spec.count;
    this.#step = spec.kind === 'tumblingCount' ? spec.count : spec.kind === 'hoppingCount' ? spec.step : 1;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): void {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    if (ns.isApplied(key, offset)) return;
    let st = ns.get(key) as CountState | undefined;
    if (!st) st = { n: 0, w: [] };
    const i = st.n++;
    const w = st.w;
    for (const start of countWindowStarts(i, this.#count, this.#step)) {
      let win = w.find((x) => x[0] === start);
      if (!win) w.push((win = [start, ts, ts, this.initAccs()]));
      if (ts < win[1]) win[1] = ts;
      if (ts > win[2]) win[2] = ts;
      this.addTo(win[3], input.value, ts, offset);
      const full = i - start + 1 === this.#count;
      if (this.spec.emit === 'current' || full) {
        sink.result({ key, start: win[1], end: win[2], value: this.result(win[1], win[2], win[3]), offset, final: full, seq: start });
      }
    }
    st.w = w.filter((x) => i - x[0] + 1 < this.#count);
    ns.set(key, st, offset);
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

/** Builds the operator for a window spec. */
export function createWindowOperator(spec: WindowSpec, aggs: WindowAggregations, name: string): WindowOperator {
  switch (spec.kind) {
    case 'tumbling':
    case 'hopping':
      return new TimeWindowOperator(spec, aggs, name);
    case 'session':
      return new SessionWindowOperator(spec, aggs, name);
    case 'tumblingCount':
    case 'hoppingCount':
    case 'slidingCount':
      return new CountWindowOperator(spec, aggs, name);
    case 'sliding':
      return createSlidingOperator(spec, aggs, name);
  }
}

/**
 * Per-key state of sliding windows: clock, accepted records [ts, value, offset] in arrival order,
 * open window ends. State written before offsets were kept has [ts, value]: those records came
 * first, so they count as position -1.
 */
interface SlidingState { c: number; r: [number, unknown, number?][]; e: number[] }

/**
 * Sliding windows (Quix Streams semantics): every accepted record at `t` defines the window
 * [max(0, t - size), t], inclusive at both ends, holding the records with timestamps in it. A window
 * closes when `t < clock - grace`; a record is late when `ts < clock - grace - size`. Values are
 * computed from the buffered records, so a window made by an out-of-order record includes the
 * earlier records it covers.
 */
class SlidingWindowOperator extends WindowOperator {
  readonly #size: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'sliding' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    if (spec.closeBy === 'partition') {
      // As in Quix Streams ("Sliding window only support the 'key' closing strategy").
      throw new ConfigError(`slidingWindow "${name}" cannot close by partition (received closeBy: 'partition'): sliding windows support only closeBy: 'key', since each key's own records make its windows. Use closeBy: 'key' (the default), or a hoppingWindow to close windows by the partition clock.`);
    }
    this.#size = spec.sizeMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): void {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    if (ns.isApplied(key, offset)) return;
    let st = ns.get(key) as SlidingState | undefined;
    if (!st) st = { c: -1, r: [], e: [] };
    if (ts > st.c) st.c = ts;
    const openFrom = st.c - this.#grace; // windows with end >= openFrom are open
    if (ts < openFrom - this.#size) {
      ns.set(key, st, offset);
      sink.late({ input, windows: [[Math.max(0, ts - this.#size), ts]], clock: st.c });
      return;
    }
    st.r.push([ts, input.value, offset]);
    if (ts >= openFrom && !st.e.includes(ts)) {
      let at = st.e.findIndex((e) => e > ts);
      if (at < 0) at = st.e.length;
      st.e.splice(at, 0, ts);
    }
    if (this.spec.emit === 'current') {
      for (const end of st.e) if (end >= ts && end - this.#size <= ts) this.emit(st, key, end, offset, false, sink);
    }
    ns.set(key, st, offset);
    this.expire(ns, key, openFrom, offset, sink);
  }

  #windowResult(st: SlidingState, end: number) {
    const start = Math.max(0, end - this.#size);
    const accs = this.initAccs();
    for (const [t, v, o] of st.r) if (t >= end - this.#size && t <= end) this.addTo(accs, v, t, o ?? -1);
    return { start, value: this.result(start, end, accs) };
  }

  private emit(st: SlidingState, key: string, end: number, offset: number, final: boolean, sink: WindowSink) {
    const { start, value } = this.#windowResult(st, end);
    sink.result({ key, start, end, value, offset, final });
  }

  /** `openFrom` = clock - grace: windows ending before it are closed. */
  protected expire(ns: NamespaceView, key: string, openFrom: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as SlidingState | undefined;
    if (!st) return;
    let n = 0;
    while (n < st.e.length && st.e[n] < openFrom) {
      if (this.spec.emit === 'final') this.emit(st, key, st.e[n], offset, true, sink);
      n++;
    }
    if (n > 0) st.e.splice(0, n);
    // Keep records that an open window, or a future accepted record's window, can still cover.
    const floor = Math.min(openFrom, st.e.length > 0 ? st.e[0] : Infinity) - this.#size;
    if (st.r.length > 0 && (n > 0 || st.r[0][0] < floor)) st.r = st.r.filter(([t]) => t >= floor);
    if (n > 0) ns.touch(key, offset);
  }

  protected earliestEnd(): number | undefined {
    return undefined;
  }
}

function createSlidingOperator(spec: Extract<WindowSpec, { kind: 'sliding' }>, aggs: WindowAggregations, name: string): WindowOperator {
  return new SlidingWindowOperator(spec, aggs, name);
}
