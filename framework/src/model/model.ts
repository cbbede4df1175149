/**
 * An ONNX model scored inline: its signature checked at load, the ONNX Runtime session created
 * lazily once per container, rows checked and packed into tensors, one run per batch. One
 * cohesive class, over 350 lines on purpose; the tensor value helpers live in `tensors.ts`.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, errorText, OnnxFormatError, SluiceError } from '../errors.js';
import { describe } from '../io/serializers.js';
import { type ElementType, type ModelSignature, readModelSignature } from './onnx-file.js';
import { allocate, badValue, convert, FEEDABLE, fromTensor, type InputPlan, shapeText } from './tensors.js';
import type { ScoredRow } from '../define/manifest.js';
import { consoleLogger, type Logger } from '../runtime/logger.js';

/**
 * One value of a model output for one row: a scalar for an output of shape `[N]`, a flat array
 * for `[N, …]` (a classifier's probabilities, say). int64 values arrive as numbers.
 */
export type ModelValue = number | string | boolean | number[] | string[] | boolean[];

/**
 * A model's outputs for one row, by output name.
 *
 * @example
 * // a scikit-learn classifier exported with zipmap disabled
 * const o: ModelOutputs = { label: 'cycling', probabilities: [0.91, 0.02, 0.07] };
 */
export type ModelOutputs = Readonly<Record<string, ModelValue>>;

/** The values of one row for one input: numbers (or bigints for int64), or strings for a string input. */
export type FeatureValues = ArrayLike<number> | ArrayLike<bigint> | ArrayLike<string>;

/**
 * What a feature extractor returns for one row: the values for the model's only input, or the
 * values of each input by name for a model with several. A single number is a row of one.
 *
 * @example
 * const one: Features = [w.mean, w.max, w.std, w.count];
 * const two: Features = { x: [1, 2, 3], n: [4] };
 */
export type Features = FeatureValues | number | Readonly<Record<string, FeatureValues | number>>;

/** Options of {@link onnxModel}. */
export interface OnnxModelOptions {
  /** The model's name in messages and metrics; defaults to the file name without `.onnx`. */
  readonly name?: string;
  /** Threads ONNX Runtime may use inside one `run` (default 1: Lambda functions under 1,769 MB have one vCPU). */
  readonly threads?: number;
  /** Where the model's warnings go (default: JSON lines on the console, like the runtime's). */
  readonly logger?: Logger;
}

/** Options of {@link OnnxModel.score}. */
export interface ModelRunOptions {
  /** false: one `session.run` per row, for comparison (default: one run for all rows). */
  readonly batched?: boolean;
}

type Ort = typeof import('onnxruntime-node');
type Session = import('onnxruntime-node').InferenceSession;
type Tensor = import('onnxruntime-node').Tensor;

let ortModule: Promise<Ort> | undefined;
/** ONNX Runtime, imported on first use: functions without models never load it. */
function ort(): Promise<Ort> {
  // Bundled, onnxruntime-node is CommonJS whose exports esbuild cannot list: they sit on `default`.
  return (ortModule ??= import('onnxruntime-node')
    .then((m) => ((m as { InferenceSession?: unknown }).InferenceSession ? m : (m as { default: Ort }).default))
    .catch((e: unknown) => {
      ortModule = undefined;
      throw new ConfigError(
        `ONNX Runtime (onnxruntime-node) could not be loaded: ${errorText(e)}. Install it (npm i onnxruntime-node, with onnxruntime-node-install=skip in .npmrc) or package the function with sluice/serverless, which ships its linux-x64 binding.`,
        { cause: e },
      );
    }));
}

/**
 * An ONNX model to score inline. Creating the handle (at module load) reads and checks the
 * file's signature; the ONNX Runtime session is created on first use, once per Lambda container,
 * and reused across invocations. All rows of a batch go through one `session.run`; a model whose
 * batch dimension is fixed at 1 is run row by row (with a warning, once).
 *
 * @example
 * const model = onnxModel(new URL('./model.onnx', import.meta.url));
 * stream<Reading>('readings').score(model, { features: (r) => [r.speed], output: (o, r) => ({ ...r, label: o.label }) });
 */
export class OnnxModel<O extends ModelOutputs = ModelOutputs> {
  readonly kind = 'onnx';
  readonly name: string;
  readonly file: string;
  readonly signature: ModelSignature;
  /** Whether rows can share one run (the batch dimension is dynamic). */
  readonly batchable: boolean;
  readonly threads: number;
  readonly #plans: readonly InputPlan[];
  #session: Promise<Session> | undefined;
  #warned = false;
  readonly #logger: Logger;

  /** @internal use {@link onnxModel} */
  constructor(file: string, opts: OnnxModelOptions = {}) {
    this.file = file;
    this.name = opts.name ?? path.basename(file).replace(/\.onnx$/i, '');
    this.#logger = opts.logger ?? consoleLogger;
    const where = `model "${this.name}" (${file})`;
    if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
      throw new ConfigError(`threads of ${where} must be a positive integer; received ${describe(opts.threads)}.`);
    }
    this.threads = opts.threads ?? 1;
    let bytes: Buffer;
    try {
      if (!statSync(file).isFile()) throw new ConfigError('not a file');
      bytes = readFileSync(file);
    } catch (e) {
      throw new ConfigError(
        `${where}: the model file cannot be read (${(e as NodeJS.ErrnoException).code ?? errorText(e)}); ` +
          `check the path, e.g. onnxModel(new URL('./model.onnx', import.meta.url)) for a file next to the handler.`,
        { cause: e },
      );
    }
    try {
      this.signature = readModelSignature(bytes);
    } catch (e) {
      if (!(e instanceof OnnxFormatError)) throw e;
      throw new ConfigError(
        `${where} is not a valid ONNX model (${e.message}); the file is corrupt or truncated: export it again (e.g. with skl2onnx or torch.onnx.export).`,
        { cause: e },
      );
    }
    for (const out of this.signature.outputs) {
      if (out.kind !== 'tensor') {
        throw new ConfigError(
          `output "${out.name}" of ${where} is a ${out.kind}, not a tensor; ONNX Runtime for Node returns tensors only. ` +
            `For scikit-learn classifiers convert with options={id(model): {'zipmap': False}} so probabilities are a tensor.`,
        );
      }
    }
    const batchDims = new Set<number | null>();
    this.#plans = this.signature.inputs.map((sig) => {
      if (sig.kind !== 'tensor' || !FEEDABLE.includes(sig.type as ElementType)) {
        throw new ConfigError(
          `input "${sig.name}" of ${where} has type ${sig.kind === 'tensor' ? sig.type : sig.kind}; Sluice feeds tensors of ${FEEDABLE.join(', ')}.`,
        );
      }
      const dims = sig.dims ?? [null, null];
      if (dims.length === 0)
        throw new ConfigError(`input "${sig.name}" of ${where} is a scalar; Sluice needs a batch dimension first, e.g. shape [N, 4].`);
      batchDims.add(dims[0]);
      if (dims[0] !== null && dims[0] !== 1) {
        throw new ConfigError(
          `input "${sig.name}" of ${where} has a fixed batch size of ${dims[0]}; export it with a dynamic first dimension (e.g. skl2onnx FloatTensorType([None, k])) or a batch of 1.`,
        );
      }
      const rest = dims.slice(1).map((d) => d ?? undefined);
      const unknown = rest.filter((d) => d === undefined).length;
      if (unknown > 1) {
        throw new ConfigError(
          `input "${sig.name}" of ${where} has shape ${shapeText(dims)} with more than one unknown dimension after the batch; Sluice cannot tell the row shape. Fix the shape when exporting.`,
        );
      }
      const known = rest.reduce<number>((n, d) => n * (d ?? 1), 1);
      return { sig, type: sig.type as ElementType, width: unknown === 0 ? known : undefined, rest };
    });
    this.batchable = !batchDims.has(1);
  }

  /** The input names, in the model's order. */
  get inputNames(): string[] {
    return this.signature.inputs.map((i) => i.name);
  }

  /** The output names, in the model's order. */
  get outputNames(): string[] {
    return this.signature.outputs.map((o) => o.name);
  }

  /**
   * The ONNX Runtime session, created on first call and kept for the life of the container.
   * Call it at start-up to pay the creation cost before the first batch.
   */
  session(): Promise<Session> {
    this.#session ??= (async () => {
      const { InferenceSession } = await ort();
      try {
        return await InferenceSession.create(this.file, {
          intraOpNumThreads: this.threads,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
          logSeverityLevel: 3,
        });
      } catch (e) {
        throw new ConfigError(
          `model "${this.name}" (${this.file}) could not be loaded by ONNX Runtime: ${errorText(e)}; export it again with an opset ONNX Runtime supports.`,
          { cause: e },
        );
      }
    })().catch((e: unknown) => {
      this.#session = undefined;
      throw e;
    });
    return this.#session;
  }

  /**
   * Scores rows of features: one `session.run` for all rows that are valid (row by row for a
   * model with a batch of 1, or with `batched: false`). A row with the wrong length or a
   * non-finite value is not scored; its result says why.
   *
   * @example
   * const [a, b] = await model.score([[1.4, 2.1, 0.3, 10], [7, 9, 1.2, 10]]);
   * if (a.ok) console.log(a.outputs.label);
   */
  async score(rows: readonly unknown[], opts: ModelRunOptions = {}): Promise<ScoredRow<O>[]> {
    const results: ScoredRow<O>[] = new Array(rows.length);
    const prepared: (readonly FeatureValues[])[] = [];
    const index: number[] = [];
    const widths = this.#plans.map((p) => p.width);
    // The common case, one float input of known width fed plain arrays, checked inline (hot path).
    const only = this.#plans.length === 1 ? this.#plans[0] : undefined;
    const fastWidth = only && (only.type === 'float32' || only.type === 'float64') ? only.width : undefined;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (fastWidth !== undefined && Array.isArray(row) && row.length === fastWidth) {
        let finite = true;
        for (let j = 0; j < fastWidth; j++) {
          const x = row[j];
          if (typeof x !== 'number' || !Number.isFinite(x)) {
            finite = false;
            break;
          }
        }
        if (finite) {
          prepared.push([row as number[]]);
          index.push(i);
          continue;
        }
      }
      const r = this.#prepare(row, widths);
      if (typeof r === 'string') results[i] = { ok: false, reason: r };
      else {
        prepared.push(r);
        index.push(i);
      }
    }
    if (prepared.length === 0) return results;
    const session = await this.session();
    if (this.batchable && opts.batched !== false) {
      const outs = await this.#run(session, prepared, widths);
      for (let j = 0; j < index.length; j++) results[index[j]] = { ok: true, outputs: outs[j] };
    } else {
      if (!this.batchable && !this.#warned) {
        this.#warned = true;
        this.#logger.warn({
          sluice: 'model-warning',
          model: this.name,
          message: `model "${this.name}" has a fixed batch size of 1, so its ${rows.length} row(s) are scored one run each (slower). Export it with a dynamic batch dimension to score a batch in one run.`,
        });
      }
      for (let j = 0; j < index.length; j++)
        results[index[j]] = { ok: true, outputs: (await this.#run(session, [prepared[j]], widths))[0] };
    }
    return results;
  }

  /** One row's values per input, checked; or the reason it cannot be scored. */
  #prepare(features: unknown, widths: (number | undefined)[]): FeatureValues[] | string {
    const plans = this.#plans;
    let perInput: unknown[];
    if (plans.length === 1 && !isRecord(features)) perInput = [features];
    else if (isRecord(features)) {
      perInput = plans.map((p) => (features as Record<string, unknown>)[p.sig.name]);
      const extra = Object.keys(features).filter((k) => !plans.some((p) => p.sig.name === k));
      if (extra.length > 0)
        return `model "${this.name}" has no input named ${extra.map((e) => `"${e}"`).join(', ')}; its inputs are ${this.inputNames.map((n) => `"${n}"`).join(', ')}`;
    } else {
      return `model "${this.name}" has ${plans.length} inputs (${this.inputNames.join(', ')}); the feature extractor must return an object with one row per input name, got ${describe(features)}`;
    }
    const out: FeatureValues[] = [];
    for (let k = 0; k < plans.length; k++) {
      const p = plans[k];
      let v = perInput[k];
      if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || typeof v === 'boolean') v = [v];
      const expected = () =>
        `${widths[k] ?? 'a fixed number of'} ${p.type} value(s) per row (shape ${shapeText(p.sig.dims ?? [null, null])})`;
      if (v === undefined || v === null || typeof (v as ArrayLike<unknown>).length !== 'number') {
        return `model "${this.name}" input "${p.sig.name}" expects ${expected()}; the feature extractor gave ${describe(v)}`;
      }
      const row = v as ArrayLike<unknown>;
      if (widths[k] === undefined) widths[k] = row.length;
      if (row.length !== widths[k]) return `model "${this.name}" input "${p.sig.name}" expects ${expected()}; got ${row.length}`;
      for (let j = 0; j < row.length; j++) {
        const bad = badValue(p.type, row[j]);
        if (bad) return `model "${this.name}" input "${p.sig.name}" expects ${expected()}; value ${j} is ${bad}`;
      }
      out.push(row as FeatureValues);
    }
    return out;
  }

  async #run(session: Session, rows: readonly (readonly FeatureValues[])[], widths: (number | undefined)[]): Promise<O[]> {
    const { Tensor } = await ort();
    const feeds: Record<string, Tensor> = {};
    const n = rows.length;
    for (let k = 0; k < this.#plans.length; k++) {
      const p = this.#plans[k];
      const w = widths[k]!;
      const data = allocate(p.type, n * w);
      if (data instanceof Float32Array || data instanceof Float64Array) {
        for (let i = 0; i < n; i++) data.set(rows[i][k] as ArrayLike<number>, i * w);
      } else {
        for (let i = 0; i < n; i++) {
          const row = rows[i][k];
          for (let j = 0; j < w; j++) (data as unknown[])[i * w + j] = convert(p.type, row[j]);
        }
      }
      const dims = [n, ...p.rest.map((d) => d ?? w)];
      // A rank-1 input ([N]) takes one value per row.
      feeds[p.sig.name] = new Tensor(p.type as 'float32', data as Float32Array, p.rest.length === 0 ? [n] : dims);
    }
    let result: Record<string, Tensor>;
    try {
      result = (await session.run(feeds)) as Record<string, Tensor>;
    } catch (e) {
      throw new SluiceError(`model "${this.name}" failed to score ${n} row(s): ${errorText(e)}`, { retriable: false, cause: e });
    }
    const out: Record<string, ModelValue>[] = Array.from({ length: n }, () => ({}));
    for (const name of this.outputNames) {
      const t = result[name];
      if (!t) continue;
      const rowsOut = t.dims[0];
      if (rowsOut !== n) {
        throw new SluiceError(
          `model "${this.name}" output "${name}" has ${rowsOut} row(s) for ${n} input row(s); Sluice maps outputs to rows by their first dimension, so the model must keep the batch dimension.`,
        );
      }
      const per = t.dims.slice(1).reduce((a, b) => a * b, 1);
      const scalar = t.dims.length === 1;
      const data = t.data as ArrayLike<unknown>;
      for (let i = 0; i < n; i++) {
        if (scalar) out[i][name] = fromTensor(data[i]) as ModelValue;
        else {
          const vals = new Array(per);
          for (let j = 0; j < per; j++) vals[j] = fromTensor(data[i * per + j]);
          out[i][name] = vals as ModelValue;
        }
      }
    }
    return out as unknown as O[];
  }
}

/**
 * Declares an ONNX model file to score in a function (see {@link OnnxModel}). A missing,
 * unreadable or corrupt file, or a model Sluice cannot feed, fails here with a `ConfigError`:
 * at module load locally, and at `sls package` when deploying.
 *
 * @example
 * export const transportMode = onnxModel<{ label: string; probabilities: number[] }>(new URL('./model.onnx', import.meta.url));
 */
export function onnxModel<O extends ModelOutputs = ModelOutputs>(file: string | URL, opts: OnnxModelOptions = {}): OnnxModel<O> {
  let resolved: string;
  if (file instanceof URL) {
    if (file.protocol !== 'file:')
      throw new ConfigError(
        `onnxModel() needs a file: URL or path; received ${file.href}. Bundle the model with the function instead of fetching it.`,
      );
    resolved = fileURLToPath(file);
  } else if (typeof file === 'string' && file.length > 0) {
    resolved = path.resolve(file);
  } else {
    throw new ConfigError(
      `onnxModel() needs the model file, e.g. onnxModel(new URL('./model.onnx', import.meta.url)); received ${describe(file)}.`,
    );
  }
  if (opts === null || typeof opts !== 'object')
    throw new ConfigError(`options of onnxModel(${resolved}) must be an object; received ${describe(opts)}.`);
  for (const k of Object.keys(opts)) {
    if (k !== 'name' && k !== 'threads' && k !== 'logger')
      throw new ConfigError(`unknown option "${k}" of onnxModel(${resolved}); allowed: name, threads, logger.`);
  }
  return new OnnxModel<O>(resolved, opts);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && !Array.isArray(v);
}
