/**
 * Session windows: records of a key closer than `gap` to each other form one session, reported as
 * [first record's time, last record's time + gap). A record that bridges sessions merges them.
 */
import { ConfigError } from '../../errors.js';
import type { NamespaceView, Transaction } from '../../state/transaction.js';
import { closeThreshold, isClosed, joinedSessions, sessionEnd } from '../assign.js';
import type { WindowSpec } from '../spec.js';
import { type Accs, type WindowAggregations, type WindowInput, WindowOperator, type WindowSink } from './base.js';

/** Per-key state of sessions: clock and open sessions [start, lastTs, accumulators], by start. */
interface SessionState {
  c: number;
  w: [number, number, Accs][];
}

function newSessionState(): SessionState {
  return { c: -1, w: [] };
}

/**
 * Session windows over event time; every aggregation needs `merge`, for bridged sessions.
 *
 * @example
 * const op = new SessionWindowOperator({ kind: 'session', gapMs: 30_000, graceMs: 0, emit: 'final', closeBy: 'key' }, aggs, 'visits');
 */
export class SessionWindowOperator extends WindowOperator {
  readonly #gap: number;
  readonly #grace: number;

  constructor(spec: Extract<WindowSpec, { kind: 'session' }>, aggs: WindowAggregations, name: string) {
    super(spec, aggs, name);
    for (const [n, a] of aggs.entries) {
      if (typeof a.merge !== 'function') {
        throw new ConfigError(
          `aggregation "${n}" of sessionWindow "${name}" has no merge(a, b); session windows merge when a record bridges two sessions. Add merge to the aggregator or use a time window.`,
        );
      }
    }
    this.#gap = spec.gapMs;
    this.#grace = spec.graceMs;
  }

  process(tx: Transaction, input: WindowInput, sink: WindowSink): boolean {
    const ns = tx.namespace(this.namespace);
    const { key, ts, offset } = input;
    const partitionClock = this.partitionClock(tx, input);
    const st = ns.modify(key, offset, newSessionState);
    if (st === undefined) {
      // As for time windows: re-index the key in a partition item that may have missed it.
      this.reindex(tx, key, ns.get(key), offset);
      return true;
    }
    if (ts > st.c) st.c = ts;
    const clock = this.clockAtLeastFloor(tx, this.byPartition ? partitionClock : st.c);
    const threshold = closeThreshold(clock, this.#grace);
    const gap = this.#gap;
    // Other keys (or an idle floor) may have advanced the clock past this key's sessions: close
    // those before joining, so a record never lands in a session that is already closed.
    if (this.byPartition || clock > st.c) this.expire(ns, key, threshold, offset, sink);
    const w = st.w;
    const joined = joinedSessions(w, ts, gap);
    let session: [number, number, Accs];
    if (joined === undefined) {
      if (isClosed(sessionEnd(ts, gap), threshold)) {
        sink.late({ input, windows: [[ts, sessionEnd(ts, gap)]], clock });
        return false;
      }
      session = [ts, ts, this.initAccs()];
      let at = w.findIndex((s) => s[0] > ts);
      if (at < 0) at = w.length;
      w.splice(at, 0, session);
    } else {
      const [first, last] = joined;
      session = w[first];
      for (let i = first + 1; i <= last; i++) {
        session[1] = Math.max(session[1], w[i][1]);
        session[2] = this.mergeAccs(session[2], w[i][2]);
      }
      w.splice(first + 1, last - first);
      if (ts < session[0]) session[0] = ts;
      if (ts > session[1]) session[1] = ts;
    }
    this.addTo(session[2], input.value, ts, offset);
    if (this.spec.emit === 'current') {
      const end = sessionEnd(session[1], gap);
      sink.result({ key, start: session[0], end, value: this.result(session[0], end, session[2]), offset, final: false });
    }
    this.expire(ns, key, threshold, offset, sink);
    this.reindex(tx, key, st, offset);
    return true;
  }

  protected expire(ns: NamespaceView, key: string, threshold: number, offset: number, sink: WindowSink): void {
    const st = ns.get(key) as SessionState | undefined;
    if (!st || st.w.length === 0) return;
    const keep: SessionState['w'] = [];
    for (const s of st.w) {
      const end = sessionEnd(s[1], this.#gap);
      if (!isClosed(end, threshold)) keep.push(s);
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
    for (const s of st.w) min = Math.min(min, sessionEnd(s[1], this.#gap));
    return min;
  }
}
