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
  /** Which kind of Kafka event it is: Amazon MSK (`msk`) or self-managed (`kafka`). */
  readonly eventKind?: 'msk' | 'kafka';
  /** Sluice's own options (`functions.<name>.sluice`). */
  readonly sluice?: Readonly<Record<string, any>>;
  /** Function timeout in seconds, if set. */
  readonly timeout?: number;
}

/** The service-level settings of a serverless.yml that the emulator uses. */
export interface ServiceConfig {
  readonly service: string;
  /** `provider.stage`, when serverless.yml sets it to a value known without deploying. */
  readonly stage?: string;
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

/** Reads a serverless.yml: service name, provider stage and timeout, and functions. */
export function readServerless(file: string): ServiceConfig {
  if (!existsSync(file)) throw new ConfigError(`serverless.yml not found at ${path.resolve(file)}; run from the service directory or pass --config <path/to/serverless.yml>.`);
  let doc: { service?: unknown; provider?: { timeout?: unknown; stage?: unknown }; functions?: Record<string, { handler?: unknown; events?: unknown[]; sluice?: Record<string, unknown>; timeout?: unknown }> };
  try {
    doc = parse(readFileSync(file, 'utf8')) ?? {};
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML: ${(e as Error).message}`);
  }
  doc = resolveSelfReferences(doc, doc) as typeof doc;
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
      ...(ev ? { event: ev.msk ?? ev.kafka, eventKind: 'msk' in ev ? ('msk' as const) : ('kafka' as const) } : {}),
      ...(fn.sluice ? { sluice: fn.sluice } : {}),
      ...(typeof fn.timeout === 'number' ? { timeout: fn.timeout } : {}),
    };
  });
  const timeout = doc.provider?.timeout;
  const stage = knownStage(doc.provider?.stage);
  return { service, functions, ...(stage ? { stage } : {}), ...(typeof timeout === 'number' ? { timeoutSeconds: timeout } : {}) };
}

/**
 * Serverless's own `${self:path}` references, resolved against the file itself (what the examples
 * use for a shared cluster ARN). Other variable sources (`${opt:…}`, `${cf:…}`, `${ssm:…}`) need
 * the Serverless Framework or AWS and are left as written.
 */
function resolveSelfReferences(value: unknown, doc: unknown, depth = 0): unknown {
  if (typeof value === 'string') {
    if (depth > 10 || !value.includes('${self:')) return value;
    const whole = /^\$\{self:([^},\s]+)\}$/.exec(value);
    const lookup = (p: string) => p.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), doc);
    if (whole) {
      const v = lookup(whole[1]);
      return v === undefined ? value : resolveSelfReferences(v, doc, depth + 1);
    }
    return value.replace(/\$\{self:([^},\s]+)\}/g, (m, p: string) => {
      const v = resolveSelfReferences(lookup(p), doc, depth + 1);
      return typeof v === 'string' || typeof v === 'number' ? String(v) : m;
    });
  }
  if (Array.isArray(value)) return value.map((v) => resolveSelfReferences(v, doc, depth));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveSelfReferences(v, doc, depth)]));
  return value;
}

/** A stage written out (`prod`), or the default of `${opt:stage, 'prod'}`; undefined otherwise. */
function knownStage(stage: unknown): string | undefined {
  if (typeof stage !== 'string') return undefined;
  if (!stage.includes('${')) return stage;
  return /^\$\{opt:stage,\s*['"]?([\w-]+)['"]?\s*\}$/.exec(stage)?.[1];
}

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
  if (!existsSync(yml)) throw new ConfigError(`"${target}" is not a handler file and there is no serverless.yml at ${yml} to look it up in; pass a path such as functions/${target}/handler.ts.`);
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
