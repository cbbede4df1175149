import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { sluice, stream, sum } from 'sluice';
import { MemoryStore } from 'sluice/state';
import { type InputRecord, lambdaContext, runFunction, toKafkaEvents } from 'sluice/testing';
import { handler as fastVehicles } from '../../functions/fast-vehicles/handler.js';
import { handler as sensorSums, SensorSums } from '../../functions/sensor-sums/handler.js';
import { handler as clickSessions } from '../../functions/sessions/handler.js';
import { handler as speedAverage } from '../../functions/speed-average/handler.js';

describe('functions/sensor-sums: sum of value per sensor, 10 s tumbling windows, 2 s grace', () => {
  // Window [0, 10s) of s1 gets 2 + 3 + 1: the record at 9s arrives after 11s but within grace.
  // 12s closes it (10s <= 12s - 2s), so the record at 8s is late. s2 has its own clock.
  const input: InputRecord[] = [
    { key: 's1', value: { value: 2 }, timestamp: 1_000 }, // 0
    { key: 's2', value: { value: 10 }, timestamp: 3_000 }, // 1
    { key: 's1', value: { value: 3 }, timestamp: 5_000 }, // 2
    { key: 's1', value: { value: 4 }, timestamp: 11_000 }, // 3
    { key: 's1', value: { value: 1 }, timestamp: 9_000 }, // 4: within grace
    { key: 's1', value: { value: 5 }, timestamp: 12_000 }, // 5: closes [0, 10s)
    { key: 's1', value: { value: 100 }, timestamp: 8_000 }, // 6: late
    { key: 's2', value: { value: 'seven' }, timestamp: 4_000 }, // 7: invalid
  ];

  test('emits only closed windows without flush', async () => {
    const run = await runFunction(sensorSums, input);
    assert.deepEqual(run.values('sensor-sums'), [{ start: 0, end: 10_000, value: 6 }]);
    assert.deepEqual(
      run.outputs.map((m) => [m.key, m.timestamp, m.id]),
      [['s1', 0, 'SensorSums:total:s1:0:10000']],
    );
    assert.deepEqual(run.responses, [{ batchItemFailures: [] }]);
  });

  test('reports the late record with the window it missed and the clock that closed it', async () => {
    const run = await runFunction(sensorSums, input);
    assert.deepEqual(run.late, [
      {
        window: 'total',
        key: 's1',
        value: { value: 100 },
        timestamp: 8_000,
        offset: 6,
        windows: [[0, 10_000]],
        clock: 12_000,
        id: 'SensorSums:late:total:sensor-counts-0:6:0',
      },
    ]);
  });

  test('late records in different partitions at the same offset get different ids', async () => {
    const run = await runFunction(sensorSums, [
      { key: 's1', value: { value: 1 }, timestamp: 30_000, partition: 0 },
      { key: 's2', value: { value: 1 }, timestamp: 30_000, partition: 1 },
      { key: 's1', value: { value: 1 }, timestamp: 1_000, partition: 0 },
      { key: 's2', value: { value: 1 }, timestamp: 1_000, partition: 1 },
    ]);
    assert.deepEqual(
      run.late.map((l) => [l.key, l.offset, l.id]),
      [
        ['s1', 1, 'SensorSums:late:total:sensor-counts-0:1:0'],
        ['s2', 1, 'SensorSums:late:total:sensor-counts-1:1:0'],
      ],
    );
  });

  test('sends the invalid record to dead letters with the reason from validate()', async () => {
    const run = await runFunction(sensorSums, input);
    assert.deepEqual(
      run.deadLetters.map((d) => [d.record.offset, d.stage, d.reason]),
      [[7, 'validate', 'value must be a number']],
    );
  });

  test('with flush, also emits every open window, per key', async () => {
    const run = await runFunction(sensorSums, input, { flush: true });
    assert.deepEqual(
      run.outputs.map((m) => [m.key, m.value]),
      [
        ['s1', { start: 0, end: 10_000, value: 6 }],
        ['s1', { start: 10_000, end: 20_000, value: 9 }],
        ['s2', { start: 0, end: 10_000, value: 10 }],
      ],
    );
    assert.equal(run.late.length, 1, 'flush does not turn the late record into a result');
  });

  test('gives the same results with one record per invocation', async () => {
    const run = await runFunction(sensorSums, input, { batchSize: 1, flush: true });
    assert.equal(run.responses.length, input.length);
    assert.deepEqual(run.values('sensor-sums'), [
      { start: 0, end: 10_000, value: 6 },
      { start: 10_000, end: 20_000, value: 9 },
      { start: 0, end: 10_000, value: 10 },
    ]);
  });
});

describe('functions/speed-average: mean speed and count per vehicle, 30 s tumbling windows, 1 s grace', () => {
  // car [0, 30s): 12.5, 17.5, 30 and 50 (29s arrives at 30.5s, within grace) = 110 / 4 = 27.5.
  // 31s closes it; 20s is then late. car [30s, 60s): 40, 60 → 50.
  const input: InputRecord[] = [
    { key: 'car', value: { vehicle: 'car', speed: 12.5 }, timestamp: 0 }, // 0
    { key: 'van', value: { vehicle: 'van', speed: 7 }, timestamp: 5_000 }, // 1
    { key: 'car', value: { vehicle: 'car', speed: 17.5 }, timestamp: 10_000 }, // 2
    { key: 'car', value: { vehicle: 'car', speed: 30 }, timestamp: 29_999 }, // 3
    { key: 'car', value: { vehicle: 'car', speed: 'fast' }, timestamp: 30_500 }, // 4: invalid
    { key: 'car', value: { vehicle: 'car', speed: 40 }, timestamp: 30_500 }, // 5
    { key: 'car', value: { vehicle: 'car', speed: 50 }, timestamp: 29_000 }, // 6: within grace
    { key: 'car', value: { vehicle: 'car', speed: 60 }, timestamp: 31_000 }, // 7: closes [0, 30s)
    { key: 'car', value: { vehicle: 'car', speed: 99 }, timestamp: 20_000 }, // 8: late
  ];

  test('emits the closed window with avg and readings', async () => {
    const run = await runFunction(speedAverage, input);
    assert.deepEqual(run.values('speed-averages'), [{ start: 0, end: 30_000, avg: 27.5, readings: 4 }]);
    assert.deepEqual(
      run.deadLetters.map((d) => [d.record.offset, d.reason]),
      [[4, 'speed must be a finite number']],
    );
  });

  test('reports the late record', async () => {
    const run = await runFunction(speedAverage, input);
    assert.deepEqual(
      run.late.map((l) => [l.window, l.key, l.offset, l.timestamp, l.windows, l.clock]),
      [['speed', 'car', 8, 20_000, [[0, 30_000]], 31_000]],
    );
  });

  test('with flush, also emits the open windows', async () => {
    const run = await runFunction(speedAverage, input, { flush: true });
    assert.deepEqual(
      run.outputs.map((m) => [m.key, m.value]),
      [
        ['car', { start: 0, end: 30_000, avg: 27.5, readings: 4 }],
        ['car', { start: 30_000, end: 60_000, avg: 50, readings: 2 }],
        ['van', { start: 0, end: 30_000, avg: 7, readings: 1 }],
      ],
    );
  });
});

describe('functions/fast-vehicles: km/h above 100, stateless', () => {
  const input: InputRecord[] = [
    { key: 'car-7', value: { vehicle: 'car-7', speed: 30 }, timestamp: 1, headers: { trace: 't-0' } }, // 108 km/h
    { key: 'bike-1', value: { vehicle: 'bike-1', speed: 6 }, timestamp: 2 }, // 21.6
    { key: 'van-2', value: { vehicle: 'van-2', speed: 27.78 }, timestamp: 3 }, // 100.008 → 100.0, not above 100
    { key: 'van-2', value: { vehicle: 'van-2', speed: 27.8 }, timestamp: 4 }, // 100.08 → 100.1
    { key: 'car-7', value: { vehicle: 'car-7', speed: null }, timestamp: 5 }, // invalid
    { key: 'car-7', value: { vehicle: 'car-7', speed: 33.46 }, timestamp: 6 }, // 120.456 → 120.5
  ];

  test('keeps the readings above 100 km/h, rounded to one decimal', async () => {
    const run = await runFunction(fastVehicles, input);
    assert.deepEqual(
      run.outputs.map((m) => [m.topic, m.key, m.value]),
      [
        ['fast-vehicles', 'car-7', { vehicle: 'car-7', kmh: 108 }],
        ['fast-vehicles', 'van-2', { vehicle: 'van-2', kmh: 100.1 }],
        ['fast-vehicles', 'car-7', { vehicle: 'car-7', kmh: 120.5 }],
      ],
    );
    assert.deepEqual(
      run.deadLetters.map((d) => [d.record.offset, d.reason]),
      [[4, 'speed must be a finite number']],
    );
    assert.deepEqual(run.late, []);
  });

  test('passes the input headers through, with the record id', async () => {
    const run = await runFunction(fastVehicles, input);
    assert.deepEqual(run.outputs[0].headers, { trace: 't-0', 'sluice-id': 'FastVehicles:vehicle-speeds-0:0:0' });
    assert.deepEqual(run.outputs[1].headers, { 'sluice-id': 'FastVehicles:vehicle-speeds-0:3:0' });
  });

  test('flush changes nothing and there is no state', async () => {
    const plain = await runFunction(fastVehicles, input);
    const flushed = await runFunction(fastVehicles, input, { flush: true });
    assert.deepEqual(flushed.outputs, plain.outputs);
    assert.deepEqual(flushed.state(), {});
  });
});

describe('functions/sessions: click sessions per user, 30 s gap, 5 s grace', () => {
  // u1: 0, 10s, 25s form [0, 55s); 100s closes it (55s <= 100s - 5s) and 40s is then late.
  // u3: 0 and 34s are two sessions until 20s bridges them: [0, 34s + 30s).
  const click = (user: string, page: string | undefined, timestamp: number): InputRecord => ({
    key: user,
    value: page === undefined ? { user } : { user, page },
    timestamp,
  });
  const input: InputRecord[] = [
    click('u1', 'home', 0), // 0
    click('u3', 'a', 0), // 1
    click('u1', 'search', 10_000), // 2
    click('u2', 'home', 20_000), // 3
    click('u1', 'item', 25_000), // 4
    click('u3', 'b', 34_000), // 5
    click('u3', 'c', 20_000), // 6: merges u3's sessions
    click('u1', 'home', 100_000), // 7: closes u1's first session
    click('u1', 'cart', 40_000), // 8: late
    click('u2', undefined, 21_000), // 9: invalid
  ];

  test('emits the closed session with clicks, pages in event-time order and its length', async () => {
    const run = await runFunction(clickSessions, input);
    assert.deepEqual(
      run.outputs.map((m) => [m.topic, m.key, m.value]),
      [['click-sessions', 'u1', { start: 0, end: 55_000, clicks: 3, pages: ['home', 'search', 'item'], seconds: 55 }]],
    );
    assert.deepEqual(
      run.deadLetters.map((d) => [d.record.offset, d.reason]),
      [[9, 'page must be a string']],
    );
  });

  test('reports the late click with the session it would have formed', async () => {
    const run = await runFunction(clickSessions, input);
    assert.deepEqual(run.late, [
      {
        window: 'session',
        key: 'u1',
        value: { user: 'u1', page: 'cart' },
        timestamp: 40_000,
        offset: 8,
        windows: [[40_000, 70_000]],
        clock: 100_000,
        id: 'clicks:late:session:clicks-0:8:0',
      },
    ]);
  });

  test('with flush, also emits the open sessions, including the merged one', async () => {
    const run = await runFunction(clickSessions, input, { flush: true });
    assert.deepEqual(run.values('click-sessions'), [
      { start: 0, end: 55_000, clicks: 3, pages: ['home', 'search', 'item'], seconds: 55 },
      { start: 100_000, end: 130_000, clicks: 1, pages: ['home'], seconds: 30 },
      { start: 20_000, end: 50_000, clicks: 1, pages: ['home'], seconds: 30 },
      { start: 0, end: 64_000, clicks: 3, pages: ['a', 'c', 'b'], seconds: 64 },
    ]);
  });
});

describe('runFunction', () => {
  const input: InputRecord[] = [
    { key: 'a', value: { value: 1 }, timestamp: 1_000 },
    { key: 'a', value: { value: 2 }, timestamp: 2_000, partition: 1 },
    { key: 'a', value: { value: 3 }, timestamp: 3_000 },
  ];

  test('accepts a definition as well as a handler', async () => {
    const fromClass = await runFunction(SensorSums, input, { flush: true });
    const fromHandler = await runFunction(sensorSums, input, { flush: true });
    assert.deepEqual(fromClass.outputs, fromHandler.outputs);
    assert.equal(fromClass.outputs.length, 2);
  });

  test('keeps partitions apart, numbers offsets per partition from startOffset and flushes each partition', async () => {
    const run = await runFunction(sensorSums, input, { flush: true, startOffset: 40 });
    assert.deepEqual(
      run.outputs.map((m) => [m.id, m.value]),
      [
        ['SensorSums:total:a:0:10000', { start: 0, end: 10_000, value: 4 }],
        ['SensorSums:total:a:0:10000', { start: 0, end: 10_000, value: 2 }],
      ],
    );
    assert.deepEqual(
      Object.entries(run.state()).map(([table, items]) => [table.split('/').slice(0, 3).join('/'), items.a.offset]),
      [
        // The flush closes the open windows just after each partition's last offset (41 and 40).
        ['SensorSums/sensor-counts/0', 41.5],
        ['SensorSums/sensor-counts/1', 40.5],
      ],
    );
  });

  test('splits the input into events of batchSize records per partition', () => {
    const shape = (batchSize: number) =>
      [...toKafkaEvents(input, { topic: 'sensor-counts', batchSize })].map((e) =>
        Object.entries(e.records).map(([group, rs]) => [group, rs.map((r) => r.offset)]),
      );
    assert.deepEqual(shape(1), [[['sensor-counts-0', [0]]], [['sensor-counts-1', [0]]], [['sensor-counts-0', [1]]]]);
    assert.deepEqual(shape(2), [
      [
        ['sensor-counts-0', [0, 1]],
        ['sensor-counts-1', [0]],
      ],
    ]);
  });

  test('continues from the state of an earlier run through the store option', async () => {
    const store = new MemoryStore();
    await runFunction(sensorSums, input.slice(0, 1), { store });
    const run = await runFunction(sensorSums, [{ key: 'a', value: { value: 5 }, timestamp: 12_000 }], { store, startOffset: 1 });
    assert.deepEqual(run.values('sensor-sums'), [{ start: 0, end: 10_000, value: 1 }]);
    assert.equal(run.store, store);
  });

  // A finished run must not keep its onBatch hook installed, or it would keep collecting late
  // records from later invocations of the same handler.
  test('leaves the handler it was given as it found it', async () => {
    const handler = sluice(
      stream<{ value: number }>('sensor-counts', { name: 'sums' }).tumblingWindow('10s').aggregate(sum('value'), { name: 'total' }),
    );
    const before = { ...handler.sluice.runtime };
    const late: InputRecord[] = [
      { key: 'a', value: { value: 1 }, timestamp: 30_000 },
      { key: 'a', value: { value: 1 }, timestamp: 1_000 },
    ];
    const run = await runFunction(handler, late);
    assert.equal(run.late.length, 1);

    assert.equal(handler.sluice.runtime.sink, before.sink);
    assert.equal(handler.sluice.runtime.deadLetters, before.deadLetters);
    assert.equal(handler.sluice.runtime.store, before.store);
    assert.equal(handler.sluice.runtime.onBatch, before.onBatch);
    const [event] = toKafkaEvents(late, { topic: 'sensor-counts', startOffset: 10 });
    await handler(event, lambdaContext('sums') as never);
    assert.equal(run.late.length, 1, 'a finished run does not change');
  });
});
