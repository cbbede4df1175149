/**
 * The exactly-once fault-injection harness (issue 4, "Exactly-once effect").
 *
 * Feeds a workload's records through the real Lambda handler (`sluice(def)`) as MSK events, the
 * way Lambda's Kafka event source mapping would, and injects the faults it is allowed to inject:
 * - a crash in the middle of a state write: k of its n item writes land (random k, 0 and n
 *   included; key items in any order, partition-level items only after all key items, as the
 *   store contract says), then the write throws; either the invocation dies with it (Lambda
 *   retries the whole event) or the handler catches it (a partial batch response);
 * - an output sink that fails after handing over some messages (the handler throws);
 * - a step that throws on one record (the runner commits the records before it and answers
 *   with a partial batch response);
 * - stale invocations: a second container runs a batch of the same partition at the same time
 *   as the live one and writes late, either after the live one moved on, or in the middle of the
 *   live one's invocation; it must be fenced and never overwrite newer state;
 * - DynamoDB throttling storms (issue 11): for a few invocations, a share of state calls is
 *   rejected as throughput exceeded ({@link Throttle}); the store's own retries absorb most, and
 *   when the invocation's deadline runs out the partition fails retriably and is retried;
 * - Kafka broker outages (issue 11): for a few invocations every output and dead-letter send fails
 *   as kafkajs fails when the broker is unavailable, after handing over a share of its messages;
 *   no state may be committed in an invocation whose send failed;
 * - timeouts (issue 11): an invocation is cut off before its outputs, between its outputs and its
 *   commit, or in the middle of its commit (some items written); Lambda retries the event while
 *   the abandoned one is either gone for good or resumes later beside the retries, as a stale one;
 * - on DynamoDB, crashes inside the store's write of a value over 64 KB (issue 11): between its
 *   chunk puts, or between its chunks and its head put ({@link ChunkCrash}).
 * Every retry starts at the failed (or first) offset with a new random batch size.
 *
 * The same records run once through the handler with no faults and one batch size (the
 * reference). {@link compare} then counts results lost, results or state that differ from the
 * reference (a record applied twice, or not at all), and duplicate emits.
 *
 * Deterministic for a seed: every fault is drawn by the driver before the invocation it hits,
 * except which state calls a throttling storm rejects and whether the store's retries outlast the
 * deadline (they depend on call order and on time).
 *
 * @example
 * const reference = await runReference(workloads.sensorSums, records, 'sensor-counts.s1');
 * const run = await runWithFaults(workloads.sensorSums, records, 'sensor-counts.s1', new MemoryStore(), { seed: 1 });
 * const verdict = await compare(workloads.sensorSums, reference, run); // { lost: 0, appliedTwice: 0, duplicateEmits: 7, … }
 */
import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import {
  collect,
  count,
  type Definition,
  keyedState,
  max,
  mean,
  type SluiceHandler,
  sluice,
  StateConflictError,
  stream,
  sum,
} from 'sluice';
import {
  type BatchBounds,
  type ItemChange,
  MemoryStore,
  type StateScope,
  type StateStore,
  type StoredItem,
  type WriteStats,
} from 'sluice/state';
import {
  type DeadLetter,
  type KafkaBatchResponse,
  type KafkaEvent,
  type KafkaEventRecord,
  type Logger,
  type Manifest,
  type OutputMessage,
  loadDefinition,
  unaccounted,
} from 'sluice/runtime';
import { type InputRecord, lambdaContext, toEventRecord } from 'sluice/testing';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';
import { sendWithRetries } from '../../framework/src/state/dynamodb-client.js';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import { decodePage } from '../../framework/src/state/dynamodb-pages.js';
import { INLINE_MAX_BYTES } from '../../framework/src/state/dynamodb-values.js';
import { idleNamespace, isPartitionNamespace, keyedNamespace } from '../../framework/src/state/namespaces.js';
import type { StoreCallOptions } from '../../framework/src/state/store.js';
import { clickSessions } from '../../functions/sessions/handler.js';
import { SensorSums } from '../../functions/sensor-sums/handler.js';
import { SpeedAverage } from '../../functions/speed-average/handler.js';

// ---------- randomness ----------

/**
 * A small seeded PRNG (mulberry32): the same seed gives the same faults.
 *
 * @example
 * const rng = new Rng(7);
 * rng.int(1, 6); // always the same roll for seed 7
 */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed >>> 0) ^ 0x9e3779b9;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

// ---------- the fault-injecting store ----------

/** Thrown by {@link FaultyStore} where a real invocation would have crashed. */
export class InjectedCrash extends Error {
  override readonly name = 'InjectedCrash';
}

/**
 * How the next state write of one partition crashes. `cut` in [0, 1] picks k of the n items
 * (`k = floor(cut * (n + 1))`, so 0 and n are as likely as any); `order` seeds the order of the
 * key items; with `fatal` the whole invocation dies with the write.
 */
export interface CrashPlan {
  readonly cut: number;
  readonly order: number;
  readonly fatal: boolean;
}

/** Counters of everything the harness injected and observed. */
export interface FaultStats {
  invocations: number;
  /** Crashes injected in the middle of a state write. */
  crashPoints: number;
  crashesBeforeAnyItem: number;
  crashesAfterEveryItem: number;
  /** Crashes inside the DynamoDB store's write of a chunked value: between its chunk puts, or after them and before its head. */
  crashesBetweenChunks: number;
  crashesBeforeHead: number;
  /** Crashes inside the DynamoDB store's page writes: after some pages, right after a split, before the directory item. */
  crashesBetweenPages: number;
  crashesAfterSplit: number;
  crashesBeforeDirectory: number;
  /** Versions the DynamoDB store committed in chunk items (values over 64 KB), retries and stale writes included. */
  chunkedValues: number;
  /** Page splits the DynamoDB store committed (transactions that landed). */
  pageSplits: number;
  /** Crashes that killed the whole invocation (Lambda retries every partition of the event). */
  fatalCrashes: number;
  sinkFailures: number;
  stepFailures: number;
  /** Partition batches delivered again from an offset delivered before (retries). */
  replays: number;
  staleInvocations: number;
  /** Stale invocations whose write met newer state and was refused (StateConflictError). */
  staleFenced: number;
  /** Items a stale invocation overwrote although the stored offset was as new or newer (must be 0). */
  staleOverwrites: number;
  /** StateConflictErrors the live invocations met (they lost a race with a stale one). */
  liveConflicts: number;
  /** Throttling storms started, state calls rejected in them, and store calls that ran out of time retrying. */
  storms: number;
  throttledCalls: number;
  throttleExhausted: number;
  /** Broker outages started, and output or dead-letter sends that failed in them. */
  outages: number;
  produceFailures: number;
  /** State writes of an invocation after its output or dead-letter send failed (must be 0). */
  commitsAfterFailedSend: number;
  /** Invocations cut off by their timeout, by where, and how many of them resumed later. */
  timeouts: number;
  timeoutsBeforeOutputs: number;
  timeoutsBeforeCommit: number;
  timeoutsMidCommit: number;
  timeoutsResumed: number;
  /** Anything thrown that the harness did not inject. */
  unexpectedErrors: string[];
}

/** Fresh zeroed {@link FaultStats}. */
export function emptyStats(): FaultStats {
  return {
    invocations: 0,
    crashPoints: 0,
    crashesBeforeAnyItem: 0,
    crashesAfterEveryItem: 0,
    crashesBetweenChunks: 0,
    crashesBeforeHead: 0,
    crashesBetweenPages: 0,
    crashesAfterSplit: 0,
    crashesBeforeDirectory: 0,
    chunkedValues: 0,
    pageSplits: 0,
    fatalCrashes: 0,
    sinkFailures: 0,
    stepFailures: 0,
    replays: 0,
    staleInvocations: 0,
    staleFenced: 0,
    staleOverwrites: 0,
    liveConflicts: 0,
    storms: 0,
    throttledCalls: 0,
    throttleExhausted: 0,
    outages: 0,
    produceFailures: 0,
    commitsAfterFailedSend: 0,
    timeouts: 0,
    timeoutsBeforeOutputs: 0,
    timeoutsBeforeCommit: 0,
    timeoutsMidCommit: 0,
    timeoutsResumed: 0,
    unexpectedErrors: [],
  };
}

/**
 * Lets one call through after the driver says so: how a stale invocation (or a tick) is held back.
 *
 * @example
 * const gate = new Hold();
 * store.hold = { on: 'write', gate };
 * await gate.arrived; // the invocation waits at its first write
 * gate.open();
 */
export class Hold {
  #arrive!: () => void;
  #open!: () => void;
  readonly arrived = new Promise<void>((r) => (this.#arrive = r));
  readonly opened = new Promise<void>((r) => (this.#open = r));
  #used = false;
  async pass(): Promise<void> {
    if (this.#used) return;
    this.#used = true;
    this.#arrive();
    await this.opened;
  }
  open(): void {
    this.#open();
  }
}

/**
 * Where a timed-out invocation stops: the whole process freezes at the first cut point it reaches
 * (everything after waits too) until the driver resumes it, or kills it: then nothing after the
 * cut point ever happens (each waiting call throws {@link Killed}, so the handler ends at once).
 */
class Freeze {
  #arrive!: () => void;
  #open!: () => void;
  #kill!: (e: Error) => void;
  readonly arrived = new Promise<void>((r) => (this.#arrive = r));
  readonly opened = new Promise<void>((resolve, reject) => {
    this.#open = resolve;
    this.#kill = reject;
  });
  stopped = false;
  /** The timeout hits here. */
  stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      this.#arrive();
    }
    return this.opened;
  }
  /** Anything the invocation does after it stopped waits for the resume. */
  async pass(): Promise<void> {
    if (this.stopped) await this.opened;
  }
  open(): void {
    this.#open();
  }
  kill(): void {
    this.#kill(new Killed('the invocation timed out and its container was stopped'));
  }
}

/** What a killed invocation's calls after its cut point throw: nothing after it happens. */
class Killed extends Error {
  override readonly name = 'Killed';
}

/** Where a timeout cuts an invocation off (issue 11). */
export type CutPoint = 'before-outputs' | 'before-commit' | 'mid-commit';

/** A timeout: the point, and for `mid-commit` which items land first (as a {@link CrashPlan}). */
interface CutPlan {
  readonly point: CutPoint;
  readonly freeze: Freeze;
  readonly cut: number;
  readonly order: number;
}

/**
 * A timeout at `point`; `freeze.arrived` resolves when the invocation stops there, `freeze.open()`
 * resumes it.
 *
 * @example
 * store.cutPlan = timeoutCut('mid-commit', 0.5, 1); // half the items land, then the write stops
 */
export function timeoutCut(point: CutPoint, cut: number, order: number): CutPlan {
  return { point, freeze: new Freeze(), cut, order };
}

// ---------- throttling storms ----------

const THROTTLE_MESSAGE =
  'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.';

/**
 * DynamoDB throttling storms: while `share` > 0, that share of state calls is rejected with an
 * error shaped as the AWS SDK v3 raises throughput exceeded (name, `$fault`, `$metadata` with
 * HTTP 400; no `$retryable`, as the SDK's ProvisionedThroughputExceededException). Put it
 * around DynamoDB Local's client ({@link throttledClient}: the store's real retries run) or around
 * a MemoryStore ({@link Throttle.store}: each call through the same `sendWithRetries`).
 *
 * @example
 * const throttle = new Throttle();
 * const store = throttle.store(new MemoryStore());
 * throttle.share = 0.3; // a storm: 30% of calls are rejected until it is set back to 0
 */
export class Throttle {
  /** Share of calls rejected, of those made {@link Throttle.during} a storm; 0 outside one. */
  share = 0;
  /** Calls rejected as throughput exceeded. */
  throttledCalls = 0;
  #rng = new Rng(1);
  readonly #errors = new WeakSet<object>();
  readonly #scope = new AsyncLocalStorage<boolean>();
  /** Clients of {@link throttledDynamoDBStore}, destroyed by {@link Throttle.close}. */
  readonly clients: { destroy(): void }[] = [];

  /** Destroys the DynamoDB clients made for this throttle (their open sockets keep a process alive). */
  close(): void {
    for (const c of this.clients.splice(0)) c.destroy();
  }

  /** Draws which calls are rejected from this seed on. */
  reseed(seed: number): void {
    this.#rng = new Rng(seed ^ 0x5bd1e995);
  }

  /**
   * Runs `work` (a live invocation) where storms reach it. Other invocations (stale ones, with a
   * deadline a minute away) are not throttled: a storm of every call would hold them for that long.
   */
  during<T>(work: () => Promise<T>): Promise<T> {
    return this.#scope.run(true, work);
  }

  /** Throws a throughput-exceeded error for a share of calls while a storm lasts. */
  check(): void {
    if (this.share <= 0 || this.#scope.getStore() !== true || !this.#rng.chance(this.share)) return;
    this.throttledCalls++;
    const provisioned = this.#rng.chance(0.8);
    const e = Object.assign(new Error(provisioned ? THROTTLE_MESSAGE : 'Rate of requests exceeds the allowed throughput.'), {
      name: provisioned ? 'ProvisionedThroughputExceededException' : 'ThrottlingException',
      $fault: 'client',
      $metadata: { httpStatusCode: 400, requestId: 'THROTTLED', attempts: 1, totalRetryDelay: 0 },
    });
    this.#errors.add(e);
    throw e;
  }

  /** Whether `e`, or an error it was caused by, is one of this throttle's rejections. */
  owns(e: unknown): boolean {
    for (let x = e, depth = 0; x !== null && typeof x === 'object' && depth < 6; x = (x as { cause?: unknown }).cause, depth++) {
      if (this.#errors.has(x)) return true;
    }
    return false;
  }

  /** A store whose every call goes through the state store's real retry loop, against this throttle. */
  store(inner: StateStore): StateStore {
    const client = {
      send: async (call: () => Promise<unknown>) => {
        this.check();
        return call();
      },
    };
    const send = <T>(call: () => Promise<T>, deadline: number | undefined) =>
      sendWithRetries<T>(client as never, call, deadline ?? Date.now() + 60_000);
    return {
      kind: `throttled(${inner.kind})`,
      durable: inner.durable,
      read: (scope, namespace, keys, opts) => send(() => inner.read(scope, namespace, keys, opts), opts?.deadline),
      write: (scope, changes, bounds, opts) => send(() => inner.write(scope, changes, bounds, opts), opts?.deadline),
      keys: (scope, namespace) => inner.keys!(scope, namespace),
    };
  }
}

// ---------- crashes inside the DynamoDB store's write ----------

/**
 * Where a crash inside the DynamoDB store's write hits: between a chunked value's chunk puts, or
 * between its chunks and the head (its own item or its page) that references them; in the page
 * layout, after some page writes of the set and not others (`between-pages`), right after a page
 * split's transaction (`after-split`: the split is whole, the batch's changes to the new pages
 * are not written), or on the directory item written after the pages (`before-directory`).
 */
export type ChunkCrashPoint = 'between-chunks' | 'before-head' | 'between-pages' | 'after-split' | 'before-directory';

interface ArmedChunkCrash {
  readonly point: ChunkCrashPoint;
  fired: ChunkCrashPoint | undefined;
  /** Write ids of the chunk items this write sent. */
  readonly sent: Set<string>;
  readonly inFlight: Set<Promise<unknown>>;
  /** Page writes (puts and split transactions) sent so far. */
  pageWrites: number;
}

/** The items a command writes: a PutItem's, or a transaction's puts. */
function writtenItems(command: unknown): Record<string, AttributeValue>[] {
  const input = (
    command as { input?: { Item?: Record<string, AttributeValue>; TransactItems?: { Put?: { Item?: Record<string, AttributeValue> } }[] } }
  ).input;
  if (input?.Item) return [input.Item];
  return (input?.TransactItems ?? []).flatMap((t) => (t.Put?.Item ? [t.Put.Item] : []));
}

/** Write ids of the chunked versions a head (`k:` item or page) references. */
function referencedChunks(item: Record<string, AttributeValue>): string[] {
  const sk = item.sk?.S ?? '';
  if (sk.startsWith('k:')) return (item.h?.L ?? []).map((v) => v.M?.w?.S ?? '').filter(Boolean);
  if (!sk.startsWith('p:') || item.x) return [];
  const entries = item.z?.B ? decodePage(item.z.B, true) : decodePage(item.j?.S ?? '', false);
  const ids: string[] = [];
  for (const e of entries.values()) for (const m of e.line.matchAll(/"w":"([^"]+)"/g)) ids.push(m[1]);
  return ids;
}

/**
 * Crashes inside the DynamoDB store's write, armed for one write ({@link ChunkCrash.during}): the
 * client throws {@link InjectedCrash} on a chunk put after a value's first (`between-chunks`: some
 * chunks written, not all; a one-chunk value goes on to the next point), on the head put that
 * references chunks this write put (`before-head`: every chunk written, no head), on the second
 * page write of the set (`between-pages`), on the first call after a split transaction landed
 * (`after-split`), or on the directory put (`before-directory`); after that, every call of the write
 * throws, as the process is gone. Sends already in flight land. Also counts the chunked versions
 * committed and the page splits made through its client.
 *
 * @example
 * const chunks = new ChunkCrash();
 * const store = await throttledDynamoDBStore(endpoint, table, new Throttle(), chunks);
 * const { fired } = await chunks.during('before-head', () => store.write(scope, changes, bounds));
 */
export class ChunkCrash {
  /** Chunked versions committed: their chunks put, then a head referencing them (on every write of the client). */
  chunkedValues = 0;
  /** Page split transactions that landed (on every write of the client). */
  pageSplits = 0;
  readonly #armed = new AsyncLocalStorage<ArmedChunkCrash>();
  /** Write ids of chunks put whose head has not been put (yet, or ever: crashes, conflicts). */
  readonly #unreferenced = new Set<string>();

  /** Runs one store write with the crash armed; then waits for its sends still in flight. */
  async during(point: ChunkCrashPoint, work: () => Promise<unknown>): Promise<{ fired: ChunkCrashPoint | undefined; error?: unknown }> {
    const armed: ArmedChunkCrash = { point, fired: undefined, sent: new Set(), inFlight: new Set(), pageWrites: 0 };
    try {
      await this.#armed.run(armed, work);
      return { fired: armed.fired };
    } catch (error) {
      return { fired: armed.fired, error };
    } finally {
      await Promise.allSettled([...armed.inFlight]);
    }
  }

  /** The client's `send`, through this: `next` sends the command. */
  async send(command: unknown, next: () => Promise<unknown>): Promise<unknown> {
    const armed = this.#armed.getStore();
    const items = writtenItems(command);
    const split = (command as { input?: { TransactItems?: unknown } }).input?.TransactItems !== undefined;
    const sk = items[0]?.sk?.S;
    const chunk =
      !split && sk?.startsWith('c:')
        ? { id: sk.slice(2, sk.lastIndexOf('#')), index: Number(sk.slice(sk.lastIndexOf('#') + 1)) }
        : undefined;
    const page = split || (items.length === 1 && sk?.startsWith('p:'));
    const refs = items.flatMap(referencedChunks);
    if (armed) {
      if (armed.fired) throw new InjectedCrash(`injected crash: a call after the crash ${armed.fired}`);
      if (chunk && chunk.index > 0 && armed.point === 'between-chunks') armed.fired = 'between-chunks';
      else if (armed.point === 'before-head' && refs.some((w) => armed.sent.has(w))) armed.fired = 'before-head';
      else if (page && armed.point === 'between-pages' && ++armed.pageWrites === 2) armed.fired = 'between-pages';
      else if (sk === 'd' && armed.point === 'before-directory') armed.fired = 'before-directory';
      if (armed.fired) throw new InjectedCrash(`injected crash inside a state write (${armed.fired}, at ${sk})`);
      if (chunk) armed.sent.add(chunk.id);
    }
    const sending = next();
    armed?.inFlight.add(sending);
    const res = await sending;
    if (split) this.pageSplits++;
    // The process dies right after the split landed: the batch's own page writes never go out.
    if (split && armed?.point === 'after-split' && !armed.fired) armed.fired = 'after-split';
    if (chunk) this.#unreferenced.add(chunk.id);
    else for (const w of refs) if (this.#unreferenced.delete(w)) this.chunkedValues++;
    return res;
  }
}

/**
 * A DynamoDBStore on DynamoDB Local whose client rejects the calls `throttle` says, so the store's
 * own retries (`sendWithRetries`) meet the storms, and crashes inside its writes where `chunks` is
 * armed. Its pages aim at `pageBytes` (default 160: small, so the workloads' few keys share pages
 * and split them, instead of fitting in one page per namespace). Creates the table.
 *
 * @example
 * const store = await throttledDynamoDBStore('http://127.0.0.1:8000', 'sluice-faults-1', new Throttle());
 */
export async function throttledDynamoDBStore(
  endpoint: string,
  table: string,
  throttle: Throttle,
  chunks: ChunkCrash = new ChunkCrash(),
  pageBytes = 160,
): Promise<DynamoDBStore> {
  const { DynamoDBClient } = await import('@aws-sdk/client-dynamodb');
  const real = new DynamoDBClient({
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    maxAttempts: 1, // as the store's own client: Sluice retries itself
  });
  throttle.clients.push(real);
  const client = {
    send: async (command: unknown) => {
      throttle.check();
      return chunks.send(command, () => real.send(command as never));
    },
  };
  const store = new DynamoDBStore({ table, endpoint, client: client as unknown as DynamoDBClient, pageBytes });
  await store.ensureTable();
  return store;
}

/**
 * Wraps any {@link StateStore} (MemoryStore, DynamoDBStore) and injects crashes into its writes,
 * holds calls back for the stale-invocation schedules, and checks that a stale writer never
 * overwrites newer state.
 *
 * @example
 * const store = new FaultyStore(new MemoryStore(), emptyStats());
 * store.plans.set(0, { cut: 0.5, order: 1, fatal: false }); // the next write of partition 0 crashes half-way
 */
export class FaultyStore implements StateStore {
  readonly kind: string;
  readonly durable: boolean;
  /** Crash plans for the current invocation, by partition; each is used by one write. */
  readonly plans = new Map<number, CrashPlan>();
  /**
   * Set by a fatal crash: Lambda retries the whole event. What the invocation's other partitions
   * wrote is decided by their own plans (drawn up front, so runs do not depend on I/O timing).
   */
  crashedFatally = false;
  /** Holds the first read or the first write back until the driver opens it. */
  hold: { on: 'read' | 'write'; gate: Hold } | undefined;
  /** Runs before a write of the given partition (once): the live side of an interleaved race. */
  beforeWrite: { partition: number; run: () => Promise<void> } | undefined;
  /** Check every write against the stored offsets (stale invocations). */
  probe = false;
  /** Whether a write or read of this store was refused as stale since the flag was last cleared. */
  fenced = false;
  /** Whether a read was refused (only versions newer than the batch) since the flag was last cleared. */
  readRefused = false;
  /** The storms' throttle: its rejections, and the retries that outlast the deadline, are injected. */
  throttle: Throttle | undefined;
  /** A timed-out invocation's store: where it stops (see {@link Freeze}). */
  cutPlan: CutPlan | undefined;
  /** Runs before every write (the check that no state is committed after a failed send). */
  beforeCommit: (() => void) | undefined;
  /** On DynamoDB: half the crashes of writes holding a value over 64 KB (or of every write, with pages) hit inside the store's write. */
  chunkCrash: ChunkCrash | undefined;
  /** The DynamoDB store keeps keys in pages (values over 1 KB chunked). */
  paged = false;

  constructor(
    readonly inner: StateStore,
    readonly stats: FaultStats,
  ) {
    this.kind = `faulty(${inner.kind})`;
    this.durable = inner.durable;
  }

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>> {
    if (this.hold?.on === 'read') await this.hold.gate.pass();
    await this.cutPlan?.freeze.pass();
    try {
      return await this.inner.read(scope, namespace, keys, opts);
    } catch (e) {
      if (e instanceof StateConflictError) {
        // Only versions newer than this batch's start: the partition has moved past it.
        this.fenced = true;
        this.readRefused = true;
      } else this.#failed('read', e);
      throw e;
    }
  }

  /** Counts a failure the harness injected; keeps the cause of any other (the handler only logs it). */
  #failed(what: 'read' | 'write', e: unknown): void {
    if (this.throttle?.owns(e)) this.stats.throttleExhausted++;
    else this.stats.unexpectedErrors.push(`state ${what} failed: ${(e as Error)?.stack ?? String(e)}`);
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    if (this.hold?.on === 'write') await this.hold.gate.pass();
    const race = this.beforeWrite;
    if (race && race.partition === scope.partition) {
      this.beforeWrite = undefined;
      await race.run();
    }
    this.beforeCommit?.();
    const cut = this.cutPlan;
    if (cut && !cut.freeze.stopped) {
      if (cut.point === 'mid-commit') return this.#cutOff(scope, changes, bounds, cut, opts);
      await cut.freeze.stop();
    } else await cut?.freeze.pass();
    const plan = this.plans.get(scope.partition);
    if (plan) {
      this.plans.delete(scope.partition);
      return this.#crash(scope, changes, bounds, plan, opts);
    }
    return this.probe ? this.#probed(scope, changes, bounds, opts) : this.#write(scope, changes, bounds, opts);
  }

  /**
   * A timeout in the middle of a write: k of the n items land, then the invocation stops; if it
   * is resumed, it writes the rest (a stale writer by then, to be fenced where the retries moved on).
   */
  async #cutOff(
    scope: StateScope,
    changes: readonly ItemChange[],
    bounds: BatchBounds,
    cut: CutPlan,
    opts?: StoreCallOptions,
  ): Promise<WriteStats> {
    const ordered = crashOrder(changes, cut.order);
    const k = Math.min(ordered.length, Math.floor(cut.cut * (ordered.length + 1)));
    if (k > 0) await this.#write(scope, ordered.slice(0, k), bounds, opts);
    await cut.freeze.stop();
    const rest = ordered.slice(k);
    if (rest.length > 0) await (this.probe ? this.#probed(scope, rest, bounds, opts) : this.#write(scope, rest, bounds, opts));
    return { writeRequests: changes.length, conflicts: 0 };
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    return this.inner.keys!(scope, namespace);
  }

  async #write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    try {
      return await this.inner.write(scope, changes, bounds, opts);
    } catch (e) {
      if (e instanceof StateConflictError) this.fenced = true;
      else this.#failed('write', e);
      throw e;
    }
  }

  async #crash(
    scope: StateScope,
    changes: readonly ItemChange[],
    bounds: BatchBounds,
    plan: CrashPlan,
    opts?: StoreCallOptions,
  ): Promise<never> {
    // On DynamoDB, half the crashes hit inside the store's own write: its chunk puts, its pages.
    if (this.chunkCrash && plan.order % 2 === 0 && (this.paged || changes.some((c) => chunkSized(c))))
      return this.#crashInside(scope, changes, bounds, plan, opts);
    const ordered = crashOrder(changes, plan.order);
    const k = Math.min(ordered.length, Math.floor(plan.cut * (ordered.length + 1)));
    this.stats.crashPoints++;
    if (k === 0) this.stats.crashesBeforeAnyItem++;
    if (k === ordered.length) this.stats.crashesAfterEveryItem++;
    if (plan.fatal) this.stats.fatalCrashes++;
    if (k > 0) {
      try {
        await this.inner.write(scope, ordered.slice(0, k), bounds, opts);
      } catch (e) {
        if (!(e instanceof StateConflictError)) {
          this.#failed('write', e);
          throw e;
        }
        this.fenced = true;
      }
    }
    if (plan.fatal) this.crashedFatally = true;
    throw new InjectedCrash(
      `injected crash after ${k} of ${ordered.length} item writes (${scope.topic}-${scope.partition}, offsets ${bounds.firstOffset}..${bounds.lastOffset})`,
    );
  }

  /**
   * A crash inside the store's write ({@link ChunkCrash}): the whole write set goes to the store,
   * which dies between a value's chunk puts, between its chunks and its head, between its page
   * writes, right after a page split, or before the directory item. Other items of the set land
   * or not, as their puts ran before or after that point.
   */
  async #crashInside(
    scope: StateScope,
    changes: readonly ItemChange[],
    bounds: BatchBounds,
    plan: CrashPlan,
    opts?: StoreCallOptions,
  ): Promise<never> {
    this.stats.crashPoints++;
    if (plan.fatal) this.stats.fatalCrashes++;
    // Writes of values over 64 KB (chunked in both layouts, into several chunks past 384 KB) crash
    // at their chunks, as before pages; the other writes of a paged store at its pages.
    const chunky = changes.some((c) => chunkSized(c));
    const pages = ['between-pages', 'after-split', 'before-directory'] as const;
    const point: ChunkCrashPoint = chunky
      ? plan.cut < 0.5
        ? 'between-chunks'
        : 'before-head'
      : pages[Math.min(2, Math.floor(plan.cut * 3))];
    const { fired, error } = await this.chunkCrash!.during(point, () => this.inner.write(scope, changes, bounds, opts));
    if (error !== undefined && !(error instanceof InjectedCrash)) {
      if (!(error instanceof StateConflictError)) {
        this.#failed('write', error);
        throw error;
      }
      this.fenced = true;
    }
    if (fired === 'between-chunks') this.stats.crashesBetweenChunks++;
    else if (fired === 'before-head') this.stats.crashesBeforeHead++;
    else if (fired === 'between-pages') this.stats.crashesBetweenPages++;
    else if (fired === 'after-split') this.stats.crashesAfterSplit++;
    else if (fired === 'before-directory') this.stats.crashesBeforeDirectory++;
    // The value was refused or conflicted before its chunks, or the write ended before the point.
    else if (error === undefined) this.stats.crashesAfterEveryItem++;
    if (plan.fatal) this.crashedFatally = true;
    throw new InjectedCrash(
      `injected crash inside a state write${fired ? ` (${fired})` : ''} (${scope.topic}-${scope.partition}, offsets ${bounds.firstOffset}..${bounds.lastOffset})`,
    );
  }

  /** Writes, then checks that no item whose stored offset was as new or newer was changed. */
  async #probed(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    const before = await snapshot(this.inner, scope, changes);
    try {
      return await this.#write(scope, changes, bounds, opts);
    } finally {
      const after = await snapshot(this.inner, scope, changes);
      for (const c of changes) {
        const id = `${c.namespace}\u0000${c.key}`;
        const b = before.get(id);
        if (!b || b.offset < c.offset) continue;
        const a = after.get(id);
        if (!a || a.offset !== b.offset || !isDeepStrictEqual(recordsOf(c.namespace, a.value), recordsOf(c.namespace, b.value)))
          this.stats.staleOverwrites++;
      }
    }
  }
}

/**
 * What of a stored value the partition's records decide: all of it, but the idle item's arrival
 * `a`, the wall-clock time its batch was applied, which a replay of the same records writes anew.
 */
function recordsOf(namespace: string, value: unknown): unknown {
  if (namespace !== idleNamespace() || value === null || typeof value !== 'object') return value;
  const { a: _arrival, ...rest } = value as { a?: number };
  return rest;
}

/** Whether the DynamoDB store keeps this change's value in chunk items in either layout (over 64 KB of JSON). */
function chunkSized(change: ItemChange): boolean {
  return change.value !== undefined && Buffer.byteLength(JSON.stringify(change.value)) > INLINE_MAX_BYTES;
}

/**
 * The order a crash keeps a prefix of: a real store writes key items in parallel (any subset may
 * land), partition-level items only after every key item, and the idle item last. Sorted first, so the items that land
 * do not depend on the order a store lists keys in.
 *
 * @example
 * const landed = crashOrder(changes, 7).slice(0, k);
 */
export function crashOrder(changes: readonly ItemChange[], seed: number): ItemChange[] {
  const order = new Rng(seed);
  const sorted = [...changes].sort((x, y) => (x.namespace === y.namespace ? (x.key < y.key ? -1 : 1) : x.namespace < y.namespace ? -1 : 1));
  const keyItems = order.shuffle(sorted.filter((c) => !isPartitionNamespace(c.namespace)));
  const partitionItems = order.shuffle(sorted.filter((c) => isPartitionNamespace(c.namespace) && c.namespace !== idleNamespace()));
  return [...keyItems, ...partitionItems, ...sorted.filter((c) => c.namespace === idleNamespace())];
}

async function snapshot(store: StateStore, scope: StateScope, changes: readonly ItemChange[]): Promise<Map<string, StoredItem>> {
  const byNamespace = new Map<string, string[]>();
  for (const c of changes) {
    let keys = byNamespace.get(c.namespace);
    if (!keys) byNamespace.set(c.namespace, (keys = []));
    keys.push(c.key);
  }
  const out = new Map<string, StoredItem>();
  for (const [ns, keys] of byNamespace) {
    for (const [k, item] of await store.read(scope, ns, keys)) out.set(`${ns}\u0000${k}`, item);
  }
  return out;
}

/**
 * A deliberately broken store, to prove the checks can fail: it forgets offsets. Reads return the
 * newest version whatever the batch, reported as never applied, so every replay applies its
 * records again on top of state that already holds them.
 *
 * @example
 * const run = await runWithFaults(workload, records, topic, new ForgetfulStore(new MemoryStore()), { seed: 1 });
 */
export class ForgetfulStore implements StateStore {
  readonly kind = 'forgetful';
  readonly durable = false;
  constructor(readonly inner: StateStore) {}

  async read(scope: StateScope, namespace: string, keys: readonly string[], opts?: StoreCallOptions): Promise<Map<string, StoredItem>> {
    // The newest version whatever the batch, and no offset: a replay applies its records again.
    const found = await this.inner.read(scope, namespace, keys, { ...opts, before: undefined });
    return new Map([...found].map(([k, item]) => [k, { ...item, offset: -1 }]));
  }

  async write(scope: StateScope, changes: readonly ItemChange[], bounds: BatchBounds, opts?: StoreCallOptions): Promise<WriteStats> {
    return this.inner.write(scope, changes, bounds, opts);
  }

  async keys(scope: StateScope, namespace: string): Promise<string[]> {
    return this.inner.keys!(scope, namespace);
  }
}

// ---------- workloads ----------

/** Steps of the harness's own workloads call this; the driver makes chosen records fail once. */
export const stepFaults = { failing: new Set<string>(), hits: 0 };

/**
 * A step body that throws once for each record the driver listed in {@link stepFaults}.
 *
 * @example
 * stream('t').update((_, ctx) => flaky(ctx));
 */
export function flaky(ctx: { partition: number; offset: number }): void {
  if (stepFaults.failing.delete(`${ctx.partition}:${ctx.offset}`)) {
    stepFaults.hits++;
    throw new Error(`injected step failure at partition ${ctx.partition}, offset ${ctx.offset}`);
  }
}

/** A function to run under faults, with the records it runs on. */
export interface Workload {
  readonly name: string;
  readonly definition: Definition;
  /** The input records (with partitions) for a seed: the example's sample data plus seeded data. */
  records(seed: number): InputRecord[];
}

/** Event time (epoch ms) the examples' sample data starts at. @example const ts = SAMPLE_START + 5_000; */
export const SAMPLE_START = 1_767_225_600_000;

function sample(name: string): InputRecord[] {
  const url = new URL(`../../functions/${name}/sample.jsonl`, import.meta.url);
  return readFileSync(url, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as InputRecord);
}

/** Kafka's default partitioner in spirit: the key decides the partition. */
function partitionOf(key: string, partitions: number): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
  return Math.abs(h) % partitions;
}

/**
 * Readings from steady keys and from keys that send a short burst and then go quiet (their
 * windows close only by the partition clock or at the end), with out-of-order timestamps.
 */
function readings(
  rng: Rng,
  n: number,
  from: number,
  make: (key: string, rng: Rng) => unknown,
  opts: { stepMs: number; jitterMs: number; keys: number },
): InputRecord[] {
  const out: InputRecord[] = [];
  const steady = Array.from({ length: opts.keys }, (_, i) => `k${i + 1}`);
  let burst: { key: string; left: number } | undefined;
  for (let i = 0; i < n; i++) {
    if (!burst && rng.chance(0.04)) burst = { key: `quiet-${i}`, left: rng.int(1, 4) };
    let key: string;
    if (burst && rng.chance(0.5)) {
      key = burst.key;
      if (--burst.left === 0) burst = undefined;
    } else key = rng.pick(steady);
    const ts = Math.max(0, from + i * opts.stepMs - rng.int(0, opts.jitterMs));
    out.push({ key, value: make(key, rng), timestamp: ts, partition: partitionOf(key, 2) });
  }
  return out;
}

const runningTotal = keyedState<number>('total');
/** Every note a user sent: the busy user's grows to ~420 KB, chunked on DynamoDB. */
const notesSoFar = keyedState<string[]>('notes');

/** Characters of the big workload's notes: multi-byte ones too, so chunk boundaries cut characters. */
const NOTE_ALPHABET = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;-', 'é', 'ß', '€', '→', '😀'];

/** A note of about `chars` characters (1 to 4 UTF-8 bytes each, mostly 1), different for every draw. */
function note(rng: Rng, prefix: string, chars: number): string {
  const parts: string[] = [prefix];
  for (let i = 0; i < chars; i++) parts.push(rng.chance(0.9) ? NOTE_ALPHABET[rng.int(0, 66)] : rng.pick(NOTE_ALPHABET));
  return parts.join('');
}

/**
 * Records of the big-state workload: a busy user sends 44 notes of ~9.5 KB (three sessions of
 * ~140 KB; every note ~420 KB, two chunks from the 40th), three others short notes with sessions
 * that end; arrival roughly in event time. Small enough to keep the suite fast.
 */
function bigNotes(seed: number): InputRecord[] {
  const rng = new Rng(seed);
  const out: InputRecord[] = [];
  let busyAt = SAMPLE_START + 360_000;
  for (let i = 0; i < 44; i++) {
    busyAt += i === 15 || i === 30 ? 60_000 : rng.int(200, 2_000);
    out.push({
      key: 'busy',
      value: { user: 'busy', note: note(rng, `busy#${i}:`, 9_400) },
      timestamp: busyAt,
      partition: partitionOf('busy', 2),
    });
  }
  const users = ['u1', 'u2', 'u3'];
  const clock = new Map(users.map((u) => [u, SAMPLE_START + 360_000 + rng.int(0, 20_000)]));
  for (let i = 0; i < 30; i++) {
    const user = rng.pick(users);
    const t = clock.get(user)! + (rng.chance(0.25) ? rng.int(31_000, 60_000) : rng.int(500, 10_000));
    clock.set(user, t);
    out.push({ key: user, value: { user, note: note(rng, `${user}#${i}:`, 200) }, timestamp: t, partition: partitionOf(user, 2) });
  }
  return out.sort((a, b) => a.timestamp + rng.int(0, 4_000) - b.timestamp);
}

/**
 * The example workloads (their own definitions and sample data, plus seeded data) and four of the
 * harness's own: keyed state (a running total per key, emitted with every record), tumbling
 * and session windows closed by the partition clock (keys that go quiet are closed by it), and
 * large state (values over 64 KB, chunked on DynamoDB). These four also have a step the driver can
 * make fail.
 */
export const workloads = {
  sensorSums: {
    name: 'sensor-sums',
    definition: SensorSums,
    records: (seed) => {
      const rng = new Rng(seed);
      const end = SAMPLE_START + 60_000;
      return [
        ...sample('sensor-sums'),
        ...readings(rng, 140, end, () => ({ value: rng.int(0, 9) }), { stepMs: 300, jitterMs: 3_000, keys: 4 }),
      ];
    },
  },
  speedAverage: {
    name: 'speed-average',
    definition: SpeedAverage,
    records: (seed) => {
      const rng = new Rng(seed);
      const base = sample('speed-average').map((r) => ({ ...r, partition: partitionOf(String(r.key), 2) }));
      return [
        ...base,
        ...readings(rng, 120, SAMPLE_START + 120_000, (key) => ({ vehicle: key, speed: Math.round(rng.next() * 400) / 10 }), {
          stepMs: 700,
          jitterMs: 2_500,
          keys: 3,
        }),
      ];
    },
  },
  sessions: {
    name: 'sessions',
    definition: clickSessions,
    records: (seed) => {
      const rng = new Rng(seed);
      const base = sample('sessions').map((r) => ({ ...r, partition: partitionOf(String(r.key), 2) }));
      const users = ['u1', 'u2', 'u3', 'u4', 'u5'];
      const clock = new Map(users.map((u) => [u, SAMPLE_START + 240_000 + rng.int(0, 20_000)]));
      const clicks: InputRecord[] = [];
      for (let i = 0; i < 120; i++) {
        const user = rng.pick(users);
        // Mostly inside the 30 s gap, sometimes past it: sessions end, merge and start.
        const t = clock.get(user)! + (rng.chance(0.2) ? rng.int(31_000, 90_000) : rng.int(500, 25_000));
        clock.set(user, t);
        clicks.push({
          key: user,
          value: { user, page: rng.pick(['/', '/docs', '/pricing', '/signup']) },
          timestamp: t,
          partition: partitionOf(user, 2),
        });
      }
      // Arrival order is roughly, not exactly, event time.
      clicks.sort((a, b) => a.timestamp + rng.int(0, 8_000) - b.timestamp);
      return [...base, ...clicks];
    },
  },
  runningTotals: {
    name: 'running-totals',
    definition: stream<{ value: number }>('meter-readings', { name: 'RunningTotals', state: [runningTotal] })
      .update((_, ctx) => flaky(ctx), { name: 'flaky' })
      .map(
        (r) => {
          const total = (runningTotal.get() ?? 0) + r.value;
          runningTotal.set(total);
          return { total };
        },
        { name: 'accumulate' },
      )
      .to('meter-totals'),
    records: (seed) => {
      const rng = new Rng(seed);
      return readings(rng, 220, SAMPLE_START, () => ({ value: rng.int(1, 9) }), { stepMs: 200, jitterMs: 0, keys: 6 });
    },
  },
  partitionSums: {
    name: 'partition-sums',
    definition: stream<{ value: number }>('meter-readings', { name: 'PartitionSums' })
      .update((_, ctx) => flaky(ctx), { name: 'flaky' })
      .tumblingWindow('5s', { grace: '1s', closeBy: 'partition' })
      .aggregate({ total: sum('value'), n: count(), avg: mean('value') }, { name: 'sums' })
      .to('meter-sums'),
    records: (seed) => {
      const rng = new Rng(seed);
      return readings(rng, 240, SAMPLE_START, () => ({ value: rng.int(0, 9) }), { stepMs: 150, jitterMs: 1_500, keys: 4 });
    },
  },
  partitionSessions: {
    name: 'partition-sessions',
    definition: stream<{ value: number }>('meter-readings', { name: 'PartitionSessions' })
      .update((_, ctx) => flaky(ctx), { name: 'flaky' })
      .sessionWindow('2s', { grace: '500ms', closeBy: 'partition' })
      .aggregate({ total: sum('value'), n: count() }, { name: 'bursts' })
      .to('meter-bursts'),
    records: (seed) => {
      const rng = new Rng(seed);
      return readings(rng, 200, SAMPLE_START, () => ({ value: rng.int(0, 9) }), { stepMs: 250, jitterMs: 600, keys: 5 });
    },
  },
  /**
   * Large state (issue 11): keyed state holding every note of a user, and sessions that collect
   * them; the busy user's values grow to ~420 KB and ~140 KB, so the DynamoDB store keeps them
   * in chunk items (one, then two, per version).
   */
  bigState: {
    name: 'big-state',
    definition: stream<{ user: string; note: string }>('notes', { name: 'BigState', state: [notesSoFar] })
      .update((_, ctx) => flaky(ctx), { name: 'flaky' })
      .map(
        (r) => {
          const notes = [...(notesSoFar.get() ?? []), r.note];
          notesSoFar.set(notes);
          return { ...r, sent: notes.length };
        },
        { name: 'remember' },
      )
      .sessionWindow('30s', { grace: '5s' })
      .aggregate({ n: count(), notes: collect((r: { note: string }) => r.note), sent: max('sent') }, { name: 'session' })
      .to('note-sessions'),
    records: bigNotes,
  },
} satisfies Record<string, Workload>;

// ---------- runs ----------

/** What one run (reference or faulted) left behind. */
export interface Run {
  readonly topic: string;
  readonly partitions: readonly number[];
  /** Messages handed to the sink before the end of the input, in order, duplicates included. */
  readonly emitted: OutputMessage[];
  /** Messages handed to the sink by the final flush (closing every open window). */
  readonly flushed: OutputMessage[];
  readonly deadLetters: DeadLetter[];
  /** The store holding the run's state (read it through {@link readState}). */
  readonly store: StateStore;
  /** State at the end of the input, before the flush, and after it. */
  readonly stateAtEnd: StateSnapshot;
  readonly stateAfterFlush: StateSnapshot;
  /** Invocations that reported, and input records of theirs counted in no outcome (must be 0). */
  readonly batches: number;
  readonly unaccounted: number;
}

/** Stored values with a value (no tombstones), by `partition/namespace`, then key. */
export type StateSnapshot = Record<string, Record<string, unknown>>;

/** The records of each partition as Lambda delivers them: offsets 0, 1, … per partition. */
export function partitionLogs(records: readonly InputRecord[], topic: string): Map<number, KafkaEventRecord[]> {
  const logs = new Map<number, KafkaEventRecord[]>();
  for (const r of records) {
    const p = r.partition ?? 0;
    let log = logs.get(p);
    if (!log) logs.set(p, (log = []));
    log.push(toEventRecord(r, topic, p, log.length));
  }
  return new Map([...logs].sort(([a], [b]) => a - b));
}

/**
 * The MSK event Lambda's event source mapping would send for these partition batches.
 *
 * @example
 * await handler(kafkaEvent('readings', new Map([[0, log.slice(0, 10)]])), context);
 */
export function kafkaEvent(topic: string, batches: ReadonlyMap<number, readonly KafkaEventRecord[]>): KafkaEvent {
  return {
    eventSource: 'aws:kafka',
    eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/sluice-faults/00000000-0000-0000-0000-000000000000-1',
    bootstrapServers: 'b-1.sluice-faults.kafka.us-east-1.amazonaws.com:9098',
    records: Object.fromEntries([...batches].map(([p, rs]) => [`${topic}-${p}`, rs])),
  };
}

/** Namespaces a function keeps state in: its keyed state and its windows (and their partition items). */
export function namespacesOf(manifest: Manifest): string[] {
  const windows = new PartitionRunner(manifest, new MemoryStore()).windows;
  return [
    ...manifest.state.map((s) => keyedNamespace(s.name)),
    ...windows.flatMap((w) => (w.byPartition ? [w.namespace, w.partitionNamespace] : [w.namespace])),
  ];
}

/** Every stored value of a function's state in the given partitions, read back from the store. */
export async function readState(
  store: StateStore,
  manifest: Manifest,
  topic: string,
  partitions: readonly number[],
): Promise<StateSnapshot> {
  const out: StateSnapshot = {};
  for (const partition of partitions) {
    const scope: StateScope = { functionName: manifest.name, topic, partition };
    for (const ns of namespacesOf(manifest)) {
      const keys = (await store.keys!(scope, ns)).sort();
      const items = await store.read(scope, ns, keys);
      const table: Record<string, unknown> = {};
      for (const k of keys) {
        const item = items.get(k);
        if (item && item.value !== undefined) table[k] = item.value;
      }
      out[`${partition}/${ns}`] = table;
    }
  }
  return out;
}

class Capture {
  readonly messages: OutputMessage[] = [];
  readonly deadLetters: DeadLetter[] = [];
  /** With a value in [0, 1]: the next send hands over that share of its messages, then fails. */
  failNext: number | undefined;
  onFailure: (() => void) | undefined;
  /** While true the broker is unavailable: every send hands over `outageCut` of its messages, then fails. */
  outage = false;
  outageCut = 0;
  onOutageFailure: (() => void) | undefined;
  /** Set by any failed send; the driver clears it before each invocation. */
  sendFailed = false;

  readonly sink = {
    send: async (messages: readonly OutputMessage[]) => {
      const cut = this.outage ? this.outageCut : this.failNext;
      this.failNext = undefined;
      if (cut === undefined) {
        this.messages.push(...messages);
        return;
      }
      this.messages.push(...messages.slice(0, Math.floor(cut * (messages.length + 1))));
      this.sendFailed = true;
      if (this.outage) {
        this.onOutageFailure?.();
        throw brokerUnavailable(cut);
      }
      this.onFailure?.();
      throw new Error('injected output failure: the producer lost its connection');
    },
  };

  readonly letters = {
    send: async (letters: readonly DeadLetter[]) => {
      if (this.outage) {
        // The dead-letter topic is on the same cluster.
        this.sendFailed = true;
        this.onOutageFailure?.();
        throw brokerUnavailable(0);
      }
      this.deadLetters.push(...letters);
    },
  };

  /** Invocations that reported (`onBatch`), and their records in no outcome (must be 0). */
  batches = 0;
  unaccounted = 0;
}

/**
 * What kafkajs throws when the broker is unavailable: a connection error, or (after its own
 * retries) KafkaJSNumberOfRetriesExceeded with the connection error as its cause.
 */
function brokerUnavailable(share: number): Error {
  const connection = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), {
    name: 'KafkaJSConnectionError',
    retriable: true,
    broker: '127.0.0.1:9092',
    code: 'ECONNREFUSED',
  });
  if (share < 0.5) return connection;
  return Object.assign(new Error(connection.message, { cause: connection }), {
    name: 'KafkaJSNumberOfRetriesExceeded',
    retriable: false,
    retryCount: 5,
    retryTime: 3_000,
  });
}

/** Whether the handler threw for a reason the harness injected (a failed send). */
function injectedSendFailure(e: unknown): boolean {
  const name = (e as Error)?.name;
  return (
    name === 'KafkaJSConnectionError' || name === 'KafkaJSNumberOfRetriesExceeded' || /^injected output failure/.test((e as Error)?.message)
  );
}

/** A logger that drops everything. @example handler.sluice.configure({ logger: silentLogger }); */
export const silentLogger: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined };

/** A handler on `store`; with `cut`, its sends stop there too (a timed-out invocation's container). */
function handlerFor(definition: Definition, store: StateStore, capture: Capture, cut?: CutPlan): SluiceHandler {
  const handler = sluice(definition);
  const handOff = async () => {
    if (cut?.point === 'before-outputs') await cut.freeze.stop();
    else await cut?.freeze.pass();
  };
  // Thousands of injected failures would drown the output: the suite reads its results, not logs.
  handler.sluice.configure({
    store,
    sink: cut
      ? {
          send: async (messages) => {
            await handOff();
            return capture.sink.send(messages);
          },
        }
      : capture.sink,
    deadLetters: cut
      ? {
          send: async (letters) => {
            await handOff();
            return capture.letters.send(letters);
          },
        }
      : capture.letters,
    logger: silentLogger,
    onBatch: (report) => {
      capture.batches++;
      capture.unaccounted += unaccounted(report.stats);
    },
  });
  return handler;
}

/**
 * The reference: every record through the handler once, no faults, no replays, one batch size
 * per partition, in-memory state; then a flush that closes every open window.
 *
 * @example
 * const reference = await runReference(workloads.sessions, records, 'clicks.s1');
 */
export async function runReference(workload: Workload, records: readonly InputRecord[], topic: string, batchSize = 100): Promise<Run> {
  const store = new MemoryStore();
  const capture = new Capture();
  const handler = handlerFor(workload.definition, store, capture);
  const logs = partitionLogs(records, topic);
  const longest = Math.max(...[...logs.values()].map((l) => l.length));
  for (let at = 0; at < longest; at += batchSize) {
    const batches = new Map<number, KafkaEventRecord[]>();
    for (const [p, log] of logs) if (at < log.length) batches.set(p, log.slice(at, at + batchSize));
    const response = await handler(kafkaEvent(topic, batches), lambdaContext(workload.name) as never);
    if (response.batchItemFailures.length > 0) throw new Error(`the reference run of ${workload.name} failed: ${JSON.stringify(response)}`);
  }
  const manifest = handler.sluice.manifest;
  const partitions = [...logs.keys()];
  const stateAtEnd = await readState(store, manifest, topic, partitions);
  const emitted = capture.messages.splice(0);
  for (const [p, log] of logs) await handler.sluice.flush(topic, p, log.length - 1);
  return {
    topic,
    partitions,
    emitted,
    flushed: capture.messages,
    deadLetters: capture.deadLetters,
    batches: capture.batches,
    unaccounted: capture.unaccounted,
    store,
    stateAtEnd,
    stateAfterFlush: await readState(store, manifest, topic, partitions),
  };
}

/** How often each fault happens; the defaults give a few crashes per partition batch retried. */
export interface FaultOptions {
  readonly seed: number;
  /** Largest batch per partition (sizes are drawn from 1 to this). */
  readonly maxBatch?: number;
  /** Chance that a partition's state write in an invocation crashes. */
  readonly crashChance?: number;
  /** Share of crashes that kill the whole invocation (the rest are caught by the handler). */
  readonly fatalShare?: number;
  readonly sinkFailChance?: number;
  /** Chance, per partition batch, that one of its records fails in a step (workloads with a flaky step). */
  readonly stepFailChance?: number;
  /** Chance, before an invocation, of starting a stale one. */
  readonly staleChance?: number;
  /**
   * The throttle between the store and its client (or around the MemoryStore), if the store was
   * built with one; storms then start with `stormChance` per invocation and last 1 or 2.
   */
  readonly throttle?: Throttle;
  readonly stormChance?: number;
  /** The crash inside chunked writes the DynamoDB store's client was built with: half the crashes of writes of large values hit there. */
  readonly chunkCrash?: ChunkCrash;
  /** Chance, per invocation, that the broker becomes unavailable for the next 1 to 3 invocations. */
  readonly outageChance?: number;
  /** Chance that an invocation is cut off by its timeout. */
  readonly timeoutChance?: number;
  /** Wraps the store the live invocations use (the broken-store check). */
  readonly wrap?: (store: StateStore) => StateStore;
  /** Called after each invocation, for progress. */
  readonly onInvocation?: (stats: FaultStats) => void;
}

type StaleVariant = 'late-commit' | 'late-start' | 'interleaved';

interface Stale {
  readonly variant: StaleVariant;
  readonly partition: number;
  readonly gate: Hold;
  readonly done: Promise<void>;
  /** Live invocations to run before it is let go. */
  wait: number;
  released: boolean;
}

/**
 * Runs a workload's records through the real handler under faults (see the module comment),
 * on `store` (fresh, or shared with other topics), until every partition's records are committed;
 * then flushes every open window, retrying crashed flushes.
 *
 * @example
 * const run = await runWithFaults(workloads.runningTotals, records, 'meter-readings.s3', new MemoryStore(), { seed: 3 });
 * run.stats.crashPoints; // > 0
 */
export async function runWithFaults(
  workload: Workload,
  records: readonly InputRecord[],
  topic: string,
  store: StateStore,
  opts: FaultOptions,
): Promise<Run & { stats: FaultStats }> {
  const rng = new Rng(opts.seed);
  // Workloads of a round share a seed: the name makes their storms, outages and timeouts differ.
  const extra = new Rng(opts.seed ^ partitionOf(workload.name, 2 ** 30));
  const maxBatch = opts.maxBatch ?? 24;
  const crashChance = opts.crashChance ?? 0.3;
  const fatalShare = opts.fatalShare ?? 0.4;
  const sinkFailChance = opts.sinkFailChance ?? 0.05;
  const stepFailChance = opts.stepFailChance ?? 0.08;
  const staleChance = opts.staleChance ?? 0.12;
  const stormChance = opts.throttle ? (opts.stormChance ?? 0.015) : 0;
  const outageChance = opts.outageChance ?? 0.025;
  const timeoutChance = opts.timeoutChance ?? 0.05;
  const throttle = opts.throttle;
  throttle?.reseed(opts.seed);
  const throttledBefore = throttle?.throttledCalls ?? 0;
  const chunkedBefore = opts.chunkCrash?.chunkedValues ?? 0;
  const splitsBefore = opts.chunkCrash?.pageSplits ?? 0;

  const stats = emptyStats();
  const capture = new Capture();
  capture.onFailure = () => stats.sinkFailures++;
  capture.onOutageFailure = () => stats.produceFailures++;
  const shared = opts.wrap ? opts.wrap(store) : store;
  const live = new FaultyStore(shared, stats);
  live.throttle = throttle;
  live.chunkCrash = opts.chunkCrash;
  live.paged = store instanceof DynamoDBStore && store.layout === 'pages';
  live.beforeCommit = () => {
    if (capture.sendFailed) stats.commitsAfterFailedSend++;
  };
  const staleStore = new FaultyStore(shared, stats);
  staleStore.probe = !opts.wrap;
  staleStore.throttle = throttle;
  const handler = handlerFor(workload.definition, live, capture);
  // Another container: its own handler instance on the same table.
  const staleHandler = handlerFor(workload.definition, staleStore, capture);
  const { manifest } = loadDefinition(workload.definition);

  const logs = partitionLogs(records, topic);
  const partitions = [...logs.keys()];
  const pos = new Map(partitions.map((p) => [p, 0]));
  const delivered = new Map(partitions.map((p) => [p, 0]));
  /** Positions each partition was committed up to: where stale invocations may have started. */
  const history = new Map(partitions.map((p) => [p, [0]]));
  const remaining = () => partitions.filter((p) => pos.get(p)! < logs.get(p)!.length);
  let stale: Stale | undefined;
  /** Timed-out invocations that will resume, and after how many more live invocations. */
  const frozen: { cut: CutPlan; done: Promise<void>; wait: number }[] = [];
  let storm = { left: 0, share: 0 };
  let outageLeft = 0;

  const unexpected = (where: string, e: unknown) => {
    stats.unexpectedErrors.push(`${where}: ${(e as Error)?.stack ?? String(e)}`);
  };

  const startStale = async (): Promise<void> => {
    const open = remaining();
    if (open.length === 0) return;
    const partition = rng.pick(open);
    const variant = rng.pick<StaleVariant>(['late-commit', 'late-start', 'interleaved']);
    const log = logs.get(partition)!;
    // A timed-out invocation started where its partition then stood: the current position, or
    // (read late) an earlier one.
    const starts = history.get(partition)!.filter((s) => s < log.length);
    const start = variant === 'late-start' ? rng.pick(starts) : pos.get(partition)!;
    // Sometimes reaching past what the live side commits before it lets go (those writes are
    // legitimately new), mostly not (those must be fenced).
    const batch = log.slice(start, start + rng.int(1, rng.chance(0.25) ? maxBatch * 2 : maxBatch));
    const gate = new Hold();
    staleStore.hold = { on: variant === 'late-start' ? 'read' : 'write', gate };
    staleStore.fenced = false;
    stats.staleInvocations++;
    const done = staleHandler(kafkaEvent(topic, new Map([[partition, batch]])), lambdaContext(workload.name) as never).then(
      (response) => {
        if (staleStore.fenced) stats.staleFenced++;
        for (const f of response.batchItemFailures) {
          if (!staleStore.fenced) unexpected('stale invocation', new Error(`failed without being fenced: ${JSON.stringify(f)}`));
        }
      },
      (e) => unexpected('stale invocation', e),
    );
    // Wait until it holds (it has read its state, or is about to), or has nothing to write.
    await Promise.race([gate.arrived, done]);
    stale = { variant, partition, gate, done, wait: variant === 'interleaved' ? 0 : rng.int(1, 4), released: false };
  };

  /**
   * A live invocation that its timeout cuts off: it runs in a container of its own (Lambda starts
   * the retry elsewhere) and stops at its cut point. If it finishes before reaching it, it did not
   * time out and answers as any invocation. Otherwise it is gone for good, or resumes later.
   */
  const runCut = async (
    cut: CutPlan,
    batches: ReadonlyMap<number, readonly KafkaEventRecord[]>,
    resume: number,
    wait: number,
  ): Promise<{ response?: KafkaBatchResponse; threw?: unknown; timedOut: boolean }> => {
    const store = new FaultyStore(shared, stats);
    store.probe = !opts.wrap;
    store.throttle = throttle;
    store.cutPlan = cut;
    store.beforeCommit = live.beforeCommit;
    const doomed = handlerFor(workload.definition, store, capture, cut);
    type Outcome = { response?: KafkaBatchResponse; threw?: unknown; timedOut: boolean };
    const done: Promise<Outcome> = doomed(kafkaEvent(topic, batches), lambdaContext(workload.name) as never).then(
      (response) => ({ response, timedOut: false }),
      (threw: unknown) => ({ threw, timedOut: false }),
    );
    const first = await Promise.race([cut.freeze.arrived.then(() => undefined), done]);
    // It read where its partitions were committed: it must have found its state.
    if (store.readRefused) unexpected('timed-out invocation', new Error('a live batch was refused its state as stale'));
    if (first) return first;
    stats.timeouts++;
    if (cut.point === 'before-outputs') stats.timeoutsBeforeOutputs++;
    else if (cut.point === 'before-commit') stats.timeoutsBeforeCommit++;
    else stats.timeoutsMidCommit++;
    if (resume < 0.5) {
      frozen.push({
        cut,
        wait: Math.floor(wait * 4),
        done: done.then((outcome) => {
          if (outcome.threw !== undefined && !injectedSendFailure(outcome.threw)) unexpected('resumed timed-out invocation', outcome.threw);
        }),
      });
    } else {
      // Gone for good: it ends now, having done nothing after its cut point.
      cut.freeze.kill();
      const outcome = await done;
      if (outcome.threw !== undefined && !(outcome.threw instanceof Killed)) unexpected('killed timed-out invocation', outcome.threw);
    }
    return { timedOut: true };
  };

  /** Resumes the timed-out invocations whose time has come (all of them with `all`), one by one. */
  const resumeFrozen = async (all: boolean): Promise<void> => {
    for (const f of [...frozen]) {
      if (!all && f.wait-- > 0) continue;
      frozen.splice(frozen.indexOf(f), 1);
      stats.timeoutsResumed++;
      f.cut.freeze.open();
      await f.done;
    }
  };

  const releaseStale = async (): Promise<void> => {
    const s = stale;
    if (!s) return;
    stale = undefined;
    s.released = true;
    s.gate.open();
    await s.done;
    staleStore.hold = undefined;
  };

  const invoke = async (): Promise<void> => {
    const open = remaining();
    const chosen = open.filter(() => rng.chance(0.7));
    if (chosen.length === 0) chosen.push(rng.pick(open));
    const batches = new Map<number, KafkaEventRecord[]>();
    // The issue 11 classes draw from their own generator, the same number of values every time,
    // so the other faults of a seed stay what they were.
    const draw = Array.from({ length: 12 }, () => extra.next());
    const cut =
      draw[0] < timeoutChance
        ? timeoutCut(
            (['before-outputs', 'before-commit', 'mid-commit'] as const)[Math.floor(draw[1] * 3)],
            draw[2],
            Math.floor(draw[3] * 2 ** 31),
          )
        : undefined;
    for (const p of chosen) {
      const at = pos.get(p)!;
      const batch = logs.get(p)!.slice(at, at + rng.int(1, maxBatch));
      batches.set(p, batch);
      if (at < delivered.get(p)!) stats.replays++;
      delivered.set(p, Math.max(delivered.get(p)!, at + batch.length));
      if (rng.chance(crashChance)) live.plans.set(p, { cut: rng.next(), order: rng.int(0, 2 ** 31), fatal: rng.chance(fatalShare) });
      if (rng.chance(stepFailChance)) stepFaults.failing.add(`${p}:${rng.pick(batch).offset}`);
    }
    if ([...live.plans.values()].some((plan) => plan.fatal)) {
      // The process dies while the partitions commit in parallel: each other one may be cut too.
      for (const p of batches.keys()) {
        if (!live.plans.has(p) && rng.chance(0.5)) live.plans.set(p, { cut: rng.next(), order: rng.int(0, 2 ** 31), fatal: true });
      }
    }
    if (rng.chance(sinkFailChance)) capture.failNext = rng.next();
    if (cut) {
      // Its timeout is this invocation's fault.
      live.plans.clear();
      capture.failNext = undefined;
    }
    if (outageLeft === 0 && draw[4] < outageChance) {
      outageLeft = 1 + Math.floor(draw[5] * 3);
      stats.outages++;
    }
    capture.outage = outageLeft > 0;
    capture.outageCut = draw[6] < 0.5 ? 0 : draw[7];
    capture.sendFailed = false;
    if (storm.left === 0 && draw[8] < stormChance) {
      storm = { left: 1 + Math.floor(draw[9] * 2), share: [0.3, 0.3, 0.5, 0.9][Math.floor(draw[10] * 4)] };
      stats.storms++;
    }
    if (throttle) throttle.share = storm.left > 0 ? storm.share : 0;
    // In a storm, a short invocation timeout: the deadline (1 s before it) sometimes runs out.
    // (A timed-out invocation is not throttled: its cut point, not its deadline, ends it.)
    const context = lambdaContext(workload.name, storm.left > 0 && !cut ? 1_020 + Math.floor(draw[11] * 80) : undefined);
    const s = stale;
    if (!cut && s?.variant === 'interleaved' && batches.has(s.partition)) {
      // Both have read the same state; the stale one writes first, in the middle of this one.
      live.beforeWrite = { partition: s.partition, run: releaseStale };
    }
    stats.invocations++;
    const hitsBefore = stepFaults.hits;
    let response: KafkaBatchResponse | undefined;
    let threw: unknown;
    let timedOut = false;
    if (cut) ({ response, threw, timedOut } = await runCut(cut, batches, draw[2], draw[3]));
    else {
      try {
        const event = kafkaEvent(topic, batches);
        response = await (throttle ? throttle.during(() => handler(event, context as never)) : handler(event, context as never));
      } catch (e) {
        threw = e;
      }
    }
    if (throttle) throttle.share = 0;
    if (storm.left > 0) storm.left--;
    if (outageLeft > 0) outageLeft--;
    capture.outage = false;
    stats.stepFailures += stepFaults.hits - hitsBefore;
    stepFaults.failing.clear();
    live.plans.clear();
    live.beforeWrite = undefined;
    capture.failNext = undefined;
    if (live.fenced) stats.liveConflicts++;
    // A live batch starts where its partition was committed: it must always find its state.
    if (live.readRefused) unexpected('live invocation', new Error('a live batch was refused its state as stale'));
    live.fenced = false;
    live.readRefused = false;
    const fatal = live.crashedFatally;
    live.crashedFatally = false;
    if (threw !== undefined && !injectedSendFailure(threw)) unexpected('live invocation', threw);
    if (fatal || timedOut || threw !== undefined || !response) return; // Lambda retries the whole event.
    for (const [p, batch] of batches) {
      const failure = response.batchItemFailures.find((f) => f.itemIdentifier.partition === `${topic}-${p}`);
      const at = failure ? batch.findIndex((r) => r.offset === failure.itemIdentifier.offset) : batch.length;
      if (at < 0) {
        unexpected(
          'live invocation',
          new Error(
            `a partial batch response names offset ${failure!.itemIdentifier.offset}, outside the batch ${batch[0].offset}..${batch.at(-1)!.offset}`,
          ),
        );
        continue;
      }
      if (at > 0) {
        pos.set(p, pos.get(p)! + at);
        history.get(p)!.push(pos.get(p)!);
      }
    }
  };

  // A partition that fails for a reason the harness did not inject stays stuck, as under Lambda:
  // give up on it after a while; its results then count as lost.
  const stallLimit = 200;
  let progress = 0;
  let sinceProgress = 0;
  while (remaining().length > 0) {
    if (sinceProgress > stallLimit) {
      stats.unexpectedErrors.push(`stalled: no partition advanced in ${stallLimit} invocations (positions ${JSON.stringify([...pos])})`);
      break;
    }
    if (!stale && rng.chance(staleChance)) await startStale();
    await invoke();
    if (stale && !stale.released && stale.wait-- <= 0) await releaseStale();
    await resumeFrozen(false);
    const now = [...pos.values()].reduce((a, b) => a + b, 0);
    sinceProgress = now > progress ? 0 : sinceProgress + 1;
    progress = now;
    opts.onInvocation?.(stats);
  }
  await releaseStale();
  await resumeFrozen(true);
  stats.throttledCalls = (throttle?.throttledCalls ?? 0) - throttledBefore;
  stats.chunkedValues = (opts.chunkCrash?.chunkedValues ?? 0) - chunkedBefore;
  stats.pageSplits = (opts.chunkCrash?.pageSplits ?? 0) - splitsBefore;

  const stateAtEnd = await readState(store, manifest, topic, partitions);
  const emitted = capture.messages.splice(0);
  // The end of the input: close every open window, retrying a flush that crashed.
  for (const [p, log] of logs) {
    for (let attempt = 0; ; attempt++) {
      if (rng.chance(crashChance)) live.plans.set(p, { cut: rng.next(), order: rng.int(0, 2 ** 31), fatal: true });
      try {
        await handler.sluice.flush(topic, p, log.length - 1);
        break;
      } catch (e) {
        if (!(e instanceof InjectedCrash) || attempt > 50) {
          unexpected(`flush of partition ${p}`, e);
          break;
        }
        stats.replays++;
      } finally {
        live.plans.clear();
        live.crashedFatally = false;
      }
    }
  }
  return {
    topic,
    partitions,
    emitted,
    flushed: capture.messages,
    deadLetters: capture.deadLetters,
    batches: capture.batches,
    unaccounted: capture.unaccounted,
    store,
    stats,
    stateAtEnd,
    stateAfterFlush: await readState(store, manifest, topic, partitions),
  };
}

// ---------- checks ----------

/** How a faulted run compares with the reference. `lost` and `appliedTwice` must be 0. */
export interface Verdict {
  /** Reference results never emitted under faults (or only at the final flush, having been due before). */
  lost: number;
  /** Of `lost`: results due before the end of the input that only the final flush emitted. */
  lostUntilFlush: number;
  /** Emitted messages whose value differs from the reference's for the same id, plus ids the reference never emitted. */
  valueDiffs: number;
  /** Stored items whose value differs from the reference's (missing or extra included), at the end of the input and after the flush. */
  stateDiffs: number;
  /** `valueDiffs + stateDiffs`. */
  appliedTwice: number;
  /** Messages emitted beyond the first per id. */
  duplicateEmits: number;
  /** Distinct results the reference emitted. */
  results: number;
  /** A few examples of each kind of difference, for the report. */
  examples: string[];
}

function byId(messages: readonly OutputMessage[]): Map<string, OutputMessage> {
  const out = new Map<string, OutputMessage>();
  for (const m of messages) if (!out.has(m.id)) out.set(m.id, m);
  return out;
}

function same(a: OutputMessage, b: OutputMessage): boolean {
  return a.topic === b.topic && a.key === b.key && a.timestamp === b.timestamp && isDeepStrictEqual(a.value, b.value);
}

function stateDiffs(reference: StateSnapshot, actual: StateSnapshot, label: string, examples: string[]): number {
  let n = 0;
  for (const table of new Set([...Object.keys(reference), ...Object.keys(actual)])) {
    const ref = reference[table] ?? {};
    const got = actual[table] ?? {};
    for (const key of new Set([...Object.keys(ref), ...Object.keys(got)])) {
      if (isDeepStrictEqual(ref[key], got[key])) continue;
      n++;
      if (examples.length < 12)
        examples.push(`state ${label} ${table} "${key}": expected ${JSON.stringify(ref[key])}, got ${JSON.stringify(got[key])}`);
    }
  }
  return n;
}

/**
 * Compares a faulted run with the reference: results lost, results and state that differ, and
 * duplicate emits (expected under retries, each carrying the same id).
 *
 * @example
 * const { lost, appliedTwice } = compare(reference, run); // both 0
 */
export function compare(reference: Run, run: Run): Verdict {
  const examples: string[] = [];
  const refEarly = byId(reference.emitted);
  const refAll = byId([...reference.emitted, ...reference.flushed]);
  const gotEarly = byId(run.emitted);
  const all = [...run.emitted, ...run.flushed];
  const gotAll = byId(all);

  let lost = 0;
  let lostUntilFlush = 0;
  for (const [id, m] of refAll) {
    if (refEarly.has(id) ? gotEarly.has(id) : gotAll.has(id)) continue;
    lost++;
    if (gotAll.has(id)) lostUntilFlush++;
    if (examples.length < 12) examples.push(`lost${gotAll.has(id) ? ' until the flush' : ''}: ${id} ${JSON.stringify(m.value)}`);
  }

  let valueDiffs = 0;
  for (const m of all) {
    const ref = refAll.get(m.id);
    if (ref && same(ref, m)) continue;
    valueDiffs++;
    if (examples.length < 12) examples.push(`differs: ${m.id} expected ${JSON.stringify(ref?.value)}, got ${JSON.stringify(m.value)}`);
  }

  const state =
    stateDiffs(reference.stateAtEnd, run.stateAtEnd, 'at the end of the input', examples) +
    stateDiffs(reference.stateAfterFlush, run.stateAfterFlush, 'after the flush', examples);

  return {
    lost,
    lostUntilFlush,
    valueDiffs,
    stateDiffs: state,
    appliedTwice: valueDiffs + state,
    duplicateEmits: all.length - gotAll.size,
    results: refAll.size,
    examples,
  };
}

// ---------- suites ----------

/** Totals over scenarios, in the shape `npm run test:faults -- --json` prints. */
export interface Totals {
  crashPoints: number;
  replays: number;
  staleInvocations: number;
  lost: number;
  appliedTwice: number;
  duplicateEmits: number;
  /** State calls rejected as throughput exceeded, sends failed while the broker was down, invocations cut off by their timeout. */
  throttledCalls: number;
  produceFailures: number;
  timeouts: number;
  /** Versions the DynamoDB store committed in chunk items (values over 64 KB): 0 means large state was not exercised. */
  chunkedValues: number;
}

/** One store's totals, with the detail. */
export interface SuiteResult extends Totals {
  store: string;
  scenarios: number;
  invocations: number;
  staleFenced: number;
  staleOverwrites: number;
  fatalCrashes: number;
  crashesBeforeAnyItem: number;
  crashesAfterEveryItem: number;
  crashesBetweenChunks: number;
  crashesBeforeHead: number;
  crashesBetweenPages: number;
  crashesAfterSplit: number;
  crashesBeforeDirectory: number;
  pageSplits: number;
  sinkFailures: number;
  stepFailures: number;
  liveConflicts: number;
  storms: number;
  throttleExhausted: number;
  outages: number;
  commitsAfterFailedSend: number;
  timeoutsBeforeOutputs: number;
  timeoutsBeforeCommit: number;
  timeoutsMidCommit: number;
  timeoutsResumed: number;
  lostUntilFlush: number;
  valueDiffs: number;
  stateDiffs: number;
  results: number;
  /** Invocations of the reference and faulted runs that reported, and their unaccounted records. */
  batches: number;
  unaccounted: number;
  unexpectedErrors: string[];
  /** Differences by workload, with examples, when there are any. */
  failures: {
    workload: string;
    seed: number;
    lost: number;
    lostUntilFlush: number;
    valueDiffs: number;
    stateDiffs: number;
    examples: string[];
  }[];
  ms: number;
}

/** Options of {@link runSuite}. */
export interface SuiteOptions {
  readonly seed: number;
  /** Stop starting scenarios once this many crashes were injected. */
  readonly crashPoints: number;
  /** Stop starting scenarios after this time (epoch ms), even short of `crashPoints`. */
  readonly deadline: number;
  readonly workloads?: readonly Workload[];
  readonly faults?: Partial<FaultOptions>;
  /** The store for one scenario (a fresh MemoryStore, or the run's DynamoDB table). */
  readonly store: () => StateStore;
  /** The throttle the store was built with ({@link Throttle.store}, {@link throttledDynamoDBStore}): storms are injected. */
  readonly throttle?: Throttle;
  /** The DynamoDB store's crash inside chunked writes ({@link throttledDynamoDBStore}). */
  readonly chunkCrash?: ChunkCrash;
  readonly label: string;
  readonly onProgress?: (line: string) => void;
}

/**
 * Runs the workloads in turn, each on records and faults from its own seed, until enough crashes
 * were injected (or time is up), and sums up.
 *
 * @example
 * const memory = await runSuite({ label: 'memory', seed: 1, crashPoints: 500, deadline: Date.now() + 60_000, store: () => new MemoryStore() });
 */
export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const started = Date.now();
  const list = opts.workloads ?? Object.values(workloads);
  const result: SuiteResult = {
    store: opts.label,
    crashPoints: 0,
    replays: 0,
    staleInvocations: 0,
    lost: 0,
    appliedTwice: 0,
    duplicateEmits: 0,
    scenarios: 0,
    invocations: 0,
    staleFenced: 0,
    staleOverwrites: 0,
    fatalCrashes: 0,
    crashesBeforeAnyItem: 0,
    crashesAfterEveryItem: 0,
    crashesBetweenChunks: 0,
    crashesBeforeHead: 0,
    crashesBetweenPages: 0,
    crashesAfterSplit: 0,
    crashesBeforeDirectory: 0,
    pageSplits: 0,
    chunkedValues: 0,
    sinkFailures: 0,
    stepFailures: 0,
    liveConflicts: 0,
    throttledCalls: 0,
    produceFailures: 0,
    timeouts: 0,
    storms: 0,
    throttleExhausted: 0,
    outages: 0,
    commitsAfterFailedSend: 0,
    timeoutsBeforeOutputs: 0,
    timeoutsBeforeCommit: 0,
    timeoutsMidCommit: 0,
    timeoutsResumed: 0,
    lostUntilFlush: 0,
    valueDiffs: 0,
    stateDiffs: 0,
    results: 0,
    batches: 0,
    unaccounted: 0,
    unexpectedErrors: [],
    failures: [],
    ms: 0,
  };
  for (let round = 0; result.crashPoints < opts.crashPoints && Date.now() < opts.deadline; round++) {
    for (const workload of list) {
      if (result.crashPoints >= opts.crashPoints || Date.now() >= opts.deadline) break;
      const seed = opts.seed * 1_000 + round;
      const records = workload.records(seed);
      // A topic per scenario, so scenarios sharing a table never share state.
      const topic = `${loadDefinition(workload.definition).manifest.source.topic}.seed${opts.seed}.r${round}`;
      const reference = await runReference(workload, records, topic);
      const run = await runWithFaults(workload, records, topic, opts.store(), {
        ...opts.faults,
        seed,
        throttle: opts.throttle,
        chunkCrash: opts.chunkCrash,
      });
      const v = compare(reference, run);
      const s = run.stats;
      result.scenarios++;
      result.invocations += s.invocations;
      for (const k of [
        'crashPoints',
        'replays',
        'staleInvocations',
        'staleFenced',
        'staleOverwrites',
        'fatalCrashes',
        'crashesBeforeAnyItem',
        'crashesAfterEveryItem',
        'crashesBetweenChunks',
        'crashesBeforeHead',
        'crashesBetweenPages',
        'crashesAfterSplit',
        'crashesBeforeDirectory',
        'pageSplits',
        'chunkedValues',
        'sinkFailures',
        'stepFailures',
        'liveConflicts',
        'storms',
        'throttledCalls',
        'throttleExhausted',
        'outages',
        'produceFailures',
        'commitsAfterFailedSend',
        'timeouts',
        'timeoutsBeforeOutputs',
        'timeoutsBeforeCommit',
        'timeoutsMidCommit',
        'timeoutsResumed',
      ] as const)
        result[k] += s[k];
      for (const k of ['lost', 'lostUntilFlush', 'valueDiffs', 'stateDiffs', 'appliedTwice', 'duplicateEmits', 'results'] as const)
        result[k] += v[k];
      result.batches += reference.batches + run.batches;
      result.unaccounted += reference.unaccounted + run.unaccounted;
      result.unexpectedErrors.push(...s.unexpectedErrors.map((e) => `${workload.name} seed ${seed}: ${e}`));
      if (v.lost > 0 || v.appliedTwice > 0)
        result.failures.push({
          workload: workload.name,
          seed,
          lost: v.lost,
          lostUntilFlush: v.lostUntilFlush,
          valueDiffs: v.valueDiffs,
          stateDiffs: v.stateDiffs,
          examples: v.examples,
        });
      opts.onProgress?.(
        `[${opts.label}] ${workload.name} seed ${seed}: ${s.invocations} invocations, ${s.crashPoints} crashes, ${s.replays} replays, ${s.staleInvocations} stale (${s.staleFenced} fenced), ${s.throttledCalls} throttled, ${s.produceFailures} produce failures, ${s.timeouts} timeouts` +
          (s.chunkedValues > 0
            ? `, ${s.chunkedValues} chunked values (${s.crashesBetweenChunks + s.crashesBeforeHead} crashes inside them)`
            : '') +
          (s.pageSplits > 0 || s.crashesBetweenPages > 0
            ? `, ${s.pageSplits} page splits (crashes: ${s.crashesBetweenPages} between pages, ${s.crashesAfterSplit} after a split, ${s.crashesBeforeDirectory} before the directory)`
            : '') +
          ` | lost ${v.lost}, appliedTwice ${v.appliedTwice}, duplicates ${v.duplicateEmits} | total crashes ${result.crashPoints}/${opts.crashPoints}`,
      );
    }
  }
  result.ms = Date.now() - started;
  return result;
}

/**
 * Drops a DynamoDB table (best effort): suites make one per run.
 *
 * @example
 * await dropTable('http://127.0.0.1:8000', 'sluice-faults-1700000000000-42');
 */
export async function dropTable(endpoint: string, table: string): Promise<void> {
  const { DynamoDBClient, DeleteTableCommand } = await import('@aws-sdk/client-dynamodb');
  const client = new DynamoDBClient({
    endpoint,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await client.send(new DeleteTableCommand({ TableName: table }));
  } catch (e) {
    console.warn(`could not drop DynamoDB table ${table}: ${(e as Error).message}`);
  } finally {
    client.destroy();
  }
}
