import type { EsmConfig } from '../../config/event-source-mapping.js';
import { errorText, SluiceError } from '../../errors.js';
import type { SluiceHandler } from '../../runtime/handler.js';
import type { BatchReport } from '../../runtime/invoke.js';
import { lambdaContext } from '../../runtime/lambda-context.js';
import type { KafkaBatchResponse, KafkaEvent } from '../../runtime/msk-event.js';
import type { FunctionStats } from './stats.js';

/*
 * One invocation of the handler as Lambda makes it, and what the emulator learns from it: the
 * handler's own account of why records failed, for retry notices and dead-letter headers.
 */

/** An invocation that fails this close to its timeout counted as timed out (middy answers 5 ms early by default). */
const TIMEOUT_EARLY_MS = 100;

/**
 * Invokes the handler as Lambda does: a fresh Lambda context per event, and Lambda's own failure
 * when the invocation runs past the function's timeout. Each call counts one batch.
 *
 * The timed-out invocation is abandoned, not stopped (JavaScript cannot stop it): it runs on beside
 * its retry, as a stale invocation can deployed. Lambda would replace its container; `abandoned`
 * is told (also when middy's early timeout response ended it), so the emulator can do what a new container does (exactly-once: claim the
 * transactional ids afresh, fencing the abandoned invocation's producers).
 *
 * @example
 * const invoke = lambdaInvoker(handler, config, stats, () => transactions.reset());
 * const response = await invoke(event);
 */
export function lambdaInvoker(
  handler: SluiceHandler,
  config: Pick<EsmConfig, 'functionName' | 'timeoutMs'>,
  stats: FunctionStats,
  abandoned?: () => void,
): (event: KafkaEvent) => Promise<KafkaBatchResponse> {
  return async (event) => {
    stats.batches++;
    const ctx = lambdaContext(config.functionName, config.timeoutMs);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SluiceError(`Task timed out after ${(config.timeoutMs / 1000).toFixed(2)} seconds`, { retriable: true })),
        config.timeoutMs,
      );
    });
    const started = Date.now();
    try {
      return await Promise.race([handler(event, ctx as never), timeout]);
    } catch (e) {
      // Ended by the time limit: this timer, or middy's own early timeout response just before it
      // (`timeoutEarlyInMillis`), which answers while the handler runs on.
      if (Date.now() - started >= config.timeoutMs - TIMEOUT_EARLY_MS) abandoned?.();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * The handler's own account of why a record failed, per partition (offset -1: the partition failed
 * whole), kept from its batch report until the partition loop asks for it once.
 *
 * @example
 * const reasons = new FailureReasons();
 * handler.sluice.configure({ onBatch: (r) => reasons.record(r) });
 * reasons.take(0, 40, 49); // { offset: 42, reason: 'step "parse": …' } or undefined
 */
export class FailureReasons {
  readonly #last = new Map<number, { offset: number; reason: string }>();

  /** Keeps what one invocation's report says failed, replacing older accounts. */
  record(report: Pick<BatchReport, 'partitions' | 'failed'>): void {
    for (const p of report.partitions) {
      if (p.failedOffset !== undefined)
        this.#last.set(p.partition, { offset: p.failedOffset, reason: `step "${p.failedStage}": ${errorText(p.error)}` });
    }
    for (const f of report.failed) this.#last.set(f.partition, { offset: -1, reason: `state ${f.stage} failed: ${errorText(f.error)}` });
  }

  /** The account of a failure among offsets `from`..`to` of `partition`, if any; given out once. */
  take(partition: number, from: number, to: number): { offset: number; reason: string } | undefined {
    const e = this.#last.get(partition);
    if (!e || (e.offset !== -1 && (e.offset < from || e.offset > to))) return undefined;
    this.#last.delete(partition);
    return e.offset === -1 ? { offset: from, reason: e.reason } : e;
  }
}
