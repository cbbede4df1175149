/**
 * A brute-force reference for the window engine, for property tests. It shares no code with
 * `framework/src/windows`: it keeps every accepted record and recomputes each window from
 * scratch, and decides lateness by scanning the records in arrival order with a plain clock.
 * Slow on purpose; obviously right is the only goal.
 *
 * @example
 * const run = reference({ kind: 'tumbling', size: 10, grace: 0, closeBy: 'key', emit: 'final' }, records);
 * run.results; // [{ key: 'a', start: 0, end: 10, value: { sum: 3, n: 2, lo: 1, hi: 2, mean: 1.5, first: 0, … } }]
 */

/**
 * An input record: key, numeric value `v`, event time and partition. `id` tells records apart in
 * first/last/earliest/latest, which report the `id` they picked: unique per input, kept when
 * the input is sliced for replays.
 */
export interface Rec {
  readonly key: string;
  readonly v: number;
  readonly id: number;
  readonly ts: number;
  readonly partition: number;
}

/** A record with its Kafka offset (per partition) and its position in the whole input. */
export interface Placed extends Rec {
  readonly offset: number;
  readonly seq: number;
}

export type CloseBy = 'key' | 'partition';
export type Emit = 'final' | 'current';

/** The window definitions the reference knows, in plain numbers (milliseconds, records). */
export type RefSpec =
  | { readonly kind: 'tumbling'; readonly size: number; readonly grace: number; readonly closeBy: CloseBy; readonly emit: Emit }
  | {
      readonly kind: 'hopping';
      readonly size: number;
      readonly step: number;
      readonly grace: number;
      readonly closeBy: CloseBy;
      readonly emit: Emit;
    }
  | { readonly kind: 'sliding'; readonly size: number; readonly grace: number; readonly emit: Emit }
  | { readonly kind: 'session'; readonly gap: number; readonly grace: number; readonly closeBy: CloseBy; readonly emit: Emit }
  | { readonly kind: 'tumblingCount'; readonly count: number; readonly emit: Emit }
  | { readonly kind: 'hoppingCount'; readonly count: number; readonly step: number; readonly emit: Emit }
  | { readonly kind: 'slidingCount'; readonly count: number; readonly emit: Emit };

/**
 * One emitted window: bounds and the aggregation results (`sum`, `n`, `lo`, `hi`, `mean`, the `id`s
 * picked by `first`, `last`, `earliest`, `latest`, optionally `items`).
 */
export interface RefResult {
  readonly key: string;
  readonly start: number;
  readonly end: number;
  readonly value: Record<string, unknown>;
}

/** A late record: which input it was, the windows it missed and the clock that closed them. */
export interface RefLate {
  readonly key: string;
  readonly offset: number;
  readonly ts: number;
  readonly windows: [number, number][];
  readonly clock: number;
}

export interface RefRun {
  readonly results: RefResult[];
  readonly late: RefLate[];
}

export interface RefOptions {
  /** Also aggregate `items`: every value, by event time then arrival. */
  readonly collect?: boolean;
  /** Close every open window at the end of the input. */
  readonly flush?: boolean;
  /** First offset of every partition. */
  readonly startOffset?: number;
}

/** Numbers records the way the harness does: offsets count up per partition from `startOffset`. */
export function place(records: readonly Rec[], startOffset = 0): Placed[] {
  const next = new Map<number, number>();
  return records.map((r, seq) => {
    const offset = next.get(r.partition) ?? startOffset;
    next.set(r.partition, offset + 1);
    return { ...r, offset, seq };
  });
}

/**
 * The aggregation of a window's records, computed from nothing. The records may come in any order
 * (merged sessions concatenate): arrival order is `seq`.
 */
export function aggregate(records: readonly Placed[], collect: boolean): Record<string, unknown> {
  let total = 0;
  let lo: number | null = null;
  let hi: number | null = null;
  for (const r of records) {
    total += r.v;
    if (lo === null || r.v < lo) lo = r.v;
    if (hi === null || r.v > hi) hi = r.v;
  }
  const arrived = [...records].sort((a, b) => a.seq - b.seq);
  const byTime = [...records].sort((a, b) => a.ts - b.ts || a.seq - b.seq);
  const out: Record<string, unknown> = {
    sum: total,
    n: records.length,
    lo,
    hi,
    mean: records.length === 0 ? null : total / records.length,
    first: arrived.at(0)?.id ?? null,
    last: arrived.at(-1)?.id ?? null,
    earliest: byTime.at(0)?.id ?? null,
    latest: byTime.at(-1)?.id ?? null,
  };
  if (collect) out.items = [...records].sort((a, b) => a.ts - b.ts || a.seq - b.seq).map((r) => r.v);
  return out;
}

/** What the engine should produce for `records` under `spec`. */
export function reference(spec: RefSpec, records: readonly Rec[], opts: RefOptions = {}): RefRun {
  const out: RefRun = { results: [], late: [] };
  const placed = place(records, opts.startOffset ?? 0);
  for (const partition of [...new Set(placed.map((r) => r.partition))]) {
    const recs = placed.filter((r) => r.partition === partition);
    switch (spec.kind) {
      case 'tumbling':
        fixed(recs, spec.size, spec.size, spec.grace, spec.closeBy, spec.emit, opts, out);
        break;
      case 'hopping':
        fixed(recs, spec.size, spec.step, spec.grace, spec.closeBy, spec.emit, opts, out);
        break;
      case 'sliding':
        sliding(recs, spec.size, spec.grace, spec.emit, opts, out);
        break;
      case 'session':
        session(recs, spec.gap, spec.grace, spec.closeBy, spec.emit, opts, out);
        break;
      case 'tumblingCount':
        counted(recs, spec.count, spec.count, spec.emit, opts, out);
        break;
      case 'hoppingCount':
        counted(recs, spec.count, spec.step, spec.emit, opts, out);
        break;
      case 'slidingCount':
        counted(recs, spec.count, 1, spec.emit, opts, out);
        break;
    }
  }
  return out;
}

/** Clocks of one partition: the partition's and each key's largest timestamp so far. */
class Clocks {
  partition = -Infinity;
  readonly keys = new Map<string, number>();
  see(r: Rec): void {
    this.partition = Math.max(this.partition, r.ts);
    this.keys.set(r.key, Math.max(this.keys.get(r.key) ?? -Infinity, r.ts));
  }
  of(key: string, closeBy: CloseBy): number {
    return closeBy === 'partition' ? this.partition : (this.keys.get(key) ?? -Infinity);
  }
}

/** Tumbling (step = size) and hopping windows [start, start + size), starts multiples of step. */
function fixed(recs: Placed[], size: number, step: number, grace: number, closeBy: CloseBy, emit: Emit, opts: RefOptions, out: RefRun) {
  const collect = opts.collect ?? false;
  const members = new Map<string, { key: string; start: number; records: Placed[] }>();
  const clocks = new Clocks();
  for (const r of recs) {
    clocks.see(r);
    const clock = clocks.of(r.key, closeBy);
    const missed: [number, number][] = [];
    // Windows containing ts start after ts - size: begin the scan one step below that.
    for (let start = Math.max(0, Math.floor((r.ts - size) / step) * step); start <= r.ts; start += step) {
      const end = start + size;
      if (r.ts >= end) continue;
      if (end <= clock - grace) {
        missed.push([start, end]);
        continue;
      }
      const id = `${r.key}|${start}`;
      let m = members.get(id);
      if (!m) members.set(id, (m = { key: r.key, start, records: [] }));
      m.records.push(r);
      if (emit === 'current') out.results.push({ key: r.key, start, end, value: aggregate(m.records, collect) });
    }
    if (missed.length > 0) out.late.push({ key: r.key, offset: r.offset, ts: r.ts, windows: missed, clock });
  }
  if (emit === 'current') return;
  for (const m of members.values()) {
    const end = m.start + size;
    if (opts.flush || end <= clocks.of(m.key, closeBy) - grace) {
      out.results.push({ key: m.key, start: m.start, end, value: aggregate(m.records, collect) });
    }
  }
}

/**
 * Sliding windows [max(0, t - size), t], one per accepted record time t (created only while
 * t >= clock - grace), final once t < clock - grace, valued with every accepted record in range
 * at that moment. A record is late when ts < clock - grace - size. `current`: each accepted
 * record updates every open window containing it.
 */
function sliding(recs: Placed[], size: number, grace: number, mode: Emit, opts: RefOptions, out: RefRun) {
  const collect = opts.collect ?? false;
  const keys = new Map<string, { clock: number; accepted: Placed[]; open: Set<number> }>();
  const emit = (key: string, accepted: Placed[], t: number) => {
    const inside = accepted.filter((x) => x.ts >= t - size && x.ts <= t);
    out.results.push({ key, start: Math.max(0, t - size), end: t, value: aggregate(inside, collect) });
  };
  for (const r of recs) {
    let k = keys.get(r.key);
    if (!k) keys.set(r.key, (k = { clock: -Infinity, accepted: [], open: new Set() }));
    k.clock = Math.max(k.clock, r.ts);
    const openFrom = k.clock - grace;
    if (r.ts < openFrom - size) {
      out.late.push({ key: r.key, offset: r.offset, ts: r.ts, windows: [[Math.max(0, r.ts - size), r.ts]], clock: k.clock });
      continue;
    }
    k.accepted.push(r);
    if (r.ts >= openFrom) k.open.add(r.ts);
    if (mode === 'current') for (const t of k.open) if (t - size <= r.ts && r.ts <= t) emit(r.key, k.accepted, t);
    for (const t of [...k.open]) {
      if (t < openFrom) {
        if (mode === 'final') emit(r.key, k.accepted, t);
        k.open.delete(t);
      }
    }
  }
  if (opts.flush && mode === 'final') for (const [key, k] of keys) for (const t of k.open) emit(key, k.accepted, t);
}

/**
 * Session windows: a key's records closer than `gap` chain into one session [first, last + gap).
 * A session is closed once last + gap <= clock - grace; a record that joins no open session is
 * late when ts + gap <= clock - grace. `current`: each accepted record reports its session.
 */
function session(recs: Placed[], gap: number, grace: number, closeBy: CloseBy, mode: Emit, opts: RefOptions, out: RefRun) {
  const collect = opts.collect ?? false;
  const open = new Map<string, Placed[][]>();
  const clocks = new Clocks();
  const first = (s: Placed[]) => Math.min(...s.map((x) => x.ts));
  const last = (s: Placed[]) => Math.max(...s.map((x) => x.ts));
  const emit = (key: string, s: Placed[]) => out.results.push({ key, start: first(s), end: last(s) + gap, value: aggregate(s, collect) });
  const closeDue = (key: string) => {
    const threshold = clocks.of(key, closeBy) - grace;
    const keep: Placed[][] = [];
    for (const s of open.get(key) ?? []) {
      if (last(s) + gap > threshold) keep.push(s);
      else if (mode === 'final') emit(key, s);
    }
    open.set(key, keep);
  };
  for (const r of recs) {
    clocks.see(r);
    for (const key of closeBy === 'partition' ? [...open.keys()] : [r.key]) closeDue(key);
    const clock = clocks.of(r.key, closeBy);
    let sessions = open.get(r.key) ?? [];
    const joined = sessions.filter((s) => r.ts > first(s) - gap && r.ts < last(s) + gap);
    if (joined.length === 0 && r.ts + gap <= clock - grace) {
      out.late.push({ key: r.key, offset: r.offset, ts: r.ts, windows: [[r.ts, r.ts + gap]], clock });
      continue;
    }
    sessions = [...sessions.filter((s) => !joined.includes(s)), [...joined.flat(), r]];
    // Chain to a fixpoint: any two open sessions closer than gap are one session.
    for (let merged = true; merged; ) {
      merged = false;
      outer: for (let i = 0; i < sessions.length; i++) {
        for (let j = i + 1; j < sessions.length; j++) {
          const a = sessions[i];
          const b = sessions[j];
          if (first(b) - last(a) < gap && first(a) - last(b) < gap) {
            sessions = [...sessions.filter((s) => s !== a && s !== b), [...a, ...b]];
            merged = true;
            break outer;
          }
        }
      }
    }
    open.set(r.key, sessions);
    if (mode === 'current') emit(r.key, sessions.find((s) => s.includes(r))!);
    closeDue(r.key);
  }
  if (opts.flush && mode === 'final') for (const [key, sessions] of open) for (const s of sessions) emit(key, s);
}

/**
 * Count windows: the records of a key, in arrival order, [s, s + count) for s = 0, step, 2·step…
 * `final`: each full window, and with `flush` the partial ones. `current`: each record reports
 * every window it joins, as it stands after it; nothing more at the end.
 */
function counted(recs: Placed[], count: number, step: number, mode: Emit, opts: RefOptions, out: RefRun) {
  const emit = (key: string, win: Placed[]) => {
    const times = win.map((x) => x.ts);
    out.results.push({ key, start: Math.min(...times), end: Math.max(...times), value: aggregate(win, opts.collect ?? false) });
  };
  for (const key of [...new Set(recs.map((r) => r.key))]) {
    const mine = recs.filter((r) => r.key === key);
    if (mode === 'current') {
      for (let i = 0; i < mine.length; i++) for (let s = 0; s <= i; s += step) if (i < s + count) emit(key, mine.slice(s, i + 1));
      continue;
    }
    for (let s = 0; s < mine.length; s += step) {
      const win = mine.slice(s, s + count);
      if (win.length === count || opts.flush) emit(key, win);
    }
  }
}
