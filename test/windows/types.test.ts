import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { describeDiagnostic, diagnostics, expectedErrors } from '../support/type-check.js';

// types.check.ts holds the aggregation type assertions; `tsc --noEmit` in scripts/test.sh checks
// it too. Here each `@ts-expect-error` must reject the error it names, not another mistake.

const checkFile = join(dirname(fileURLToPath(import.meta.url)), 'types.check.ts');
const source = readFileSync(checkFile, 'utf8');

describe('windows/types.check.ts', () => {
  test('type-checks with no errors', () => {
    assert.deepEqual(diagnostics({ [checkFile]: source }).map(describeDiagnostic), []);
  });

  test('each @ts-expect-error rejects exactly the error it names', () => {
    const { found, want, diagnostics: all } = expectedErrors(checkFile, source);
    assert.ok(want.length >= 3, `found ${want.length} expected errors`);
    assert.deepEqual(found, want, all.map(describeDiagnostic).join('\n'));
  });
});
