import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { bundleFunction, type BuiltFunction } from '../build/bundle.js';
import { zipFiles } from '../build/zip.js';
import { deployedGuarantee, type FunctionConfig, functionConfig } from '../config/function-config.js';
import { findHandlerFile } from '../config/serverless-yml.js';
import { SLUICE_ENV } from '../env.js';
import { ConfigError } from '../errors.js';
import { applySluice, type Template } from './template.js';

/** The parts of Serverless Framework v3's `serverless` object the plugin uses. */
export interface Serverless {
  readonly serviceDir: string;
  readonly service: {
    readonly service: string;
    /** serverless.yml's `custom:`; `custom.sluice` holds the service-wide Sluice options. */
    readonly custom?: { readonly sluice?: Readonly<Record<string, unknown>> } | null;
    readonly provider: { stage?: string; compiledCloudFormationTemplate: Template };
    getAllFunctions(): string[];
    getFunction(name: string): FunctionObject;
  };
  readonly providers: { aws: { getStage(): string; naming: { getLambdaLogicalId(name: string): string } } };
}

interface FunctionObject {
  handler?: string;
  name?: string;
  // biome-ignore lint/suspicious/noExplicitAny: Serverless's own function objects: free-form event maps
  events?: Record<string, any>[];
  sluice?: Record<string, unknown>;
  package?: { artifact?: string; individually?: boolean; patterns?: string[] };
}

/** Serverless's logger, as v3 hands it to plugins. */
export interface Log {
  (message: string): void;
  notice?(message: string): void;
  warning?(message: string): void;
  verbose?(message: string): void;
}

/** One function after packaging, kept for the template step. */
interface Packaged {
  readonly options: FunctionConfig;
  readonly built: BuiltFunction;
  readonly artifact: string;
  readonly zipBytes: number;
}

const packaged = new Map<string, Packaged>();

/** The Sluice functions of the service (those with a Kafka event), checked. */
function sluiceFunctions(sls: Serverless, only?: string): { name: string; fn: FunctionObject; options: FunctionConfig }[] {
  const stage = sls.providers.aws.getStage();
  const out: { name: string; fn: FunctionObject; options: FunctionConfig }[] = [];
  for (const name of sls.service.getAllFunctions()) {
    if (only && name !== only) continue;
    const fn = sls.service.getFunction(name);
    const defaults = sls.service.custom?.sluice;
    const options = functionConfig(name, fn, { service: sls.service.service, stage, ...(defaults !== undefined ? { defaults } : {}) });
    if (options) out.push({ name, fn, options });
  }
  return out;
}

/**
 * `before:package:createDeploymentArtifacts`: builds every Sluice function with esbuild into
 * its own zip under `.serverless/` and points the function at it, so Serverless zips nothing
 * itself. Each bundle is loaded once, so a handler with a bad configuration, one that exports no
 * Sluice handler, one whose source topic differs from its event's, or one whose source's
 * `guarantee` differs from its `sluice:` option's fails here.
 *
 * @example
 * hooks['before:package:createDeploymentArtifacts'] = () => packageFunctions(serverless, options, log);
 */
export async function packageFunctions(sls: Serverless, options: { function?: string }, log: Log): Promise<void> {
  const outRoot = path.join(sls.serviceDir, '.serverless', 'sluice');
  for (const { name, fn, options: o } of sluiceFunctions(sls, options.function)) {
    const handler = fn.handler ?? '';
    const m = /^(.+)\.([A-Za-z_$][\w$]*)$/.exec(handler);
    if (!m)
      throw new ConfigError(
        `functions.${name}.handler must be <file path without extension>.<export>, e.g. functions/${name}/handler.handler; received ${JSON.stringify(handler)}.`,
      );
    const [, handlerPath, exportName] = m;
    const entry = resolveEntry(sls.serviceDir, handlerPath, name);
    const built = await bundleFunction({
      functionName: name,
      entry,
      handlerPath,
      exportName,
      outDir: path.join(outRoot, name),
      // The runtime reads this variable as a literal process.env chain (io/lambda-kafka.ts) so that
      // esbuild can replace it with the function's auth mode and drop the unused signers.
      define: { [`process.env.${SLUICE_ENV.kafkaAuth}`]: JSON.stringify(o.auth) },
    });
    if (built.manifest.source.topic !== o.topic) {
      throw new ConfigError(
        `function "${name}": its handler reads topic "${built.manifest.source.topic}" but its ${o.kind} event is on topic "${o.topic}"; make them the same.`,
      );
    }
    const guarantee = deployedGuarantee(o, built.manifest.source.guarantee);
    mkdirSync(path.join(sls.serviceDir, '.serverless'), { recursive: true });
    const artifact = path.join(sls.serviceDir, '.serverless', `sluice-${name}.zip`);
    const zipBytes = await zipFiles(built.dir, built.files, artifact);
    fn.package = { ...(fn.package ?? {}), artifact };
    // Set before events compile, so the mapping, the IAM group ARN and the emulator agree.
    const event = fn.events!.find((e) => e.msk || e.kafka)!;
    (event.msk ?? event.kafka).consumerGroupId ??= o.consumerGroupId;
    packaged.set(name, { options: o, built, artifact, zipBytes });
    log.verbose?.(
      `sluice: ${name}: ${(zipBytes / 1024).toFixed(0)} KB zipped, ${(built.unzippedBytes / 1024).toFixed(0)} KB unzipped, ${built.stateful ? 'DynamoDB state' : 'stateless'}, ${guarantee}`,
    );
  }
}

/**
 * `after:package:compileEvents`: adds the state table, per-function roles, the runtime
 * environment and the mapping options Serverless cannot express (see `template.ts`).
 */
export async function compileTemplate(sls: Serverless): Promise<void> {
  const stage = sls.providers.aws.getStage();
  const functions = sluiceFunctions(sls).map(({ name, fn, options }) => {
    const p = packaged.get(name);
    if (!p) throw new ConfigError(`function "${name}" was not packaged by Sluice; run sls package (or sls deploy) without --package.`);
    return {
      options,
      manifest: p.built.manifest,
      stateful: p.built.stateful,
      lambdaLogicalId: sls.providers.aws.naming.getLambdaLogicalId(name),
      deployedName: fn.name ?? `${sls.service.service}-${stage}-${name}`,
    };
  });
  applySluice(sls.service.provider.compiledCloudFormationTemplate, functions);
}

/** What packaging produced, for `sls package` output and the benchmark. */
export function packagedFunctions(): ReadonlyMap<string, { artifact: string; zipBytes: number; unzippedBytes: number; stateful: boolean }> {
  return new Map(
    [...packaged].map(([k, p]) => [
      k,
      { artifact: p.artifact, zipBytes: p.zipBytes, unzippedBytes: p.built.unzippedBytes, stateful: p.built.stateful },
    ]),
  );
}

function resolveEntry(serviceDir: string, handlerPath: string, name: string): string {
  const file = findHandlerFile(path.join(serviceDir, handlerPath));
  if (file) return file;
  throw new ConfigError(
    `function "${name}": no handler file ${handlerPath}.ts (or .mts, .js, .mjs) in ${serviceDir}; fix functions.${name}.handler.`,
  );
}
