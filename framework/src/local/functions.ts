import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse } from 'yaml';
import { ConfigError } from '../errors.js';
import type { SluiceHandler } from '../runtime/handler.js';

/** A function as `serverless.yml` declares it. */
export interface FunctionEntry {
  readonly name: string;
  /** Path of the handler file, resolved. */
  readonly file: string;
  /** Name of the exported handler. */
  readonly exportName: string;
  /** The function's Kafka event (`msk` or `kafka`), if any. */
  readonly event?: Readonly<Record<string, any>>;
  /** Sluice's own options (`functions.<name>.sluice`). */
  readonly sluice?: Readonly<Record<string, any>>;
  /** Function timeout in seconds, if set. */
  readonly timeout?: number;
}

/** The service-level settings of a serverless.yml that the emulator uses. */
export interface ServiceConfig {
  readonly service: string;
  readonly timeoutSeconds?: number;
  readonly functions: FunctionEntry[];
}

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

/** The handler file at `base` (a path without extension): .ts, .mts, .js or .mjs, whichever exists. */
export function findHandlerFile(base: string): string | undefined {
  return EXTENSIONS.map((ext) => base + ext).find((f) => existsSync(f));
}

/** Reads the functions of a serverless.yml. A malformed file fails naming the file and entry. */
export function readServerlessFunctions(file: string): FunctionEntry[] {
  return readServerless(file).functions;
}

/** Reads a serverless.yml: service name, provider timeout and functions. */
export function readServerless(file: string): ServiceConfig {
  let doc: { service?: unknown; provider?: { timeout?: unknown }; functions?: Record<string, { handler?: unknown; events?: unknown[]; sluice?: Record<string, unknown>; timeout?: unknown }> };
  try {
    doc = parse(readFileSync(file, 'utf8')) ?? {};
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML: ${(e as Error).message}`);
  }
  const root = path.dirname(path.resolve(file));
  const service = typeof doc.service === 'string' ? doc.service : (doc.service as { name?: string } | undefined)?.name ?? 'service';
  const functions = Object.entries(doc.functions ?? {}).map(([name, fn]) => {
    if (!fn || typeof fn.handler !== 'string' || !fn.handler.includes('.')) {
      throw new ConfigError(`functions.${name}.handler in ${file} must look like "functions/${name}/handler.handler" (file path, a dot, the export name); received ${JSON.stringify(fn?.handler)}.`);
    }
    const dot = fn.handler.lastIndexOf('.');
    const base = path.resolve(root, fn.handler.slice(0, dot));
    const found = findHandlerFile(base);
    if (!found) {
      throw new ConfigError(`functions.${name}.handler in ${file} points to ${fn.handler.slice(0, dot)}, but no ${EXTENSIONS.join('/')} file exists there.`);
    }
    const ev = (fn.events ?? []).find((e) => e && typeof e === 'object' && ('msk' in e || 'kafka' in e)) as Record<string, Record<string, unknown>> | undefined;
    if (fn.sluice !== undefined && (typeof fn.sluice !== 'object' || fn.sluice === null)) {
      throw new ConfigError(`functions.${name}.sluice in ${file} must be an object such as { maximumRetryAttempts: 2, deadLetterTopic: my-dlq }; received ${JSON.stringify(fn.sluice)}.`);
    }
    return {
      name, file: found, exportName: fn.handler.slice(dot + 1),
      ...(ev ? { event: ev.msk ?? ev.kafka } : {}),
      ...(fn.sluice ? { sluice: fn.sluice } : {}),
      ...(typeof fn.timeout === 'number' ? { timeout: fn.timeout } : {}),
    };
  });
  const timeout = doc.provider?.timeout;
  return { service, functions, ...(typeof timeout === 'number' ? { timeoutSeconds: timeout } : {}) };
}

/**
 * Resolves a function name from serverless.yml, or a path to a handler file, to its entry.
 *
 * @example
 * resolveFunction('sensor-sums'); // { name: 'sensor-sums', file: '/…/functions/sensor-sums/handler.ts', exportName: 'handler' }
 */
export function resolveFunction(target: string, cwd = process.cwd()): FunctionEntry {
  const asPath = path.resolve(cwd, target);
  if (/\.(m?[jt]s)$/.test(target) || (existsSync(asPath) && !existsSync(path.join(cwd, 'serverless.yml')))) {
    if (!existsSync(asPath)) throw new ConfigError(`handler file ${target} does not exist (looked at ${asPath}).`);
    return { name: path.basename(path.dirname(asPath)), file: asPath, exportName: 'handler' };
  }
  const yml = path.join(cwd, 'serverless.yml');
  if (!existsSync(yml)) throw new ConfigError(`"${target}" is not a handler file and there is no serverless.yml in ${cwd} to look it up in; pass a path such as functions/${target}/handler.ts.`);
  const entries = readServerlessFunctions(yml);
  const entry = entries.find((e) => e.name === target);
  if (!entry) {
    throw new ConfigError(`function "${target}" is not in ${yml}; functions there: ${entries.map((e) => e.name).join(', ') || '(none)'}. Or pass a handler file path.`);
  }
  return entry;
}

/** Imports a handler file and returns its Sluice handler, failing clearly if it exports none. */
export async function loadHandler(entry: FunctionEntry): Promise<SluiceHandler> {
  const mod = (await import(pathToFileURL(entry.file).href)) as Record<string, unknown>;
  const h = mod[entry.exportName] as SluiceHandler | undefined;
  if (typeof h !== 'function' || !h.sluice) {
    throw new ConfigError(`${entry.file} does not export a Sluice handler named "${entry.exportName}"; add: export const ${entry.exportName} = sluice(YourClass);`);
  }
  return h;
}
