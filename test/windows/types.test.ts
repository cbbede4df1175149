import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

// types.check.ts holds the aggregation type assertions; `tsc --noEmit` in scripts/test.sh checks
// it too. Here each `@ts-expect-error` must reject the error it names, not another mistake.

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const checkFile = join(here, 'types.check.ts');

const config = ts.getParsedCommandLineOfConfigFile(join(root, 'tsconfig.json'), {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
});
assert.ok(config, 'tsconfig.json is readable');

let previous: ts.Program | undefined;

/** Type-checks `text` as the check file and returns its diagnostics as "line TScode message". */
function diagnostics(text: string): { line: number; code: number; text: string }[] {
  const host = ts.createCompilerHost(config!.options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) => (name === checkFile ? ts.createSourceFile(name, text, lang) : getSourceFile(name, lang, onError, create));
  const program = ts.createProgram([checkFile], config!.options, host, previous);
  previous = program;
  return ts.getPreEmitDiagnostics(program)
    .filter((d) => d.file?.fileName === checkFile)
    .map((d) => ({
      line: d.file!.getLineAndCharacterOfPosition(d.start!).line + 1,
      code: d.code,
      text: ts.flattenDiagnosticMessageText(d.messageText, ' '),
    }));
}

const source = ts.sys.readFile(checkFile)!;

describe('windows/types.check.ts', () => {
  test('type-checks with no errors', () => {
    assert.deepEqual(diagnostics(source), []);
  });

  test('each @ts-expect-error rejects exactly the error it names', () => {
    const lines = source.split('\n');
    const want: [number, number[]][] = [];
    lines.forEach((text, i) => {
      const m = /^\s*\/\/ @ts-expect-error TS(\d+):/.exec(text);
      if (m) want.push([i + 2, [Number(m[1])]]);
    });
    assert.ok(want.length >= 3, `found ${want.length} expected errors`);
    const stripped = lines.map((text) => text.replace(/\/\/ @ts-expect-error.*/, '// (directive removed)')).join('\n');
    const found = diagnostics(stripped);
    const byLine = new Map<number, number[]>();
    for (const d of found) byLine.set(d.line, [...(byLine.get(d.line) ?? []), d.code]);
    assert.deepEqual([...byLine].sort(([a], [b]) => a - b), want, found.map((d) => `${d.line} TS${d.code} ${d.text}`).join('\n'));
  });
});
