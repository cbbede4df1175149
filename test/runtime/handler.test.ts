import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyedState, poison, sluice, stream, sum } from 'sluice';
import { CaptureSink } from 'sluice/testing';
import { MemoryStore } from 'sluice/state';
import type { DeadLetter, DeadLetterSink, KafkaEvent, KafkaEventRecord } from 'sluice/runtime';
import { CaptureLogger, lambdaContext, toEventRecord } from 'sluice/testing';

const ctx = lambdaContext('handler-test') as never;

interface Reading {
  readonly value: number;
}

function record(partition: number, offset: number, key: string, value: unknown, timestamp = 1_000 + offset): KafkaEventRecord {
  return toEventRecord({ key, value, timestamp }, 'readings', partition, offset);
}

function rawRecord(partition: number, offset: number, key: string, text: string): KafkaEventRecord {
  return { ...record(partition, offset, key, null), value: Buffer.from(text, 'utf8').toString('base64') };
}

/** An MSK event with one group per partition, as Lambda sends it. */
function kafkaEvent(...partitions: KafkaEventRecord[][]): KafkaEvent {
  return {
    eventSource: 'aws:kafka',
    eventSourceArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/test/00000000-0000-0000-0000-000000000000-1',
    bootstrapServers: 'b-1.test.kafka.us-east-1.amazonaws.com:9098',
    records: Object.fromEntries(partitions.map((rs) => [`readings-${rs[0].partition}`, rs])),
  };
}

/** Dead letters with the function name they were sent under. */
class LetterBox implements DeadLetterSink {
  readonly letters: { functionName: string; letter: DeadLetter }[] = [];
  async send(letters: readonly DeadLetter[], functionName: string): Promise<void> {
    for (const letter of letters) this.letters.push({ functionName, letter });
  }
}

describe('poison records', () => {
  const definition = stream<Reading>('readings', {
    name: 'checked',
    validate: (r) => typeof r?.value === 'number' || 'value must be a number',
  })
    .map((r) => (r.value < 0 ? poison(`negative value ${r.value}`) : r), { name: 'checkSign' })
    .to('checked');

  const event = kafkaEvent([
    record(0, 40, 'a', { value: 1 }),
    rawRecord(0, 41, 'a', '{"value": 2'),
    record(0, 42, 'a', { value: 'three' }),
    record(0, 43, 'a', { value: -4 }),
    record(0, 44, 'a', { value: 5 }),
  ]);

  test('go to dead letters with topic, partition, offset and reason; the records after them are processed', async () => {
    const handler = sluice(definition);
    const sink = new CaptureSink();
    const box = new LetterBox();
    handler.sluice.configure({ sink, deadLetters: box, store: new MemoryStore() });
    const response = await handler(event, ctx);

    assert.deepEqual(response, { batchItemFailures: [] }, 'poison never blocks the partition');
    assert.deepEqual(
      sink.messages.map((m) => [m.id, m.value]),
      [
        ['checked:readings-0:40:0', { value: 1 }],
        ['checked:readings-0:44:0', { value: 5 }],
      ],
    );
    const letters = box.letters.map(({ functionName, letter: l }) => ({
      functionName,
      topic: l.record.topic,
      partition: l.record.partition,
      offset: l.record.offset,
      stage: l.stage,
      reason: l.reason,
    }));
    assert.equal(letters.length, 3);
    assert.deepEqual(letters[0].offset, 41);
    assert.match(letters[0].reason, /^value is not valid json: /);
    assert.deepEqual(
      letters.map(({ reason: _, ...rest }) => rest),
      [
        { functionName: 'checked', topic: 'readings', partition: 0, offset: 41, stage: 'deserialize value' },
        { functionName: 'checked', topic: 'readings', partition: 0, offset: 42, stage: 'validate' },
        { functionName: 'checked', topic: 'readings', partition: 0, offset: 43, stage: 'checkSign' },
      ],
    );
    assert.equal(letters[1].reason, 'value must be a number');
    assert.equal(letters[2].reason, 'negative value -4');
  });

  test('the default dead-letter sink logs one JSON line per letter with topic, partition, offset and reason', async () => {
    const logger = new CaptureLogger();
    const handler = sluice(definition);
    handler.sluice.configure({ sink: new CaptureSink(), store: new MemoryStore(), logger });
    await handler(event, ctx);
    const logged = logger.at('error');
    assert.deepEqual(
      logged.map((l) => [l.sluice, l.function, l.topic, l.partition, l.offset]),
      [
        ['dead-letter', 'checked', 'readings', 0, 41],
        ['dead-letter', 'checked', 'readings', 0, 42],
        ['dead-letter', 'checked', 'readings', 0, 43],
      ],
    );
    assert.equal(logged[2].reason, 'negative value -4');
  });
});

describe('a step that throws', () => {
  // A downstream call that fails on one record until the outage is over.
  let outage = false;
  const total = keyedState<number>('total');
  const definition = stream<Reading>('readings', { name: 'totals', state: [total] })
    .update(
      (r) => {
        if (outage && r.value === 13) throw new Error('downstream unavailable');
      },
      { name: 'callDownstream' },
    )
    .map(
      (r) => {
        const t = (total.get() ?? 0) + r.value;
        total.set(t);
        return { ...r, total: t };
      },
      { name: 'runningTotal' },
    )
    .to('totals')
    .tumblingWindow('1m')
    .aggregate(sum('value'), { name: 'perMinute' });

  const partition0 = [
    record(0, 100, 'a', { value: 1 }),
    record(0, 101, 'a', { value: 2 }),
    record(0, 102, 'a', { value: 13 }),
    record(0, 103, 'a', { value: 4 }),
    record(0, 104, 'a', { value: 5 }),
  ];
  const partition1 = [record(1, 7, 'a', { value: 10 }), record(1, 8, 'a', { value: 20 })];

  function setUp() {
    const handler = sluice(definition);
    const sink = new CaptureSink();
    const store = new MemoryStore();
    const logger = new CaptureLogger();
    handler.sluice.configure({ sink, deadLetters: sink, store, logger });
    return { handler, sink, store, logger };
  }

  async function cleanRunState() {
    outage = false;
    const clean = setUp();
    assert.deepEqual(await clean.handler(kafkaEvent(partition0, partition1), ctx), { batchItemFailures: [] });
    return clean.store.dump();
  }

  const totals = (sink: CaptureSink, partition: number) =>
    sink.messages.filter((m) => m.id.startsWith(`totals:readings-${partition}:`)).map((m) => (m.value as { total: number }).total);

  test("yields a partial batch response at that record's offset; other partitions are unaffected", async () => {
    outage = true;
    const { handler, sink, logger } = setUp();
    const response = await handler(kafkaEvent(partition0, partition1), ctx);

    assert.deepEqual(response, { batchItemFailures: [{ itemIdentifier: { partition: 'readings-0', offset: 102 } }] });
    assert.deepEqual(totals(sink, 0), [1, 3], 'only the records before the failure produce output');
    assert.deepEqual(totals(sink, 1), [10, 30]);
    assert.equal(sink.deadLetters.length, 0, 'a failure is not poison');
    const logged = logger.at('error');
    assert.deepEqual(
      logged.map((l) => [l.sluice, l.partition, l.offset]),
      [['record-failed', 0, 102]],
    );
    assert.equal(logged[0].error, 'downstream unavailable');
  });

  test('commits state only up to the record before the failure', async () => {
    outage = true;
    const { handler, store } = setUp();
    await handler(kafkaEvent(partition0, partition1), ctx);
    const state = store.dump();
    assert.deepEqual(state['totals/readings/0/keyed:total'], { a: { value: 3, offset: 101 } });
    assert.deepEqual(state['totals/readings/1/keyed:total'], { a: { value: 30, offset: 8 } });
    const window = Object.entries(state).find(([table]) => table.startsWith('totals/readings/0/window:perMinute:'));
    assert.ok(window, 'the window state of partition 0 is stored');
    assert.deepEqual(window[1].a, { value: { c: 1_101, w: [[0, 60_000, [3]]] }, offset: 101 });
  });

  test('re-invoking from the failed offset after the fix gives the same state as a run without failure', async () => {
    const expected = await cleanRunState();

    outage = true;
    const { handler, sink, store } = setUp();
    await handler(kafkaEvent(partition0, partition1), ctx);
    outage = false;
    const retry = await handler(kafkaEvent(partition0.slice(2)), ctx);

    assert.deepEqual(retry, { batchItemFailures: [] });
    assert.deepEqual(totals(sink, 0), [1, 3, 16, 20, 25]);
    assert.deepEqual(store.dump(), expected);
  });

  test('re-delivering the whole batch after the fix applies the records before the failure only once', async () => {
    const expected = await cleanRunState();

    outage = true;
    const { handler, store } = setUp();
    await handler(kafkaEvent(partition0, partition1), ctx);
    outage = false;
    assert.deepEqual(await handler(kafkaEvent(partition0, partition1), ctx), { batchItemFailures: [] });

    assert.deepEqual(store.dump(), expected);
  });

  test('a failure on the first record of a partition commits nothing for it', async () => {
    outage = true;
    const { handler, sink, store } = setUp();
    const response = await handler(kafkaEvent(partition0.slice(2), partition1), ctx);
    assert.deepEqual(response, { batchItemFailures: [{ itemIdentifier: { partition: 'readings-0', offset: 102 } }] });
    assert.deepEqual(totals(sink, 0), []);
    assert.deepEqual(
      Object.keys(store.dump()).filter((table) => table.includes('/readings/0/')),
      [],
    );
  });
});

describe('middy', () => {
  test('a middleware .use()d on the exported handler runs around the pipeline', async () => {
    const handler = sluice(stream<Reading>('readings', { name: 'mw' }).to('copy'));
    const sink = new CaptureSink();
    handler.sluice.configure({ sink, deadLetters: sink, store: new MemoryStore() });
    const calls: string[] = [];
    const returned = handler.use({
      before: (request) => {
        calls.push(`before ${Object.keys(request.event.records).join(',')}`);
        // Middlewares see the raw event first: drop partition 1.
        const { 'readings-1': _dropped, ...rest } = request.event.records;
        request.event = { ...request.event, records: rest };
      },
      after: (request) => {
        calls.push(`after ${request.response?.batchItemFailures.length} failures`);
      },
    });
    assert.equal(returned, handler, '.use() returns the same handler, still carrying .sluice');

    const response = await handler(kafkaEvent([record(0, 1, 'a', { value: 1 })], [record(1, 1, 'b', { value: 2 })]), ctx);

    assert.deepEqual(response, { batchItemFailures: [] });
    assert.deepEqual(calls, ['before readings-0,readings-1', 'after 0 failures']);
    assert.deepEqual(
      sink.messages.map((m) => m.key),
      ['a'],
    );
  });

  test('an onError middleware sees the error of an event that is not from Kafka', async () => {
    const handler = sluice(stream<Reading>('readings', { name: 'mw' }).to('copy'));
    const seen: string[] = [];
    handler.use({
      onError: (request) => {
        seen.push(request.error?.name ?? 'none');
        request.response = { batchItemFailures: [] };
      },
    });
    const response = await handler({ Records: [] } as never, ctx);
    assert.deepEqual(seen, ['SluiceError']);
    assert.deepEqual(response, { batchItemFailures: [] });
  });
});
