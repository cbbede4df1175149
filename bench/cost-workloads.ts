/**
 * bench:cost's input: for each example function, a seeded stream of records on its topic, shaped
 * like the function's sample but scaled to any count and key space (one partition, roughly in
 * event-time order, a reading per key per second as in bench/data.ts).
 */
import type { InputRecord } from '../framework/src/runtime/msk-event.js';
import { rng, sensorStream, T0 } from './data.js';

/**
 * One example function's input: its topic and a generator of `records` records over `keys` keys.
 *
 * @example
 * for (const r of WORKLOADS['sensor-sums'].records(1000, 100)) console.log(r.key, r.value);
 */
export interface Workload {
  readonly topic: string;
  records(records: number, keys: number): Iterable<InputRecord>;
}

/** Key i's reading in round `round` (one round per second), with up to `jitter` ms of disorder. */
function* rounds<V>(records: number, keys: number, key: (i: number) => string, value: (i: number, rand: () => number) => V, gapEvery = 0) {
  const rand = rng(7);
  for (let n = 0; n < records; n++) {
    const round = Math.floor(n / keys);
    const i = n % keys;
    // With gapEvery, every gapEvery rounds the keys go quiet for 40 s: session windows close.
    const gap = gapEvery ? Math.floor(round / gapEvery) * 40_000 : 0;
    yield { key: key(i), value: value(i, rand), timestamp: T0 + round * 1000 + gap + Math.floor(rand() * 1500) };
  }
}

const MODES = [
  { name: 'walk', mean: 1.4, spread: 0.6 },
  { name: 'bike', mean: 5, spread: 2 },
  { name: 'car', mean: 14, spread: 8 },
] as const;

/** Readings of `vehicle-speeds` (speed-average and fast-vehicles): a speed per car per second. */
function vehicleSpeeds(records: number, keys: number) {
  return rounds(
    records,
    keys,
    (i) => `car-${i}`,
    (i, rand) => ({ vehicle: `car-${i}`, speed: Math.round(rand() * 4500) / 100 }),
  );
}

/**
 * The example functions' workloads, by function name.
 *
 * @example
 * const { topic, records } = WORKLOADS['sessions'];
 */
export const WORKLOADS: Readonly<Record<string, Workload>> = {
  'sensor-sums': {
    topic: 'sensor-counts',
    *records(records, keys) {
      for (const r of sensorStream(records, keys, 1)) yield { key: r.key, value: r.value, timestamp: r.timestamp };
    },
  },
  // Both read the same topic: the same readings.
  'speed-average': { topic: 'vehicle-speeds', records: vehicleSpeeds },
  'fast-vehicles': { topic: 'vehicle-speeds', records: vehicleSpeeds },
  sessions: {
    topic: 'clicks',
    records: (records, keys) =>
      rounds(
        records,
        keys,
        (i) => `user-${i}`,
        (i, rand) => ({ user: `user-${i}`, page: `/page-${Math.floor(rand() * 20)}` }),
        20,
      ),
  },
  'transport-mode': {
    topic: 'gps-speeds',
    records: (records, keys) =>
      rounds(
        records,
        keys,
        (i) => `${MODES[i % 3].name}-${i}`,
        (i, rand) => {
          const m = MODES[i % 3];
          return { device: `${m.name}-${i}`, speed: Math.round(Math.max(0, m.mean + (rand() - 0.5) * 2 * m.spread) * 100) / 100 };
        },
      ),
  },
};
