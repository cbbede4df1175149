// The source option maxClockSkew (the clock guard): validated at load, in the manifest, the same
// from both authoring forms.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, source, stream, sum, to, tumblingWindow } from 'sluice';
import { manifestOf } from 'sluice/runtime';

function configError(define: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(define, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

const untyped = (value: unknown): never => value as never;

describe('maxClockSkew', () => {
  test('defaults to one hour; a duration or false is kept in the manifest', () => {
    assert.equal(manifestOf(stream('t').to('o')).source.maxClockSkewMs, 3_600_000);
    assert.equal(manifestOf(stream('t', { maxClockSkew: '15m' }).to('o')).source.maxClockSkewMs, 900_000);
    assert.equal(manifestOf(stream('t', { maxClockSkew: 90_000 }).to('o')).source.maxClockSkewMs, 90_000);
    assert.equal(manifestOf(stream('t', { maxClockSkew: false }).to('o')).source.maxClockSkewMs, false);
  });

  test('both authoring forms put the same value in the manifest', () => {
    @source('t', { maxClockSkew: '2d' })
    class Skewed {
      @to('o')
      @tumblingWindow('10s')
      total = sum();
    }
    const chain = stream<number>('t', { name: 'Skewed', maxClockSkew: '2d' })
      .tumblingWindow('10s')
      .aggregate(sum(), { name: 'total' })
      .to('o');
    assert.equal(manifestOf(Skewed).source.maxClockSkewMs, 172_800_000);
    assert.equal(manifestOf(chain).source.maxClockSkewMs, manifestOf(Skewed).source.maxClockSkewMs);
  });

  for (const [value, shown] of [
    ['soon', '"soon"'],
    [true, 'true'],
    [null, 'null'],
    [-5, '-5'],
    [1.5, '1.5'],
  ] as const) {
    test(`${shown} fails when the chain starts, naming the option, the value and the fix`, () => {
      configError(
        () => stream('t', { name: 'fn', maxClockSkew: untyped(value) }),
        new RegExp(
          `^maxClockSkew of stream "fn" must be a duration \\(how far ahead of the wall clock an event time may be\\) or false; received ${shown.replace('.', '\\.')};`,
        ),
        /give a margin such as '1h' \(the default\) or '1d', or false to turn the clock guard off\.$/,
      );
    });
  }

  test('0 fails: it would dead-letter records from producers a millisecond fast', () => {
    configError(
      () => stream('t', { name: 'fn', maxClockSkew: '0s' }),
      /^maxClockSkew of stream "fn" must be more than 0 \(received "0s"\)/,
      /or false to turn the clock guard off/,
    );
  });

  test('the decorator form fails when the handler is created, naming the class', () => {
    @source('t', { maxClockSkew: untyped('an hour') })
    class BadSkew {
      @to('o')
      @tumblingWindow('10s')
      total = sum();
    }
    configError(() => manifestOf(BadSkew), /^maxClockSkew of @source\(\) of class BadSkew must be a duration .* received "an hour";/);
  });
});
