/**
 * The exactly-once variant of the fault suite (issue 14): outputs through real Kafka transactions
 * on the local broker, read back with a `read_committed` consumer and compared with the
 * fault-free reference.
 *
 * Each simulated Lambda container is a handler of its own (`sluice(def)`, the workload's
 * definition with `guarantee: 'exactly-once'` and output topics renamed to this run's fresh ones)
 * with its own {@link KafkaTransactions} (its own transactional producers) on one shared state
 * store. A retry usually goes to a new container, sometimes to the same one. Faults, drawn from a
 * seeded generator:
 * - crashes at the points of the exactly-once order: before the transaction's send, after it
 *   (before the state commit), in the middle of the state write (some items land), after the state
 *   commit (before the transaction commit), after the transaction commit (before the invocation
 *   returns), and a lost response (the invocation returned, Lambda never heard). A crashed
 *   container is gone: everything it would still do throws, and it never aborts its open
 *   transaction (the next claim of the id does);
 * - whole retries (the same event again) and re-batched retries (new random batch sizes from the
 *   failed offset);
 * - stale invocations: a zombie container begins a batch (it claims the partition's id) and stops
 *   after its claim, after its send or after its state commit; the retry claims the id in another
 *   container and goes on; then the zombie resumes and must be fenced: it never commits;
 * - with idle windows ({@link runEosTicks}): ticks in containers of their own, crashing around
 *   their transaction commit and their state commit, on a simulated wall clock.
 *
 * With `guarantee: 'at-least-once'` the same driver sends through a plain producer instead (the
 * comparison: retries publish outputs again, so `duplicates` > 0).
 *
 * @example
 * const r = await runEosSuite({ seed: 1, crashes: 20, deadline: Date.now() + 60_000 });
 * r.duplicates; // 0
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Admin, Kafka, Producer } from 'kafkajs';
import { type Definition, type SluiceHandler, sluice } from 'sluice';
import {
  type BatchBounds,
  type ItemChange,
  MemoryStore,
  type StateScope,
  type StateStore,
  type StoredItem,
  type WriteStats,
} from 'sluice/state';
import { type DeadLetter, type KafkaEventRecord, loadDefinition } from 'sluice/runtime';
import { type EndOffsets, type InputRecord, lambdaContext } from 'sluice/testing';
import type { Guarantee } from '../../framework/src/define/guarantee.js';
import { errorText } from '../../framework/src/errors.js';
import type { OutputStep } from '../../framework/src/define/manifest.js';
import { Stream } from '../../framework/src/define/stream.js';
import { KafkaOutputSink } from '../../framework/src/io/kafka.js';
import { KafkaTransactions } from '../../framework/src/io/kafka-transactions.js';
import { type OutputTransaction, type OutputTransactions, type Published, publishedGroup } from '../../framework/src/io/transactions.js';
import type { StoreCallOptions } from '../../framework/src/state/store.js';
import { brokers, freshTopics, kafkaClient } from '../support/kafka.js';
import {
  crashOrder,
  Hold,
  kafkaEvent,
  partitionLogs,
  Rng,
  runReference,
  SAMPLE_START,
  silentLogger,
  type Workload,
  workloads,
} from './harness.js';
import { idleTraffic, type TimedRecord, tickWorkloads } from './ticks.js';

// ---------- faults ----------

/** Where a container dies. */
export type EosCrashPoint = 'before-send' | 'after-send' | 'mid-state' | 'after-state' | 'after-commit' | 'lost-response';
/** Where a zombie stops until its retry ran elsewhere. */
export type StalePoint = 'after-begin' | 'after-send' | 'after-state';

/** Every crash point: a run that never hit one of them did not test it. */
export const EOS_CRASH_POINTS: readonly EosCrashPoint[] = [
  'before-send',
  'after-send',
  'mid-state',
  'after-state',
  'after-commit',
  'lost-response',
];
const STALE_POINTS: readonly StalePoint[] = ['after-begin', 'after-send', 'after-state'];

/** A crash plan's partition: whichever partition of the invocation or tick gets to the point first. */
const ANY = -1;

/** What a crashed container's calls throw: nothing after the crash happens. */
class Crash extends Error {
  override readonly name = 'Crash';
}

interface Plan {
  /** The partition whose work dies; `ANY`: the first to get there. */
  readonly partition: number;
  readonly point: EosCrashPoint;
  /** For `mid-state`: the share of items that land, and their order. */
  readonly cut: number;
  readonly order: number;
}

/**
 * One simulated Lambda container: a handler of its own, its own transactional producers, and the
 * shared store seen through it. It dies at its crash plan's point (every later call throws) or
 * stops at its hold until the driver lets it go on.
 */
class Container {
  readonly handler: SluiceHandler;
  static next = 0;
  readonly id = Container.next++;
  readonly transactions: KafkaTransactions | undefined;
  dead = false;
  plan: Plan | undefined;
  fired: EosCrashPoint | undefined;
  hold: { readonly partition: number; readonly point: StalePoint; readonly gate: Hold } | undefined;
  /** Partitions whose outputs this container sent (`all`: at least once, one send for all): their state commit follows. */
  readonly sent = new Set<number | 'all'>();
  /** Transactions this container committed, by partition, after its hold was let go. */
  commitsAfterHold = 0;
  released = false;

  constructor(
    definition: Definition,
    readonly guarantee: Guarantee,
    store: StateStore,
    kafka: Kafka,
    functionName: string,
    readonly world: World,
    plainProducer: Producer | undefined,
  ) {
    this.handler = sluice(definition);
    if (this.handler.sluice.guarantee !== guarantee)
      throw new Error(`the handler runs ${this.handler.sluice.guarantee}, not ${guarantee}: is SLUICE_GUARANTEE set?`);
    const { manifest } = this.handler.sluice;
    const logLetters = { send: async (letters: readonly DeadLetter[]) => void world.lettersLogged.push(...letters) };
    this.transactions =
      guarantee === 'exactly-once'
        ? new KafkaTransactions({
            kafka: async () => kafka,
            manifest,
            functionName,
            deadLetterTopic: world.deadLetterTopic,
            logLetters,
            // A crashed container's transaction stays open until the next claim; a bound for any left over.
            transactionTimeoutMs: 20_000,
          })
        : undefined;
    const sink = plainProducer ? new KafkaOutputSink(plainProducer, manifest) : undefined;
    this.handler.sluice.configure({
      store: new ContainerStore(store, this),
      ...(this.transactions ? { transactions: new ContainerTransactions(this.transactions, this) } : {}),
      sink: {
        send: async (messages) => {
          // At least once: one send for every partition of the invocation, before any state commit.
          await this.at(undefined, 'before-send');
          await sink!.send(messages);
          this.sent.add('all');
          await this.at(undefined, 'after-send');
        },
      },
      deadLetters: {
        send: async (letters) => {
          this.alive();
          world.lettersLogged.push(...letters);
        },
      },
      logger: silentLogger,
      clock: () => world.wall,
      onBatch: (report) => {
        if (this.dead || this.hold || this.released) return;
        for (const f of report.failed) {
          const why = `${f.stage}: ${errorText(f.error).slice(0, 90)}`;
          world.failures.set(why, (world.failures.get(why) ?? 0) + 1);
        }
      },
    });
  }

  alive(): void {
    if (this.dead) throw new Crash(`the container died (${this.fired})`);
  }

  /** The point `at` of a partition's work (any partition's, for `undefined`): stop, die, or go on. */
  async at(partition: number | undefined, point: EosCrashPoint | StalePoint): Promise<void> {
    this.alive();
    const hold = this.hold;
    if (hold && hold.point === point && (partition === undefined || hold.partition === partition)) {
      this.hold = undefined;
      await hold.gate.pass();
      this.released = true;
      this.alive();
    }
    const plan = this.plan;
    if (plan && plan.point === point && (partition === undefined || plan.partition === partition || plan.partition === ANY))
      this.die(point);
  }

  die(point: EosCrashPoint): never {
    this.plan = undefined;
    this.fired = point;
    this.dead = true;
    throw new Crash(`injected crash ${point}`);
  }

  async close(): Promise<void> {
    await this.transactions?.close();
  }
}

/** The shared store as one container sees it: its calls die with it. */
class ContainerStore implements StateStore {
  readonly kind: string;
  readonly durable: boolean;
  constructor(
    readonly inner: StateStore,
    readonly container: Container,
  ) {
    this.kind = `container(${inner.kind})`;
    this.durable = inner.durable;
  }

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>> {
    this.container.alive();
    return this.inner.read(scope, namespace, keys, opts);
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    const c = this.container;
    c.alive();
    // The state commit of a partition's outputs, which a batch runs beside its send (a tick's
    // proposals and a finished tick's state come before any send).
    const commit = c.sent.has(scope.partition) || c.sent.has('all');
    const plan = c.plan;
    if (commit && plan?.point === 'mid-state' && (plan.partition === scope.partition || plan.partition === ANY)) {
      // Some items land (none, or all, as likely as any share), then the process is gone.
      const ordered = crashOrder(changes, plan.order);
      const k = Math.min(ordered.length, Math.floor(plan.cut * (ordered.length + 1)));
      if (k > 0) await this.inner.write(scope, ordered.slice(0, k), bounds, opts).catch(() => undefined);
      c.die('mid-state');
    }
    const stats = await this.inner.write(scope, changes, bounds, opts);
    if (commit) await c.at(scope.partition, 'after-state');
    else c.alive();
    return stats;
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    return this.inner.keys!(scope, namespace);
  }
}

/** A container's transactions: its calls stop or die at the plan's points, and a dead one aborts nothing. */
class ContainerTransactions implements OutputTransactions {
  constructor(
    readonly inner: OutputTransactions,
    readonly container: Container,
  ) {}

  async begin(topic: string, partition: number): Promise<OutputTransaction> {
    const c = this.container;
    c.alive();
    const txn = await this.inner.begin(topic, partition);
    const wrapped: OutputTransaction = {
      get published(): Published {
        return txn.published;
      },
      send: async (messages, letters, functionName) => {
        // From here the partition's state write is its commit: a batch sends while its state commits.
        c.sent.add(partition);
        c.world.trace?.(`  c${c.id} send p${partition} ${messages.map((m) => m.id).join(' ')}`);
        await c.at(partition, 'before-send');
        await txn.send(messages, letters, functionName);
        await c.at(partition, 'after-send');
      },
      commit: async (to) => {
        c.alive();
        await txn.commit(to);
        c.world.trace?.(`  c${c.id} commit p${partition} published ${JSON.stringify(txn.published)} -> ${JSON.stringify(to)}`);
        c.world.commits.set(partition, (c.world.commits.get(partition) ?? 0) + 1);
        if (c.released) c.commitsAfterHold++;
        await c.at(partition, 'after-commit');
      },
      abort: async () => {
        // A dead process aborts nothing: the next claim of the id does.
        if (!c.dead) await txn.abort();
      },
    };
    try {
      await c.at(partition, 'after-begin');
    } catch (e) {
      if (!c.dead) await txn.abort();
      throw e;
    }
    return wrapped;
  }

  async published(topic: string, partition: number): Promise<Published> {
    this.container.alive();
    return this.inner.published(topic, partition);
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}

/** What the containers of one scenario share besides the store. */
interface World {
  /**
   * Transactions committed per source partition. A zombie is let go once another container
   * committed one after its claim: that container claimed the id after the zombie (a producer
   * older than the zombie's is fenced and cannot commit), so from then on the zombie must be fenced.
   */
  readonly commits: Map<number, number>;
  /** Why partitions failed without a crash (error text, by count). */
  readonly failures: Map<string, number>;
  readonly deadLetterTopic: string;
  /** Dead letters that went to a log instead of the topic (must stay empty: the topic is set). */
  readonly lettersLogged: DeadLetter[];
  /** The simulated wall clock (ticks). */
  wall: number;
  /** Every invocation, commit and zombie, for reproducing a failure. */
  readonly trace: ((line: string) => void) | undefined;
}

// ---------- definitions on fresh topics ----------

/**
 * A stream definition with its output and late topics renamed and its guarantee set: the same
 * function (name, steps, so the same `sluice-id`s) writing to this run's fresh topics.
 */
function onFreshTopics(def: Definition, guarantee: Guarantee, rename: (topic: string) => string, source?: string): Definition {
  if (!(def instanceof Stream)) throw new Error('the exactly-once fault suite runs stream definitions');
  const steps = def.steps.map((s) => (s.kind === 'to' ? ({ ...s, topic: rename((s as OutputStep).topic) } as typeof s) : s));
  const spec = { ...def.source, guarantee, ...(source ? { topic: source } : {}) };
  return new Stream(def.name, spec, steps, def.state, def.lateTopic ? rename(def.lateTopic) : undefined);
}

/** The topics a definition writes (outputs and late records). */
function topicsOf(def: Definition): string[] {
  const { manifest } = loadDefinition(def);
  const out = manifest.steps.filter((s) => s.kind === 'to').map((s) => (s as OutputStep).topic);
  if (manifest.lateTopic) out.push(manifest.lateTopic);
  return [...new Set(out)];
}

// ---------- the driver ----------

/** Counters of one run (or a suite). */
export interface EosStats {
  scenarios: number;
  invocations: number;
  crashes: number;
  crashPoints: Record<EosCrashPoint, number>;
  /** Invocations that delivered again an offset delivered before: the same event again, or re-batched. */
  retries: number;
  wholeRetries: number;
  rebatchedRetries: number;
  /** Invocations that went to the container of the one before (a warm retry). */
  warmRetries: number;
  staleInvocations: number;
  stalePoints: Record<StalePoint, number>;
  /** Zombies that failed (fenced: their send, state or commit refused) rather than finishing. */
  staleFenced: number;
  /** Transactions a zombie committed after its retry claimed the id (must be 0). */
  staleCommits: number;
  /** Partitions that failed without a crash (a fenced producer, a conflict): retried. */
  partitionFailures: number;
  /** Their reasons (stage and error text), by count. */
  failureReasons: Record<string, number>;
  ticks: number;
  tickCrashes: number;
  /** Tick crashes by point (around the tick's send, its transaction commit, its state commit). */
  tickCrashPoints: Partial<Record<EosCrashPoint, number>>;
  windowsClosedByTicks: number;
  unexpectedErrors: string[];
}

function emptyEosStats(): EosStats {
  return {
    scenarios: 0,
    invocations: 0,
    crashes: 0,
    crashPoints: Object.fromEntries(EOS_CRASH_POINTS.map((p) => [p, 0])) as Record<EosCrashPoint, number>,
    retries: 0,
    wholeRetries: 0,
    rebatchedRetries: 0,
    warmRetries: 0,
    staleInvocations: 0,
    stalePoints: Object.fromEntries(STALE_POINTS.map((p) => [p, 0])) as Record<StalePoint, number>,
    staleFenced: 0,
    staleCommits: 0,
    partitionFailures: 0,
    failureReasons: {},
    ticks: 0,
    tickCrashes: 0,
    tickCrashPoints: {},
    windowsClosedByTicks: 0,
    unexpectedErrors: [],
  };
}

/** What a scenario expects on its topics: the reference's messages by id. */
interface Expectation {
  readonly label: string;
  readonly topics: readonly string[];
  /** By id: the reference's key and value (JSON, as read back). */
  readonly expected: Map<string, { key: string | null; value: unknown }>;
  /** For the tick scenarios: the input record ids every result names (each must be in one result). */
  readonly recordIds?: readonly string[];
}

/** Options of {@link runEosSuite}. */
export interface EosSuiteOptions {
  readonly seed: number;
  /** Crashes to inject in all (the suite stops starting scenarios once reached, or at the deadline). */
  readonly crashes: number;
  readonly deadline: number;
  /** `at-least-once`: the comparison run, through a plain producer. */
  readonly guarantee?: Guarantee;
  readonly store?: () => StateStore;
  readonly workloads?: readonly Workload[];
  /** Run the idle-tick scenario too (default true). */
  readonly ticks?: boolean;
  readonly crashChance?: number;
  readonly staleChance?: number;
  readonly maxBatch?: number;
  /** How long each reader waits for the expected outputs (ms). */
  readonly readTimeoutMs?: number;
  /**
   * Which read_committed consumer the verdict trusts: Kafka's Java client (the default, when Java
   * and the local broker's jars are there) or kafkajs. kafkajs 2.2.4 lets through messages of an
   * aborted transaction when aborted transactions of two producers overlap on a partition (it
   * expects the broker's list of aborted transactions in order of their first offsets; the broker
   * lists them in order of their abort markers): its figures are reported beside, as
   * `kafkajsDuplicates` and `kafkajsAbortedSeen`.
   */
  readonly reader?: 'java' | 'kafkajs';
  readonly onProgress?: (line: string) => void;
  /** Every invocation (container, batches, crash plan, response), commit and zombie: a failure's sequence of events. */
  readonly trace?: (line: string) => void;
}

/** The figures of one suite run; `duplicates`, `missing` and `wrongValues` must be 0 exactly once. */
export interface EosSuiteResult extends EosStats {
  readonly guarantee: Guarantee;
  /** The read_committed consumer the figures come from. */
  readonly reader: 'java' | 'kafkajs';
  /** Duplicates a kafkajs read_committed consumer saw (aborted messages it let through included). */
  kafkajsDuplicates: number;
  /** Messages the kafkajs reader returned beyond the verdict's reader (from aborted transactions). */
  kafkajsAbortedSeen: number;
  outputsExpected: number;
  outputsSeen: number;
  /** Ids seen more than once, and how many messages beyond the first they had. */
  duplicates: number;
  duplicateMessages: number;
  /** Expected ids never seen. */
  missing: number;
  /** Messages whose id the reference has with another key or value, or does not have. */
  wrongValues: number;
  /** Tick scenarios: input records in no published result, or in two. */
  recordsUnpublished: number;
  recordsTwice: number;
  examples: string[];
  ms: number;
}

/**
 * Two runs' figures as one (the variant on each store): counts and counts by kind add up, lists join.
 *
 * @example
 * const both = mergeEosResults(memoryRun, dynamodbRun);
 */
export function mergeEosResults(a: EosSuiteResult, b: EosSuiteResult): EosSuiteResult {
  const out = { ...a } as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(b)) {
    const mine = out[k];
    if (typeof v === 'number' && typeof mine === 'number') out[k] = mine + v;
    else if (Array.isArray(v) && Array.isArray(mine)) out[k] = [...mine, ...v];
    else if (v && typeof v === 'object' && mine && typeof mine === 'object') {
      const sum: Record<string, number> = { ...(mine as Record<string, number>) };
      for (const [kk, n] of Object.entries(v as Record<string, number>)) sum[kk] = (sum[kk] ?? 0) + n;
      out[k] = sum;
    } else if (mine !== v) out[k] = `${mine}+${v}`;
  }
  return out as unknown as EosSuiteResult;
}

/** The harness workloads the variant runs (stream definitions; keyed state, windows by partition, sessions). */
export const EOS_WORKLOADS: readonly Workload[] = [
  workloads.runningTotals,
  workloads.partitionSums,
  workloads.partitionSessions,
  workloads.sessions,
];

/**
 * Runs the exactly-once variant: scenarios (a workload and a seed, on fresh topics) until the
 * crashes are injected or the deadline passes, then reads every output topic back with a
 * `read_committed` consumer and compares with the references. Needs the broker.
 *
 * @example
 * const r = await runEosSuite({ seed: 1, crashes: 80, deadline: Date.now() + 120_000 });
 */
export async function runEosSuite(opts: EosSuiteOptions): Promise<EosSuiteResult> {
  const started = Date.now();
  const guarantee = opts.guarantee ?? 'exactly-once';
  const stats = emptyEosStats();
  const kafka = kafkaClient('sluice-faults-eos');
  const admin = kafka.admin();
  await admin.connect();
  const run = `sluice-eos-${process.pid}-${Date.now().toString(36)}`;
  const topics: string[] = [];
  const groups: string[] = [];
  const expectations: Expectation[] = [];
  const plain = guarantee === 'at-least-once' ? kafka.producer({ idempotent: true, maxInFlightRequests: 1 }) : undefined;
  await plain?.connect();
  const chosen = opts.workloads ?? EOS_WORKLOADS;
  try {
    for (let round = 0; ; round++) {
      const list = [...chosen.map((w) => ({ batch: w })), ...(opts.ticks === false ? [] : [{ ticks: true as const }])];
      let ran = false;
      for (const item of list) {
        if (Date.now() >= opts.deadline || (stats.crashes >= opts.crashes && stats.scenarios >= list.length)) break;
        const seed = opts.seed * 1_000 + round;
        const label = `${'batch' in item ? item.batch!.name : 'ticks'}-s${seed}`;
        const prefix = `${run}-${label}`;
        const functionName = prefix;
        groups.push(publishedGroup(functionName));
        const scenario = { admin, kafka, prefix, functionName, topics, seed, guarantee, stats, opts, plain };
        const exp = 'batch' in item ? await batchScenario(item.batch!, scenario) : await tickScenario(scenario);
        expectations.push({ ...exp, label });
        stats.scenarios++;
        ran = true;
        opts.onProgress?.(
          `test:faults: eos ${guarantee}: ${label}: ${stats.invocations} invocations, ${stats.crashes} crashes, ${stats.staleInvocations} stale, ${((Date.now() - started) / 1000).toFixed(1)} s`,
        );
      }
      if (!ran || Date.now() >= opts.deadline || stats.crashes >= opts.crashes) break;
    }
    const timeoutMs = opts.readTimeoutMs ?? 30_000;
    const topicsRead = [...new Set(expectations.flatMap((e) => e.topics))];
    const kafkajs = await readWithKafkajs(kafka, expectations, timeoutMs);
    const java = opts.reader === 'kafkajs' ? undefined : await readWithJava(topicsRead, timeoutMs);
    if (!java) opts.onProgress?.('test:faults: eos: no Java or no Kafka jars for the reference reader; judging by the kafkajs reader');
    const verdict = judge(expectations, java ?? kafkajs);
    const kafkajsVerdict = judge(expectations, kafkajs);
    return {
      ...stats,
      guarantee,
      reader: java ? 'java' : 'kafkajs',
      ...verdict,
      kafkajsDuplicates: kafkajsVerdict.duplicates,
      kafkajsAbortedSeen: kafkajs.length - (java ?? kafkajs).length,
      ms: Date.now() - started,
    };
  } finally {
    await plain?.disconnect().catch(() => undefined);
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10_000 }).catch(() => undefined);
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    await admin.disconnect();
  }
}

interface Scenario {
  readonly admin: Admin;
  readonly kafka: Kafka;
  readonly prefix: string;
  readonly functionName: string;
  readonly topics: string[];
  readonly seed: number;
  readonly guarantee: Guarantee;
  readonly stats: EosStats;
  readonly opts: EosSuiteOptions;
  readonly plain: Producer | undefined;
}

/** Creates the scenario's fresh topics: its source (the published group commits offsets of it), outputs and dead letters. */
async function createTopics(s: Scenario, source: string, outputs: readonly string[], partitions: number): Promise<string> {
  const deadLetterTopic = `${s.prefix}-dlq`;
  const all = [source, ...outputs, deadLetterTopic];
  s.topics.push(...all);
  await freshTopics(
    s.admin,
    all.map((topic) => ({ topic, numPartitions: topic === source ? partitions : 2 })),
  );
  return deadLetterTopic;
}

/** What a driver needs to run invocations in containers. */
class Containers {
  warm: Container | undefined;
  readonly all: Container[] = [];
  constructor(
    readonly s: Scenario,
    readonly definition: Definition,
    readonly store: StateStore,
    readonly world: World,
  ) {}

  fresh(): Container {
    const c = new Container(this.definition, this.s.guarantee, this.store, this.s.kafka, this.s.functionName, this.world, this.s.plain);
    this.all.push(c);
    return c;
  }

  /** The container for the next invocation: the warm one, or (always after a crash, usually on a retry) a new one. */
  async pick(rng: Rng, retry: boolean): Promise<Container> {
    const w = this.warm;
    if (w && !w.dead && (!retry || rng.chance(0.3))) {
      if (retry) this.s.stats.warmRetries++;
      return w;
    }
    if (w && !w.dead) await w.close();
    this.warm = this.fresh();
    return this.warm;
  }

  async closeAll(): Promise<void> {
    for (const c of this.all) await c.close().catch(() => undefined);
  }
}

/**
 * Seeded draws from a shuffled deck, so that a few dozen draws hit every point; a point drawn
 * but not reached (no state written after the send, say) goes back on top.
 */
class Deck<T> {
  #cards: T[] = [];
  constructor(
    readonly rng: Rng,
    readonly all: readonly T[],
  ) {}
  draw(): T {
    if (this.#cards.length === 0) this.#cards = this.rng.shuffle([...this.all]);
    return this.#cards.pop()!;
  }
  putBack(card: T): void {
    this.#cards.push(card);
  }
}

/** Draws a crash plan for an invocation of these partitions. */
function drawPlan(rng: Rng, s: Scenario, deck: Deck<EosCrashPoint>, partitions: readonly number[]): Plan | undefined {
  if (s.stats.crashes >= s.opts.crashes * 2 || !rng.chance(s.opts.crashChance ?? 0.25)) return undefined;
  return { partition: rng.pick(partitions), point: deck.draw(), cut: rng.next(), order: rng.int(0, 2 ** 31) };
}

/**
 * Delivers one source topic's partition logs as Lambda would, under faults: each invocation in a
 * container (see {@link Containers.pick}), retried whole or re-batched after a crash, with zombies.
 */
class Driver {
  readonly pos: Map<number, number>;
  readonly delivered: Map<number, number>;
  readonly partitions: number[];
  failedEvent: Map<number, KafkaEventRecord[]> | undefined;
  readonly crashDeck: Deck<EosCrashPoint>;
  readonly staleDeck: Deck<StalePoint>;
  stale: { container: Container; partition: number; gate: Hold; done: Promise<void>; commits: number; wait: number } | undefined;

  constructor(
    readonly s: Scenario,
    readonly name: string,
    readonly source: string,
    readonly logs: Map<number, KafkaEventRecord[]>,
    readonly containers: Containers,
    readonly rng: Rng,
  ) {
    this.partitions = [...logs.keys()];
    this.crashDeck = new Deck(rng, EOS_CRASH_POINTS);
    this.staleDeck = new Deck(rng, STALE_POINTS);
    this.pos = new Map(this.partitions.map((p) => [p, 0]));
    this.delivered = new Map(this.partitions.map((p) => [p, 0]));
  }

  unexpected(where: string, e: unknown): void {
    this.s.stats.unexpectedErrors.push(`${this.name}: ${where}: ${(e as Error)?.stack ?? String(e)}`);
  }

  /** Records committed, over every partition. */
  get committed(): number {
    return [...this.pos.values()].reduce((a, b) => a + b, 0);
  }

  /** Partitions with records up to `end(p)` not yet committed. */
  pending(end: (p: number) => number): number[] {
    return this.partitions.filter((p) => this.pos.get(p)! < end(p));
  }

  /** A zombie: a container begins a batch of a pending partition and stops at a chosen point. */
  async startStale(end: (p: number) => number): Promise<void> {
    const { rng, s } = this;
    const open = this.pending(end);
    if (open.length === 0) return;
    const p = rng.pick(open);
    const at = this.pos.get(p)!;
    const batch = this.logs.get(p)!.slice(at, Math.min(end(p), at + rng.int(1, s.opts.maxBatch ?? 24)));
    const container = this.containers.fresh();
    const point = this.staleDeck.draw();
    const gate = new Hold();
    container.hold = { partition: p, point, gate };
    const done = container.handler(kafkaEvent(this.source, new Map([[p, batch]])), lambdaContext(this.name) as never).then(
      (response) => {
        if (response.batchItemFailures.length > 0) s.stats.staleFenced++;
      },
      (e: unknown) => this.unexpected('stale invocation', e),
    );
    if (!(await Promise.race([gate.arrived.then(() => true), done.then(() => false)]))) {
      // It ended before its point (nothing left to publish): not a zombie.
      this.staleDeck.putBack(point);
      await container.close();
      return;
    }
    s.stats.staleInvocations++;
    s.stats.stalePoints[point]++;
    const world = this.containers.world;
    this.containers.world.trace?.(`c${container.id} zombie p${p}:${batch[0].offset}..${batch.at(-1)!.offset} held ${point}`);
    this.stale = { container, partition: p, gate, done, commits: world.commits.get(p) ?? 0, wait: rng.int(0, 3) };
  }

  /** Lets the zombie go on once its retry claimed the id elsewhere (`force`: now); it must never commit. */
  async releaseStale(force: boolean): Promise<void> {
    const z = this.stale;
    if (!z) return;
    if (!force && ((this.containers.world.commits.get(z.partition) ?? 0) <= z.commits || z.wait-- > 0)) return;
    this.stale = undefined;
    this.containers.world.trace?.(`zombie released c${z.container.id}`);
    z.gate.open();
    await z.done;
    if (z.container.commitsAfterHold > 0) {
      this.s.stats.staleCommits += z.container.commitsAfterHold;
      this.unexpected('stale invocation', new Error(`a zombie of partition ${z.partition} committed after its retry claimed the id`));
    }
    await z.container.close();
  }

  /** One invocation of pending partitions (records up to `end(p)`), or the failed event again. */
  async invoke(end: (p: number) => number): Promise<void> {
    const { rng, s } = this;
    const stats = s.stats;
    const open = this.pending(end);
    if (open.length === 0) return;
    let batches: Map<number, KafkaEventRecord[]>;
    let retry = false;
    if (this.failedEvent && rng.chance(0.5)) {
      // Lambda sends the same event again.
      batches = this.failedEvent;
      stats.wholeRetries++;
      retry = true;
    } else {
      batches = new Map();
      const chosen = open.filter(() => rng.chance(0.7));
      if (chosen.length === 0) chosen.push(rng.pick(open));
      for (const p of chosen) {
        const at = this.pos.get(p)!;
        batches.set(p, this.logs.get(p)!.slice(at, Math.min(end(p), at + rng.int(1, s.opts.maxBatch ?? 24))));
        if (at < this.delivered.get(p)!) retry = true;
      }
      if (retry) stats.rebatchedRetries++;
    }
    this.failedEvent = undefined;
    if (retry) stats.retries++;
    for (const [p, batch] of batches) this.delivered.set(p, Math.max(this.delivered.get(p)!, batch[0].offset + batch.length));
    const container = await this.containers.pick(rng, retry);
    const plan = drawPlan(rng, s, this.crashDeck, [...batches.keys()]);
    container.plan = plan;
    container.sent.clear();
    stats.invocations++;
    this.containers.world.trace?.(
      `c${container.id} invoke ${[...batches].map(([p, b]) => `p${p}:${b[0].offset}..${b.at(-1)!.offset}`).join(' ')} plan ${JSON.stringify(plan)}`,
    );
    let response: Awaited<ReturnType<SluiceHandler>> | undefined;
    try {
      response = await container.handler(kafkaEvent(this.source, batches), lambdaContext(this.name) as never);
    } catch (e) {
      if (!container.dead) this.unexpected('live invocation', e);
    }
    container.plan = undefined;
    this.containers.world.trace?.(`  c${container.id} fired ${container.fired} response ${JSON.stringify(response?.batchItemFailures)}`);
    let crashed = container.fired;
    if (!crashed && plan?.point === 'lost-response') {
      // The invocation finished; its answer never reached Lambda. The container lives on or not.
      crashed = 'lost-response';
      if (rng.chance(0.5)) container.dead = true;
    }
    if (plan && !crashed) this.crashDeck.putBack(plan.point);
    if (crashed) {
      stats.crashes++;
      stats.crashPoints[crashed]++;
      this.failedEvent = batches;
      if (container.dead) await container.close();
    } else if (response) {
      for (const [p, batch] of batches) {
        const failure = response.batchItemFailures.find((f) => f.itemIdentifier.partition === `${this.source}-${p}`);
        const at = failure ? batch.findIndex((r) => r.offset === failure.itemIdentifier.offset) : batch.length;
        if (failure) stats.partitionFailures++;
        if (at < 0)
          this.unexpected(
            'live invocation',
            new Error(`a partial batch response names offset ${failure!.itemIdentifier.offset}, outside the batch`),
          );
        else this.pos.set(p, batch[0].offset + at);
      }
    }
    await this.releaseStale(false);
  }
}

/**
 * One batch workload on fresh topics: its records through containers under faults until every
 * partition is done; returns what the reference says the topics must hold.
 */
async function batchScenario(workload: Workload, s: Scenario): Promise<Omit<Expectation, 'label'>> {
  const source = `${s.prefix}-in`;
  const definition = onFreshTopics(workload.definition, s.guarantee, (t) => `${s.prefix}-${t}`);
  const records: InputRecord[] = workload.records(s.seed);
  const logs = partitionLogs(records, source);
  const deadLetterTopic = await createTopics(s, source, topicsOf(definition), Math.max(...logs.keys()) + 1);
  const reference = await runReference(workload, records, source);
  const expected = new Map<string, { key: string | null; value: unknown }>();
  for (const m of reference.emitted)
    if (!expected.has(m.id)) expected.set(m.id, { key: m.key, value: JSON.parse(JSON.stringify(m.value ?? null)) });

  const world: World = {
    commits: new Map(),
    failures: new Map(),
    deadLetterTopic,
    lettersLogged: [],
    wall: Date.now(),
    trace: s.opts.trace,
  };
  const containers = new Containers(s, definition, s.opts.store?.() ?? new MemoryStore(), world);
  const driver = new Driver(s, workload.name, source, logs, containers, new Rng(s.seed ^ 0x0e05));
  const end = (p: number) => logs.get(p)!.length;
  let progress = -1;
  let stalled = 0;
  try {
    while (driver.pending(end).length > 0) {
      if (stalled > 200) {
        driver.unexpected(
          'driver',
          new Error(`stalled: no partition advanced in 200 invocations (positions ${JSON.stringify([...driver.pos])})`),
        );
        break;
      }
      if (!driver.stale && s.guarantee === 'exactly-once' && driver.rng.chance(s.opts.staleChance ?? 0.1)) await driver.startStale(end);
      await driver.invoke(end);
      stalled = driver.committed > progress ? 0 : stalled + 1;
      progress = Math.max(progress, driver.committed);
    }
    await driver.releaseStale(true);
  } finally {
    await containers.closeAll();
    for (const [why, n] of world.failures) s.stats.failureReasons[why] = (s.stats.failureReasons[why] ?? 0) + n;
  }
  if (world.lettersLogged.length > 0)
    driver.unexpected('dead letters', new Error(`${world.lettersLogged.length} dead letters were logged, not published`));
  return { topics: [...topicsOf(definition), deadLetterTopic], expected };
}

/** Crash points of a tick: around its send, its transaction commit and its state commit. */
const TICK_CRASH_POINTS: readonly EosCrashPoint[] = ['before-send', 'after-send', 'after-commit', 'mid-state', 'after-state'];

/**
 * The idle-session workload of test/faults/ticks.ts on a simulated wall clock: records arrive
 * over time, batches run under the same faults, and ticks run in containers of their own, some
 * crashing around their transaction commit and their state commit; at the end the partitions stay
 * quiet and ticks close every window. There is no reference (when a window closes by a tick
 * depends on timing): every input record must be in exactly one published result or late record.
 */
async function tickScenario(s: Scenario): Promise<Omit<Expectation, 'label'>> {
  const stats = s.stats;
  const rng = new Rng(s.seed ^ 0x71c5);
  const workload = tickWorkloads.idleSessions;
  const base = workload.define(`E${s.seed}`);
  const { manifest } = loadDefinition(base);
  const source = `${s.prefix}-in`;
  // Ticks run over the definition's source topic: a fresh one, the events' too.
  const definition = onFreshTopics(base, s.guarantee, (t) => `${s.prefix}-${t}`, source);
  const records: TimedRecord[] = idleTraffic(s.seed);
  const logs = partitionLogs(records, source);
  const deadLetterTopic = await createTopics(s, source, topicsOf(definition), 3);
  const start = SAMPLE_START;
  const world: World = { commits: new Map(), failures: new Map(), deadLetterTopic, lettersLogged: [], wall: start, trace: s.opts.trace };
  const store = s.opts.store?.() ?? new MemoryStore();
  const containers = new Containers(s, definition, store, world);
  const driver = new Driver(s, manifest.name, source, logs, containers, rng);
  const arrivals = new Map<number, number[]>();
  for (const r of records) {
    const list = arrivals.get(r.partition ?? 0) ?? [];
    list.push(r.arrival);
    arrivals.set(r.partition ?? 0, list);
  }
  const arrived = (p: number) => (arrivals.get(p) ?? []).filter((a) => start + a <= world.wall).length;
  const offsets: EndOffsets = { endOffsets: async () => new Map(driver.partitions.map((p) => [p, arrived(p)])) };
  const tick = async (crash: boolean): Promise<number> => {
    const c = containers.fresh();
    // Ticks have a budget of their own: the batches' crashes may have used up the run's.
    if (crash && stats.tickCrashes < Math.max(6, s.opts.crashes / 4))
      c.plan = { partition: ANY, point: tickDeck.draw(), cut: rng.next(), order: rng.int(0, 2 ** 31) };
    const plan = c.plan;
    stats.ticks++;
    let closed = 0;
    try {
      const report = await c.handler.sluice.tick({ now: world.wall, offsets });
      if (!c.dead) closed = report.windowsClosed;
      world.trace?.(
        `c${c.id} tick @${world.wall - start} plan ${plan?.point} fired ${c.fired} ${JSON.stringify(
          report.partitions.map((r) => [
            r.partition,
            r.decision.action === 'skip' ? r.decision.reason : `close@${r.decision.at}`,
            r.windowsClosed,
            r.error?.slice(0, 80),
          ]),
        )}`,
      );
    } catch (e) {
      if (!c.dead) driver.unexpected('tick', e);
    }
    if (c.fired) {
      stats.crashes++;
      stats.tickCrashes++;
      stats.tickCrashPoints[c.fired] = (stats.tickCrashPoints[c.fired] ?? 0) + 1;
    } else if (plan) tickDeck.putBack(plan.point);
    stats.windowsClosedByTicks += closed;
    await c.close();
    return closed;
  };
  const last = records.at(-1)?.arrival ?? 0;
  const tickDeck = new Deck(rng, TICK_CRASH_POINTS);
  let stalled = 0;
  try {
    while (driver.committed < records.length || world.wall < start + last) {
      if (stalled > 300) {
        driver.unexpected('driver', new Error(`stalled (positions ${JSON.stringify([...driver.pos])})`));
        break;
      }
      const before = driver.committed;
      world.wall += rng.chance(0.25) ? rng.int(2_000, 7_000) : rng.int(150, 1_500);
      if (!driver.stale && s.guarantee === 'exactly-once' && rng.chance((s.opts.staleChance ?? 0.1) / 2)) await driver.startStale(arrived);
      if (rng.chance(0.8)) await driver.invoke(arrived);
      if (rng.chance(0.5)) await tick(rng.chance(0.5));
      stalled = driver.committed > before || world.wall < start + last ? 0 : stalled + 1;
    }
    await driver.releaseStale(true);
    // The end of the input: the partitions stay quiet, the schedule keeps ticking.
    for (let i = 0, idle = 0; i < 10 && idle < 2; i++) {
      world.wall += workload.settleMs + 5_000;
      idle = (await tick(false)) === 0 ? idle + 1 : 0;
    }
  } finally {
    await containers.closeAll();
    for (const [why, n] of world.failures) s.stats.failureReasons[why] = (s.stats.failureReasons[why] ?? 0) + n;
  }
  return {
    topics: [...topicsOf(definition), deadLetterTopic],
    expected: new Map(),
    recordIds: records.map((r) => (r.value as { id: string }).id),
  };
}

// ---------- reading back ----------

/** A message read back by a read_committed consumer. */
interface Seen {
  readonly topic: string;
  readonly id: string | undefined;
  readonly key: string | null;
  readonly value: unknown;
}

function parsed(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Kafka's own consumer (the Java client, as the local broker's jars hold it), read_committed:
 * every partition of the topics from the beginning to its end (the last stable offset, which is
 * the end once every transaction ended). One line per record, fields in base64.
 */
const JAVA_READER = `
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
public class ReadCommitted {
  static String b64(byte[] b) { return b == null ? "-" : Base64.getEncoder().encodeToString(b); }
  public static void main(String[] a) {
    Properties p = new Properties();
    p.put("bootstrap.servers", a[0]);
    p.put("isolation.level", "read_committed");
    p.put("key.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
    p.put("value.deserializer", "org.apache.kafka.common.serialization.ByteArrayDeserializer");
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int i = 2; i < a.length; i++) for (var info : c.partitionsFor(a[i])) tps.add(new TopicPartition(a[i], info.partition()));
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps);
      long until = System.currentTimeMillis() + Long.parseLong(a[1]);
      while (System.currentTimeMillis() < until) {
        boolean done = true;
        for (var tp : tps) if (c.position(tp) < end.get(tp)) done = false;
        if (done) break;
        for (ConsumerRecord<byte[], byte[]> r : c.poll(java.time.Duration.ofMillis(200))) {
          Header id = r.headers().lastHeader("sluice-id");
          System.out.println(b64(r.topic().getBytes()) + "\t" + b64(id == null ? null : id.value()) + "\t" + b64(r.key()) + "\t" + b64(r.value()));
        }
      }
      for (var tp : tps) if (c.position(tp) < end.get(tp)) System.err.println("not read to the end: " + tp);
    }
  }
}
`;

/** Where the local broker's jars are (scripts/infra/infra.ts keeps them there). */
function kafkaJars(): string | undefined {
  const dir = path.join(process.env.SLUICE_CACHE ?? path.join(os.homedir(), '.cache', 'sluice'), 'kafka-4.1.1');
  return existsSync(path.join(dir, 'kafka-clients-4.1.1.jar')) ? dir : undefined;
}

/** Reads the topics with the Java client, read_committed; undefined without Java or the jars. */
async function readWithJava(topics: readonly string[], timeoutMs: number): Promise<Seen[] | undefined> {
  const jars = kafkaJars();
  if (!jars) return undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sluice-eos-reader-'));
  const source = path.join(dir, 'ReadCommitted.java');
  writeFileSync(source, JAVA_READER);
  try {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'java',
        ['-cp', path.join(jars, '*'), source, brokers, String(timeoutMs), ...topics],
        { maxBuffer: 256 * 1024 * 1024 },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr.slice(-2000)}`)) : resolve(stdout)),
      ),
    );
    const text = (b: string) => (b === '-' ? null : Buffer.from(b, 'base64').toString('utf8'));
    return out
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => {
        const [topic, id, key, value] = line.split('\t');
        return { topic: text(topic)!, id: text(id) ?? undefined, key: text(key), value: parsed(text(value)) };
      });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Reads every scenario's topics from the beginning with a kafkajs read_committed consumer (its
 * default isolation) until each holds what it should and then stays quiet for 2 s (duplicates
 * come after the first copies), or the timeout.
 */
async function readWithKafkajs(kafka: Kafka, expectations: readonly Expectation[], timeoutMs: number): Promise<Seen[]> {
  const topics = [...new Set(expectations.flatMap((e) => e.topics))];
  const consumer = kafka.consumer({ groupId: `sluice-eos-reader-${process.pid}-${Date.now()}`, readUncommitted: false });
  const seen: Seen[] = [];
  const ids = new Set<string>();
  const records = new Set<string>();
  let lastAt = Date.now();
  const complete = () =>
    expectations.every((e) => (e.recordIds ? e.recordIds.every((r) => records.has(r)) : [...e.expected.keys()].every((id) => ids.has(id))));
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ topic, message }) => {
        const header = message.headers?.['sluice-id'];
        const id = header === undefined ? undefined : String(Array.isArray(header) ? header[0] : header);
        const value = parsed(message.value?.toString() ?? null);
        seen.push({ topic, id, key: message.key?.toString() ?? null, value });
        if (id) ids.add(id);
        for (const r of recordIdsIn(value)) records.add(r);
        lastAt = Date.now();
      },
    });
    const until = Date.now() + timeoutMs;
    while (Date.now() < until && !(complete() && Date.now() - lastAt > 2_000)) await new Promise((r) => setTimeout(r, 200));
  } finally {
    await consumer.disconnect();
  }
  return seen;
}

/** Input record ids a message names: a window result's `ids`, or a late record's `id`. */
function recordIdsIn(value: unknown): string[] {
  if (value === null || typeof value !== 'object') return [];
  const v = value as { ids?: unknown; id?: unknown };
  if (Array.isArray(v.ids)) return v.ids.filter((x): x is string => typeof x === 'string');
  return typeof v.id === 'string' ? [v.id] : [];
}

// ---------- the verdict ----------

/** Counts duplicates, missing and wrong values of every scenario. */
function judge(
  expectations: readonly Expectation[],
  seen: readonly Seen[],
): Pick<
  EosSuiteResult,
  | 'outputsExpected'
  | 'outputsSeen'
  | 'duplicates'
  | 'duplicateMessages'
  | 'missing'
  | 'wrongValues'
  | 'recordsUnpublished'
  | 'recordsTwice'
  | 'examples'
> {
  const out = {
    outputsExpected: 0,
    outputsSeen: 0,
    duplicates: 0,
    duplicateMessages: 0,
    missing: 0,
    wrongValues: 0,
    recordsUnpublished: 0,
    recordsTwice: 0,
    examples: [] as string[],
  };
  const note = (s: string) => {
    if (out.examples.length < 12) out.examples.push(s);
  };
  for (const e of expectations) {
    const topics = new Set(e.topics);
    const mine = seen.filter((m) => topics.has(m.topic));
    const byId = new Map<string, Seen[]>();
    for (const m of mine) {
      const id = m.id ?? `(no sluice-id on ${m.topic})`;
      byId.set(id, [...(byId.get(id) ?? []), m]);
    }
    for (const [id, copies] of byId) {
      if (copies.length > 1) {
        out.duplicates++;
        out.duplicateMessages += copies.length - 1;
        note(`${e.label}: ${id} seen ${copies.length} times`);
      }
      if (copies.some((c) => c.key !== copies[0].key || !isDeepStrictEqual(c.value, copies[0].value))) {
        out.wrongValues++;
        note(`${e.label}: ${id} seen with two values`);
      }
    }
    if (e.recordIds) {
      // No reference for ticks: each input record in exactly one distinct result or late record.
      const where = new Map<string, number>();
      for (const copies of byId.values()) for (const r of recordIdsIn(copies[0].value)) where.set(r, (where.get(r) ?? 0) + 1);
      for (const r of e.recordIds) {
        const n = where.get(r) ?? 0;
        if (n === 0) {
          out.recordsUnpublished++;
          out.missing++;
          note(`${e.label}: record ${r} in no published result`);
        } else if (n > 1) {
          out.recordsTwice++;
          out.wrongValues++;
          note(`${e.label}: record ${r} in ${n} published results`);
        }
      }
      continue;
    }
    out.outputsExpected += e.expected.size;
    out.outputsSeen += mine.length;
    for (const [id, want] of e.expected) {
      if (!byId.has(id)) {
        out.missing++;
        note(`${e.label}: missing ${id}`);
      }
      const got = byId.get(id)?.[0];
      if (got && (got.key !== want.key || !isDeepStrictEqual(got.value, want.value))) {
        out.wrongValues++;
        note(`${e.label}: ${id} expected ${JSON.stringify(want.value)}, got ${JSON.stringify(got.value)}`);
      }
    }
    for (const id of byId.keys())
      if (!e.expected.has(id)) {
        out.wrongValues++;
        note(`${e.label}: ${id} not in the reference`);
      }
  }
  return out;
}
