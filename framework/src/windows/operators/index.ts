/**
 * The window operators, one file per kind, and {@link createWindowOperator}, which picks one for a
 * window spec. To add a window kind: its pure math in `../assign.ts` (with table tests), a
 * subclass of {@link WindowOperator} in its own file here, and a case below.
 */
import type { WindowSpec } from '../spec.js';
import type { WindowAggregations, WindowOperator } from './base.js';
import { CountWindowOperator } from './count.js';
import { SessionWindowOperator } from './session.js';
import { SlidingWindowOperator } from './sliding.js';
import { TimeWindowOperator } from './time.js';

export type { WindowAggregations, WindowSink } from './base.js';
export { WindowOperator } from './base.js';

/**
 * Builds the operator for a window spec; throws a ConfigError for a spec its kind cannot run
 * (a session aggregation without merge, a sliding window closed by partition).
 *
 * @example
 * const op = createWindowOperator({ kind: 'tumbling', sizeMs: 10_000, graceMs: 2_000, emit: 'final', closeBy: 'key' }, aggs, 'total');
 */
export function createWindowOperator(spec: WindowSpec, aggs: WindowAggregations, name: string): WindowOperator {
  switch (spec.kind) {
    case 'tumbling':
    case 'hopping':
      return new TimeWindowOperator(spec, aggs, name);
    case 'session':
      return new SessionWindowOperator(spec, aggs, name);
    case 'sliding':
      return new SlidingWindowOperator(spec, aggs, name);
    case 'tumblingCount':
    case 'hoppingCount':
    case 'slidingCount':
      return new CountWindowOperator(spec, aggs, name);
  }
}
