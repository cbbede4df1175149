/**
 * The seed workflow: sensors emit a count every second; sum `value` per sensor (the Kafka key)
 * over 10-second tumbling windows with 2 seconds of grace.
 */
import { sluice, source, sum, to, tumblingWindow } from 'sluice';

export interface SensorCount {
  readonly value: number;
}

@source('sensor-counts', { validate: (v: SensorCount) => typeof v?.value === 'number' || 'value must be a number' })
export class SensorSums {
  @to('sensor-sums')
  @tumblingWindow('10s', { grace: '2s' })
  total = sum('value');
}

export const handler = sluice(SensorSums);
