import { type DeadLetter, type LateOutput, letterOrigin, type OutputMessage } from '../pipeline/records.js';
import { consoleLogger, type Logger } from '../runtime/logger.js';

/**
 * Where output messages go. The Lambda runtime hands each invocation's messages over in one call,
 * before state is committed, so a window is never removed before its result is out.
 *
 * @example
 * const sink: OutputSink = { async send(messages) { await producer.send(...); } };
 */
export interface OutputSink {
  send(messages: readonly OutputMessage[]): Promise<void>;
}

/**
 * Where poison records go, with their reason.
 *
 * @example
 * const letters: DeadLetterSink = {
 *   async send(letters, functionName) { for (const d of letters) console.error(functionName, d.record.offset, d.stage, d.reason); },
 * };
 * handler.sluice.configure({ deadLetters: letters });
 */
export interface DeadLetterSink {
  send(letters: readonly DeadLetter[], functionName: string): Promise<void>;
}

/** A logger, or where to find the current one (a handler's `runtime.logger` may be swapped later). */
type LoggerSource = Logger | (() => Logger);
const current = (l: LoggerSource): Logger => (typeof l === 'function' ? l() : l);

/**
 * Logs each message as one `output` entry (an info line on stdout with the console logger): the
 * default until a Kafka producer is configured.
 *
 * @example
 * handler.sluice.configure({ sink: logOutputs(logger) });
 * // {"sluice":"output","topic":"sensor-sums","key":"s1","value":{"start":0,"end":10000,"value":2},"timestamp":0,"id":"SensorSums:total:s1:0:10000"}
 */
export function logOutputs(logger: LoggerSource): OutputSink {
  return {
    async send(messages) {
      const log = current(logger);
      for (const m of messages)
        log.info({ sluice: 'output', topic: m.topic, key: m.key, value: m.value, timestamp: m.timestamp, id: m.id });
    },
  };
}

/**
 * Logs each dead letter as one `dead-letter` error entry with topic, partition, offset and reason
 * (a line on stderr with the console logger): the default dead-letter sink.
 *
 * @example
 * handler.sluice.configure({ deadLetters: logDeadLetters(logger) });
 * // {"sluice":"dead-letter","function":"SensorSums","stage":"validate","reason":"value must be a number","topic":"sensor-counts","partition":0,"offset":1}
 */
export function logDeadLetters(logger: LoggerSource): DeadLetterSink {
  return {
    async send(letters, functionName) {
      const log = current(logger);
      for (const d of letters) {
        const { topic, partition, offset } = letterOrigin(d);
        log.error({ sluice: 'dead-letter', function: functionName, stage: d.stage, reason: d.reason, topic, partition, offset });
      }
    },
  };
}

/**
 * {@link logOutputs} to the console: one JSON line per message on stdout.
 *
 * @example
 * handler.sluice.configure({ sink: logOutputSink });
 */
export const logOutputSink: OutputSink = logOutputs(consoleLogger);

/**
 * {@link logDeadLetters} to the console: one JSON line per dead letter on stderr.
 *
 * @example
 * handler.sluice.configure({ deadLetters: logDeadLetterSink });
 */
export const logDeadLetterSink: DeadLetterSink = logDeadLetters(consoleLogger);

/**
 * Keeps everything in memory: for tests, `sluice dev` and `sluice invoke`.
 *
 * @example
 * const capture = new CaptureSink();
 * handler.sluice.configure({ sink: capture, deadLetters: capture });
 */
export class CaptureSink implements OutputSink, DeadLetterSink {
  readonly messages: OutputMessage[] = [];
  readonly deadLetters: DeadLetter[] = [];
  readonly late: LateOutput[] = [];
  async send(items: readonly OutputMessage[] | readonly DeadLetter[]): Promise<void> {
    for (const x of items) {
      if ('record' in x) this.deadLetters.push(x);
      else this.messages.push(x);
    }
  }
}
