import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { bytes, ConfigError, json, type Serializer, string } from 'sluice';
import { MAX_JSON_DEPTH, resolveSerializer, SERIALIZER_NAMES } from '../../framework/src/io/serializers.js';

/** Deterministic pseudo-random numbers (mulberry32), so a failing payload can be reproduced. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Text of about `bytes` UTF-8 bytes mixing 1-, 2-, 3- and 4-byte characters. */
function mixedText(approxBytes: number, seed: number): string {
  const rnd = prng(seed);
  const pool = ['a', 'Z', '0', ' ', '"', '\\', '\n', 'é', 'ß', 'Ж', 'ع', '€', '中', 'ह', '😀', '𝄞', '🔑'];
  const parts: string[] = [];
  let size = 0;
  while (size < approxBytes) {
    const c = pool[Math.floor(rnd() * pool.length)];
    parts.push(c);
    size += Buffer.byteLength(c, 'utf8');
  }
  return parts.join('');
}

function randomBytes(length: number, seed: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

/** What a call gave: its value, or its error's class and message. */
function outcome(f: () => unknown): unknown {
  try {
    return { value: f() };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

/** Both decoding paths of a serializer on the same base64 text: the same value, or the same error. */
function sameOutcome(s: Serializer<unknown>, b64: string): unknown {
  const fast = outcome(() => s.deserializeBase64!(b64));
  assert.deepEqual(
    fast,
    outcome(() => s.deserialize(Buffer.from(b64, 'base64'))),
  );
  return fast;
}

/** Both decoding paths of a serializer, on the same base64 text. */
function bothPaths<T>(s: Serializer<T>, b64: string): { fast: T; slow: T } {
  assert.ok(s.deserializeBase64, `${s.name} has a base64 fast path`);
  return { fast: s.deserializeBase64(b64), slow: s.deserialize(Buffer.from(b64, 'base64')) };
}

const SIZES = [
  0,
  1,
  2,
  3,
  100,
  64 * 1024 - 1,
  64 * 1024,
  64 * 1024 + 1,
  70_000, // around the initial scratch buffer
  300_000,
  40, // a smaller payload after the buffer grew must not see stale bytes
  (1 << 20) - 3,
  (1 << 20) - 1,
  1 << 20,
  (1 << 20) + 1,
  1_300_000, // around the scratch limit
  5,
  2_500_000,
  7,
];

describe('json', () => {
  test('round-trips JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        assert.deepEqual(json.deserialize(json.serialize(v)), JSON.parse(JSON.stringify(v)));
      }),
    );
  });

  test('writes UTF-8 JSON text', () => {
    assert.equal(json.serialize({ city: 'Zürich', icon: '😀' }).toString('utf8'), '{"city":"Zürich","icon":"😀"}');
    assert.deepEqual(json.deserialize(Buffer.from('{"n":[1,2.5,null,true]}', 'utf8')), { n: [1, 2.5, null, true] });
  });

  test('deserialize throws on text that is not JSON', () => {
    assert.throws(() => json.deserialize(Buffer.from('{"n": 1', 'utf8')), SyntaxError);
  });

  test('deserializeBase64 equals deserialize(Buffer.from(b64, "base64")) on random JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const b64 = json.serialize(v).toString('base64');
        const { fast, slow } = bothPaths(json, b64);
        assert.deepEqual(fast, slow);
      }),
    );
  });

  test('deserializeBase64 equals deserialize on multi-byte payloads beyond 64 KB and 1 MB, in any order', () => {
    for (const [i, size] of SIZES.entries()) {
      const value = { i, text: mixedText(size, i + 1), tail: 'end' };
      const b64 = json.serialize(value).toString('base64');
      const { fast, slow } = bothPaths(json, b64);
      assert.deepEqual(fast, slow, `payload ${i} (${size} bytes)`);
      assert.deepEqual(fast, value, `payload ${i} (${size} bytes)`);
    }
  });

  test('deserializeBase64 fails like deserialize on bytes that are not JSON', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        const b64 = Buffer.from(raw).toString('base64');
        let slow: unknown;
        let slowError: unknown;
        try {
          slow = json.deserialize(Buffer.from(b64, 'base64'));
        } catch (e) {
          slowError = e;
        }
        if (slowError)
          assert.deepEqual(
            outcome(() => json.deserializeBase64!(b64)),
            outcome(() => json.deserialize(Buffer.from(raw))),
          );
        else assert.deepEqual(json.deserializeBase64!(b64), slow);
      }),
    );
  });

  test('bytes that are not UTF-8 are refused, not read as U+FFFD (issue 11)', () => {
    const b64 = Buffer.from([0x7b, 0x22, 0x73, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]).toString('base64'); // {"s":"\xff"}
    assert.deepEqual(sameOutcome(json, b64), {
      error:
        "PoisonRecordError: the 9 bytes are not valid UTF-8 text (0x7b 0x22 0x73 0x22 0x3a 0x22 0xff 0x22 …); read binary data with the 'bytes' serializer.",
    });
    assert.deepEqual(sameOutcome(json, Buffer.from('{"s":"\ufffd"}').toString('base64')), { value: { s: '\ufffd' } });
  });

  test(`values nested deeper than ${MAX_JSON_DEPTH} levels are refused, not left to overflow the stack later (issue 11)`, () => {
    const deep = (n: number) => Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`).toString('base64');
    assert.deepEqual(sameOutcome(json, deep(MAX_JSON_DEPTH)), {
      value: JSON.parse(`${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}`),
    });
    const refused = {
      error: `PoisonRecordError: the JSON value is nested deeper than ${MAX_JSON_DEPTH} levels (arrays and objects in one another, at character ${MAX_JSON_DEPTH}); flatten it, or read it with the 'string' serializer and parse it yourself.`,
    };
    assert.deepEqual(sameOutcome(json, deep(MAX_JSON_DEPTH + 1)), refused);
    assert.deepEqual(sameOutcome(json, deep(100_000)), refused);
    // Brackets inside strings, and escaped quotes, are text.
    const text = `{"a":"\\"${'['.repeat(5_000)}","b":[{"c":"]]]"}]}`;
    assert.deepEqual(sameOutcome(json, Buffer.from(text).toString('base64')), { value: JSON.parse(text) });
  });
});

describe('string', () => {
  test('round-trips any Unicode text', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        assert.equal(string.deserialize(string.serialize(s)), s);
      }),
    );
  });

  test('writes UTF-8', () => {
    assert.deepEqual([...string.serialize('é€😀')], [0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80]);
  });

  test('deserializeBase64 equals deserialize on random text and on random bytes (invalid UTF-8 included)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const { fast, slow } = bothPaths(string, Buffer.from(s, 'utf8').toString('base64'));
        assert.equal(fast, slow);
        assert.equal(fast, s);
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
        const got = sameOutcome(string, Buffer.from(raw).toString('base64'));
        // Valid UTF-8 reads as its text; anything else is refused (issue 11), never U+FFFD.
        if (isUtf8(raw)) assert.deepEqual(got, { value: Buffer.from(raw).toString('utf8') });
        else assert.match((got as { error: string }).error, /^PoisonRecordError: the \d+ bytes are not valid UTF-8 text/);
      }),
    );
  });

  test('deserializeBase64 equals deserialize on multi-byte text beyond 64 KB and 1 MB, in any order', () => {
    for (const [i, size] of SIZES.entries()) {
      const text = mixedText(size, 100 + i);
      const { fast, slow } = bothPaths(string, Buffer.from(text, 'utf8').toString('base64'));
      assert.equal(fast, slow, `text ${i} (${size} bytes)`);
      assert.equal(fast, text, `text ${i} (${size} bytes)`);
    }
  });

  test('deserializeBase64 equals deserialize on random bytes beyond 64 KB and 1 MB', () => {
    for (const [i, size] of SIZES.entries()) {
      const raw = randomBytes(size, 200 + i);
      const got = sameOutcome(string, raw.toString('base64'));
      if (isUtf8(raw)) assert.deepEqual(got, { value: raw.toString('utf8') }, `bytes ${i} (${size} bytes)`);
      else
        assert.match(
          (got as { error: string }).error,
          /^PoisonRecordError: the \d+ bytes are not valid UTF-8 text/,
          `bytes ${i} (${size} bytes)`,
        );
    }
  });
});

describe('bytes', () => {
  test('round-trips bytes untouched', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
        const b = Buffer.from(raw);
        assert.ok(bytes.serialize(b).equals(b));
        assert.ok(bytes.deserialize(bytes.serialize(b)).equals(b));
      }),
    );
    const big = randomBytes((1 << 20) + 17, 7);
    assert.ok(bytes.deserialize(Buffer.from(big.toString('base64'), 'base64')).equals(big));
  });
});

describe('resolveSerializer', () => {
  const what = 'value serializer of @source() of class Readings';

  test('resolves the built-in names, the fallback, and serializer objects', () => {
    assert.equal(resolveSerializer('json', 'string', what), json);
    assert.equal(resolveSerializer('string', 'json', what), string);
    assert.equal(resolveSerializer('bytes', 'json', what), bytes);
    assert.equal(resolveSerializer(undefined, 'json', what), json);
    assert.equal(resolveSerializer(undefined, 'string', what), string);
    const csv: Serializer<string[]> = {
      name: 'csv',
      deserialize: (b) => b.toString('utf8').split(','),
      serialize: (v) => Buffer.from(v.join(',')),
    };
    assert.equal(resolveSerializer(csv, 'json', what), csv);
  });

  test('an unknown name fails with the option, the name and the accepted names', () => {
    for (const name of ['avro', 'JSON', 'Json ', '']) {
      assert.throws(
        () => resolveSerializer(name as never, 'json', what),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.ok(e.message.includes(what), e.message);
          assert.ok(e.message.includes(`"${name}"`), e.message);
          for (const n of SERIALIZER_NAMES) assert.ok(e.message.includes(`'${n}'`), e.message);
          return true;
        },
      );
    }
  });

  test('names inherited from Object.prototype are not serializer names', () => {
    // A plain-object lookup would hand back Object.prototype members as "serializers".
    const accepted: string[] = [];
    for (const name of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__']) {
      let error: unknown;
      try {
        resolveSerializer(name as never, 'json', what);
      } catch (e) {
        error = e;
      }
      if (error === undefined) {
        accepted.push(name);
        continue;
      }
      assert.ok(error instanceof ConfigError, String(error));
      assert.ok(error.message.includes(`"${name}"`), error.message);
      for (const n of SERIALIZER_NAMES) assert.ok(error.message.includes(`'${n}'`), error.message);
    }
    assert.deepEqual(accepted, [], `accepted as serializer names: ${accepted.join(', ')}`);
  });

  test('a value that is neither a name nor a serializer fails naming the option, the value and the accepted names', () => {
    const cases: [unknown, string][] = [
      [42, '42'],
      [null, 'null'],
      [true, 'true'],
      [[], '[]'],
      [{ name: 'half', deserialize: 'nope' }, '"deserialize":"nope"'],
      [function avro() {}, 'function avro'],
    ];
    for (const [value, shown] of cases) {
      assert.throws(
        () => resolveSerializer(value as never, 'json', what),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.ok(e.message.includes(what), e.message);
          assert.ok(e.message.includes(shown), `${e.message} should show ${shown}`);
          for (const n of SERIALIZER_NAMES) assert.ok(e.message.includes(`'${n}'`), `${e.message} should list '${n}'`);
          return true;
        },
      );
    }
  });
});
