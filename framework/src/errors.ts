/**
 * The whole Sluice error hierarchy. Every error carries `retriable`: whether running the same
 * input again can succeed. `name` is a string literal because minified bundles mangle class names.
 *
 * @example
 * try { await run(); } catch (e) { if (e instanceof SluiceError && !e.retriable) deadLetter(e); }
 */
export class SluiceError extends Error {
  override readonly name: string = 'SluiceError';
  readonly retriable: boolean;
  constructor(message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.retriable = opts.retriable ?? false;
  }
}

/**
 * A bad configuration: raised at module load or at build time, never on the first record.
 *
 * @example
 * throw new ConfigError('grace (45s) must not exceed the window size (30s) of tumblingWindow "avgSpeed"; lower grace.');
 */
export class ConfigError extends SluiceError {
  override readonly name = 'ConfigError';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { retriable: false, cause: opts.cause });
  }
}

/** Where a record came from: enough to find it again in Kafka. */
export interface RecordPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

/**
 * A record that can never be processed (cannot be deserialized, fails validation, or user code
 * declared it poison with {@link poison}). It goes to the dead-letter path and never blocks its
 * partition.
 *
 * @example
 * throw new PoisonRecordError('value is not JSON', { topic: 'readings', partition: 0, offset: 42 });
 */
export class PoisonRecordError extends SluiceError {
  override readonly name = 'PoisonRecordError';
  readonly reason: string;
  readonly position: RecordPosition | undefined;
  constructor(reason: string, position?: RecordPosition, opts: { cause?: unknown } = {}) {
    super(position ? `poison record at ${position.topic}-${position.partition}@${position.offset}: ${reason}` : reason, {
      retriable: false,
      cause: opts.cause,
    });
    this.reason = reason;
    this.position = position;
  }
}

/**
 * A conditional state write was fenced: another invocation wrote newer state for the same
 * partition. The batch fails and Lambda retries it.
 *
 * @example
 * if (err.name === 'ConditionalCheckFailedException') throw new StateConflictError('fenced', { cause: err });
 */
export class StateConflictError extends SluiceError {
  override readonly name = 'StateConflictError';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { retriable: true, cause: opts.cause });
  }
}

/**
 * A step threw something other than a poison declaration at one record. It is as retriable as
 * its cause ({@link isRetriable}): an error that will recur (state the store cannot keep, a misuse
 * found at run time) makes that record a dead letter; anything else (a user's `TypeError`) stops
 * the partition batch at that record, and Lambda resumes there.
 *
 * @example
 * throw new StepError(42, 'parse', new TypeError('x is undefined')); // retriable: the batch stops at 42
 */
export class StepError extends SluiceError {
  override readonly name = 'StepError';
  constructor(
    readonly offset: number,
    readonly stage: string,
    cause: unknown,
  ) {
    super(`step "${stage}" failed on the record at offset ${offset}: ${errorText(cause)}`, { retriable: isRetriable(cause), cause });
  }
}

/**
 * State a store cannot keep: a value that is not plain JSON data, an item over the store's size
 * limit, or a key over its key size limit. It will fail the same way on every retry, so the record
 * that caused it becomes a dead letter.
 *
 * @example
 * throw new StateValueError('keyed state "seen" holds NaN, which is not plain JSON data; …');
 */
export class StateValueError extends SluiceError {
  override readonly name = 'StateValueError';
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { retriable: false, cause: opts.cause });
  }
}

/**
 * Bytes that are not an ONNX model (or not one Sluice can score); the caller names the file.
 *
 * @example
 * throw new OnnxFormatError('the graph has no inputs');
 */
export class OnnxFormatError extends SluiceError {
  override readonly name = 'OnnxFormatError';
}

/**
 * Whether running the same input again can succeed: the one place that tells a retriable failure
 * (throttling, timeouts, conflicts, network: the partition fails and Lambda retries it) from a
 * deterministic one (it would recur on every retry: the record becomes a dead letter). A
 * SluiceError says so itself; anything else (a user's step threw it, or an SDK error no adapter
 * translated) is retried, as Lambda would.
 *
 * @example
 * if (!isRetriable(e)) deadLetter(record, errorText(e)); else throw e;
 */
export function isRetriable(e: unknown): boolean {
  return e instanceof SluiceError ? e.retriable : true;
}

/**
 * The text of anything thrown: an Error's message, or the value as a string.
 *
 * @example
 * console.error(`commit failed: ${errorText(e)}`);
 */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string')
    return (e as { message: string }).message;
  return String(e);
}

/**
 * Declare the current record poison from inside a step: it goes to the dead-letter path with
 * `reason` instead of failing the batch.
 *
 * @example
 * map((r: Reading) => (r.speed < 0 ? poison(`negative speed ${r.speed}`) : r))
 */
export function poison(reason: string): never {
  throw new PoisonRecordError(reason);
}
