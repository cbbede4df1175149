/**
 * Transport mode from GPS speed: per device (the Kafka key), 10-second tumbling windows of speed
 * readings in m/s give mean, max, standard deviation and count; when a window closes, a
 * scikit-learn random forest exported to ONNX (scripts/models/train_transport_mode.py) predicts
 * walking, cycling or driving. All windows closing in one batch share one model run.
 */
import { type Aggregator, count, max, mean, onnxModel, type RecordContext, score, sluice, source, to, tumblingWindow } from 'sluice';

export interface SpeedReading {
  readonly device: string;
  /** Metres per second. */
  readonly speed: number;
}

/** A window's features, in the order the model was trained on. */
export interface WindowFeatures {
  readonly start: number;
  readonly end: number;
  readonly mean: number | null;
  readonly max: number | null;
  readonly std: number;
  readonly count: number;
}

export interface ModePrediction {
  readonly device: string;
  readonly start: number;
  readonly end: number;
  readonly features: { readonly mean: number | null; readonly max: number | null; readonly std: number; readonly count: number };
  readonly mode: string;
  readonly probability: number;
}

/** Population standard deviation of a field (Welford's running mean and squared deviations), mergeable. */
export function std(field: string): Aggregator<Record<string, number>, number, [number, number, number]> {
  return {
    kind: 'std',
    signature: `std(${field})`,
    initialize: () => [0, 0, 0],
    add: ([n, m, m2], v) => {
      const x = v[field];
      if (typeof x !== 'number') return [n, m, m2];
      const d = x - m;
      const mean1 = m + d / (n + 1);
      return [n + 1, mean1, m2 + d * (x - mean1)];
    },
    result: ([n, , m2]) => (n === 0 ? 0 : Math.sqrt(m2 / n)),
    merge: ([na, ma, qa], [nb, mb, qb]) => {
      const n = na + nb;
      if (n === 0) return [0, 0, 0];
      const d = mb - ma;
      return [n, ma + (d * nb) / n, qa + qb + (d * d * na * nb) / n];
    },
  };
}

/** The classifier: input `features` float [N, 4]; outputs `label` [N] and `probabilities` [N, 3]. */
export const transportModel = onnxModel<{ label: string; probabilities: number[] }>(new URL('./model.onnx', import.meta.url), {
  name: 'transport-mode',
});

@source('gps-speeds', {
  validate: (v: SpeedReading) => (Number.isFinite(v?.speed) && v.speed >= 0) || 'speed must be a non-negative number of m/s',
})
export class TransportMode {
  @tumblingWindow('10s', { grace: '2s' })
  stats = { mean: mean('speed'), max: max('speed'), std: std('speed'), count: count() };

  @to('transport-modes')
  @score(transportModel, { features: (w: WindowFeatures) => [w.mean, w.max, w.std, w.count] })
  predict(o: { label: string; probabilities: number[] }, w: WindowFeatures, ctx: RecordContext): ModePrediction {
    return {
      device: ctx.key ?? '',
      start: w.start,
      end: w.end,
      features: { mean: w.mean, max: w.max, std: w.std, count: w.count },
      mode: o.label,
      // float32 probabilities can sum a hair over 1.
      probability: Math.min(1, Math.max(...o.probabilities)),
    };
  }
}

export const handler = sluice(TransportMode);
