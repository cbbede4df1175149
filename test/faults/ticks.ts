/**
 * Idle ticks under faults (issue 12): the fault suite's driver for functions whose windows close
 * when the partition goes quiet.
 *
 * Records arrive on a simulated wall clock (`runtime.clock`), in three partitions, from keys that
 * go quiet at different times and partitions that fall silent for a while. The driver delivers
 * them through the real handler as Lambda would (random batch sizes, crashes inside state writes,
 * failing sinks and steps, retries from the committed offset) and interleaves idle ticks
 * (`handler.sluice.tick`), each in a container of its own, with an {@link EndOffsets} that reports
 * what the broker holds: every record arrived so far, delivered or not. Faults of the ticks:
 * - crashes at random points: inside the proposal (it lands or not), between proposal and
 *   confirm, between confirm and closing, in the middle of the closing write (some items written),
 *   while the results are handed over, and after them before anything is committed;
 * - races with an invocation of the same partition: the tick stops at a chosen store call
 *   (proposal, re-check, confirm, the closing reads, the closing write) while a record arrives and
 *   a batch runs whole, or reads and stops at its first write; or a batch stops at its first write
 *   while a tick runs whole;
 * - stale ticks: a slow tick stopped at such a point while a later tick, a batch, or both run,
 *   then resumed with its old wall time and reads;
 * - end offsets that move between the tick's two checks (a record arrives after its proposal).
 *
 * There is no fault-free reference: when a partition was judged idle depends on timing, so
 * results may legitimately differ from a run without ticks. The checks are what must hold
 * whatever the timing ({@link judgeTicks}): every result id is emitted with one value; every
 * record is in exactly one outcome (one distinct window result, or one late report, or a window
 * still open), and each result's aggregates agree with the records it names; after the input
 * ends and the partitions stay quiet, ticks close every window.
 *
 * @example
 * const run = await runTicksWithFaults(tickWorkloads.idleSessions, 7, 'S7', new MemoryStore());
 * judgeTicks(run); // { lost: 0, appliedTwice: 0, conflictingValues: 0, unclosed: 0, … }
 */
import { isDeepStrictEqual } from 'node:util';
import { collect, count, type Definition, type SluiceHandler, sluice, stream, sum } from 'sluice';
import type { BatchBounds, ItemChange, StateScope, StateStore, StoredItem, WriteStats } from 'sluice/state';
import { type KafkaBatchResponse, type KafkaEventRecord, loadDefinition, type OutputMessage } from 'sluice/runtime';
import { type EndOffsets, type InputRecord, lambdaContext, type TickReport } from 'sluice/testing';
import { idleNamespace } from '../../framework/src/state/namespaces.js';
import type { StoreCallOptions } from '../../framework/src/state/store.js';
import type { IdleState } from '../../framework/src/windows/idle.js';
import {
  crashOrder,
  emptyStats,
  FaultyStore,
  flaky,
  Hold,
  InjectedCrash,
  kafkaEvent,
  partitionLogs,
  readState,
  Rng,
  SAMPLE_START,
  silentLogger,
  stepFaults,
} from './harness.js';

// ---------- workloads ----------

/** A record of the idle workloads: a unique id (so each record's outcome can be traced) and a value. */
interface Tagged {
  readonly id: string;
  readonly v: number;
}

/** An input record with the wall-clock time (ms after the start) it reaches the broker. */
export interface TimedRecord extends InputRecord {
  readonly arrival: number;
}

/** A function with an idle window, run by {@link runTicksWithFaults}. */
export interface TickWorkload {
  readonly name: string;
  /**
   * The function, named with `suffix`: ticks run over the source topic itself, so scenarios that
   * share a table keep their state apart by the function's name.
   */
  define(suffix: string): Definition;
  /** The longest idle allowance plus grace and gap: how long the end must stay quiet for everything to close. */
  readonly settleMs: number;
}

const LATE_TOPIC = 'idle-late';
const aggregations = () => ({ n: count(), v: sum('v'), ids: collect((r: Tagged) => r.id) });

/**
 * Three idle windows, one function each (a window after an idle window is refused): sessions,
 * tumbling windows with grace, and tumbling count windows flushed when idle.
 */
export const tickWorkloads = {
  idleSessions: {
    name: 'idle-sessions',
    settleMs: 6_000,
    define: (suffix: string) =>
      stream<Tagged>('idle-clicks', { name: `IdleSessions${suffix}`, lateTopic: LATE_TOPIC })
        .update((_, ctx) => flaky(ctx), { name: 'flaky' })
        .sessionWindow('3s', { grace: '500ms', idle: '2s' })
        .aggregate(aggregations(), { name: 'session' })
        .to('idle-sessions'),
  },
  idleTumbling: {
    name: 'idle-tumbling',
    settleMs: 8_000,
    define: (suffix: string) =>
      stream<Tagged>('idle-readings', { name: `IdleTumbling${suffix}`, lateTopic: LATE_TOPIC })
        .update((_, ctx) => flaky(ctx), { name: 'flaky' })
        .tumblingWindow('4s', { grace: '1s', idle: '3s' })
        .aggregate(aggregations(), { name: 'sums' })
        .to('idle-sums'),
  },
  idleCounts: {
    name: 'idle-counts',
    settleMs: 3_000,
    define: (suffix: string) =>
      stream<Tagged>('idle-meters', { name: `IdleCounts${suffix}`, lateTopic: LATE_TOPIC })
        .update((_, ctx) => flaky(ctx), { name: 'flaky' })
        .tumblingCountWindow(4, { idle: '2s' })
        .aggregate(aggregations(), { name: 'fours' })
        .to('idle-fours'),
  },
} satisfies Record<string, TickWorkload>;

/**
 * Traffic for a seed: three partitions of three keys each; every key sends for a while (bursts,
 * pauses longer than a session gap) and then goes quiet for good, at its own time; each partition
 * also falls silent two to four times for 5 to 12 s, long enough for ticks to close what is open.
 * Event times trail arrival by up to 1.2 s, a few by 8 to 20 s (late once a floor passed them).
 *
 * @example
 * const records = idleTraffic(3); // ~200 records sorted by arrival
 */
export function idleTraffic(seed: number): TimedRecord[] {
  const rng = new Rng(seed);
  const out: TimedRecord[] = [];
  let n = 0;
  for (let p = 0; p < 3; p++) {
    const silent: [number, number][] = [];
    for (let q = rng.int(2, 4), t = rng.int(5_000, 15_000); q > 0; q--, t += rng.int(15_000, 30_000))
      silent.push([t, t + rng.int(5_000, 12_000)]);
    for (let k = 0; k < 3; k++) {
      const key = `p${p}-k${k}`;
      let t = rng.int(0, 15_000);
      const stop = t + rng.int(8_000, 70_000);
      while (t < stop) {
        t += rng.chance(0.15) ? rng.int(3_500, 9_000) : rng.int(200, 2_000);
        if (silent.some(([a, b]) => t >= a && t < b)) continue;
        const behind = rng.chance(0.06) ? rng.int(8_000, 20_000) : rng.int(0, 1_200);
        out.push({
          key,
          value: { id: `rec/${n++}`, v: rng.int(1, 9) },
          timestamp: SAMPLE_START + Math.max(0, t - behind),
          partition: p,
          arrival: t,
        });
      }
    }
  }
  return out.sort((a, b) => a.arrival - b.arrival);
}

// ---------- the tick's container ----------

/** Where a tick stops while the driver runs something else beside it. */
export type TickPoint = 'before-proposal' | 'before-recheck' | 'before-confirm' | 'before-close' | 'before-commit';
/** Where a tick's process dies. */
export type TickCrashPoint = 'in-proposal' | 'after-proposal' | 'after-confirm' | 'mid-close' | 'while-sending' | 'after-outputs';

const TICK_POINTS: readonly TickPoint[] = ['before-proposal', 'before-recheck', 'before-confirm', 'before-close', 'before-commit'];
const TICK_CRASHES: readonly TickCrashPoint[] = [
  'in-proposal',
  'after-proposal',
  'after-confirm',
  'mid-close',
  'while-sending',
  'after-outputs',
];
const IDLE_NS = idleNamespace();

interface TickCrashPlan {
  readonly partition: number;
  readonly at: TickCrashPoint;
  /** The share of items (closing write) or messages (while sending) that land first. */
  readonly cut: number;
  readonly order: number;
}

/**
 * The store of one tick's container: it tells the tick's calls apart by the protocol's order
 * (read; proposal; re-check read; confirm; the closing run's reads; its write) per partition,
 * stops at a chosen one until the driver opens it, or dies at a chosen one: then every later call
 * of the container (store, sink, end offsets) throws, as the process is gone.
 *
 * @example
 * const store = new TickStore(shared);
 * store.crash = { partition: 0, at: 'mid-close', cut: 0.5, order: 1 };
 */
export class TickStore implements StateStore {
  readonly kind: string;
  readonly durable: boolean;
  crash: TickCrashPlan | undefined;
  /** The crash point that fired, if any. */
  fired: TickCrashPoint | undefined;
  pause: { readonly partition: number; readonly at: TickPoint; readonly gate: Hold } | undefined;
  /** Runs once a proposal of the given partition landed (a record may arrive then). */
  afterProposal: ((partition: number) => void) | undefined;
  readonly #phase = new Map<number, 'start' | 'read' | 'proposed' | 'confirmed' | 'close'>();

  constructor(readonly inner: StateStore) {
    this.kind = `tick(${inner.kind})`;
    this.durable = inner.durable;
  }

  get dead(): boolean {
    return this.fired !== undefined;
  }

  /** Throws if the process is gone. */
  alive(): void {
    if (this.dead) throw new InjectedCrash(`the tick's process died (${this.fired})`);
  }

  /** Fires the crash planned at `at` for this partition, if any. */
  crashAt(partition: number, at: TickCrashPoint): void {
    if (this.crash?.partition !== partition || this.crash.at !== at) return;
    this.fired = at;
    throw new InjectedCrash(`injected tick crash ${at} (partition ${partition})`);
  }

  async #stop(partition: number, at: TickPoint): Promise<void> {
    const pause = this.pause;
    if (pause?.partition === partition && pause.at === at) {
      this.pause = undefined;
      await pause.gate.pass();
    }
    this.alive();
  }

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>> {
    this.alive();
    const p = scope.partition;
    const phase = this.#phase.get(p) ?? 'start';
    if (phase === 'start') this.#phase.set(p, 'read');
    else if (phase === 'proposed' && namespace === IDLE_NS) {
      await this.#stop(p, 'before-recheck');
      this.crashAt(p, 'after-proposal');
    } else if (phase === 'read' || phase === 'confirmed') {
      this.#phase.set(p, 'close');
      await this.#stop(p, 'before-close');
      this.crashAt(p, 'after-confirm');
    }
    return this.inner.read(scope, namespace, keys, opts);
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    this.alive();
    const p = scope.partition;
    const idleOnly = changes.length === 1 && changes[0].namespace === IDLE_NS;
    if (idleOnly && (changes[0].value as IdleState | undefined)?.t !== undefined) {
      await this.#stop(p, 'before-proposal');
      if (this.crash?.partition === p && this.crash.at === 'in-proposal') {
        // The put reached the table or not: the process died around it.
        if (this.crash.cut < 0.5) await this.inner.write(scope, changes, bounds, opts);
        this.crashAt(p, 'in-proposal');
      }
      const stats = await this.inner.write(scope, changes, bounds, opts);
      this.#phase.set(p, 'proposed');
      this.afterProposal?.(p);
      return stats;
    }
    if (idleOnly && this.#phase.get(p) === 'proposed') {
      await this.#stop(p, 'before-confirm');
      const stats = await this.inner.write(scope, changes, bounds, opts);
      this.#phase.set(p, 'confirmed');
      return stats;
    }
    this.#phase.set(p, 'close');
    await this.#stop(p, 'before-commit');
    const plan = this.crash;
    if (plan?.partition === p && (plan.at === 'mid-close' || plan.at === 'after-outputs')) {
      const ordered = crashOrder(changes, plan.order);
      const k = plan.at === 'after-outputs' ? 0 : Math.min(ordered.length, Math.floor(plan.cut * (ordered.length + 1)));
      if (k > 0) await this.inner.write(scope, ordered.slice(0, k), bounds, opts).catch(() => undefined);
      this.crashAt(p, plan.at);
    }
    return this.inner.write(scope, changes, bounds, opts);
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    return this.inner.keys!(scope, namespace);
  }
}

// ---------- the driver ----------

/** What the tick driver injected and saw. */
export interface TickStats {
  invocations: number;
  /** Ticks run (the final quiet ones included). */
  ticks: number;
  /** Tick processes that died at an injected point, by point. */
  tickCrashes: number;
  tickCrashPoints: Record<TickCrashPoint, number>;
  /** Ticks stopped half-way while a later tick or a batch ran, then resumed with their old reads. */
  staleTicks: number;
  /** Ticks stopped at a store call while a batch of the same partition ran beside them (or the reverse). */
  races: number;
  /** Partitions a tick gave up on because a batch or another tick moved first ('raced'), or a record arrived ('moved'). */
  raced: number;
  moved: number;
  /** Records that arrived between a tick's proposal and its re-check of the end offset. */
  movingEnds: number;
  /** Window results ticks emitted and committed. */
  windowsClosedByTicks: number;
  /** Crashes injected inside the batches' state writes. */
  crashPoints: number;
  unexpectedErrors: string[];
}

function emptyTickStats(): TickStats {
  return {
    invocations: 0,
    ticks: 0,
    tickCrashes: 0,
    tickCrashPoints: Object.fromEntries(TICK_CRASHES.map((c) => [c, 0])) as Record<TickCrashPoint, number>,
    staleTicks: 0,
    races: 0,
    raced: 0,
    moved: 0,
    movingEnds: 0,
    windowsClosedByTicks: 0,
    crashPoints: 0,
    unexpectedErrors: [],
  };
}

/** What a run left: every message sent (duplicates included), and what is still open. */
export interface TickRun {
  readonly workload: string;
  readonly records: readonly TimedRecord[];
  readonly messages: readonly OutputMessage[];
  /** Record ids still held by window state after the final quiet ticks, and the items holding them. */
  readonly open: readonly string[];
  readonly openItems: number;
  readonly stats: TickStats;
}

/** A sink that hands over messages, failing when told to. */
class Outbox {
  readonly messages: OutputMessage[] = [];
  failNext: number | undefined;
  sinkFailures = 0;
  send = async (messages: readonly OutputMessage[]): Promise<void> => {
    const cut = this.failNext;
    this.failNext = undefined;
    if (cut === undefined) {
      this.messages.push(...messages);
      return;
    }
    this.messages.push(...messages.slice(0, Math.floor(cut * (messages.length + 1))));
    this.sinkFailures++;
    throw new Error('injected output failure: the producer lost its connection');
  };
}

/** Options of {@link runTicksWithFaults}. */
export interface TickFaultOptions {
  readonly maxBatch?: number;
  /** Chance of a tick after each step of the wall clock. */
  readonly tickChance?: number;
  readonly crashChance?: number;
}

/**
 * Runs one idle workload's traffic for a seed through the real handler with ticks interleaved
 * under faults (see the module comment), on `store`; then lets the wall clock run with no new
 * records and ticks until every window is closed.
 *
 * @example
 * const run = await runTicksWithFaults(tickWorkloads.idleCounts, 3, 'S3', new MemoryStore());
 */
export async function runTicksWithFaults(
  workload: TickWorkload,
  seed: number,
  suffix: string,
  store: StateStore,
  opts: TickFaultOptions = {},
): Promise<TickRun> {
  const definition = workload.define(suffix);
  const { manifest } = loadDefinition(definition);
  const topic = manifest.source.topic;
  const rng = new Rng(seed ^ 0x7ac1);
  const maxBatch = opts.maxBatch ?? 12;
  const tickChance = opts.tickChance ?? 0.6;
  const crashChance = opts.crashChance ?? 0.2;
  const stats = emptyTickStats();
  const unexpected = (where: string, e: unknown) => stats.unexpectedErrors.push(`${where}: ${(e as Error)?.stack ?? String(e)}`);

  const records = idleTraffic(seed);
  const logs = partitionLogs(records, topic);
  const arrivals = new Map<number, number[]>();
  for (const r of records) {
    let a = arrivals.get(r.partition ?? 0);
    if (!a) arrivals.set(r.partition ?? 0, (a = []));
    a.push(r.arrival);
  }
  const partitions = [...logs.keys()];
  const pos = new Map(partitions.map((p) => [p, 0]));
  const delivered = new Map(partitions.map((p) => [p, 0]));
  /** Records pulled forward: they reached the broker before their planned time. */
  const forced = new Map(partitions.map((p) => [p, 0]));
  let wall = SAMPLE_START;
  const clock = () => wall;
  const produced = (p: number) => {
    const times = arrivals.get(p)!;
    let n = 0;
    while (n < times.length && SAMPLE_START + times[n] <= wall) n++;
    return Math.max(n, forced.get(p)!);
  };
  /** The next record of the partition reaches the broker now. */
  const arrive = (p: number) => {
    const n = produced(p);
    if (n < logs.get(p)!.length) forced.set(p, n + 1);
  };
  const pending = (p: number) => produced(p) > pos.get(p)!;
  const offsets: EndOffsets = { endOffsets: async () => new Map(partitions.map((p) => [p, produced(p)])) };

  const outbox = new Outbox();
  const live = new FaultyStore(store, emptyStats());
  const handler = sluice(definition);
  handler.sluice.configure({ store: live, sink: outbox, deadLetters: { send: async () => undefined }, logger: silentLogger, clock });

  /** A live invocation of the chosen partitions (one, in a race), held at its first write with `hold`. */
  const startInvoke = (only?: number, hold?: Hold): Promise<void> | undefined => {
    const open = only === undefined ? partitions.filter(pending) : pending(only) ? [only] : [];
    if (open.length === 0) return undefined;
    const chosen = only === undefined ? open.filter(() => rng.chance(0.7)) : open;
    if (chosen.length === 0) chosen.push(rng.pick(open));
    const batches = new Map<number, KafkaEventRecord[]>();
    for (const p of chosen) {
      const at = pos.get(p)!;
      const batch = logs.get(p)!.slice(at, Math.min(produced(p), at + rng.int(1, maxBatch)));
      batches.set(p, batch);
      delivered.set(p, Math.max(delivered.get(p)!, at + batch.length));
      if (rng.chance(crashChance)) live.plans.set(p, { cut: rng.next(), order: rng.int(0, 2 ** 31), fatal: rng.chance(0.4) });
      if (rng.chance(0.05)) stepFaults.failing.add(`${p}:${rng.pick(batch).offset}`);
    }
    if (rng.chance(0.05)) outbox.failNext = rng.next();
    if (hold) live.hold = { on: 'write', gate: hold };
    stats.invocations++;
    const crashesBefore = live.stats.crashPoints;
    return handler(kafkaEvent(topic, batches), lambdaContext(workload.name) as never).then(
      (response) => settle(batches, response, undefined, crashesBefore),
      (threw: unknown) => settle(batches, undefined, threw, crashesBefore),
    );
  };

  const settle = (
    batches: Map<number, KafkaEventRecord[]>,
    response: KafkaBatchResponse | undefined,
    threw: unknown,
    crashesBefore: number,
  ) => {
    stats.crashPoints += live.stats.crashPoints - crashesBefore;
    live.plans.clear();
    live.hold = undefined;
    outbox.failNext = undefined;
    stepFaults.failing.clear();
    if (live.readRefused) unexpected('live invocation', new Error('a live batch was refused its state as stale'));
    live.readRefused = false;
    live.fenced = false;
    const fatal = live.crashedFatally;
    live.crashedFatally = false;
    if (threw !== undefined && !/^injected output failure/.test((threw as Error)?.message) && !(threw instanceof InjectedCrash))
      unexpected('live invocation', threw);
    if (fatal || threw !== undefined || !response) return;
    for (const [p, batch] of batches) {
      const failure = response.batchItemFailures.find((f) => f.itemIdentifier.partition === `${topic}-${p}`);
      const at = failure ? batch.findIndex((r) => r.offset === failure.itemIdentifier.offset) : batch.length;
      if (at > 0) pos.set(p, pos.get(p)! + at);
    }
  };

  /** A tick in a container of its own, at the current wall time unless stopped and resumed later. */
  const startTick = (setup: (s: TickStore) => void = () => undefined): Promise<TickReport | undefined> => {
    const tickStore = new TickStore(store);
    setup(tickStore);
    const container: SluiceHandler = sluice(definition);
    const plan = tickStore.crash;
    container.sluice.configure({
      store: tickStore,
      sink: {
        send: async (messages) => {
          tickStore.alive();
          if (plan?.at === 'while-sending' && tickStore.crash === plan) {
            outbox.messages.push(...messages.slice(0, Math.floor(plan.cut * (messages.length + 1))));
            tickStore.crashAt(plan.partition, 'while-sending');
          }
          outbox.messages.push(...messages);
        },
      },
      deadLetters: { send: async () => undefined },
      logger: silentLogger,
      clock,
    });
    const tickOffsets: EndOffsets = {
      endOffsets: async (t) => {
        tickStore.alive();
        return offsets.endOffsets(t);
      },
    };
    stats.ticks++;
    const now = wall;
    return container.sluice.tick({ now, offsets: tickOffsets }).then(
      (report) => {
        if (tickStore.fired) {
          stats.tickCrashes++;
          stats.tickCrashPoints[tickStore.fired]++;
        }
        for (const r of report.partitions) {
          if (r.decision.action === 'skip' && r.decision.reason === 'raced') stats.raced++;
          if (r.decision.action === 'skip' && r.decision.reason === 'moved') stats.moved++;
          if (r.error && !tickStore.dead && !/StateConflictError|changed since|stale|moved past|conflict/i.test(r.error))
            unexpected(`tick at ${now - SAMPLE_START} ms, partition ${r.partition}`, new Error(r.error));
        }
        if (!tickStore.dead) stats.windowsClosedByTicks += report.windowsClosed;
        return report;
      },
      (e: unknown) => {
        if (!tickStore.dead) unexpected('tick', e);
        else {
          stats.tickCrashes++;
          stats.tickCrashPoints[tickStore.fired!]++;
        }
        return undefined;
      },
    );
  };

  /** Runs `work` while a tick stands stopped at `at` of partition `p` (if it gets there), then lets it go. */
  const besideStoppedTick = async (p: number, at: TickPoint, work: () => Promise<void>, crash?: TickCrashPlan): Promise<boolean> => {
    const gate = new Hold();
    const done = startTick((s) => {
      s.pause = { partition: p, at, gate };
      s.crash = crash;
    });
    const stopped = await Promise.race([gate.arrived.then(() => true), done.then(() => false)]);
    if (stopped) await work();
    gate.open();
    await done;
    return stopped;
  };

  const runBatchOf = async (p: number) => {
    if (!pending(p)) arrive(p);
    await startInvoke(p);
  };

  const scheduledTick = async () => {
    // Faults aimed at a caught-up partition: the one a tick may find idle.
    const caughtUp = partitions.filter((q) => !pending(q));
    const p = rng.pick(caughtUp.length > 0 ? caughtUp : partitions);
    const at = rng.pick(TICK_POINTS);
    const kind = rng.next();
    if (kind < 0.35) {
      await startTick();
    } else if (kind < 0.6) {
      await startTick((s) => {
        s.crash = { partition: p, at: rng.pick(TICK_CRASHES), cut: rng.next(), order: rng.int(0, 2 ** 31) };
      });
    } else if (kind < 0.68) {
      // A record arrives just after the proposal: the re-check must see it.
      await startTick((s) => {
        s.afterProposal = (q) => {
          if (q !== p) return;
          stats.movingEnds++;
          arrive(p);
        };
      });
    } else if (kind < 0.85) {
      const mode = rng.pick(['batch-during', 'batch-held', 'tick-during-batch'] as const);
      stats.races++;
      if (mode === 'batch-during') await besideStoppedTick(p, at, () => runBatchOf(p));
      else if (mode === 'batch-held') {
        await besideStoppedTick(p, at, async () => {
          if (!pending(p)) arrive(p);
          const hold = new Hold();
          const batch = startInvoke(p, hold);
          if (!batch) return;
          // Lets the tick go on while the batch stands at its first write, then the batch.
          await Promise.race([hold.arrived, batch]);
          setTimeout(() => hold.open(), 0);
          await batch;
        });
      } else {
        if (!pending(p)) arrive(p);
        const hold = new Hold();
        const batch = startInvoke(p, hold);
        if (batch) await Promise.race([hold.arrived, batch]);
        await startTick();
        hold.open();
        await batch;
      }
    } else {
      const meanwhile = rng.pick(['tick', 'batch', 'both'] as const);
      const later = rng.int(500, 8_000);
      const stopped = await besideStoppedTick(p, at, async () => {
        wall += later;
        if (meanwhile !== 'batch') await startTick();
        if (meanwhile !== 'tick') await runBatchOf(p);
      });
      if (stopped) stats.staleTicks++;
      else wall += later;
    }
  };

  const total = records.length;
  const committed = () => [...pos.values()].reduce((a, b) => a + b, 0);
  let sinceProgress = 0;
  let progress = 0;
  const lastArrival = records.at(-1)?.arrival ?? 0;
  while (committed() < total) {
    if (sinceProgress > 300) {
      stats.unexpectedErrors.push(`stalled: no partition advanced in 300 steps (positions ${JSON.stringify([...pos])})`);
      break;
    }
    wall += rng.chance(0.25) ? rng.int(2_000, 7_000) : rng.int(150, 1_500);
    if (rng.chance(0.8)) await startInvoke();
    if (rng.chance(tickChance)) await scheduledTick();
    const now = committed();
    sinceProgress = now > progress || wall - SAMPLE_START < lastArrival ? 0 : sinceProgress + 1;
    progress = now;
  }

  // The end of the input: the partitions stay quiet, the schedule keeps ticking.
  for (let i = 0, idle = 0; i < 10 && idle < 2; i++) {
    wall += workload.settleMs + 5_000;
    const report = await startTick();
    idle = report && report.windowsClosed === 0 ? idle + 1 : 0;
  }

  const state = await readState(store, manifest, topic, partitions);
  const open: string[] = [];
  let openItems = 0;
  for (const [table, items] of Object.entries(state)) {
    if (table.endsWith('#partition')) continue;
    for (const value of Object.values(items)) {
      const before = open.length;
      collectIds(value, open);
      if (open.length > before) openItems++;
    }
  }
  return { workload: workload.name, records, messages: outbox.messages, open, openItems, stats };
}

/** Record ids (strings starting 'rec/') anywhere in a stored value. */
function collectIds(value: unknown, out: string[]): void {
  if (typeof value === 'string') {
    if (value.startsWith('rec/')) out.push(value);
  } else if (Array.isArray(value)) for (const v of value) collectIds(v, out);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collectIds(v, out);
}

// ---------- checks ----------

/** What must hold whatever the timing of the ticks; every figure but `results` and `late` must be 0. */
export interface TickVerdict {
  /** Records in no outcome: no window result, no late report, no open window. */
  lost: number;
  /** Records in more than one outcome (two distinct results, or a result and a late report), plus results whose aggregates disagree with the records they name. */
  appliedTwice: number;
  /** Result ids emitted with more than one value. */
  conflictingValues: number;
  /** Window items still holding records after the final quiet ticks. */
  unclosed: number;
  results: number;
  late: number;
  examples: string[];
}

/**
 * Judges a run of {@link runTicksWithFaults} on what must hold whatever the ticks' timing.
 *
 * @example
 * const { lost, appliedTwice, conflictingValues, unclosed } = judgeTicks(run); // all 0
 */
export function judgeTicks(run: TickRun): TickVerdict {
  const examples: string[] = [];
  const note = (s: string) => {
    if (examples.length < 10) examples.push(`${run.workload}: ${s}`);
  };
  const first = new Map<string, OutputMessage>();
  const conflicting = new Set<string>();
  for (const m of run.messages) {
    const seen = first.get(m.id);
    if (!seen) first.set(m.id, m);
    else if (!isDeepStrictEqual(seen.value, m.value) && !conflicting.has(m.id)) {
      conflicting.add(m.id);
      note(`${m.id} emitted as ${JSON.stringify(seen.value)} and as ${JSON.stringify(m.value)}`);
    }
  }
  const values = new Map(run.records.map((r) => [(r.value as Tagged).id, (r.value as Tagged).v]));
  const outcomes = new Map<string, string[]>();
  const add = (rid: string, where: string) => {
    const list = outcomes.get(rid);
    if (list) list.push(where);
    else outcomes.set(rid, [where]);
  };
  let inconsistent = 0;
  let results = 0;
  let late = 0;
  for (const [id, m] of first) {
    if (m.topic === LATE_TOPIC) {
      late++;
      add((m.value as Tagged).id, id);
      continue;
    }
    results++;
    const r = m.value as { n: number; v: number; ids: string[] };
    for (const rid of r.ids) add(rid, id);
    const v = r.ids.reduce((s, rid) => s + (values.get(rid) ?? Number.NaN), 0);
    if (r.n !== r.ids.length || r.v !== v || !id.includes(String(m.key))) {
      inconsistent++;
      note(`${id} holds ${JSON.stringify(r)}, its records sum to ${v}`);
    }
  }
  for (const rid of run.open) add(rid, 'open');
  let lost = 0;
  let twice = 0;
  for (const rid of values.keys()) {
    const where = outcomes.get(rid) ?? [];
    if (where.length === 0) {
      lost++;
      note(`lost: ${rid}`);
    } else if (where.length > 1) {
      twice++;
      note(`${rid} is in ${where.join(' and ')}`);
    }
  }
  if (run.openItems > 0) note(`${run.openItems} window item(s) still open after the final quiet ticks: ${run.open.slice(0, 5).join(', ')}`);
  return {
    lost,
    appliedTwice: twice + inconsistent,
    conflictingValues: conflicting.size,
    unclosed: run.openItems,
    results,
    late,
    examples,
  };
}

// ---------- the suite ----------

/** The tick figures of `npm run test:faults -- --json`. */
export interface TickTotals {
  ticks: number;
  tickCrashes: number;
  staleTicks: number;
  raced: number;
  windowsClosedByTicks: number;
  conflictingValues: number;
}

/** One store's tick scenarios, summed. */
export interface TickSuiteResult extends TickTotals {
  store: string;
  scenarios: number;
  invocations: number;
  races: number;
  moved: number;
  movingEnds: number;
  crashPoints: number;
  tickCrashPoints: Record<TickCrashPoint, number>;
  lost: number;
  appliedTwice: number;
  unclosed: number;
  results: number;
  late: number;
  unexpectedErrors: string[];
  failures: { workload: string; seed: number; examples: string[] }[];
  ms: number;
}

/** Options of {@link runTickSuite}. */
export interface TickSuiteOptions {
  readonly label: string;
  readonly seed: number;
  /** Stop starting scenarios after this time (epoch ms); at least one round runs. */
  readonly deadline: number;
  readonly store: () => StateStore;
  readonly workloads?: readonly TickWorkload[];
  readonly onProgress?: (line: string) => void;
}

/**
 * Runs the idle workloads in rounds, a seed each, until the deadline (one round at least), and
 * sums up what was injected and what the checks found.
 *
 * @example
 * const r = await runTickSuite({ label: 'memory', seed: 1, deadline: Date.now() + 10_000, store: () => new MemoryStore() });
 */
export async function runTickSuite(opts: TickSuiteOptions): Promise<TickSuiteResult> {
  const started = Date.now();
  const list = opts.workloads ?? Object.values(tickWorkloads);
  const r: TickSuiteResult = {
    store: opts.label,
    scenarios: 0,
    invocations: 0,
    ticks: 0,
    tickCrashes: 0,
    staleTicks: 0,
    raced: 0,
    windowsClosedByTicks: 0,
    conflictingValues: 0,
    races: 0,
    moved: 0,
    movingEnds: 0,
    crashPoints: 0,
    tickCrashPoints: Object.fromEntries(TICK_CRASHES.map((c) => [c, 0])) as Record<TickCrashPoint, number>,
    lost: 0,
    appliedTwice: 0,
    unclosed: 0,
    results: 0,
    late: 0,
    unexpectedErrors: [],
    failures: [],
    ms: 0,
  };
  for (let round = 0; round === 0 || Date.now() < opts.deadline; round++) {
    for (const workload of list) {
      if (round > 0 && Date.now() >= opts.deadline) break;
      const seed = opts.seed * 1_000 + round;
      const run = await runTicksWithFaults(workload, seed, `S${opts.seed}R${round}`, opts.store());
      const v = judgeTicks(run);
      const s = run.stats;
      r.scenarios++;
      for (const k of [
        'invocations',
        'ticks',
        'tickCrashes',
        'staleTicks',
        'raced',
        'windowsClosedByTicks',
        'races',
        'moved',
        'movingEnds',
        'crashPoints',
      ] as const)
        r[k] += s[k];
      for (const c of TICK_CRASHES) r.tickCrashPoints[c] += s.tickCrashPoints[c];
      for (const k of ['lost', 'appliedTwice', 'conflictingValues', 'unclosed', 'results', 'late'] as const) r[k] += v[k];
      r.unexpectedErrors.push(...s.unexpectedErrors.map((e) => `${workload.name} seed ${seed}: ${e}`));
      if (v.lost + v.appliedTwice + v.conflictingValues + v.unclosed > 0)
        r.failures.push({ workload: workload.name, seed, examples: v.examples });
      opts.onProgress?.(
        `[${opts.label}] ${workload.name} seed ${seed}: ${s.invocations} invocations, ${s.ticks} ticks (${s.tickCrashes} crashed, ${s.staleTicks} stale, ${s.races} races, ${s.raced} raced, ${s.moved} moved), ${s.windowsClosedByTicks} windows closed by ticks` +
          ` | lost ${v.lost}, appliedTwice ${v.appliedTwice}, conflicting ${v.conflictingValues}, unclosed ${v.unclosed}`,
      );
    }
  }
  r.ms = Date.now() - started;
  return r;
}
