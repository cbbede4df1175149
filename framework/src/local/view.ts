import type { Guarantee } from '../define/guarantee.js';
import type { StateStore } from '../state/store.js';
import { MemoryStore } from '../state/memory-store.js';
import { isWindowNamespace } from '../state/namespaces.js';
import type { FunctionStats, TickStats } from './emulator/stats.js';

/**
 * Windows still open in a memory store: what a finite input leaves unemitted. Undefined for a
 * store that cannot be counted cheaply (DynamoDB).
 *
 * @example
 * statusLine(stats, rate, countOpenWindows(store));
 */
export function countOpenWindows(store: StateStore): number | undefined {
  if (!(store instanceof MemoryStore)) return undefined;
  let n = 0;
  // Runs every second under the live view: count in place, without copying the state.
  store.forEachValue((namespace, _key, value) => {
    if (!isWindowNamespace(namespace)) return;
    const v = value as { w?: unknown[]; e?: unknown[] };
    n += (v.e ?? v.w ?? []).length;
  });
  return n;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * One line per function: throughput, lag per partition, batches, retries, windows, late, poison,
 * dead letters, exactly-once (its transactions committed and aborted; at-least-once goes unsaid), idle ticks (for a function that runs them: how many, the windows they closed, when
 * the last one started, skipped and failed ones once there are any), records lost (gone from the
 * broker before they were processed; shown once there are any), and the partitions held at a
 * batch that is retried until it succeeds.
 *
 * @example
 * statusLine(stats, 36, 3);
 * // 'sensor-sums              36 rec/s  in 182  lag p0:0 p1:0  batches 2  retries 0  windows open 3 emitted 15  late 1  poison 1  dlq 1'
 */
export function statusLine(s: FunctionStats, rate: number, openWindows: number | undefined): string {
  const lag = [...s.highWatermarks]
    .sort(([a], [b]) => a - b)
    .map(([p, high]) => `p${p}:${fmt(Math.max(0, high - (s.committed.get(p) ?? 0)))}`)
    .join(' ');
  const blocked = [...(s.blocked ?? [])]
    .sort(([a], [b]) => a - b)
    .map(([p, b]) => `p${p}@${b.offset} (${fmt(b.attempts)} attempts)`)
    .join(' ');
  return [
    s.name.padEnd(16),
    `${fmt(rate).padStart(9)} rec/s`,
    `in ${fmt(s.records)}`,
    `lag ${lag || '-'}`,
    `batches ${fmt(s.batches)}`,
    `retries ${fmt(s.retries)}`,
    `windows open ${openWindows === undefined ? '?' : fmt(openWindows)} emitted ${fmt(s.windowsEmitted)}`,
    `late ${fmt(s.late)}`,
    `poison ${fmt(s.poison)}`,
    `dlq ${fmt(s.poison + s.failedToDeadLetter)}`,
    // The default goes unsaid here (the start-up line and the summary say it).
    ...(s.guarantee === 'exactly-once'
      ? [`exactly-once txns ${fmt(s.transactions.committed)} aborted ${fmt(s.transactions.aborted)}`]
      : []),
    ...(s.ticks.periodMs === undefined ? [] : [tickPart(s.ticks)]),
    ...(s.lost > 0 ? [`LOST ${fmt(s.lost)}: gone from the broker before they were processed`] : []),
    ...(blocked ? [`BLOCKED ${blocked}: retried until it succeeds, as Lambda does without provisioned pollers`] : []),
  ].join('  ');
}

/**
 * A function's delivery guarantee, as the start-up line and the summary say it.
 *
 * @example
 * guaranteeText('exactly-once'); // 'exactly-once (Kafka transactions)'
 */
export function guaranteeText(g: Guarantee): string {
  return g === 'exactly-once' ? 'exactly-once (Kafka transactions)' : 'at-least-once';
}

/**
 * The transactions of an exactly-once function for the summary ('' for at-least-once).
 *
 * @example
 * transactionsText(stats); // ': 1,204 transactions committed, 1 aborted'
 */
export function transactionsText(s: Pick<FunctionStats, 'guarantee' | 'transactions'>): string {
  if (s.guarantee !== 'exactly-once') return '';
  return `: ${fmt(s.transactions.committed)} transactions committed, ${fmt(s.transactions.aborted)} aborted`;
}

function tickPart(t: TickStats): string {
  const last = t.lastAt === undefined ? '-' : new Date(t.lastAt).toISOString().slice(11, 19);
  return [
    `ticks ${fmt(t.runs)} closed ${fmt(t.windowsClosed)} last ${last}`,
    ...(t.skipped > 0 ? [`skipped ${fmt(t.skipped)}`] : []),
    ...(t.failed > 0 ? [`failed ${fmt(t.failed)}`] : []),
  ].join(' ');
}

/**
 * The live terminal view of `sluice dev --brokers`: redraws in place on a TTY, prints plain
 * periodic lines otherwise.
 *
 * @example
 * const view = startView(functions, process.stderr);
 * // … on exit
 * view.stop();
 */
export function startView(
  fns: readonly { stats: FunctionStats; store: StateStore }[],
  out: NodeJS.WriteStream = process.stderr,
  opts: { intervalMs?: number } = {},
): { stop(): void; note(line: string): void } {
  const tty = out.isTTY === true;
  const interval = opts.intervalMs ?? (tty ? 1000 : 5000);
  let last = fns.map((f) => ({ records: f.stats.records, at: Date.now() }));
  let drawn = 0;
  const render = () => {
    const now = Date.now();
    const lines = fns.map((f, i) => {
      const rate = ((f.stats.records - last[i].records) * 1000) / Math.max(1, now - last[i].at);
      return statusLine(f.stats, rate, countOpenWindows(f.store));
    });
    last = fns.map((f) => ({ records: f.stats.records, at: now }));
    if (tty) {
      if (drawn > 0) out.write(`\x1b[${drawn}A`);
      for (const l of lines) out.write(`\x1b[2K${l}\n`);
      drawn = lines.length;
    } else {
      for (const l of lines) out.write(`${new Date(now).toISOString()} ${l}\n`);
    }
  };
  const timer = setInterval(render, interval);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      render();
    },
    note(line: string) {
      if (tty && drawn > 0) {
        out.write(`\x1b[${drawn}A\x1b[0J`);
        drawn = 0;
      }
      out.write(`${line}\n`);
    },
  };
}
