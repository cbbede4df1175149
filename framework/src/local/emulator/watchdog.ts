import type { Consumer } from 'kafkajs';

/**
 * How long a consumer may take to join its group before the emulator starts a fresh one.
 *
 * @example
 * watchGroupJoin(consumer).arm(restart, JOIN_TIMEOUT_MS);
 */
export const JOIN_TIMEOUT_MS = 20_000;

/**
 * Watches a kafkajs consumer for joining its group. A consumer that never joins (a coordinator
 * still loading after the broker started, a rebalance that stalls) would poll nothing forever;
 * once armed, the watchdog calls `onStall` if the consumer has not joined within the timeout.
 * Watch before `connect()` (kafkajs joins inside `run()`), arm after `run()` returns.
 *
 * @example
 * const watchdog = watchGroupJoin(consumer);
 * await consumer.connect();
 * await consumer.run({ eachBatch });
 * watchdog.arm(() => startFresh());
 */
export function watchGroupJoin(consumer: Consumer): { arm(onStall: () => void, timeoutMs?: number): void } {
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joined = true;
  });
  return {
    arm(onStall, timeoutMs = JOIN_TIMEOUT_MS) {
      const timer = setTimeout(() => {
        if (!joined) onStall();
      }, timeoutMs);
      timer.unref();
    },
  };
}
