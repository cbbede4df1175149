import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  count,
  eventTime,
  filter,
  key,
  keyed,
  type KeyedState,
  keyedState,
  type LateRecord,
  map,
  mean,
  source,
  stream,
  sum,
  to,
  tumblingWindow,
} from 'sluice';
import { type Manifest, manifestOf, outputTopics } from 'sluice/runtime';
import { type InputRecord, runFunction } from 'sluice/testing';

interface Reading {
  readonly vehicle: string;
  readonly speed: number;
  readonly ts: number;
}

interface Kmh {
  readonly vehicle: string;
  readonly kmh: number;
  readonly nth: number;
}

const validate = (r: Reading) => typeof r?.speed === 'number' || 'speed must be a number';
const lateLog: LateRecord[] = [];
const onLate = (late: LateRecord) => void lateLog.push(late);

@source('vehicle-speeds', { name: 'speeds', value: 'json', lateTopic: 'late-speeds', validate })
class SpeedsByDecorators {
  @keyed() seen!: KeyedState<number>;

  @key()
  byVehicle(r: Reading): string {
    return r.vehicle;
  }

  @eventTime()
  at(r: Reading): number {
    return r.ts;
  }

  @to('kmh', { value: 'json' })
  @map()
  toKmh(r: Reading): Kmh {
    const nth = (this.seen.get() ?? 0) + 1;
    this.seen.set(nth);
    return { vehicle: r.vehicle, kmh: r.speed * 3.6, nth };
  }

  @filter()
  moving(r: Kmh): boolean {
    return r.kmh > 0;
  }

  @to('speed-stats')
  @to('speed-stats-copy', { key: 'string' })
  @tumblingWindow('10s', { grace: '2s', onLate })
  stats = { avg: mean('kmh'), n: count(), total: sum('kmh') };
}

const seen = keyedState<number>('seen');
const speedsByChain = stream<Reading>('vehicle-speeds', {
  name: 'speeds',
  value: 'json',
  lateTopic: 'late-speeds',
  validate,
  state: [seen],
})
  .key(function byVehicle(r) {
    return r.vehicle;
  })
  .timestamp((r) => r.ts, { name: 'at' })
  .map(
    (r) => {
      const nth = (seen.get() ?? 0) + 1;
      seen.set(nth);
      return { vehicle: r.vehicle, kmh: r.speed * 3.6, nth };
    },
    { name: 'toKmh' },
  )
  .to('kmh', { value: 'json' })
  .filter(function moving(r) {
    return r.kmh > 0;
  })
  .tumblingWindow('10s', { grace: '2s' })
  .aggregate({ avg: mean('kmh'), n: count(), total: sum('kmh') }, { name: 'stats', onLate })
  .to('speed-stats')
  .to('speed-stats-copy', { key: 'string' });

/** A manifest with functions replaced by their step kind and name, and serializers by name. */
function normalize(m: Manifest) {
  return {
    name: m.name,
    lateTopic: m.lateTopic,
    state: m.state,
    source: { topic: m.source.topic, key: m.source.key.name, value: m.source.value.name, validate: typeof m.source.validate },
    steps: m.steps.map((s) => {
      switch (s.kind) {
        case 'window':
          return {
            kind: s.kind,
            name: s.name,
            window: s.window,
            onLate: typeof s.onLate,
            aggregations: { single: s.aggregations.single, entries: s.aggregations.entries.map(([n, a]) => [n, a.kind, a.signature]) },
          };
        case 'to':
          return { kind: s.kind, name: s.name, topic: s.topic, key: s.key.name, value: s.value.name };
        case 'score':
          return { kind: s.kind, name: s.name, model: s.model, features: typeof s.features, output: typeof s.output };
        default:
          return { kind: s.kind, name: s.name, fn: typeof s.fn };
      }
    }),
  };
}

const input: InputRecord[] = [
  { key: null, value: { vehicle: 'car-1', speed: 10, ts: 1_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-2', speed: 20, ts: 2_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-1', speed: 0, ts: 3_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-1', speed: 'fast', ts: 3_500 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-1', speed: 30, ts: 9_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-1', speed: 5, ts: 13_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-1', speed: 40, ts: 4_000 }, timestamp: 0 },
  { key: null, value: { vehicle: 'car-2', speed: 25, ts: 15_000 }, timestamp: 0 },
];

describe('decorator form and function-first form', () => {
  test('produce the same manifest', () => {
    const fromDecorators = normalize(manifestOf(SpeedsByDecorators));
    const fromChain = normalize(manifestOf(speedsByChain));
    assert.deepEqual(fromDecorators, fromChain);
    assert.deepEqual(
      fromChain.steps.map((s) => `${s.kind}:${s.name}`),
      ['key:byVehicle', 'timestamp:at', 'map:toKmh', 'to:kmh', 'filter:moving', 'window:stats', 'to:speed-stats', 'to:speed-stats-copy'],
    );
    assert.deepEqual(fromChain.steps[5], {
      kind: 'window',
      name: 'stats',
      onLate: 'function',
      window: { kind: 'tumbling', sizeMs: 10_000, graceMs: 2_000, emit: 'final', closeBy: 'key' },
      aggregations: {
        single: false,
        entries: [
          ['avg', 'mean', 'mean(kmh)'],
          ['n', 'count', 'count()'],
          ['total', 'sum', 'sum(kmh)'],
        ],
      },
    });
    assert.deepEqual(fromChain.state, [{ name: 'seen' }]);
    assert.deepEqual(fromChain.source, { topic: 'vehicle-speeds', key: 'string', value: 'json', validate: 'function' });
  });

  test('produce identical outputs, dead letters and late records on the same input', async () => {
    lateLog.length = 0;
    const a = await runFunction(SpeedsByDecorators, input, { flush: true });
    const lateFromDecorators = lateLog.splice(0);
    const b = await runFunction(speedsByChain, input, { flush: true });
    const lateFromChain = lateLog.splice(0);

    assert.deepEqual(a.outputs, b.outputs);
    assert.deepEqual(a.deadLetters, b.deadLetters);
    assert.deepEqual(a.late, b.late);
    assert.deepEqual(lateFromDecorators, lateFromChain);
    assert.deepEqual(a.state(), b.state());

    // And the outputs are the right ones, so "identical" cannot mean "both empty".
    assert.deepEqual(
      b.values('kmh').map((v) => (v as Kmh).nth),
      [1, 1, 2, 3, 4, 5, 2],
    );
    assert.deepEqual(
      b.deadLetters.map((d) => [d.record.offset, d.reason]),
      [[3, 'speed must be a number']],
    );
    assert.deepEqual(
      b.late.map((l) => [l.offset, l.key, l.windows]),
      [[6, 'car-1', [[0, 10_000]]]],
    );
    assert.equal(lateFromChain.length, 1);
    assert.deepEqual(b.values('speed-stats'), [
      { start: 0, end: 10_000, avg: 72, n: 2, total: 144 },
      { start: 0, end: 10_000, avg: 72, n: 1, total: 72 },
      { start: 10_000, end: 20_000, avg: 18, n: 1, total: 18 },
      { start: 10_000, end: 20_000, avg: 90, n: 1, total: 90 },
    ]);
    assert.deepEqual(b.values('speed-stats-copy'), b.values('speed-stats'));
    assert.deepEqual(
      b.outputs.filter((m) => m.topic === 'late-speeds').map((m) => m.key),
      ['car-1'],
    );
  });
});

describe('decorator form', () => {
  test('step order follows source order when fields and methods are mixed', () => {
    @source('t')
    class Mixed {
      @map()
      first(v: number): number {
        return v + 1;
      }

      @tumblingWindow('30s')
      second = sum();

      @keyed() memo!: KeyedState<number>;

      @map()
      third(w: { value: number }): number {
        return w.value;
      }

      @filter()
      fourth(v: number): boolean {
        return v > 0;
      }

      @to('out')
      @tumblingWindow('1m')
      fifth = count();
    }
    const m = manifestOf(Mixed);
    assert.deepEqual(
      m.steps.map((s) => `${s.kind}:${s.name}`),
      ['map:first', 'window:second', 'map:third', 'filter:fourth', 'window:fifth', 'to:out'],
    );
    assert.deepEqual(m.state, [{ name: 'memo' }]);
  });

  test('several @to outputs are allowed, on one member and on several', async () => {
    @source('numbers')
    class Fanout {
      @to('doubled')
      @to('doubled-audit')
      @map()
      double(v: number): number {
        return v * 2;
      }

      @to('big')
      @filter()
      big(v: number): boolean {
        return v > 5;
      }
    }
    const m = manifestOf(Fanout);
    assert.deepEqual(
      m.steps.map((s) => `${s.kind}:${s.name}`),
      ['map:double', 'to:doubled', 'to:doubled-audit', 'filter:big', 'to:big'],
    );
    assert.deepEqual(outputTopics(m), ['doubled', 'doubled-audit', 'big']);

    const run = await runFunction(
      Fanout,
      [1, 3, 5].map((v, i) => ({ key: 'k', value: v, timestamp: i })),
    );
    assert.deepEqual(run.values('doubled'), [2, 6, 10]);
    assert.deepEqual(run.values('doubled-audit'), [2, 6, 10]);
    assert.deepEqual(run.values('big'), [6, 10]);
  });

  test('the function name defaults to the class name', () => {
    @source('t')
    class SensorTotals {
      @to('out')
      @tumblingWindow('10s')
      total = sum();
    }
    assert.equal(manifestOf(SensorTotals).name, 'SensorTotals');
    assert.equal(manifestOf(stream('t')).name, 't');
  });
});
