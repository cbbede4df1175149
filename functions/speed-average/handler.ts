/** Average `speed` per vehicle (the Kafka key) over 30-second tumbling windows with 1 second of grace. */
import { mean, count, sluice, source, to, tumblingWindow } from 'sluice';

export interface SpeedReading {
  readonly vehicle: string;
  readonly speed: number;
}

@source('vehicle-speeds', { validate: (v: SpeedReading) => Number.isFinite(v?.speed) || 'speed must be a finite number' })
export class SpeedAverage {
  @to('speed-averages')
  @tumblingWindow('30s', { grace: '1s' })
  speed = { avg: mean('speed'), readings: count() };
}

export const handler = sluice(SpeedAverage);
