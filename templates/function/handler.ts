/**
 * __NAME__: sums `amount` per key (the Kafka message key) over 1-minute tumbling windows with
 * 10 seconds of grace, after dropping records without a positive amount. Replace the steps with
 * yours; docs/windows.md lists every window and aggregation.
 */
import { count, filter, sluice, source, sum, to, tumblingWindow } from 'sluice';

export interface Event {
  readonly amount: number;
}

@source('__TOPIC__', { validate: (v: Event) => typeof v?.amount === 'number' || 'amount must be a number' })
export class __CLASS__ {
  @filter()
  positive(e: Event): boolean {
    return e.amount > 0;
  }

  @to('__TOPIC__-totals')
  @tumblingWindow('1m', { grace: '10s' })
  totals = { total: sum('amount'), events: count() };
}

export const handler = sluice(__CLASS__);
