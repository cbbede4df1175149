import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type FunctionEntry, readServerlessFunctions } from '../config/serverless-yml.js';
import { ConfigError } from '../errors.js';
import type { SluiceHandler } from '../runtime/handler.js';

/*
 * The CLI's view of a function: a name in serverless.yml or a handler file's path, and the
 * handler it exports. Reading serverless.yml itself is config/serverless-yml.ts.
 */

/**
 * Resolves a function name from serverless.yml, or a path to a handler file, to its entry.
 *
 * @example
 * resolveFunction('sensor-sums'); // { name: 'sensor-sums', file: '/…/functions/sensor-sums/handler.ts', exportName: 'handler' }
 */
export function resolveFunction(target: string, cwd = process.cwd(), yml = path.join(cwd, 'serverless.yml')): FunctionEntry {
  const asPath = path.resolve(cwd, target);
  if (/\.(m?[jt]s)$/.test(target) || (existsSync(asPath) && !existsSync(yml))) {
    if (!existsSync(asPath)) throw new ConfigError(`handler file ${target} does not exist (looked at ${asPath}).`);
    return { name: path.basename(path.dirname(asPath)), file: asPath, exportName: 'handler' };
  }
  if (!existsSync(yml))
    throw new ConfigError(
      `"${target}" is not a handler file and there is no serverless.yml at ${yml} to look it up in; pass a path such as functions/${target}/handler.ts.`,
    );
  const entries = readServerlessFunctions(yml);
  const entry = entries.find((e) => e.name === target);
  if (!entry) {
    throw new ConfigError(
      `function "${target}" is not in ${yml}; functions there: ${entries.map((e) => e.name).join(', ') || '(none)'}. Or pass a handler file path.`,
    );
  }
  return entry;
}

/**
 * Imports a handler file and returns its Sluice handler, failing clearly if it exports none.
 *
 * @example
 * const handler = await loadHandler(resolveFunction('sensor-sums'));
 */
export async function loadHandler(entry: FunctionEntry): Promise<SluiceHandler> {
  const mod = (await import(pathToFileURL(entry.file).href)) as Record<string, unknown>;
  const h = mod[entry.exportName] as SluiceHandler | undefined;
  if (typeof h !== 'function' || !h.sluice) {
    throw new ConfigError(
      `${entry.file} does not export a Sluice handler named "${entry.exportName}"; add: export const ${entry.exportName} = sluice(YourClass);`,
    );
  }
  return h;
}
