import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { keyedState, type RecordContext, sluice, SluiceError, stream } from 'sluice';
import { CaptureSink } from 'sluice/testing';
import { MemoryStore } from 'sluice/state';
import { type KafkaEvent, partitionsOf } from 'sluice/runtime';
import { lambdaContext } from 'sluice/testing';

// Real payloads: the sample events of https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
// and https://docs.aws.amazon.com/lambda/latest/dg/with-kafka.html, plus one with two partitions.
function fixture(name: string): KafkaEvent {
  return JSON.parse(readFileSync(new URL(`../fixtures/events/${name}`, import.meta.url), 'utf8')) as KafkaEvent;
}

const ctx = lambdaContext('event-test') as never;

/** What a step saw of one record. */
interface Seen {
  value: unknown;
  key: string | null;
  headers: Record<string, string>;
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
}

function capture(value: unknown, c: RecordContext): Seen {
  return { value, key: c.key, headers: { ...c.headers }, topic: c.topic, partition: c.partition, offset: c.offset, timestamp: c.timestamp };
}

/** A handler that records what its step sees, with a capturing sink. */
function recorder(topic: string, opts: Parameters<typeof stream>[1] = {}) {
  const sink = new CaptureSink();
  const handler = sluice(stream<unknown>(topic, opts).map(capture, { name: 'capture' }).to('seen'));
  handler.sluice.configure({ sink, deadLetters: sink, store: new MemoryStore() });
  return { handler, sink, seen: () => sink.messages.map((m) => m.value as Seen) };
}

describe('partitionsOf', () => {
  test('reads the MSK sample event as one partition of topic "mytopic"', () => {
    const parts = partitionsOf(fixture('msk-event.json'));
    assert.equal(parts.length, 1);
    assert.equal(parts[0].topic, 'mytopic');
    assert.equal(parts[0].partition, 0);
    assert.deepEqual(
      parts[0].records.map((r) => r.offset),
      [15],
    );
  });

  test('reads the self-managed Kafka sample event, which has no eventSourceArn', () => {
    const event = fixture('self-managed-kafka-event.json');
    assert.equal(event.eventSource, 'SelfManagedKafka');
    assert.equal(event.eventSourceArn, undefined);
    const parts = partitionsOf(event);
    assert.deepEqual(
      parts.map((p) => [p.topic, p.partition, p.records.length]),
      [['mytopic', 0, 1]],
    );
  });

  test('splits a multi-partition event by partition and sorts each by offset', () => {
    const event = fixture('multi-partition-event.json');
    const parts = partitionsOf(event);
    assert.deepEqual(
      parts.map((p) => ({ topic: p.topic, partition: p.partition, offsets: p.records.map((r) => r.offset) })),
      [
        { topic: 'sensor-readings', partition: 0, offsets: [10, 11, 12] },
        { topic: 'sensor-readings', partition: 1, offsets: [10, 11] },
      ],
    );
  });

  test('does not reorder the event it was given', () => {
    const event = fixture('multi-partition-event.json');
    partitionsOf(event);
    assert.deepEqual(
      event.records['sensor-readings-0'].map((r) => r.offset),
      [12, 10, 11],
    );
  });

  test('skips empty partition groups', () => {
    const event = fixture('msk-event.json');
    const parts = partitionsOf({ ...event, records: { ...event.records, 'mytopic-1': [] } });
    assert.deepEqual(
      parts.map((p) => p.partition),
      [0],
    );
  });

  for (const [label, event] of [
    ['an SQS event', { Records: [{ messageId: '1', body: 'hi', eventSource: 'aws:sqs' }] }],
    ['a Kinesis event', { Records: [{ kinesis: { data: 'aGk=' }, eventSource: 'aws:kinesis' }] }],
    ['an empty object', {}],
    ['null', null],
    ['a string', 'records'],
  ] as const) {
    test(`rejects ${label} with a SluiceError that says it is not a Kafka event`, () => {
      assert.throws(
        () => partitionsOf(event),
        (e: unknown) => {
          assert.ok(e instanceof SluiceError, `expected a SluiceError, got ${String(e)}`);
          assert.match(e.message, /no "records" object/);
          assert.match(e.message, /not an MSK or self-managed Kafka event/);
          assert.match(e.message, /msk or kafka event/);
          return true;
        },
      );
    });
  }

  test('names the eventSource it received when it has one', () => {
    assert.throws(() => partitionsOf({ eventSource: 'aws:dynamodb', Records: [] }), /eventSource: "aws:dynamodb"/);
  });
});

describe('handler on real Lambda payloads', () => {
  test('decodes key, value and headers of the MSK sample event', async () => {
    const event = fixture('msk-event.json');
    const { handler, sink, seen } = recorder('mytopic', { key: 'bytes', value: 'string' });
    const response = await handler(event, ctx);
    assert.deepEqual(response, { batchItemFailures: [] });
    assert.equal(sink.deadLetters.length, 0);
    const sample = event.records['mytopic-0'][0];
    assert.deepEqual(seen(), [
      {
        value: 'Hello, this is a test.',
        // The sample key is not canonical base64 ("…34==" has non-zero padding bits); the bytes are what count.
        key: Buffer.from(sample.key!, 'base64').toString('base64'),
        headers: { headerKey: 'headerValue' },
        topic: 'mytopic',
        partition: 0,
        offset: 15,
        timestamp: 1545084650987,
      },
    ]);
  });

  test('passes the decoded input headers on to the output, with a deterministic sluice-id', async () => {
    const { handler, sink } = recorder('mytopic', { key: 'bytes', value: 'string' });
    await handler(fixture('msk-event.json'), ctx);
    assert.equal(sink.messages.length, 1);
    const [out] = sink.messages;
    assert.equal(out.topic, 'seen');
    assert.equal(out.timestamp, 1545084650987);
    assert.deepEqual(out.headers, { headerKey: 'headerValue', 'sluice-id': 'mytopic:mytopic-0:15:0' });
    assert.equal(out.id, 'mytopic:mytopic-0:15:0');
  });

  test('decodes the self-managed Kafka sample event the same way', async () => {
    // The sample's key is not UTF-8 text: the string key serializer would refuse it (issue 11).
    const { handler, seen } = recorder('mytopic', { key: 'bytes', value: 'string' });
    const response = await handler(fixture('self-managed-kafka-event.json'), ctx);
    assert.deepEqual(response, { batchItemFailures: [] });
    const [one] = seen();
    assert.equal(one.value, 'Hello, this is a test.');
    assert.deepEqual(one.headers, { headerKey: 'headerValue' });
    assert.equal(one.offset, 15);
  });

  test('a text value under the default JSON serializer is a dead letter, not a failed batch', async () => {
    const { handler, sink } = recorder('mytopic', { key: 'bytes' });
    const response = await handler(fixture('msk-event.json'), ctx);
    assert.deepEqual(response, { batchItemFailures: [] });
    assert.equal(sink.messages.length, 0);
    assert.equal(sink.deadLetters.length, 1);
    const [letter] = sink.deadLetters;
    assert.deepEqual([letter.record.topic, letter.record.partition, letter.record.offset], ['mytopic', 0, 15]);
    assert.equal(letter.stage, 'deserialize value');
    assert.match(letter.reason, /^value is not valid json/);
  });

  test("the sample's key, which is not UTF-8, is a dead letter under the default string key serializer (issue 11)", async () => {
    const { handler, sink } = recorder('mytopic', { value: 'string' });
    assert.deepEqual(await handler(fixture('msk-event.json'), ctx), { batchItemFailures: [] });
    assert.deepEqual(
      sink.deadLetters.map((l) => [l.record.offset, l.stage, l.reason]),
      [
        [
          15,
          'deserialize key',
          "key is not valid string: the 22 bytes are not valid UTF-8 text (0x69 0xb7 0x03 0x10 0x58 0x21 0x88 0x92 …); read binary data with the 'bytes' serializer.",
        ],
      ],
    );
  });

  test('decodes each record of a multi-partition event with its own headers, in offset order', async () => {
    const { handler, seen } = recorder('sensor-readings');
    await handler(fixture('multi-partition-event.json'), ctx);
    const p0 = seen().filter((s) => s.partition === 0);
    assert.deepEqual(
      p0.map((s) => [s.offset, s.key, s.value, s.headers]),
      [
        [10, 'sensor-1', { value: 1 }, { trace: 'trace-1' }],
        [11, 'sensor-1', { value: 2 }, { trace: 'trace-2' }],
        [12, 'sensor-1', { value: 3 }, { trace: 'trace-3' }],
      ],
    );
    const p1 = seen().filter((s) => s.partition === 1);
    assert.deepEqual(
      p1.map((s) => [s.offset, s.key, s.value, s.headers]),
      [
        [10, 'sensor-1', { value: 10 }, {}],
        [11, 'sensor-2', { value: 20 }, {}],
      ],
    );
  });

  test('records of different partitions are independent, even with the same key and offsets', async () => {
    const total = keyedState<number>('total');
    const sink = new CaptureSink();
    const store = new MemoryStore();
    const handler = sluice(
      stream<{ value: number }>('sensor-readings', { state: [total], name: 'totals' })
        .map(
          (r) => {
            const t = (total.get() ?? 0) + r.value;
            total.set(t);
            return t;
          },
          { name: 'runningTotal' },
        )
        .to('totals'),
    );
    handler.sluice.configure({ sink, deadLetters: sink, store });
    const response = await handler(fixture('multi-partition-event.json'), ctx);
    assert.deepEqual(response, { batchItemFailures: [] });
    const byPartition = (p: number) => sink.messages.filter((m) => m.id.includes(`sensor-readings-${p}:`)).map((m) => [m.key, m.value]);
    // sensor-1 in partition 1 starts from zero, and its offset 10 is not mistaken for partition 0's.
    assert.deepEqual(byPartition(0), [
      ['sensor-1', 1],
      ['sensor-1', 3],
      ['sensor-1', 6],
    ]);
    assert.deepEqual(byPartition(1), [
      ['sensor-1', 10],
      ['sensor-2', 20],
    ]);
    assert.deepEqual(store.dump(), {
      'totals/sensor-readings/0/keyed:total': { 'sensor-1': { value: 6, offset: 12 } },
      'totals/sensor-readings/1/keyed:total': { 'sensor-1': { value: 10, offset: 10 }, 'sensor-2': { value: 20, offset: 11 } },
    });
  });

  test('rejects a non-Kafka event with a clear message and commits nothing', async () => {
    const store = new MemoryStore();
    const { handler } = recorder('mytopic');
    handler.sluice.configure({ store });
    await assert.rejects(
      handler({ Records: [{ eventSource: 'aws:sqs', body: '{}' }] } as never, ctx),
      (e: unknown) => e instanceof SluiceError && /not an MSK or self-managed Kafka event/.test(e.message),
    );
    assert.equal(store.writes, 0);
  });
});
