/**
 * Type-checks files of type assertions with the project's tsconfig, for tests that prove each
 * `// @ts-expect-error TS<code>: …` directive rejects exactly the error it names.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import ts from 'typescript';

const root = join(import.meta.dirname, '..', '..');
const config = ts.getParsedCommandLineOfConfigFile(
  join(root, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')),
  },
);
assert.ok(config, 'tsconfig.json is readable');

let previous: ts.Program | undefined;

/** Type-checks `files` (path → source text; other files come from disk) and returns their diagnostics. */
export function diagnostics(files: Record<string, string>): ts.Diagnostic[] {
  const host = ts.createCompilerHost(config!.options);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => files[name] ?? readFile(name);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name in files || fileExists(name);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, lang, onError, create) =>
    name in files ? ts.createSourceFile(name, files[name], lang) : getSourceFile(name, lang, onError, create);
  const program = ts.createProgram(Object.keys(files), config!.options, host, previous);
  previous = program;
  return [...ts.getPreEmitDiagnostics(program)].filter((d) => d.file && d.file.fileName in files);
}

/** The line of a diagnostic (1-based). */
export function lineOf(d: ts.Diagnostic): number {
  return d.file!.getLineAndCharacterOfPosition(d.start!).line + 1;
}

/** "file:line TScode message", for assertion messages. */
export function describeDiagnostic(d: ts.Diagnostic): string {
  return `${d.file!.fileName}:${lineOf(d)} TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
}

/**
 * Checks `file` with its `@ts-expect-error` directives removed: returns the errors found, by line,
 * and the ones the directives name (each on the line after its directive), both sorted by line.
 */
export function expectedErrors(
  file: string,
  source: string,
): { found: [number, number[]][]; want: [number, number[]][]; diagnostics: ts.Diagnostic[] } {
  const lines = source.split('\n');
  const want: [number, number[]][] = [];
  lines.forEach((text, i) => {
    const m = /^\s*\/\/ @ts-expect-error TS(\d+):/.exec(text);
    if (m) want.push([i + 2, [Number(m[1])]]);
  });
  const stripped = lines.map((text) => text.replace(/\/\/ @ts-expect-error.*/, '// (directive removed)')).join('\n');
  const found = diagnostics({ [file]: stripped });
  const byLine = new Map<number, number[]>();
  for (const d of found) byLine.set(lineOf(d), [...(byLine.get(lineOf(d)) ?? []), d.code]);
  return { found: [...byLine].sort(([a], [b]) => a - b), want, diagnostics: found };
}
