/** Converts m/s to km/h and keeps only vehicles faster than 100 km/h. Stateless. */
import { filter, map, sluice, source, to } from 'sluice';

export interface SpeedReading {
  readonly vehicle: string;
  readonly speed: number;
}

export interface KmhReading {
  readonly vehicle: string;
  readonly kmh: number;
}

@source('vehicle-speeds', { validate: (v: SpeedReading) => Number.isFinite(v?.speed) || 'speed must be a finite number' })
export class FastVehicles {
  @map()
  toKmh(r: SpeedReading): KmhReading {
    return { vehicle: r.vehicle, kmh: Math.round(r.speed * 3.6 * 10) / 10 };
  }

  @to('fast-vehicles')
  @filter()
  fast(r: KmhReading): boolean {
    return r.kmh > 100;
  }
}

export const handler = sluice(FastVehicles);
