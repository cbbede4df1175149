import type { Message, Producer, TopicMessages } from 'kafkajs';
import type { Manifest, OutputStep } from '../define/manifest.js';
import { deadLetterId, SLUICE_ID_HEADER } from '../pipeline/messages.js';
import { type DeadLetter, kafkaTimestamp, type OutputMessage } from '../pipeline/records.js';
import { json, string, type Serializer } from './serializers.js';
import type { DeadLetterSink, OutputSink } from './sinks.js';

/**
 * Headers Sluice puts on dead letters, besides the original record's own headers.
 *
 * @example
 * message.headers[DEAD_LETTER_HEADERS.error]; // 'value must be a number'
 */
export const DEAD_LETTER_HEADERS = {
  error: 'sluice-error',
  stage: 'sluice-stage',
  function: 'sluice-function',
  sourceTopic: 'sluice-source-topic',
  sourcePartition: 'sluice-source-partition',
  sourceOffset: 'sluice-source-offset',
  id: SLUICE_ID_HEADER,
} as const;

/**
 * Turns a function's output messages into kafkajs topic messages with the serializers of its `to`
 * steps (JSON values and string keys for topics without one, such as the late topic): the one
 * place outputs become bytes, for the plain sink and for exactly-once transactions alike.
 *
 * @example
 * const encoder = new OutputEncoder(manifest);
 * await producer.sendBatch({ acks: -1, topicMessages: encoder.encode(messages) });
 */
export class OutputEncoder {
  // biome-ignore lint/suspicious/noExplicitAny: serializers of any value type, as the manifest holds them
  readonly #serializers = new Map<string, { key: Serializer<any>; value: Serializer<any> }>();

  constructor(manifest: Manifest) {
    for (const s of manifest.steps) {
      if (s.kind === 'to') this.#serializers.set(s.topic, { key: (s as OutputStep).key, value: (s as OutputStep).value });
    }
  }

  /** The messages grouped by topic, in order, keys preserved, headers as the pipeline set them. */
  encode(messages: readonly OutputMessage[]): TopicMessages[] {
    const byTopic = new Map<string, Message[]>();
    for (const m of messages) {
      const ser = this.#serializers.get(m.topic) ?? { key: string, value: json };
      let list = byTopic.get(m.topic);
      if (!list) byTopic.set(m.topic, (list = []));
      list.push({
        key: m.key === null ? null : ser.key.serialize(m.key),
        value: m.value === null || m.value === undefined ? null : ser.value.serialize(m.value),
        timestamp: String(m.timestamp),
        headers: m.headers,
      });
    }
    return [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs }));
  }
}

/**
 * Produces a function's outputs to Kafka with kafkajs (idempotent producer, acks=all), one send
 * per invocation, keys preserved, headers as the pipeline set them (`sluice-id` included).
 *
 * @example
 * const sink = new KafkaOutputSink(producer, manifest);
 * handler.sluice.configure({ sink });
 */
export class KafkaOutputSink implements OutputSink {
  readonly #encoder: OutputEncoder;

  constructor(
    readonly producer: Producer,
    manifest: Manifest,
  ) {
    this.#encoder = new OutputEncoder(manifest);
  }

  async send(messages: readonly OutputMessage[]): Promise<void> {
    const topicMessages = this.#encoder.encode(messages);
    if (topicMessages.length === 0) return;
    await this.producer.sendBatch({ acks: -1, topicMessages });
  }
}

/**
 * Sends dead letters to a Kafka topic: the original key, value and headers, plus headers naming
 * the error, the stage, the function and the source topic, partition and offset.
 *
 * @example
 * handler.sluice.configure({ deadLetters: new KafkaDeadLetterSink(producer, 'sensor-counts.sensor-sums.dlq') });
 */
export class KafkaDeadLetterSink implements DeadLetterSink {
  constructor(
    readonly producer: Producer,
    readonly topic: string,
  ) {}

  async send(letters: readonly DeadLetter[], functionName: string): Promise<void> {
    if (letters.length === 0) return;
    await this.producer.send({ topic: this.topic, acks: -1, messages: letters.map((d) => deadLetterMessage(d, functionName)) });
  }
}

/**
 * The Kafka message for one dead letter: the original key, value and headers (a repeated header
 * name keeps every value, in order), plus Sluice's headers, which replace original headers of the
 * same name. A window result's key is written as UTF-8 and its value as JSON, with its id as its
 * one original header.
 *
 * @example
 * await producer.send({ topic: 'in.fn.dlq', messages: [deadLetterMessage({ record, reason: 'n must be a number', stage: 'validate' }, 'fn')] });
 */
export function deadLetterMessage(d: DeadLetter, functionName: string): Message {
  const { result } = d;
  const origin = result ? result.origin : d.record;
  let message: Message & { headers: Record<string, Buffer | string | Buffer[]> };
  if (result) {
    message = {
      key: result.key === null ? null : Buffer.from(result.key, 'utf8'),
      value: Buffer.from(JSON.stringify(result.value) ?? 'null', 'utf8'),
      timestamp: String(result.timestamp),
      headers: { [SLUICE_ID_HEADER]: Buffer.from(result.id, 'utf8') },
    };
  } else {
    const r = d.record;
    // A header name may repeat (Kafka allows it): kafkajs sends an array as repeated headers, in order.
    const headers: Record<string, Buffer | string | Buffer[]> = {};
    for (const h of r.headers ?? []) {
      for (const name in h) {
        const value = Buffer.from(h[name]);
        const seen = headers[name];
        headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen as Buffer, value];
      }
    }
    message = {
      key: r.key == null ? null : Buffer.from(r.key, 'base64'),
      value: r.value == null ? null : Buffer.from(r.value, 'base64'),
      // A record dead-lettered for a missing or invalid timestamp must still be sendable: -1 is Kafka's "none".
      timestamp: String(kafkaTimestamp(r.timestamp)),
      headers,
    };
  }
  Object.assign(message.headers, {
    [DEAD_LETTER_HEADERS.error]: d.reason,
    [DEAD_LETTER_HEADERS.stage]: d.stage,
    [DEAD_LETTER_HEADERS.function]: functionName,
    [DEAD_LETTER_HEADERS.sourceTopic]: origin.topic,
    [DEAD_LETTER_HEADERS.sourcePartition]: String(origin.partition),
    [DEAD_LETTER_HEADERS.sourceOffset]: String(origin.offset),
    [DEAD_LETTER_HEADERS.id]: deadLetterId(functionName, origin),
  });
  return message;
}
