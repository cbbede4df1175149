import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { count, mean, stream } from 'sluice';
import { runFunction } from 'sluice/testing';
import { describeDiagnostic, diagnostics, expectedErrors, lineOf } from '../support/type-check.js';

// types.check.ts holds the type assertions; `tsc --noEmit` in scripts/test.sh already checks it.
// These tests also make sure each `@ts-expect-error` there is rejecting the error it names, not
// some other mistake on that line, and that `expectType` itself can fail.

const here = dirname(fileURLToPath(import.meta.url));
const checkFile = join(here, 'types.check.ts');

const source = readFileSync(checkFile, 'utf8');

describe('types.check.ts', () => {
  test('type-checks with no errors', () => {
    const found = diagnostics({ [checkFile]: source });
    assert.deepEqual(found.map(describeDiagnostic), []);
  });

  test('each @ts-expect-error rejects exactly the error it names', () => {
    // Without the directives, the line after each one must fail with its code, and nothing else may fail.
    const { found, want, diagnostics: all } = expectedErrors(checkFile, source);
    assert.ok(want.length >= 10, `found ${want.length} expected errors`);
    assert.deepEqual(found, want, all.map(describeDiagnostic).join('\n'));
  });

  test('expectType fails to compile when the types differ', () => {
    const probe = join(here, 'types.probe.ts');
    const found = diagnostics({
      [checkFile]: source,
      [probe]: [
        "import { expectType } from './types.check.js';",
        'declare const n: number | string;',
        'declare const o: { a: number } & { b?: string };',
        'expectType<number>()(n);',
        'expectType<{ a: number; b: string | undefined }>()(o);',
        'expectType<unknown>()(1 as any);',
        'expectType<number | string>()(n);',
        'expectType<{ a: number; b?: string }>()(o);',
      ].join('\n'),
    }).filter((d) => d.file!.fileName === probe);
    assert.deepEqual(
      found.map((d) => [lineOf(d), d.code]),
      [
        [4, 2554],
        [5, 2554],
        [6, 2554],
      ],
    );
  });
});

describe('the inferred types match what runs', () => {
  test('map → filter → named window aggregations → map carries the documented values', async () => {
    const averages = stream<{ speed: number; id: string }>('t')
      .map((r) => ({ kmh: r.speed * 3.6 }))
      .filter((r) => r.kmh > 1)
      .tumblingWindow('10s')
      .aggregate({ avg: mean('kmh'), n: count() }, { name: 'stats' });
    const run = await runFunction(
      averages.map((w) => ({ avg: w.avg, n: w.n, span: w.end - w.start })).to('out'),
      [
        { key: 'v', value: { speed: 10, id: 'v' }, timestamp: 1_000 },
        { key: 'v', value: { speed: 0, id: 'v' }, timestamp: 2_000 },
        { key: 'v', value: { speed: 20, id: 'v' }, timestamp: 3_000 },
      ],
      { flush: true },
    );
    assert.deepEqual(run.values('out'), [{ avg: 54, n: 2, span: 10_000 }]);
  });

  test('a single aggregation arrives as { start, end, value }', async () => {
    const run = await runFunction(
      stream<{ speed: number }>('t').tumblingWindow('10s').aggregate(mean('speed')).to('out'),
      [
        { key: 'v', value: { speed: 4 }, timestamp: 1 },
        { key: 'v', value: { speed: 6 }, timestamp: 2 },
      ],
      { flush: true },
    );
    assert.deepEqual(run.values('out'), [{ start: 0, end: 10_000, value: 5 }]);
  });
});
