// The CLI's time options: the tick period of `sluice dev --brokers`, file mode's wall clock and
// tick times. Every bad value fails naming the option, the value and what to give instead.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_TICK_MS, tickPeriod, tickTimes, wallClock } from '../../framework/src/local/time-options.js';

const wall = Date.parse('2026-01-01T00:10:00Z');

test('--tick: one minute by default as deployed, any duration from 100ms, off for none', () => {
  assert.equal(tickPeriod(undefined), DEFAULT_TICK_MS);
  assert.equal(DEFAULT_TICK_MS, 60_000);
  assert.equal(tickPeriod('1s'), 1_000);
  assert.equal(tickPeriod('250ms'), 250);
  assert.equal(tickPeriod('5m'), 300_000);
  for (const off of ['off', 'OFF', 'none', '0']) assert.equal(tickPeriod(off), false);
  for (const bad of ['abc', '10', '50ms', '-1s', '1.5ms', '']) {
    assert.throws(
      () => tickPeriod(bad),
      (e: Error) => {
        assert.equal(
          e.message,
          `--tick must be the period of idle ticks, a duration from 100ms such as 1s, 30s or 1m (deployed: 1m), or off to run none; received ${JSON.stringify(bad)}.`,
        );
        return true;
      },
    );
  }
});

test('--wall-clock: an ISO time or epoch ms; now when not given', () => {
  assert.equal(wallClock(undefined, 42), 42);
  assert.equal(wallClock('2026-01-01T00:10:00Z', 0), wall);
  assert.equal(wallClock('2026-01-01T01:10:00+01:00', 0), wall);
  assert.equal(wallClock(String(wall), 0), wall);
  for (const bad of ['yesterday', '10s', '2026-13-45T00:00:00Z', 'Jan 1 2026']) {
    assert.throws(() => wallClock(bad, 0), {
      message: `--wall-clock must be an ISO time such as 2026-01-01T00:05:00Z or epoch milliseconds such as 1767225900000; received ${JSON.stringify(bad)}.`,
    });
  }
});

test('--tick-at: durations count from the wall clock, ISO times and epoch ms are absolute; repeated or comma-separated, in order', () => {
  assert.deepEqual(tickTimes([], wall), []);
  assert.deepEqual(tickTimes(['26s', '+45s'], wall), [wall + 26_000, wall + 45_000]);
  assert.deepEqual(tickTimes(['10s,2026-01-01T00:11:00Z', String(wall + 61_000)], wall), [wall + 10_000, wall + 60_000, wall + 61_000]);
  assert.deepEqual(tickTimes(['0s'], wall), [wall], 'a tick at the wall clock itself is allowed');
  assert.throws(() => tickTimes(['soon'], wall), {
    message:
      '--tick-at must be a time to run an idle tick at: a duration after the wall clock such as 45s, an ISO time such as 2026-01-01T00:05:45Z, or epoch milliseconds; received "soon".',
  });
  assert.throws(() => tickTimes(['2026-01-01T00:09:00Z'], wall), {
    message:
      '--tick-at 2026-01-01T00:09:00Z is 2026-01-01T00:09:00Z, before the wall clock 2026-01-01T00:10:00Z at which the input is read; ticks run after the input: give a later time, or an earlier --wall-clock.',
  });
  assert.throws(() => tickTimes(['45s', '26s'], wall), {
    message:
      '--tick-at 26s (2026-01-01T00:10:26Z) comes before the tick before it (2026-01-01T00:10:45Z); the wall clock never goes back: give tick times in order.',
  });
});
