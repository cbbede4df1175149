/**
 * What every window operator shares: the shapes that flow in and out, the per-batch state
 * loading, the partition clock and its index of open windows (for `closeBy: 'partition'`), and
 * the accumulators of a window's aggregations. The window kinds live beside this file, one each;
 * their math is the pure functions of `../assign.ts`.
 */
import { IDLE_ITEM, idleNamespace, partitionNamespace, windowNamespace } from '../../state/namespaces.js';
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import type { Aggregator } from '../aggregators.js';
import { closeThreshold, isClosed } from '../assign.js';
import { floorOf, type IdleState, type IdleWindow } from '../idle.js';
import { idleAllowance, type WindowSpec, windowSignature } from '../spec.js';

/**
 * A record as a window sees it: its key, value, event time and source offset.
 *
 * @example
 * const input: WindowInput = { key: 'sensor-1', value: { value: 3 }, ts: 12_000, offset: 42 };
 */
export interface WindowInput {
  readonly key: string;
  readonly value: unknown;
  readonly ts: number;
  readonly offset: number;
}

/**
 * A window result on its way out. `final` is false for `emit: 'current'` updates.
 *
 * @example
 * const out: WindowOutput = { key: 'sensor-1', start: 10_000, end: 20_000, value: { start: 10_000, end: 20_000, total: 7 }, offset: 42, final: true };
 */
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

/**
 * A record that arrived after the windows it belongs to had closed.
 *
 * @example
 * const late: LateInput = { input, windows: [[0, 10_000]], clock: 12_500 };
 */
export interface LateInput {
  readonly input: WindowInput;
  /** The closed windows the record missed, as [start, end) pairs. */
  readonly windows: ReadonlyArray<readonly [number, number]>;
  /** The clock that had closed them. */
  readonly clock: number;
}

/**
 * Where a window operator sends what it produces.
 *
 * @example
 * const sink: WindowSink = { result: (r) => results.push(r), late: (l) => lates.push(l) };
 */
export interface WindowSink {
  result(out: WindowOutput): void;
  late(late: LateInput): void;
}

/**
 * Named aggregators of one window step. `single`: the result carries `value`, not names.
 *
 * @example
 * const aggs: WindowAggregations = { single: true, entries: [['value', sum('value')]] };
 */
export interface WindowAggregations {
  readonly single: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: aggregators of any accumulator and result types, as the manifest holds them
  readonly entries: ReadonlyArray<readonly [string, Aggregator<any, any>]>;
}

/**
 * The accumulators of one window, one per aggregation, in the order of `aggs.entries`.
 *
 * @example
 * const accs: Accs = aggs.entries.map(([, a]) => a.initialize());
 */
export type Accs = unknown[];

/** Partition clock and, per key, the earliest due position (end) among its open windows. */
interface PartitionState {
  c: number;
  k: Record<string, number>;
}

// Not '': DynamoDB rejects an empty string as a sort key.
const PARTITION_ITEM = 'partition';

function newPartitionState(): PartitionState {
  return { c: -1, k: {} };
}

/**
 * Runs one window step over records of one partition batch, applying the pure math of
 * `assign.ts` to state in a {@link Transaction}, with the closing rules of Quix Streams: a window
 * closes when `end <= clock - grace`; a record for a closed window is late and never changes an
 * emitted result. A subclass per window kind decides where a record goes and what closes.
 *
 * @example
 * const op = createWindowOperator(spec, aggs, 'total');
 * await op.load(tx, keys);
 * for (const r of records) op.process(tx, r, sink);
 * await op.finish(tx, sink, lastOffset);
 */
export abstract class WindowOperator {
  readonly namespace: string;
  readonly partitionNamespace: string;
  /** The idle allowance (ms), or undefined: no idle closing. */
  readonly idleMs: number | undefined;
  /** Whether windows close by the partition's clock (`closeBy: 'partition'`). Fields, not getters: read per record. */
  readonly byPartition: boolean;
  /** Whether the operator keeps the partition item (clock and index of open windows): partition clock or idle closing. */
  readonly indexed: boolean;
  /** Each batch's idle floor (-1: none), set by `load`: operators are shared by concurrent batches. */
  readonly #floors = new WeakMap<Transaction, number>();

  constructor(
    readonly spec: WindowSpec,
    readonly aggs: WindowAggregations,
    readonly name: string,
  ) {
    // The signature keeps state of a changed window or aggregation apart from the old one's.
    const aggregations = aggs.entries.map(([n, a]) => `${n}=${a.signature ?? a.kind ?? 'custom'}`).join(',');
    this.namespace = windowNamespace(name, `${windowSignature(spec)}:${aggregations}`);
    this.partitionNamespace = partitionNamespace(this.namespace);
    this.idleMs = idleAllowance(spec);
    this.byPartition = 'closeBy' in spec && spec.closeBy === 'partition';
    this.indexed = this.byPartition || this.idleMs !== undefined;
  }

  /** The window as idle closing's rules see it, or undefined without idle closing. */
  get idleWindow(): IdleWindow | undefined {
    if (this.idleMs === undefined) return undefined;
    const count = !('graceMs' in this.spec);
    return { namespace: this.namespace, idleMs: this.idleMs, kind: count ? 'count' : 'time', graceMs: this.grace };
  }

  protected get grace(): number {
    return 'graceMs' in this.spec ? this.spec.graceMs : 0;
  }

  /**
   * Loads the state the given keys need, and the batch's idle floor from the partition's idle item
   * (loaded by the runner first). Called once per batch before `process`.
   */
  async load(tx: Transaction, keys: Iterable<string>): Promise<void> {
    await tx.load(this.namespace, keys);
    if (this.indexed) await tx.load(this.partitionNamespace, [PARTITION_ITEM]);
    if (this.idleMs !== undefined) {
      const idle = tx.namespace(idleNamespace());
      this.#floors.set(tx, floorOf(idle.has(IDLE_ITEM) ? (idle.get(IDLE_ITEM) as IdleState | undefined) : undefined, this.namespace));
    }
  }

  /** The batch's idle floor: an event time every clock is at least (count windows: an offset); -1 for none. */
  protected floor(tx: Transaction): number {
    return this.#floors.get(tx) ?? -1;
  }

  /** A clock raised to the batch's idle floor. */
  protected clockAtLeastFloor(tx: Transaction, clock: number): number {
    // The hot path of windows without idle closing: no lookup.
    if (this.idleMs === undefined) return clock;
    const f = this.floor(tx);
    return Math.max(f, clock);
  }

  /**
   * The position at or below which indexed keys are due at the end of a batch (undefined: none):
   * the partition clock's threshold with `closeBy: 'partition'`, at least the idle floor's.
   */
  protected dueThreshold(partitionClock: number, floor: number): number | undefined {
    const clock = Math.max(this.byPartition ? partitionClock : -1, floor);
    return clock < 0 ? undefined : closeThreshold(clock, this.grace);
  }

  /**
   * The partition's clock and its earliest due position, for the idle item: [-1, null] when the
   * window has taken nothing; undefined when this run did not reach the window (nothing changed).
   */
  idleSummary(tx: Transaction): [number, number | null] | undefined {
    const pns = tx.namespace(this.partitionNamespace);
    if (!pns.has(PARTITION_ITEM)) return undefined;
    const p = pns.get(PARTITION_ITEM) as PartitionState | undefined;
    if (!p) return [-1, null];
    let due: number | null = null;
    for (const k in p.k) if (due === null || p.k[k] < due) due = p.k[k];
    return [p.c, due];
  }

  /**
   * Applies one record of the batch, in offset order: a replayed record changes nothing. Returns
   * whether the record was taken (into at least one window, or by an earlier run: a replay), and
   * false when it was late for every window it belongs to.
   */
  abstract process(tx: Transaction, input: WindowInput, sink: WindowSink): boolean;

  /**
   * After the batch (or in a tick): close the due windows of keys the batch did not touch, by the
   * partition clock and the idle floor, found through the partition item's index.
   */
  async finish(tx: Transaction, sink: WindowSink, lastOffset: number): Promise<void> {
    if (!this.indexed) return;
    const pns = tx.namespace(this.partitionNamespace);
    const p = pns.get(PARTITION_ITEM) as PartitionState | undefined;
    if (!p) return;
    const threshold = this.dueThreshold(p.c, this.floor(tx));
    if (threshold === undefined) return;
    const due = Object.keys(p.k).filter((k) => isClosed(p.k[k], threshold));
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
      if (this.indexed) this.index(tx.namespace(this.partitionNamespace), key, ns.get(key), lastOffset);
    }
  }

  /** Emits and removes the windows of `key` that are closed at `threshold`. */
  protected abstract expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void;

  /** Earliest end among the open windows in a key's state, or undefined if none. */
  protected abstract earliestEnd(state: unknown): number | undefined;

  /** Records in the partition item where the key's earliest open window ends, for `finish`. */
  protected index(pns: NamespaceView, key: string, state: unknown, offset: number): void {
    const p = pns.get(PARTITION_ITEM) as PartitionState;
    const end = this.earliestEnd(state);
    if (p.k[key] === end) return;
    if (end === undefined) delete p.k[key];
    else p.k[key] = end;
    pns.touch(PARTITION_ITEM, offset);
  }

  /** {@link index} in this batch's partition item, when the operator keeps one ({@link indexed}). */
  protected reindex(tx: Transaction, key: string, state: unknown, offset: number): void {
    if (this.indexed) this.index(tx.namespace(this.partitionNamespace), key, state, offset);
  }

  /**
   * Advances the partition clock for this input (partition strategy) and returns it. Called before
   * the per-key replay check: the partition item is fenced by its own offset.
   */
  protected partitionClock(tx: Transaction, input: WindowInput): number {
    if (!this.indexed) return -1;
    const pns = tx.namespace(this.partitionNamespace);
    let p = pns.get(PARTITION_ITEM) as PartitionState | undefined;
    if (!p) pns.set(PARTITION_ITEM, (p = newPartitionState()), input.offset);
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
