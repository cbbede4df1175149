import type { EsmConfig } from '../../config/event-source-mapping.js';
import { errorText, SluiceError } from '../../errors.js';
import { formatMs } from '../../duration.js';
import type { SluiceHandler } from '../../runtime/handler.js';
import { lambdaContext } from '../../runtime/lambda-context.js';
import { type EndOffsets, TICK_EVENT, type TickReport } from '../../runtime/tick.js';
import type { FunctionStats } from './stats.js';

/**
 * What {@link startTicker} works with.
 *
 * @example
 * const opts: TickerOptions = { handler, config, offsets: brokerEndOffsets(admin), stats, periodMs: 60_000, notice };
 */
export interface TickerOptions {
  readonly handler: SluiceHandler;
  readonly config: Pick<EsmConfig, 'functionName' | 'timeoutMs'>;
  /** The broker's end offsets (admin.ts `brokerEndOffsets`), as the deployed tick reads them from the cluster. */
  readonly offsets: EndOffsets;
  readonly stats: FunctionStats;
  readonly periodMs: number;
  readonly notice: (message: string) => void;
}

/**
 * The deployed schedule, emulated: every `periodMs` the handler is invoked with the tick event
 * (`{ "sluice": "tick" }`), with a Lambda context and the function's timeout, and reads end
 * offsets from the broker. A tick that is still running when the next one is due makes that one
 * skip (counted): ticks tolerate overlapping, but piling them up on a slow store helps nothing.
 * What ticks do is counted in `stats.ticks` and `stats.windowsEmitted`; failures are said, the
 * first and then at every doubling of a streak, since the next tick tries again anyway.
 *
 * @example
 * const ticker = startTicker({ handler, config, offsets, stats, periodMs: 1_000, notice });
 * // … on shutdown, before the producer disconnects
 * await ticker.stop();
 */
export function startTicker(opts: TickerOptions): { stop(): Promise<void> } {
  const { handler, config, stats, periodMs, notice } = opts;
  const fn = config.functionName;
  stats.ticks.periodMs = periodMs;
  let streak = 0;
  const failed = (why: string) => {
    stats.ticks.failed++;
    streak++;
    if ((streak & (streak - 1)) === 0)
      notice(`${fn}: idle tick failed${streak > 1 ? ` ${streak} times in a row` : ''} (${why}); the next tick tries again`);
  };
  handler.sluice.configure({
    offsets: opts.offsets,
    onTick: (r: TickReport) => {
      stats.ticks.windowsClosed += r.windowsClosed;
      stats.windowsEmitted += r.windowsClosed;
      const errors = r.partitions.filter((p) => p.error !== undefined);
      if (errors.length > 0) failed(errors.map((p) => `p${p.partition}: ${p.error}`).join('; '));
      else streak = 0;
    },
  });

  let running: Promise<void> | undefined;
  const once = async () => {
    stats.ticks.lastAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new SluiceError(`Task timed out after ${(config.timeoutMs / 1000).toFixed(2)} seconds`, { retriable: true })),
        config.timeoutMs,
      );
    });
    const invocation = handler(TICK_EVENT as never, lambdaContext(fn, config.timeoutMs) as never);
    try {
      await Promise.race([invocation, timeout]);
      stats.ticks.runs++;
    } catch (e) {
      failed(errorText(e));
    } finally {
      clearTimeout(timer);
    }
    // Lambda would have stopped a timed-out tick; here it runs on, and the next one waits for it.
    await invocation.catch(() => undefined);
  };
  const timer = setInterval(() => {
    if (running) {
      stats.ticks.skipped++;
      if (stats.ticks.skipped === 1)
        notice(`${fn}: an idle tick is still running after ${formatMs(periodMs)}; ticks are skipped until it ends (counted as skipped)`);
      return;
    }
    running = once().finally(() => {
      running = undefined;
    });
  }, periodMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
