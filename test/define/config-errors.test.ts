import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type Aggregator,
  ConfigError,
  count,
  filter,
  hoppingCountWindow,
  hoppingWindow,
  keyed,
  type KeyedState,
  keyedState,
  map,
  reduce,
  sessionWindow,
  slidingCountWindow,
  sluice,
  source,
  stream,
  sum,
  to,
  tumblingCountWindow,
  tumblingWindow,
} from 'sluice';
import { manifestOf } from 'sluice/runtime';

/**
 * Asserts that `define` throws a ConfigError whose message matches every pattern. Each check
 * below names the option, the value received and the fix.
 */
function configError(define: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(define, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.name, 'ConfigError');
    assert.equal(e.retriable, false);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** Lets a method decorator be applied to a field, which the types forbid. */
type AnyDecorator = (value: unknown, context: unknown) => void;

/** A value the types reject, to reach the runtime checks a JavaScript user would hit. */
const untyped = (value: unknown): never => value as never;

/** A custom aggregator without merge (fine for time windows, not for sessions). */
const countNoMerge: Aggregator<unknown, number, number> = {
  kind: 'custom',
  signature: 'countNoMerge',
  initialize: () => 0,
  add: (acc) => acc + 1,
  result: (acc) => acc,
};

describe('window options', () => {
  test('an unknown window option fails when the class is defined', () => {
    configError(
      () => {
        @source('t')
        class UnknownOption {
          @to('out')
          @tumblingWindow('10s', untyped({ grce: '2s' }))
          total = sum();
        }
        return UnknownOption;
      },
      /unknown option "grce" for tumblingWindow "total"/,
      /allowed: grace, emit, closeBy/,
    );
  });

  test('an unknown window option fails when the chain is built', () => {
    configError(
      () =>
        stream<number>('t')
          .tumblingWindow('10s', untyped({ grce: '2s' }))
          .aggregate(sum(), { name: 'total' }),
      /unknown option "grce" for tumblingWindow "total"; allowed: grace, emit, closeBy, idle\./,
    );
  });

  test('count windows take no grace', () => {
    configError(
      () =>
        stream<number>('t')
          .tumblingCountWindow(10, untyped({ grace: '1s' }))
          .aggregate(sum(), { name: 'batch' }),
      /unknown option "grace" for tumblingCountWindow "batch"; allowed: emit, idle\./,
    );
  });

  test('emit and closeBy accept only their values', () => {
    configError(
      () =>
        stream<number>('t')
          .tumblingWindow('10s', untyped({ emit: 'always' }))
          .aggregate(sum(), { name: 'total' }),
      /emit of tumblingWindow "total" must be one of 'final', 'current'; received "always"\./,
    );
    configError(
      () =>
        stream<number>('t')
          .hoppingWindow('10s', '5s', untyped({ closeBy: 'global' }))
          .aggregate(sum(), { name: 'total' }),
      /closeBy of hoppingWindow "total" must be one of 'key', 'partition'; received "global"\./,
    );
  });

  test('a bad duration such as "10x" names the option, the value and the accepted forms', () => {
    configError(
      () => {
        @source('t')
        class BadSize {
          @tumblingWindow(untyped('10x'))
          total = sum();
        }
        return BadSize;
      },
      /size of tumblingWindow "total" must be a duration/,
      /such as '500ms', '10s', '5m', '1h', '1d' or a number of milliseconds/,
      /received "10x"/,
    );
    configError(
      () =>
        stream('t')
          .sessionWindow('30s', untyped({ grace: '2 seconds' }))
          .aggregate(count(), { name: 'visits' }),
      /grace of sessionWindow "visits" must be a duration/,
      /received "2 seconds"/,
    );
  });

  test('a zero or negative size is rejected', () => {
    configError(
      () => stream<number>('t').tumblingWindow(0).aggregate(sum(), { name: 'w' }),
      /size of tumblingWindow "w" must be greater than zero; received 0\./,
    );
    configError(
      () => stream<number>('t').slidingWindow(-5).aggregate(sum(), { name: 'w' }),
      /size of slidingWindow "w" must be a whole, non-negative number of milliseconds; received -5\./,
    );
  });

  test('grace larger than the window size says to lower grace', () => {
    configError(() => {
      @source('vehicle-speeds')
      class Speeds {
        @tumblingWindow('30s', { grace: '45s' })
        avgSpeed = sum('speed');
      }
      return Speeds;
    }, /^grace \(45s\) must not exceed the window size \(30s\) of tumblingWindow "avgSpeed"; lower grace or use a larger window\.$/);
  });

  test('a hopping step that does not divide the size suggests one that does', () => {
    configError(
      () => stream<number>('t').hoppingWindow('1m', '25s').aggregate(sum(), { name: 'avg' }),
      /step \(25s\) of hoppingWindow "avg" must divide its size \(1m\)/,
      /use a step such as 20s\./,
    );
  });

  test('a hopping step equal to or larger than the size suggests a tumbling window', () => {
    configError(() => {
      @source('t')
      class SameStep {
        @hoppingWindow('10s', '10s')
        avg = sum();
      }
      return SameStep;
    }, /step \(10s\) of hoppingWindow "avg" must be smaller than its size \(10s\); with step = size use tumblingWindow\('10s'\)\./);
    configError(
      () => stream<number>('t').hoppingWindow('10s', '20s').aggregate(sum(), { name: 'avg' }),
      /step \(20s\) of hoppingWindow "avg" must be smaller than its size \(10s\)/,
    );
  });

  test('a count window of 0 records fails when the class is defined', () => {
    configError(() => {
      @source('t')
      class Empty {
        @tumblingCountWindow(0)
        batch = sum();
      }
      return Empty;
    }, /^count of tumblingCountWindow "batch" must be a whole number of records, at least 1; received 0\.$/);
  });

  test('count windows need whole counts, hopping and sliding ones at least 2', () => {
    configError(
      () => stream<number>('t').tumblingCountWindow(2.5).aggregate(sum(), { name: 'b' }),
      /count of tumblingCountWindow "b" must be a whole number of records, at least 1; received 2\.5/,
    );
    configError(() => {
      @source('t')
      class One {
        @slidingCountWindow(1)
        last = sum();
      }
      return One;
    }, /count of slidingCountWindow "last" must be a whole number of records, at least 2; received 1/);
    configError(() => {
      @source('t')
      class Hop {
        @hoppingCountWindow(4, 4)
        h = sum();
      }
      return Hop;
    }, /step \(4\) of hoppingCountWindow "h" must be smaller than its count \(4\); with step = count use tumblingCountWindow\(4\)\./);
  });

  test('a session window whose aggregator has no merge fails when the handler is created', () => {
    @source('clicks')
    class Sessions {
      @to('sessions')
      @sessionWindow('30s')
      clicks = countNoMerge;
    }
    configError(
      () => sluice(Sessions),
      /aggregation "value" of sessionWindow "clicks" has no merge\(a, b\)/,
      /Add merge to the aggregator or use a time window\./,
    );
    configError(
      () =>
        sluice(
          stream('clicks')
            .sessionWindow('30s')
            .aggregate(
              {
                n: reduce(
                  (a: number, _v: unknown) => a + 1,
                  () => 1,
                ),
              },
              { name: 'visits' },
            ),
        ),
      /aggregation "n" of sessionWindow "visits" has no merge\(a, b\)/,
    );
  });

  test('the same aggregator is fine in a session window once it has merge', () => {
    const withMerge = { ...countNoMerge, merge: (a: number, b: number) => a + b };
    assert.doesNotThrow(() => sluice(stream('clicks').sessionWindow('30s').aggregate(withMerge, { name: 'visits' })));
  });

  // These two checks live in the window operators; loading a manifest builds them too, so a build
  // that only reads manifestOf() catches them as well.
  test('manifestOf() rejects what sluice() rejects, so a build catches it too', () => {
    configError(
      () => manifestOf(stream('clicks').sessionWindow('30s').aggregate(countNoMerge, { name: 'visits' })),
      /has no merge\(a, b\)/,
    );
    configError(
      () => manifestOf(stream<number>('t').slidingWindow('30s', { closeBy: 'partition' }).aggregate(sum(), { name: 'peak' })),
      /cannot close by partition/,
    );
  });

  test('two windows with the same name are rejected when the handler is created', () => {
    const twice = stream<number>('readings')
      .tumblingWindow('10s')
      .aggregate(sum(), { name: 'w' })
      .map((r) => r.value)
      .hoppingWindow('1m', '10s')
      .aggregate(sum(), { name: 'w' });
    configError(
      () => sluice(twice),
      /^two windows of function "readings" are named "w"; window names key their stored state, so give each a distinct name\.$/,
    );
    const unnamed = stream<number>('readings')
      .tumblingWindow('10s')
      .aggregate(sum())
      .map((r) => r.value)
      .tumblingWindow('1m')
      .aggregate(sum());
    configError(() => manifestOf(unnamed), /two windows of function "readings" are named "tumblingWindow"/);
  });

  test('an aggregation named start or end would hide the window bounds', () => {
    configError(
      () => stream<number>('t').tumblingWindow('10s').aggregate({ start: count() }, { name: 'w' }),
      /aggregation name "start" of tumblingWindow "w" collides with the window bounds/,
    );
  });

  test('a window needs an aggregator', () => {
    configError(
      () =>
        stream<number>('t')
          .tumblingWindow('10s')
          .aggregate(untyped({ total: 'sum' }), { name: 'w' }),
      /aggregation "total" of tumblingWindow "w" is not an aggregator \(received "sum"\); use count\(\), sum\('field'\)/,
    );
  });
});

describe('@source', () => {
  test('a class without @source fails when the handler is created', () => {
    class NoSource {
      @to('out')
      @map()
      copy(v: unknown): unknown {
        return v;
      }
    }
    configError(() => sluice(NoSource), /^class NoSource has no @source\('topic'\); decorate it with @source\('<topic>'\)/);
    class Plain {}
    configError(() => sluice(Plain), /class Plain has no @source/);
  });

  test('an unknown @source option names the option and the allowed ones', () => {
    @source('t', untyped({ valu: 'json' }))
    class Typo {
      @to('out')
      @map()
      copy(v: unknown): unknown {
        return v;
      }
    }
    configError(
      () => sluice(Typo),
      /^unknown option "valu" in @source\(\) of class Typo; allowed: key, value, validate, lateTopic, name, maxClockSkew, idle, guarantee\.$/,
    );
  });

  test('an unknown stream() option fails when the chain starts', () => {
    configError(
      () => stream('t', untyped({ valu: 'json' })),
      /^unknown option "valu" for stream\("t"\); allowed: key, value, validate, lateTopic, name, maxClockSkew, idle, guarantee, state\.$/,
    );
  });

  test('a source topic is required', () => {
    configError(() => source(''), /@source\(\) needs a topic name; received ""/);
    configError(() => stream(''), /stream\(\) needs a source topic name; received ""/);
  });

  test('validate must be a function', () => {
    configError(
      () => stream('t', untyped({ validate: 'non-empty' })),
      /validate of stream "t" must be a function \(value\) => true \| 'reason'; received "non-empty"\./,
    );
  });
});

describe('serializers', () => {
  test('a bad serializer name in @source lists the built-in ones', () => {
    @source('t', { value: untyped('avro') })
    class Avro {
      @to('out')
      @map()
      copy(v: unknown): unknown {
        return v;
      }
    }
    configError(
      () => sluice(Avro),
      /value serializer of @source\(\) of class Avro "avro" is not a serializer/,
      /use one of 'json', 'string', 'bytes' or an object with deserialize\/serialize\./,
    );
  });

  test('a bad serializer name in @to fails when the handler is created', () => {
    @source('t')
    class Proto {
      @to('out', { key: untyped('protobuf') })
      @map()
      copy(v: unknown): unknown {
        return v;
      }
    }
    configError(() => sluice(Proto), /key serializer of @to\('out'\) "protobuf" is not a serializer; use one of 'json', 'string', 'bytes'/);
  });

  test('a bad serializer in the chain fails where it is written', () => {
    configError(() => stream('t', { key: untyped('utf8') }), /key serializer of stream "t" "utf8" is not a serializer/);
    configError(() => stream('t').to('out', { value: untyped('yaml') }), /value serializer of output "out" "yaml" is not a serializer/);
  });

  test('a serializer object without serialize() says what it needs', () => {
    configError(
      () => stream('t', { value: untyped({ name: 'csv', deserialize: (b: Buffer) => b.toString() }) }),
      /value serializer of stream "t" must be one of 'json', 'string', 'bytes' or an object with deserialize\(bytes\) and serialize\(value\); received \{ name: "csv", deserialize: function \}\./,
    );
  });
});

describe('@to and member decorators', () => {
  test('a @to on a member with no step or window says to stack it on one', () => {
    @source('t')
    class Orphan {
      @to('out')
      orphan = 1;
    }
    configError(
      () => sluice(Orphan),
      /^@to\(\) on member "orphan" of class Orphan has nothing to send; stack it on a step or window, e.g\. @to\('out'\) @map\(\) enrich\(r\) \{…\}\.$/,
    );
  });

  test('a @to on keyed state is rejected', () => {
    @source('t')
    class ToState {
      @to('out')
      @keyed()
      memo!: KeyedState<number>;
    }
    configError(() => sluice(ToState), /@to\(\) cannot decorate keyed state "memo" of class ToState; put it on a step\./);
  });

  test('two step decorators on one member are rejected', () => {
    @source('t')
    class Twice {
      @map()
      @filter()
      both(v: number): boolean {
        return v > 0;
      }
    }
    configError(
      () => sluice(Twice),
      /^member "both" of class Twice has 2 step decorators \(@map, @filter\); give each step its own member\.$/,
    );
  });

  test('a step decorator on a field fails when the class is defined', () => {
    configError(() => {
      @source('t')
      class FieldStep {
        @(map() as unknown as AnyDecorator)
        enrich = (v: unknown) => v;
      }
      return FieldStep;
    }, /^@map\(\) decorates a method; "enrich" is a field\.$/);
  });

  test('a @to needs a topic name', () => {
    configError(() => to(''), /@to\(\) needs a topic name; received ""/);
    configError(() => stream('t').to(''), /to\(\) of stream "t" needs a topic name; received ""/);
  });

  test('keyed state options are checked', () => {
    configError(() => keyedState('seen', untyped({ ttl: '1 day' })), /ttl of keyed state "seen" must be a duration/, /received "1 day"/);
    configError(() => keyedState('seen', untyped({ expire: '1d' })), /unknown option "expire" for keyed state "seen"; allowed: ttl\./);
    configError(() => keyedState('has space'), /keyed state name "has space" is not valid; use letters, digits, _ or -/);
  });
});

describe('stream() steps', () => {
  for (const [verb, call] of [
    ['map', () => stream('t').map(untyped(42))],
    ['filter', () => stream('t').filter(untyped('r.kmh > 100'))],
    ['expand', () => stream('t').expand(untyped(null))],
    ['key', () => stream('t').key(untyped({ field: 'id' }))],
  ] as const) {
    test(`a non-function ${verb}() step fails when the chain is built`, () => {
      configError(call, new RegExp(`^${verb}\\(\\) of stream "t" needs a function; received `));
    });
  }

  test('the message shows the value received', () => {
    configError(() => stream('t').map(untyped(42)), /needs a function; received 42\./);
    configError(() => stream('t').filter(untyped('r.kmh > 100')), /needs a function; received "r\.kmh > 100"\./);
  });

  test('onLate must be a function', () => {
    configError(
      () =>
        stream<number>('t')
          .tumblingWindow('10s')
          .aggregate(sum(), { name: 'w', onLate: untyped('log') }),
      /onLate of tumblingWindow "w" must be a function; received "log"\./,
    );
  });
});
