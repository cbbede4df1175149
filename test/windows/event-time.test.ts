// Event times a window cannot take: records without a valid Kafka timestamp, and records far
// ahead of the wall clock (the clock guard). Through the real handler, as users run it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Duration, eventTime, sluice, source, stream, sum, to, tumblingWindow } from 'sluice';
import type { KafkaEvent, KafkaEventRecord } from 'sluice/runtime';
import { CaptureSink, type InputRecord, lambdaContext, runFunction, toEventRecord } from 'sluice/testing';
import { deadLetterMessage } from '../../framework/src/io/kafka.js';
import { kafkaTimestamp } from '../../framework/src/pipeline/records.js';
import { unaccounted } from '../../framework/src/pipeline/stats.js';
import { eventTimeLimit, eventTimeProblem } from '../../framework/src/windows/event-time.js';

const HOUR = 3_600_000;

const sums = (opts: { maxClockSkew?: Duration | false } = {}) =>
  stream<{ v: number }>('in', { name: 'sums', ...opts })
    .tumblingWindow('10s')
    .aggregate(sum('v'), { name: 'total' })
    .to('out');

/** Runs raw event records (whatever their timestamps) through a handler, as Lambda would. */
async function runEvent(handler: ReturnType<typeof sluice>, records: KafkaEventRecord[]) {
  const capture = new CaptureSink();
  const stats: number[] = [];
  handler.sluice.configure({ sink: capture, deadLetters: capture, onBatch: (r) => stats.push(unaccounted(r.stats)) });
  const event: KafkaEvent = { eventSource: 'aws:kafka', records: { 'in-0': records } };
  const response = await handler(event, lambdaContext('sums') as never);
  return { capture, response, unaccounted: stats };
}

describe('records without a valid Kafka timestamp', () => {
  const at = (timestamp: number, v = 1): InputRecord => ({ key: 'k', value: { v }, timestamp });

  for (const [label, timestamp, shown] of [
    ['-1 (Kafka: no timestamp)', -1, '-1'],
    ['NaN', Number.NaN, 'NaN'],
    ['negative', -5, '-5'],
  ] as const) {
    test(`${label}: a window dead-letters it with the reason; the records around it are summed`, async () => {
      const run = await runFunction(sums(), [at(1_000, 1), at(timestamp, 100), at(2_000, 2)], { flush: true });
      assert.deepEqual(run.values('out'), [{ start: 0, end: 10_000, value: 3 }]);
      assert.deepEqual(
        run.deadLetters.map((d) => [d.record.offset, d.stage, d.reason]),
        [
          [
            1,
            'total',
            `the record has no valid Kafka timestamp (${shown}; Kafka's "no timestamp" is -1) and window "total" needs an event time; set one with eventTime() / .timestamp(), or produce records with timestamps`,
          ],
        ],
      );
      assert.ok(Object.is(run.deadLetters[0].record.timestamp, timestamp), 'the dead letter keeps the timestamp it arrived with');
      assert.deepEqual(run.responses, [{ batchItemFailures: [] }]);
      assert.deepEqual(
        run.reports.map((r) => [r.stats.recordsIn, r.stats.applied, r.stats.deadLettered, unaccounted(r.stats)]),
        [[3, 2, 1, 0]],
      );
    });
  }

  test('missing, or not a number: dead-lettered the same way, naming what arrived', async () => {
    const handler = sluice(sums());
    const ok = toEventRecord(at(1_000), 'in', 0, 0);
    const { timestamp: _, ...missing } = toEventRecord(at(1_000, 100), 'in', 0, 1);
    const text = { ...toEventRecord(at(1_000, 100), 'in', 0, 2), timestamp: '1000' as unknown as number };
    const { capture, response, unaccounted } = await runEvent(handler, [ok, missing as KafkaEventRecord, text]);
    assert.deepEqual(response, { batchItemFailures: [] });
    assert.deepEqual(
      capture.deadLetters.map((d) => d.reason.slice(0, d.reason.indexOf(';'))),
      ['the record has no valid Kafka timestamp (none', 'the record has no valid Kafka timestamp (string "1000"'],
    );
    assert.deepEqual(unaccounted, [0]);
  });

  test('a dead letter without a timestamp can still be sent to Kafka: it carries -1, "no timestamp"', () => {
    const { timestamp: _, ...missing } = toEventRecord(at(0), 'in', 0, 1);
    const message = deadLetterMessage({ record: missing as KafkaEventRecord, stage: 'total', reason: 'no timestamp' }, 'sums');
    assert.equal(message.timestamp, '-1');
  });

  test('an eventTime step gives the record its time: the window takes it (the step saw -1)', async () => {
    const seen: number[] = [];
    const fn = stream<{ v: number; at: number }>('in', { name: 'timed' })
      .timestamp((r, ctx) => {
        seen.push(ctx.timestamp);
        return r.at;
      })
      .tumblingWindow('10s')
      .aggregate(sum('v'), { name: 'total' })
      .to('out');
    const run = await runFunction(fn, [{ key: 'k', value: { v: 2, at: 3_000 }, timestamp: -1 }], { flush: true });
    assert.deepEqual(seen, [-1]);
    assert.deepEqual(run.values('out'), [{ start: 0, end: 10_000, value: 2 }]);
    assert.deepEqual(run.deadLetters, []);
  });

  test('a stateless function passes it through: its output carries -1, Kafka\'s "no timestamp"', async () => {
    const fn = stream<{ v: number }>('in', { name: 'copy' })
      .map((r, ctx) => ({ ...r, at: ctx.timestamp }))
      .to('out');
    const run = await runFunction(fn, [at(Number.NaN, 7), at(5, 8)]);
    assert.deepEqual(
      run.outputs.map((m) => [m.value, m.timestamp]),
      [
        [{ v: 7, at: -1 }, -1],
        [{ v: 8, at: 5 }, 5],
      ],
    );
    assert.deepEqual(run.deadLetters, []);
    assert.equal(run.reports[0].stats.applied, 2);
  });
});

describe('the clock guard', () => {
  // Times relative to the wall clock: the guard compares event time with it.
  const now = Date.now();
  // Aligned to 10 s, so past, past + 1 s and past + 2 s share one window.
  const past = now - 10 * HOUR - ((now - 10 * HOUR) % 10_000);
  const r = (key: string, timestamp: number, v = 1): InputRecord => ({ key, value: { v }, timestamp });

  test('by default a record more than 1h ahead is dead-lettered with the margin and the time, and moves no clock', async () => {
    const future = now + 3 * HOUR;
    const run = await runFunction(sums(), [r('k', past), r('k', future, 100), r('k', past + 1_000, 2)], { flush: true });
    assert.equal(run.deadLetters.length, 1);
    const [letter] = run.deadLetters;
    assert.equal(letter.record.offset, 1);
    assert.equal(letter.stage, 'total');
    assert.match(letter.reason, new RegExp(`^event time ${new Date(future).toISOString()} is 3h ahead of the wall clock \\(`));
    assert.match(letter.reason, /more than maxClockSkew \(1h\) allows, so window "total" did not take it and no window clock moved/);
    assert.match(letter.reason, /fix the producer's clock, or raise maxClockSkew on the source \(false turns the guard off\)$/);
    // The key's clock did not jump: the record after it is not late, and is summed.
    assert.deepEqual(run.late, []);
    assert.deepEqual(
      run.values('out').map((w) => (w as { value: number }).value),
      [3],
    );
  });

  test('with closeBy: partition, a future record of one key does not make the other keys late', async () => {
    const fn = stream<{ v: number }>('in', { name: 'by-partition' })
      .tumblingWindow('10s', { closeBy: 'partition' })
      .aggregate(sum('v'), { name: 'total' })
      .to('out');
    const run = await runFunction(fn, [r('a', past), r('b', now + 2 * HOUR), r('a', past + 1_000), r('c', past + 2_000)]);
    assert.deepEqual(run.late, []);
    assert.equal(run.deadLetters.length, 1);
    assert.deepEqual(run.outputs, [], 'no window closed: the partition clock stayed at the past records');
  });

  test('maxClockSkew: false turns it off: the future record is taken and moves the clock (Quix semantics)', async () => {
    const run = await runFunction(sums({ maxClockSkew: false }), [r('k', past), r('k', now + 3 * HOUR, 100), r('k', past + 1_000, 2)]);
    assert.deepEqual(run.deadLetters, []);
    assert.deepEqual(
      run.late.map((l) => l.offset),
      [2],
    );
    assert.deepEqual(
      run.values('out').map((w) => (w as { value: number }).value),
      [1],
    );
    assert.deepEqual(
      run.reports.map((x) => [x.stats.applied, x.stats.late]),
      [[2, 1]],
    );
  });

  test('a wider margin takes a record inside it', async () => {
    const run = await runFunction(sums({ maxClockSkew: '1d' }), [r('k', now + 3 * HOUR)], { flush: true });
    assert.deepEqual(run.deadLetters, []);
    assert.equal(run.values('out').length, 1);
  });

  test('the decorator form takes the option too', async () => {
    @source('in', { name: 'decorated', maxClockSkew: '5m' })
    class Decorated {
      @eventTime()
      at(v: { v: number; at: number }): number {
        return v.at;
      }

      @to('out')
      @tumblingWindow('10s')
      total = sum('v');
    }
    const run = await runFunction(Decorated, [
      { key: 'k', value: { v: 1, at: now + 10 * 60_000 }, timestamp: past },
      { key: 'k', value: { v: 1, at: now + 60_000 }, timestamp: past },
    ]);
    assert.deepEqual(
      run.deadLetters.map((d) => [d.record.offset, /is (9\.\d|10)m ahead .* maxClockSkew \(5m\)/.test(d.reason)]),
      [[0, true]],
      'the event time a step set is the one guarded',
    );
  });

  test('a stateless function has no clock to guard: a future record passes', async () => {
    const run = await runFunction(stream('in', { name: 'copy' }).to('out'), [r('k', now + 100 * HOUR)]);
    assert.deepEqual(run.deadLetters, []);
    assert.equal(run.outputs.length, 1);
  });
});

describe('eventTimeLimit and eventTimeProblem (pure)', () => {
  test('kafkaTimestamp: epoch milliseconds pass, anything else is -1 (Kafka\'s "no timestamp")', () => {
    const table: [unknown, number][] = [
      [0, 0],
      [1_767_225_600_000, 1_767_225_600_000],
      [8.64e15, 8.64e15],
      [8.64e15 + 1, -1],
      [-1, -1],
      [-5, -1],
      [Number.NaN, -1],
      [Infinity, -1],
      [undefined, -1],
      [null, -1],
      ['1000', -1],
    ];
    for (const [input, out] of table) assert.equal(kafkaTimestamp(input), out, String(input));
  });

  test('the limit is now + margin, or Infinity with the guard off', () => {
    assert.equal(eventTimeLimit(1_000, 500), 1_500);
    assert.equal(eventTimeLimit(1_000, false), Infinity);
  });

  test('a time within the limit has no problem; one past it, or -1, has one', () => {
    assert.equal(eventTimeProblem(1_500, 1_500, 'w', 1_500, 1_000, 500), undefined);
    assert.equal(eventTimeProblem(0, 0, 'w', 1_500, 1_000, 500), undefined);
    assert.match(
      eventTimeProblem(1_501, 1_501, 'w', 1_500, 1_000, 500)!,
      /^event time 1970-01-01T00:00:01\.501Z is 501ms ahead .* maxClockSkew \(500ms\)/,
    );
    assert.match(eventTimeProblem(-1, null, 'w', Infinity, 0, false)!, /no valid Kafka timestamp \(object null;/);
  });
});
