/**
 * Table tests of the pure window math in `windows/assign.ts`, which the operators call to place
 * records, close windows and join sessions. The property tests (`properties.test.ts`) check the
 * operators built on it against a brute-force reference.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  closeThreshold,
  inSlidingWindow,
  isClosed,
  isCountWindowFull,
  isSlidingClosed,
  isSlidingLate,
  joinedSessions,
  newestWindowStart,
  oldestWindowStart,
  sessionEnd,
  slidingRetainFrom,
  slidingWindowStart,
} from '../../framework/src/windows/assign.js';

/** The windows that hold `at`, walked as the operators walk them: oldest start to newest. */
function starts(at: number, size: number, step: number): number[] {
  const out: number[] = [];
  for (let s = oldestWindowStart(at, size, step); s <= newestWindowStart(at, step); s += step) out.push(s);
  return out;
}

describe('fixed windows: the starts of the windows that hold a position', () => {
  const cases: [what: string, at: number, size: number, step: number, expected: number[]][] = [
    ['tumbling', 12_345, 10_000, 10_000, [10_000]],
    ['tumbling, on a boundary', 10_000, 10_000, 10_000, [10_000]],
    ['tumbling, just before a boundary', 9_999, 10_000, 10_000, [0]],
    ['tumbling, at 0', 0, 10_000, 10_000, [0]],
    ['hopping', 25_000, 30_000, 10_000, [0, 10_000, 20_000]],
    ['hopping, standard', 100, 30, 10, [80, 90, 100]],
    ['hopping, on a boundary: the window ending there is out', 30, 30, 10, [10, 20, 30]],
    ['hopping, never below 0', 15, 30, 10, [0, 10]],
    ['hopping, only the window at 0', 5, 30, 10, [0]],
    ['tumbling count', 5, 3, 3, [3]],
    ['hopping count', 5, 4, 2, [2, 4]],
    ['hopping count, near the start', 3, 4, 2, [0, 2]],
    ['sliding count', 4, 3, 1, [2, 3, 4]],
    ['sliding count, first record', 0, 3, 1, [0]],
    ['sliding count, second record', 1, 3, 1, [0, 1]],
  ];
  for (const [what, at, size, step, expected] of cases) {
    test(`${what}: ${at} in size ${size} every ${step} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(starts(at, size, step), expected);
    });
  }

  test('the newest start is the last multiple of step at or before the position', () => {
    for (const [at, step, expected] of [
      [12_345, 10_000, 10_000],
      [10_000, 10_000, 10_000],
      [0, 5, 0],
      [7, 3, 6],
    ] as const) {
      assert.equal(newestWindowStart(at, step), expected, `${at} every ${step}`);
    }
  });

  test('agrees with brute force: every multiple of step from 0 whose window holds the position', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 20 }), fc.integer({ min: 1, max: 6 }), (at, step, k) => {
        const size = step * k;
        const expected: number[] = [];
        for (let s = 0; s <= at; s += step) if (at < s + size) expected.push(s);
        assert.deepEqual(starts(at, size, step), expected);
      }),
      { numRuns: 500 },
    );
  });
});

describe('closing fixed windows and sessions', () => {
  const cases: [end: number, clock: number, grace: number, closed: boolean][] = [
    [10_000, 12_000, 2_000, true],
    [10_000, 11_999, 2_000, false],
    [10_000, 10_000, 0, true],
    [10_000, 9_999, 0, false],
    [10_000, -1, 0, false],
    [10_000, 20_000, 10_000, true],
  ];
  for (const [end, clock, grace, closed] of cases) {
    test(`a window ending at ${end} is ${closed ? 'closed' : 'open'} at clock ${clock} with grace ${grace}`, () => {
      assert.equal(isClosed(end, closeThreshold(clock, grace)), closed);
    });
  }

  test('every window is closed at an infinite threshold (the end of a finite input)', () => {
    assert.equal(isClosed(Number.MAX_SAFE_INTEGER, Infinity), true);
  });
});

describe('count windows', () => {
  const cases: [first: number, index: number, count: number, full: boolean][] = [
    [3, 5, 3, true],
    [4, 5, 3, false],
    [0, 0, 1, true],
    [0, 1, 2, true],
    [0, 0, 2, false],
  ];
  for (const [first, index, count, full] of cases) {
    test(`the window from record ${first} of ${count} records is ${full ? 'full' : 'open'} at record ${index}`, () => {
      assert.equal(isCountWindowFull(first, index, count), full);
    });
  }
});

describe('session windows', () => {
  test('a session ends one gap after its latest record', () => {
    assert.equal(sessionEnd(7_000, 5_000), 12_000);
  });

  const cases: [what: string, sessions: [number, number][], ts: number, gap: number, expected: [number, number] | undefined][] = [
    ['no sessions yet', [], 10, 5, undefined],
    ['inside a session', [[10, 20]], 15, 5, [0, 0]],
    ['within the gap after it', [[10, 20]], 24, 5, [0, 0]],
    ['a full gap after it', [[10, 20]], 25, 5, undefined],
    ['within the gap before it', [[10, 20]], 6, 5, [0, 0]],
    ['a full gap before it', [[10, 20]], 5, 5, undefined],
    [
      'bridging the first two',
      [
        [0, 10],
        [20, 30],
        [40, 50],
      ],
      15,
      6,
      [0, 1],
    ],
    [
      'bridging the last two',
      [
        [0, 10],
        [20, 30],
        [40, 50],
      ],
      35,
      6,
      [1, 2],
    ],
    [
      'bridging three',
      [
        [0, 10],
        [14, 16],
        [20, 30],
      ],
      15,
      6,
      [0, 2],
    ],
    [
      'between two, a full gap from each',
      [
        [0, 10],
        [30, 40],
      ],
      20,
      10,
      undefined,
    ],
  ];
  for (const [what, sessions, ts, gap, expected] of cases) {
    test(`joined sessions, ${what}: ${ts} with gap ${gap} in ${JSON.stringify(sessions)} -> ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(joinedSessions(sessions, ts, gap), expected);
    });
  }
});

describe('sliding windows', () => {
  test('a window starts one size before its end, never below 0', () => {
    for (const [end, size, start] of [
      [12_000, 10_000, 2_000],
      [10_000, 10_000, 0],
      [3_000, 10_000, 0],
    ] as const) {
      assert.equal(slidingWindowStart(end, size), start, `end ${end}, size ${size}`);
    }
  });

  const members: [ts: number, end: number, size: number, inside: boolean][] = [
    [2_000, 12_000, 10_000, true],
    [1_999, 12_000, 10_000, false],
    [12_000, 12_000, 10_000, true],
    [12_001, 12_000, 10_000, false],
  ];
  for (const [ts, end, size, inside] of members) {
    test(`a record at ${ts} is ${inside ? 'in' : 'not in'} the window of size ${size} ending at ${end}`, () => {
      assert.equal(inSlidingWindow(ts, end, size), inside);
    });
  }

  const closing: [end: number, clock: number, grace: number, closed: boolean][] = [
    [9_999, 10_000, 0, true],
    [10_000, 10_000, 0, false],
    [10_000, 12_001, 2_000, true],
    [10_000, 12_000, 2_000, false],
  ];
  for (const [end, clock, grace, closed] of closing) {
    test(`the window ending at ${end} is ${closed ? 'closed' : 'open'} at clock ${clock} with grace ${grace} (end is inclusive)`, () => {
      assert.equal(isSlidingClosed(end, closeThreshold(clock, grace)), closed);
    });
  }

  const lateness: [ts: number, clock: number, grace: number, size: number, late: boolean][] = [
    [4_999, 15_000, 0, 10_000, true],
    [5_000, 15_000, 0, 10_000, false],
    [2_999, 15_000, 2_000, 10_000, true],
    [3_000, 15_000, 2_000, 10_000, false],
  ];
  for (const [ts, clock, grace, size, late] of lateness) {
    test(`a record at ${ts} is ${late ? 'late' : 'on time'} at clock ${clock}, grace ${grace}, size ${size}`, () => {
      assert.equal(isSlidingLate(ts, closeThreshold(clock, grace), size), late);
    });
  }

  const retention: [threshold: number, earliestOpenEnd: number | undefined, size: number, from: number][] = [
    [15_000, 12_000, 10_000, 2_000],
    [15_000, 20_000, 10_000, 5_000],
    [15_000, undefined, 10_000, 5_000],
    [Infinity, undefined, 10_000, Infinity],
  ];
  for (const [threshold, earliest, size, from] of retention) {
    test(`records from ${from} are kept at threshold ${threshold} with the earliest open window ending at ${earliest}`, () => {
      assert.equal(slidingRetainFrom(threshold, earliest, size), from);
    });
  }
});
