import type { DeadLetter, LateOutput, OutputMessage } from '../pipeline/records.js';

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

/**
 * Writes each message as one JSON log line on stdout (the default until a Kafka producer is
 * configured).
 *
 * @example
 * handler.sluice.configure({ sink: logOutputSink });
 * // {"sluice":"output","topic":"sensor-sums","key":"s1","value":{"start":0,"end":10000,"value":2},"timestamp":0,"id":"SensorSums:total:s1:0:10000"}
 */
export const logOutputSink: OutputSink = {
  async send(messages) {
    for (const m of messages) console.log(JSON.stringify({ sluice: 'output', topic: m.topic, key: m.key, value: m.value, timestamp: m.timestamp, id: m.id }));
  },
};

/**
 * Logs each dead letter as one JSON line on stderr, with topic, partition, offset and reason (the
 * default dead-letter sink).
 *
 * @example
 * handler.sluice.configure({ deadLetters: logDeadLetterSink });
 * // {"sluice":"dead-letter","function":"SensorSums","stage":"validate","reason":"value must be a number","topic":"sensor-counts","partition":0,"offset":1}
 */
export const logDeadLetterSink: DeadLetterSink = {
  async send(letters, functionName) {
    for (const d of letters) {
      console.error(JSON.stringify({
        sluice: 'dead-letter', function: functionName, stage: d.stage, reason: d.reason,
        topic: d.record.topic, partition: d.record.partition, offset: d.record.offset,
      }));
    }
  },
};

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
