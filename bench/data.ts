/** The benchmarks' shared, seeded sensor dataset and its reference aggregation. */
import type { InputRecord } from '../framework/src/runtime/msk-event.js';

/** mulberry32: a small seeded PRNG so every run sees the same stream. */
export function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const T0 = 1_767_225_600_000;

/**
 * `records` sensor counts over `keys` sensors: one per sensor per second, roughly in order (up to
 * 1.5 s of jitter, so a few arrive late), sensor i on partition i % partitions.
 */
export function* sensorStream(records: number, keys: number, partitions = 4): Generator<InputRecord & { partition: number }> {
  const rand = rng(42);
  for (let i = 0; i < records; i++) {
    const second = Math.floor(i / keys);
    const sensor = i % keys;
    yield {
      key: `sensor-${sensor}`,
      value: { value: Math.floor(rand() * 10) },
      timestamp: T0 + second * 1000 + Math.floor(rand() * 1500),
      partition: sensor % partitions,
    };
  }
}

/** Closed 10 s tumbling windows (2 s grace, per-key clock) of a stream: count and total. */
export function referenceSums(stream: Iterable<InputRecord>): { windows: number; total: number } {
  const SIZE = 10_000;
  const GRACE = 2_000;
  const perKey = new Map<string, { latest: number; windows: Map<number, number> }>();
  let windows = 0;
  let total = 0;
  for (const r of stream) {
    const v = (r.value as { value: number }).value;
    let st = perKey.get(r.key!);
    if (!st) perKey.set(r.key!, (st = { latest: -1, windows: new Map() }));
    if (r.timestamp > st.latest) st.latest = r.timestamp;
    const threshold = st.latest - GRACE;
    const start = r.timestamp - (r.timestamp % SIZE);
    if (start + SIZE <= threshold) continue;
    st.windows.set(start, (st.windows.get(start) ?? 0) + v);
    for (const [s, sum] of st.windows) {
      if (s + SIZE <= threshold) {
        windows++;
        total += sum;
        st.windows.delete(s);
      }
    }
  }
  return { windows, total };
}
