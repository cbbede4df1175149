/**
 * The core of a function: its steps over the decoded records of one partition batch, in one
 * state transaction. Kafka's wire format never reaches here; `runtime/` decodes at the edge.
 */
import type { FunctionStep, Manifest, OutputStep, ScoreStep, WindowStep } from '../define/manifest.js';
import { errorText, StateValueError, StepError } from '../errors.js';
import { cloneJson } from '../state/json.js';
import { IDLE_ITEM, idleNamespace, isPartitionNamespace, keyedNamespace } from '../state/namespaces.js';
import type { RejectedChange, StateScope, StateStore } from '../state/store.js';
import { Transaction } from '../state/transaction.js';
import { KEEP_ALL_VERSIONS } from '../state/versions.js';
import type { IdleState, IdleWindow } from '../windows/idle.js';
import { createWindowOperator, type WindowOperator } from '../windows/operators/index.js';
import { type IdleRead, raiseFloors, readIdleForBatch, recordIdle, type TickInside, tickBounds } from './idle.js';
import { recordLetter } from './dead-letters.js';
import type { Item, Pass } from './item.js';
import { lateMessage, outputMessage, recordId } from './messages.js';
import { type DeadLetter, type LateOutput, letterOrigin, type OutputMessage, type SourceBatch, type SourceRecord } from './records.js';
import { applyScoreStep } from './scoring.js';
import { type BatchStats, countOutcomes, newStats } from './stats.js';
import { applyFunctionStep } from './steps.js';
import { applyWindowStep, type WindowTiming } from './window-step.js';

/**
 * What one partition batch produced. Nothing is stored until `commit` runs.
 *
 * @example
 * const result = await runner.run('readings', 0, records);
 * await sink.send(result.outputs);
 * await result.commit();
 */
export interface PartitionResult {
  readonly topic: string;
  readonly partition: number;
  readonly outputs: OutputMessage[];
  readonly deadLetters: DeadLetter[];
  readonly late: LateOutput[];
  readonly stats: BatchStats;
  /** Offset of the record that failed, when the batch stopped early: Lambda resumes there. */
  readonly failedOffset: number | undefined;
  /** The step that failed, with `failedOffset`. */
  readonly failedStage: string | undefined;
  readonly error: unknown;
  /** Writes the batch's state (once). Call after outputs have been handed off. */
  commit(): Promise<void>;
}

/**
 * How a batch runs: `flush` closes every open window at the end (a finite input ending; needs a
 * store that can list its keys), writing state just after `flushOffset`, the input's last offset;
 * `tickAt` runs an idle tick instead of records: it closes what the idle floors make due, writing
 * at that position (just after the partition's last applied offset, see `pipeline/idle.ts`);
 * `deadline` (epoch ms) bounds the state store's calls; `now` is the wall clock (default
 * `Date.now()`): a record's arrival for idle closing, and the clock guard's reference.
 *
 * @example
 * await pipeline.run(topic, partition, batch, { deadline: Date.now() + 5_000 });
 */
export interface RunOptions {
  readonly flush?: boolean;
  readonly flushOffset?: number;
  readonly tickAt?: number;
  /** A tick's sequence number at its position, recorded in the idle item (exactly-once delivery publishes it). */
  readonly tickSeq?: number;
  /**
   * The floors a tick closes with, instead of the idle item's (which may only be higher): exactly-once
   * delivery runs a published tick again with the floors it published, to finish its state. The
   * idle item keeps its own floors.
   */
  readonly tickFloors?: Readonly<Record<string, number>>;
  readonly deadline?: number;
  readonly now?: number;
}

type CompiledStep =
  | { kind: 'fn'; step: FunctionStep }
  | { kind: 'window'; step: WindowStep; op: WindowOperator }
  | { kind: 'score'; step: ScoreStep }
  | { kind: 'to'; step: OutputStep };

/** A record left out of a batch because it failed in a way no retry can change, and its dead letter. */
interface Skipped {
  readonly index: number;
  readonly letter: DeadLetter;
}

/**
 * Runs a manifest over the decoded records of one partition batch, step by step over the whole
 * batch: each stateful step loads the state its records need in one read, then processes them
 * synchronously, in offset order. If a step fails at some record, the batch is run again up to
 * that record, so the state to commit holds exactly the records before it.
 *
 * A deterministic failure (one that would recur on every retry, see `isRetriable`: a key the
 * store cannot hold, a keyed-state value that is not plain JSON, a misuse found at run time) is
 * the record's instead: the batch is run again without that record, which becomes a dead letter
 * with the error's text. Before it returns, the run asks the store whether it can keep the
 * batch's changed state (`Transaction.check`); an item it cannot keep is blamed on the last record
 * that changed it, which is left out the same way, so no output leaves for a record whose state
 * cannot be committed.
 *
 * @example
 * const pipeline = new PipelineRunner(manifest, store, 'SensorSums');
 * const result = await pipeline.run('readings', 0, batch);
 * await sink.send(result.outputs);
 * await result.commit();
 */
export class PipelineRunner {
  readonly #steps: CompiledStep[];
  readonly #keyedNamespaces: string[];
  /** Window operators with idle closing: the runner reads and writes the partition's idle item for them. */
  readonly #idleOps: WindowOperator[];

  constructor(
    readonly manifest: Manifest,
    readonly store: StateStore,
    /** The function's name in state scopes and message ids. */
    readonly functionName: string = manifest.name,
  ) {
    this.#steps = manifest.steps.map((step): CompiledStep => {
      if (step.kind === 'window') return { kind: 'window', step, op: createWindowOperator(step.window, step.aggregations, step.name) };
      if (step.kind === 'to') return { kind: 'to', step };
      if (step.kind === 'score') return { kind: 'score', step };
      return { kind: 'fn', step };
    });
    this.#keyedNamespaces = manifest.state.map((s) => keyedNamespace(s.name));
    this.#idleOps = this.windows.filter((op) => op.idleMs !== undefined);
  }

  /** The window operators, for the dev summary and `--flush`. */
  get windows(): WindowOperator[] {
    return this.#steps.flatMap((s) => (s.kind === 'window' ? [s.op] : []));
  }

  /** The windows with idle closing, as a tick's rules see them (empty: the function needs no ticks). */
  get idleWindows(): IdleWindow[] {
    return this.#idleOps.map((op) => op.idleWindow!);
  }

  /** Processes one partition's batch (in offset order); see {@link RunOptions}. */
  async run(topic: string, partition: number, batch: SourceBatch, opts: RunOptions = {}): Promise<PartitionResult> {
    const scope: StateScope = { functionName: this.functionName, topic, partition };
    let limit = batch.length;
    let failure: StepError | undefined;
    const skipped = new Map<number, Skipped>();
    // A flush writes just after the input's last offset, so nothing downstream mistakes it for a replay.
    const flushAt = (opts.flushOffset ?? -1) + 0.5;
    const tick = batch.length === 0 ? opts.tickAt : undefined;
    const now = opts.now ?? Date.now();
    // State is read as of just before the batch, so a retried or re-batched batch sees what its
    // first run saw (see state/versions.ts); a flush alone reads just after the input's end, a
    // tick just before the next record (seeing earlier ticks at its own position).
    const before = batch.length > 0 ? batch.offsetAt(0) : tick !== undefined ? tick + 0.5 : flushAt;
    const callOpts = opts.deadline === undefined ? { before } : { deadline: opts.deadline, before };
    const idle = this.#idleOps.length > 0 ? await this.#readIdle(scope, batch.length > 0, callOpts) : undefined;
    // A retry reaching past a tick's position replays the tick there, as it happened: the records
    // before it run with the floors they first ran with, those after it with the tick's.
    const tickInside = idle?.tick && batch.length > 0 && batch.offsetAt(batch.length - 1) > idle.tick.at ? idle.tick : undefined;
    for (;;) {
      const tx = new Transaction(this.store, scope, { ...callOpts, rewrite: tick !== undefined });
      let ownFloors: Record<string, number> | undefined;
      if (idle) {
        const value = idle.item && (cloneJson(idle.item.value) as IdleState);
        if (value && tick !== undefined && opts.tickFloors) {
          ownFloors = value.f ?? {};
          value.f = { ...opts.tickFloors };
        }
        tx.seed(idleNamespace(), IDLE_ITEM, idle.item && { ...idle.item, value });
      }
      let records: SourceRecord[] = [];
      try {
        const decoded = batch.decode(limit);
        records = decoded.records;
        const deadLetters = decoded.rejected;
        if (skipped.size > 0) {
          records = records.filter((r) => !skipped.has(r.offset));
          for (const s of skipped.values()) if (s.index < limit) deadLetters.push(s.letter);
          // In offset order, as if each had been rejected as it came.
          deadLetters.sort((x, y) => letterOrigin(x).offset - letterOrigin(y).offset);
        }
        const pass: Pass = { functionName: this.functionName, tx, outputs: [], deadLetters, late: [], stats: newStats(limit) };
        pass.stats.poison = deadLetters.length;
        pass.stats.deadLettered = deadLetters.length;
        const timing: WindowTiming = {
          now,
          maxClockSkewMs: this.manifest.source.maxClockSkewMs,
          ...(!failure && opts.flush === true ? { flush: flushAt } : {}),
          ...(!failure && tick !== undefined ? { tick } : {}),
        };
        await this.#run(records, pass, timing, tickInside);
        const position = tick ?? (opts.flush ? flushAt : -1);
        // A tick keeps every older version: Lambda may still retry the batch before it.
        const first = limit > 0 ? batch.offsetAt(0) : tick !== undefined ? KEEP_ALL_VERSIONS : position;
        const last = limit > 0 ? batch.offsetAt(limit - 1) : position;
        if (idle) {
          if (ownFloors) restoreFloors(tx, ownFloors);
          if (limit > 0) recordIdle(tx, this.#idleOps, last, { last, now });
          else if (tick !== undefined) recordIdle(tx, this.#idleOps, tick, undefined, opts.tickSeq);
        }
        const bounds = limit === 0 && tick !== undefined ? tickBounds(tick) : { firstOffset: first, lastOffset: last };
        const refused = tx.check(bounds);
        if (refused.length > 0) {
          skipBlamed(refused, batch, limit, records, skipped);
          continue;
        }
        let committed = false;
        return {
          topic,
          partition,
          outputs: pass.outputs,
          deadLetters: pass.deadLetters,
          late: pass.late,
          stats: pass.stats,
          failedOffset: failure?.offset,
          failedStage: failure?.stage,
          error: failure?.cause,
          commit: async () => {
            if (committed) return;
            committed = true;
            await tx.commit(bounds);
          },
        };
      } catch (e) {
        if (!(e instanceof StepError)) throw e;
        const at = indexOf(batch, e.offset);
        const record = e.retriable || at < 0 ? undefined : records.find((r) => r.offset === e.offset);
        if (record) {
          // It would fail the same way on every retry: the record's failure, not the partition's.
          const stage = e.cause instanceof StateValueError ? 'state' : e.stage;
          skipped.set(e.offset, { index: at, letter: recordLetter(record, stage, errorText(e.cause)) });
          continue;
        }
        failure = e;
        limit = at < 0 ? 0 : Math.min(at, limit - 1);
      }
    }
  }

  /** The idle item as of the batch's start (a batch vetoes a tick's proposal first, see `idle.ts`). */
  async #readIdle(scope: StateScope, batch: boolean, opts: { before: number; deadline?: number }): Promise<IdleRead> {
    if (batch) return readIdleForBatch(this.store, scope, opts);
    return { item: (await this.store.read(scope, idleNamespace(), [IDLE_ITEM], opts)).get(IDLE_ITEM) };
  }

  /**
   * Runs the steps over the records, then settles their outcomes. With `tickInside` (a retry that
   * reaches past a tick's position), the steps run over the records before the tick, then the tick
   * (its floors raised, its due windows closed at its position), then the records after it.
   */
  async #run(records: SourceRecord[], pass: Pass, timing: WindowTiming, tickInside?: TickInside): Promise<void> {
    let items: Item[];
    if (!tickInside) items = await this.#apply(records, pass, timing);
    else {
      const cut = records.findIndex((r) => r.offset > tickInside.at);
      const before = cut < 0 ? records : records.slice(0, cut);
      const after = cut < 0 ? [] : records.slice(cut);
      items = await this.#apply(before, pass, timing);
      raiseFloors(pass.tx, tickInside);
      items = items.concat(await this.#apply([], pass, { ...timing, tick: tickInside.at }));
      items = items.concat(await this.#apply(after, pass, timing));
    }
    countOutcomes(pass.stats, records, items);
    const { lateTopic } = this.manifest;
    if (lateTopic) for (const l of pass.late) pass.outputs.push(lateMessage(lateTopic, l));
    pass.stats.messagesOut = pass.outputs.length;
  }

  /** The steps over some records in offset order; returns the items that came out of the last step. */
  async #apply(records: SourceRecord[], pass: Pass, timing: WindowTiming): Promise<Item[]> {
    const { tx } = pass;
    // Decoded records are the first items: steps update them in place (see SourceRecord).
    let items: Item[] = records;
    const hasKeyed = this.#keyedNamespaces.length > 0;
    let keysLoaded = false;
    const views = new Map(this.#keyedNamespaces.map((ns) => [ns, tx.namespace(ns)]));

    for (let si = 0; si < this.#steps.length; si++) {
      const cs = this.#steps[si];
      if (cs.kind === 'fn') {
        if (hasKeyed && !keysLoaded) {
          const keys = new Set<string>();
          for (const it of items) if (it.key !== null) keys.add(it.key);
          for (const ns of this.#keyedNamespaces) await tx.load(ns, keys);
          keysLoaded = true;
        }
        items = applyFunctionStep(cs.step, items, pass, views);
        if (cs.step.kind === 'key') keysLoaded = false;
      } else if (cs.kind === 'score') {
        items = await applyScoreStep(cs.step, items, pass);
      } else if (cs.kind === 'window') {
        items = await applyWindowStep(cs.step, cs.op, items, pass, this.store, timing);
        // Window results may carry keys no earlier step loaded (partition-clock closes, flush).
        keysLoaded = false;
      } else {
        const { topic } = cs.step;
        for (const it of items) {
          // A window result carries only its own id; a record keeps its headers.
          pass.outputs.push(
            it.windowId
              ? outputMessage(topic, it.key, it.value, it.ts, {}, it.windowId)
              : outputMessage(topic, it.key, it.value, it.ts, it.source.headers, recordId(this.functionName, it.source, it.offset, it.sub)),
          );
        }
      }
    }
    return items;
  }
}

/** The idle item's own floors back after a run with `tickFloors` (floors never move back). */
function restoreFloors(tx: Transaction, own: Record<string, number>): void {
  const state = tx.namespace(idleNamespace()).get(IDLE_ITEM) as IdleState | undefined;
  if (!state) return;
  const f = (state.f ??= {});
  for (const [ns, floor] of Object.entries(own)) f[ns] = Math.max(f[ns] ?? -1, floor);
}

/** The index of the record at `offset` in the batch, or -1. */
function indexOf(batch: SourceBatch, offset: number): number {
  for (let i = 0; i < batch.length; i++) if (batch.offsetAt(i) === offset) return i;
  return -1;
}

/**
 * Leaves out, for the next run of the batch, the last record that changed each item the store
 * refused: without it the item holds what the records before made of it. An item no single record
 * can be blamed for (a partition-level item, a flush) fails the partition with the store's error.
 */
function skipBlamed(
  refused: readonly RejectedChange[],
  batch: SourceBatch,
  limit: number,
  records: readonly SourceRecord[],
  skipped: Map<number, Skipped>,
): void {
  for (const { change, error } of refused) {
    const at = isPartitionNamespace(change.namespace) ? -1 : indexOf(batch, change.offset);
    const record = at < 0 || at >= limit ? undefined : records.find((r) => r.offset === change.offset);
    if (!record) throw error;
    skipped.set(record.offset, { index: at, letter: recordLetter(record, 'state', errorText(error)) });
  }
}
