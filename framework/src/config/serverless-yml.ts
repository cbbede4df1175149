import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { ConfigError, errorText } from '../errors.js';
import type { FunctionDeclaration, KafkaEventKind } from './function-config.js';

/**
 * serverless.yml read without the Serverless Framework, for `sluice dev` and the emulator: the
 * service, the provider's stage and timeout, and each function's handler file, Kafka event and
 * `sluice:` block as declared. Deployed, Serverless reads the file and hands the plugin the same
 * declarations; either way `functionConfig` (function-config.ts) checks them.
 */

/**
 * A function as `serverless.yml` declares it, with its handler file found.
 *
 * @example
 * const entry: FunctionEntry = { name: 'orders', file: '/srv/functions/orders/handler.ts', exportName: 'handler', event: { topic: 'orders' }, eventKind: 'msk' };
 */
export interface FunctionEntry {
  readonly name: string;
  /** Path of the handler file, resolved. */
  readonly file: string;
  /** Name of the exported handler. */
  readonly exportName: string;
  /** The function's Kafka event (`msk` or `kafka`), if any. */
  // biome-ignore lint/suspicious/noExplicitAny: free-form serverless.yml data, validated by functionConfig()
  readonly event?: Readonly<Record<string, any>>;
  /** Which kind of Kafka event it is: Amazon MSK (`msk`) or self-managed (`kafka`). */
  readonly eventKind?: KafkaEventKind;
  /** Sluice's own options (`functions.<name>.sluice`). */
  // biome-ignore lint/suspicious/noExplicitAny: free-form serverless.yml data, validated by functionConfig()
  readonly sluice?: Readonly<Record<string, any>>;
  /** Function timeout in seconds, if set. */
  readonly timeout?: number;
}

/**
 * The service-level settings of a serverless.yml that the emulator uses.
 *
 * @example
 * const { service, stage, functions } = readServerless('serverless.yml');
 */
export interface ServiceConfig {
  readonly service: string;
  /** `provider.stage`, when serverless.yml sets it to a value known without deploying. */
  readonly stage?: string;
  readonly timeoutSeconds?: number;
  readonly functions: FunctionEntry[];
}

const EXTENSIONS = ['.ts', '.mts', '.js', '.mjs'];

/**
 * The handler file at `base` (a path without extension): .ts, .mts, .js or .mjs, whichever exists.
 *
 * @example
 * findHandlerFile('/srv/functions/orders/handler'); // '/srv/functions/orders/handler.ts'
 */
export function findHandlerFile(base: string): string | undefined {
  return EXTENSIONS.map((ext) => base + ext).find((f) => existsSync(f));
}

/**
 * Reads the functions of a serverless.yml. A malformed file fails naming the file and entry.
 *
 * @example
 * readServerlessFunctions('serverless.yml').map((f) => f.name); // ['sensor-sums', 'fast-vehicles']
 */
export function readServerlessFunctions(file: string): FunctionEntry[] {
  return readServerless(file).functions;
}

/**
 * Reads a serverless.yml: service name, provider stage and timeout, and functions.
 *
 * @example
 * readServerless('serverless.yml'); // { service: 'shop', stage: 'qa', timeoutSeconds: 20, functions: [...] }
 */
export function readServerless(file: string): ServiceConfig {
  if (!existsSync(file))
    throw new ConfigError(
      `serverless.yml not found at ${path.resolve(file)}; run from the service directory or pass --config <path/to/serverless.yml>.`,
    );
  let doc: {
    service?: unknown;
    provider?: { timeout?: unknown; stage?: unknown };
    functions?: Record<string, { handler?: unknown; events?: unknown[]; sluice?: Record<string, unknown>; timeout?: unknown }>;
  };
  try {
    doc = parse(readFileSync(file, 'utf8')) ?? {};
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML: ${errorText(e)}`);
  }
  doc = resolveSelfReferences(doc, doc) as typeof doc;
  const root = path.dirname(path.resolve(file));
  const service = typeof doc.service === 'string' ? doc.service : ((doc.service as { name?: string } | undefined)?.name ?? 'service');
  const functions = Object.entries(doc.functions ?? {}).map(([name, fn]) => {
    if (!fn || typeof fn.handler !== 'string' || !fn.handler.includes('.')) {
      throw new ConfigError(
        `functions.${name}.handler in ${file} must look like "functions/${name}/handler.handler" (file path, a dot, the export name); received ${JSON.stringify(fn?.handler)}.`,
      );
    }
    const dot = fn.handler.lastIndexOf('.');
    const base = path.resolve(root, fn.handler.slice(0, dot));
    const found = findHandlerFile(base);
    if (!found) {
      throw new ConfigError(
        `functions.${name}.handler in ${file} points to ${fn.handler.slice(0, dot)}, but no ${EXTENSIONS.join('/')} file exists there.`,
      );
    }
    const ev = (fn.events ?? []).find((e) => e && typeof e === 'object' && ('msk' in e || 'kafka' in e)) as
      | Record<string, Record<string, unknown>>
      | undefined;
    if (fn.sluice !== undefined && (typeof fn.sluice !== 'object' || fn.sluice === null)) {
      throw new ConfigError(
        `functions.${name}.sluice in ${file} must be an object such as { maximumRetryAttempts: 2, deadLetterTopic: my-dlq }; received ${JSON.stringify(fn.sluice)}.`,
      );
    }
    return {
      name,
      file: found,
      exportName: fn.handler.slice(dot + 1),
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
    const lookup = (p: string) =>
      p.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), doc);
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
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveSelfReferences(v, doc, depth)]));
  return value;
}

/** A stage written out (`prod`), or the default of `${opt:stage, 'prod'}`; undefined otherwise. */
function knownStage(stage: unknown): string | undefined {
  if (typeof stage !== 'string') return undefined;
  if (!stage.includes('${')) return stage;
  return /^\$\{opt:stage,\s*['"]?([\w-]+)['"]?\s*\}$/.exec(stage)?.[1];
}

/**
 * An entry's declaration in the shape Serverless hands the plugin, so both read it with the same
 * `functionConfig` (function-config.ts).
 *
 * @example
 * functionConfig(entry.name, declarationOf(entry), { service, stage });
 */
export function declarationOf(entry: Pick<FunctionEntry, 'event' | 'eventKind' | 'sluice'>): FunctionDeclaration {
  return {
    events: entry.event ? [{ [entry.eventKind ?? 'msk']: entry.event }] : [],
    ...(entry.sluice ? { sluice: { ...entry.sluice } } : {}),
  };
}
