import type { FunctionStep, LateRecord, Manifest, OutputStep, RecordContext, ScoreStep, WindowStep } from '../define/manifest.js';
import { PoisonRecordError, SluiceError } from '../errors.js';
import { withRecordState } from '../state/keyed.js';
import { keyedNamespace } from '../state/namespaces.js';
import type { StateScope, StateStore } from '../state/store.js';
import { Transaction } from '../state/transaction.js';
import { createWindowOperator, type WindowOperator, type WindowSink } from '../windows/operators/index.js';
import { decodeHeaders, type KafkaEventRecord, resultRecord } from '../runtime/msk-event.js';
import type { DeadLetter, LateOutput, OutputMessage } from './records.js';

const KEY_CACHE_LIMIT = 100_000;

/**
 * A value on its way through the steps. `sub` is its path among the children of one record:
 * `0` for the record itself, `3` for the fourth child of an expand, `3.1` for a child of that.
 */
interface Item {
  key: string | null;
  value: unknown;
  ts: number;
  readonly offset: number;
  readonly sub: string;
  readonly record: KafkaEventRecord;
  /** Set on window results: the deterministic id of the result. */
  readonly windowId?: string;
}

/** Counters of one partition batch. */
export interface BatchStats {
  recordsIn: number;
  messagesOut: number;
  windowsEmitted: number;
  late: number;
  poison: number;
}

/** What one partition batch produced. Nothing is stored until `commit` runs. */
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

/** A user step threw something other than a poison declaration: the batch stops at that record. */
class StepFailure extends SluiceError {
  override readonly name = 'StepFailure';
  constructor(readonly offset: number, readonly stage: string, cause: unknown) {
    super(`step "${stage}" failed on the record at offset ${offset}: ${(cause as Error)?.message ?? String(cause)}`, { retriable: true, cause });
  }
}

type CompiledStep =
  | { kind: 'fn'; step: FunctionStep }
  | { kind: 'window'; step: WindowStep; op: WindowOperator }
  | { kind: 'score'; step: ScoreStep }
  | { kind: 'to'; step: OutputStep };

/** Options of a runner. */
export interface RunnerOptions {
  /** The function's name in state scopes and message ids (defaults to the manifest name). */
  readonly functionName?: string;
}

/**
 * Runs a manifest over the records of one partition batch, step by step over the whole batch:
 * each stateful step loads the state its records need in one read, then processes them
 * synchronously, in offset order. If a step fails at some record, the batch is run again up to
 * that record, so the state to commit holds exactly the records before it.
 *
 * @example
 * const runner = new PartitionRunner(manifest, store);
 * const result = await runner.run('readings', 0, records);
 * await sink.send(result.outputs);
 * await result.commit();
 */
export class PartitionRunner {
  readonly functionName: string;
  readonly #steps: CompiledStep[];
  readonly #keyedNamespaces: string[];
  readonly #keyCache = new Map<string, string | null>();

  constructor(
    readonly manifest: Manifest,
    readonly store: StateStore,
    opts: RunnerOptions = {},
  ) {
    this.functionName = opts.functionName ?? manifest.name;
    this.#steps = manifest.steps.map((step): CompiledStep => {
      if (step.kind === 'window') return { kind: 'window', step, op: createWindowOperator(step.window, step.aggregations, step.name) };
      if (step.kind === 'to') return { kind: 'to', step };
      if (step.kind === 'score') return { kind: 'score', step };
      return { kind: 'fn', step };
    });
    this.#keyedNamespaces = manifest.state.map((s) => keyedNamespace(s.name));
  }

  /** The window operators, for the dev summary and `--flush`. */
  get windows(): WindowOperator[] {
    return this.#steps.flatMap((s) => (s.kind === 'window' ? [s.op] : []));
  }

  /**
   * Processes one partition's records (in offset order). With `flush`, closes every open window
   * at the end (a finite input ending; needs a store that can list its keys). `flushOffset` is the
   * input's last offset; the flush writes state just after it.
   */
  async run(topic: string, partition: number, records: readonly KafkaEventRecord[], opts: { flush?: boolean; flushOffset?: number; deadline?: number } = {}): Promise<PartitionResult> {
    const scope: StateScope = { functionName: this.functionName, topic, partition };
    let limit = records.length;
    let failure: StepFailure | undefined;
    // State is read as of just before the batch, so a retried or re-batched batch sees what its
    // first run saw (see state/versions.ts); a flush alone reads just after the input's end.
    const before = records.length > 0 ? records[0].offset : (opts.flushOffset ?? -1) + 0.5;
    for (;;) {
      const tx = new Transaction(this.store, scope, opts.deadline === undefined ? { before } : { deadline: opts.deadline, before });
      const slice = limit === records.length ? records : records.slice(0, limit);
      try {
        const produced = await this.#run(slice, tx, !failure && opts.flush === true ? (opts.flushOffset ?? -1) + 0.5 : undefined);
        // A flush writes just after the input's last offset, so nothing downstream mistakes it for a replay.
        const flushAt = opts.flush ? (opts.flushOffset ?? -1) + 0.5 : -1;
        const first = slice.length > 0 ? slice[0].offset : flushAt;
        const last = slice.length > 0 ? slice[slice.length - 1].offset : flushAt;
        let committed = false;
        return {
          topic, partition, ...produced,
          failedOffset: failure?.offset,
          failedStage: failure?.stage,
          error: failure?.cause,
          commit: async () => {
            if (committed) return;
            committed = true;
            await tx.commit({ firstOffset: first, lastOffset: last });
          },
        };
      } catch (e) {
        if (!(e instanceof StepFailure)) throw e;
        failure = e;
        const at = records.findIndex((r) => r.offset === e.offset);
        limit = at < 0 ? 0 : Math.min(at, limit - 1);
      }
    }
  }

  async #run(records: readonly KafkaEventRecord[], tx: Transaction, flush: number | undefined) {
    const m = this.manifest;
    const outputs: OutputMessage[] = [];
    const deadLetters: DeadLetter[] = [];
    const late: LateOutput[] = [];
    const stats: BatchStats = { recordsIn: records.length, messagesOut: 0, windowsEmitted: 0, late: 0, poison: 0 };
    const poison = (record: KafkaEventRecord, stage: string, reason: string) => {
      deadLetters.push({ record, stage, reason });
      stats.poison++;
    };

    let items = this.#decode(records, poison);
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
        items = this.#applyFn(cs, items, tx, views, poison);
        if (cs.step.kind === 'key') keysLoaded = false;
      } else if (cs.kind === 'score') {
        items = await this.#applyScore(cs.step, items, poison);
      } else if (cs.kind === 'window') {
        items = await this.#applyWindow(cs, items, tx, late, stats, poison, flush);
        // Window results may carry keys no earlier step loaded (partition-clock closes, flush).
        keysLoaded = false;
      } else {
        const { step } = cs;
        for (const it of items) {
          outputs.push({
            topic: step.topic,
            key: it.key,
            value: it.value,
            timestamp: it.ts,
            headers: it.windowId ? { 'sluice-id': it.windowId } : { ...decodeHeaders(it.record.headers), 'sluice-id': this.#recordId(it) },
            id: it.windowId ?? this.#recordId(it),
          });
        }
      }
    }
    if (m.lateTopic) {
      for (const l of late) {
        outputs.push({
          topic: m.lateTopic, key: l.key, value: l.value, timestamp: l.timestamp,
          headers: { 'sluice-id': l.id, 'sluice-late-window': l.window, 'sluice-late-clock': String(l.clock) },
          id: l.id,
        });
      }
    }
    stats.messagesOut = outputs.length;
    return { outputs, deadLetters, late, stats };
  }

  #recordId(it: Item): string {
    return `${this.functionName}:${it.record.topic}-${it.record.partition}:${it.offset}:${it.sub}`;
  }

  #decode(records: readonly KafkaEventRecord[], poison: (r: KafkaEventRecord, stage: string, reason: string) => void): Item[] {
    const { source } = this.manifest;
    const items: Item[] = [];
    const keyFast = source.key.deserializeBase64?.bind(source.key);
    const keys = this.#keyCache;
    const valueFast = source.value.deserializeBase64?.bind(source.value);
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      let key: string | null = null;
      let value: unknown = null;
      try {
        if (r.key != null) {
          if (keyFast) {
            // Keys repeat: decode each distinct one once per container (bounded).
            let k = keys.get(r.key);
            if (k === undefined) {
              if (keys.size >= KEY_CACHE_LIMIT) keys.clear();
              keys.set(r.key, (k = toKey(keyFast(r.key))));
            }
            key = k;
          } else {
            key = toKey(source.key.deserialize(Buffer.from(r.key, 'base64')));
          }
        }
      } catch (e) {
        poison(r, 'deserialize key', `key is not valid ${source.key.name}: ${(e as Error).message}`);
        continue;
      }
      try {
        if (r.value != null) value = valueFast ? valueFast(r.value) : source.value.deserialize(Buffer.from(r.value, 'base64'));
      } catch (e) {
        poison(r, 'deserialize value', `value is not valid ${source.value.name}: ${(e as Error).message}`);
        continue;
      }
      if (source.validate) {
        let verdict: true | string;
        try {
          verdict = source.validate(value);
        } catch (e) {
          verdict = `validate() threw: ${(e as Error).message}`;
        }
        if (verdict !== true) {
          poison(r, 'validate', verdict);
          continue;
        }
      }
      items.push({ key, value, ts: r.timestamp, offset: r.offset, sub: '0', record: r });
    }
    return items;
  }

  #applyFn(
    cs: Extract<CompiledStep, { kind: 'fn' }>,
    items: Item[],
    tx: Transaction,
    views: Map<string, ReturnType<Transaction['namespace']>>,
    poison: (r: KafkaEventRecord, stage: string, reason: string) => void,
  ): Item[] {
    const { step } = cs;
    const fn = step.fn;
    const out: Item[] = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      let result: unknown;
      try {
        result = withRecordState({ key: it.key, offset: it.offset, timestamp: it.ts, views }, () => fn(it.value, recordContext(it)));
        if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
          throw new TypeError(`step "${step.name}" returned a Promise; steps must be synchronous (do I/O in middy middleware or after the window)`);
        }
      } catch (e) {
        if (e instanceof PoisonRecordError) {
          poison(it.record, step.name, e.reason);
          continue;
        }
        throw new StepFailure(it.offset, step.name, e);
      }
      switch (step.kind) {
        case 'map':
          it.value = result;
          out.push(it);
          break;
        case 'filter':
          if (result) out.push(it);
          break;
        case 'update':
          out.push(it);
          break;
        case 'expand': {
          if (result == null || typeof (result as Iterable<unknown>)[Symbol.iterator] !== 'function') {
            throw new StepFailure(it.offset, step.name, new TypeError(`expand step "${step.name}" must return an iterable (e.g. an array); it returned ${typeof result}`));
          }
          let n = 0;
          // First-level children are numbered 0, 1, …; deeper ones extend their parent's path.
          const prefix = it.sub === '0' ? '' : `${it.sub}.`;
          for (const v of result as Iterable<unknown>) {
            out.push({ key: it.key, value: v, ts: it.ts, offset: it.offset, sub: `${prefix}${n++}`, record: it.record });
          }
          break;
        }
        case 'key':
          if (result === null || typeof result === 'string') it.key = result;
          else if (typeof result === 'number' || typeof result === 'bigint') it.key = String(result);
          else {
            poison(it.record, step.name, `key step "${step.name}" returned ${typeof result}; a key must be a string or null`);
            continue;
          }
          out.push(it);
          break;
        case 'timestamp':
          if (typeof result !== 'number' || !Number.isFinite(result) || result < 0) {
            poison(it.record, step.name, `event time from "${step.name}" must be a non-negative number of epoch milliseconds; got ${String(result)}`);
            continue;
          }
          it.ts = Math.floor(result);
          out.push(it);
          break;
      }
    }
    return out;
  }

  /**
   * Scores every item with one model call: rows the model cannot take, and values the output
   * mapper declares poison, go to the dead-letter path; the rest flow on in order.
   */
  async #applyScore(step: ScoreStep, items: Item[], poison: (r: KafkaEventRecord, stage: string, reason: string) => void): Promise<Item[]> {
    const rows: unknown[] = [];
    const kept: Item[] = [];
    const contexts: RecordContext[] = [];
    for (const it of items) {
      const ctx = recordContext(it);
      try {
        rows.push(step.features(it.value, ctx));
        kept.push(it);
        contexts.push(ctx);
      } catch (e) {
        if (e instanceof PoisonRecordError) poison(deadLetterRecord(it), step.name, withWindow(it, e.reason));
        else throw new StepFailure(it.offset, `${step.name}.features`, e);
      }
    }
    if (kept.length === 0) return [];
    let scored: Awaited<ReturnType<ScoreStep['model']['score']>>;
    try {
      scored = await step.model.score(rows);
    } catch (e) {
      throw new StepFailure(kept[0].offset, step.name, e);
    }
    const out: Item[] = [];
    for (let i = 0; i < kept.length; i++) {
      const it = kept[i];
      const r = scored[i];
      if (!r.ok) {
        poison(deadLetterRecord(it), step.name, withWindow(it, r.reason));
        continue;
      }
      try {
        it.value = step.output(r.outputs, it.value, contexts[i]);
      } catch (e) {
        if (e instanceof PoisonRecordError) {
          poison(deadLetterRecord(it), step.name, withWindow(it, e.reason));
          continue;
        }
        throw new StepFailure(it.offset, `${step.name}.output`, e);
      }
      out.push(it);
    }
    return out;
  }

  async #applyWindow(
    cs: Extract<CompiledStep, { kind: 'window' }>,
    items: Item[],
    tx: Transaction,
    late: LateOutput[],
    stats: BatchStats,
    poison: (r: KafkaEventRecord, stage: string, reason: string) => void,
    /** With a value: close every open window, writing at this offset (the input's last). */
    flush: number | undefined,
  ): Promise<Item[]> {
    const { op, step } = cs;
    const keys = new Set<string>();
    for (const it of items) if (it.key !== null) keys.add(it.key);
    await op.load(tx, keys);
    const out: Item[] = [];
    let current: Item | undefined;
    const fn = this.functionName;
    const sink: WindowSink = {
      result: (r) => {
        const base = current!;
        stats.windowsEmitted++;
        out.push({
          key: r.key, value: r.value, ts: r.start, offset: r.offset, sub: '0', record: base.record,
          windowId: `${fn}:${step.name}:${r.key}:${r.seq === undefined ? `${r.start}:${r.end}` : `#${r.seq}`}${r.final ? '' : `@${r.offset}.${base.sub}`}`,
        });
      },
      late: (l) => {
        stats.late++;
        const rec = current!.record;
        const entry: LateOutput = {
          window: step.name, key: l.input.key, value: l.input.value, timestamp: l.input.ts, offset: l.input.offset, windows: l.windows, clock: l.clock,
          id: `${fn}:late:${step.name}:${rec.topic}-${rec.partition}:${l.input.offset}:${current!.sub}`,
        };
        late.push(entry);
        if (step.onLate) {
          const info: LateRecord = { ...entry, topic: rec.topic, partition: rec.partition };
          try {
            step.onLate(info);
          } catch (e) {
            throw new StepFailure(l.input.offset, `${step.name}.onLate`, e);
          }
        }
      },
    };
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.key === null) {
        poison(it.record, step.name, `window "${step.name}" needs a record key, and this record has none; set one with key()`);
        continue;
      }
      current = it;
      try {
        op.process(tx, it as { key: string; value: unknown; ts: number; offset: number }, sink);
      } catch (e) {
        if (e instanceof StepFailure) throw e;
        throw new StepFailure(it.offset, step.name, e);
      }
    }
    const lastItem = items[items.length - 1];
    if (lastItem) {
      current = lastItem;
      await op.finish(tx, sink, lastItem.offset);
    }
    if (flush !== undefined) {
      if (!this.store.keys) {
        throw new SluiceError(`closing every open window needs a store that can list its keys; the ${this.store.kind} store cannot. Run the flush with the in-memory store.`);
      }
      const all = new Set(await this.store.keys(tx.scope, op.namespace));
      for (const k of keys) all.add(k);
      current = lastItem ?? { key: null, value: null, ts: 0, offset: flush, sub: '0', record: { topic: tx.scope.topic, partition: tx.scope.partition, offset: flush, timestamp: 0 } };
      await op.closeAll(tx, [...all], sink, current.offset);
    }
    return out;
  }
}

function toKey(k: unknown): string | null {
  if (k === null || k === undefined) return null;
  if (typeof k === 'string') return k;
  if (Buffer.isBuffer(k)) return k.toString('base64');
  return String(k);
}

/**
 * The record to dead-letter for an item: the source record itself, or for a window result a
 * record carrying the result (key and JSON value) at the offset that closed it, so nothing of
 * the window is lost.
 */
function deadLetterRecord(it: Item): KafkaEventRecord {
  return it.windowId ? resultRecord(it.record, it.ts, it.key, it.value, it.windowId) : it.record;
}

function withWindow(it: Item, reason: string): string {
  return it.windowId ? `window result ${it.windowId}: ${reason}` : reason;
}

function recordContext(it: Item): RecordContext {
  const r = it.record;
  let headers: Record<string, string> | undefined;
  return {
    key: it.key,
    timestamp: it.ts,
    topic: r.topic,
    partition: r.partition,
    offset: it.offset,
    get headers() {
      return (headers ??= decodeHeaders(r.headers));
    },
  };
}
