import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError, errorText } from '../errors.js';
import type { Manifest } from '../define/manifest.js';
import type { SluiceHandler } from '../runtime/handler.js';
import { assetPlugin, CopyList, onnxRuntimePlugin, placeCopies } from './plugins.js';

/** What to bundle: one function of a service. */
export interface BundleInput {
  /** The function's name in serverless.yml, for messages. */
  readonly functionName: string;
  /** The handler file (TypeScript or JavaScript), absolute. */
  readonly entry: string;
  /** Where the bundle goes inside the artifact, without extension, e.g. `functions/sensor-sums/handler`. */
  readonly handlerPath: string;
  /** The export Lambda calls, e.g. `handler`. */
  readonly exportName: string;
  /** An empty directory to write the artifact's files to. */
  readonly outDir: string;
  /** Compile-time constants (`process.env.X` → value), e.g. the Kafka auth mode. */
  readonly define?: Readonly<Record<string, string>>;
}

/** A built function: its files, its manifest, and whether it keeps state. */
export interface BuiltFunction {
  readonly functionName: string;
  readonly dir: string;
  /** Files relative to `dir`, sorted. */
  readonly files: readonly string[];
  readonly unzippedBytes: number;
  readonly manifest: Manifest;
  readonly stateful: boolean;
}

/** Packages a stateless function never imports. */
const STATEFUL_ONLY = ['@aws-sdk/client-dynamodb'];
/** ONNX Runtime: bundled (with its linux-x64 native files) only into functions that score a model. */
const ONNX_RUNTIME = 'onnxruntime-node';

/**
 * Bundles one function with esbuild for the `nodejs22.x` runtime: ESM, minified, tree-shaken,
 * code-split so heavy clients load only when used, with source maps for the function's own code
 * (third-party chunks ship without theirs). Class and function names are kept: Sluice scopes
 * state by them. The bundle is then imported once, which runs the handler file's own validation
 * (a bad window or option fails here, at build time) and yields its manifest; a stateless
 * function is built again without the DynamoDB client.
 *
 * @example
 * const built = await bundleFunction({ functionName: 'sensor-sums', entry: '/app/functions/sensor-sums/handler.ts',
 *   handlerPath: 'functions/sensor-sums/handler', exportName: 'handler', outDir: '/app/.serverless/sluice/sensor-sums' });
 * built.stateful; // true
 */
export async function bundleFunction(input: BundleInput): Promise<BuiltFunction> {
  if (!existsSync(input.entry)) {
    throw new ConfigError(
      `function "${input.functionName}": handler file ${input.entry} does not exist; fix its handler in serverless.yml (e.g. functions/${input.functionName}/handler.handler).`,
    );
  }
  // A first build yields the manifest; the function is then built again without what it does
  // not use (esbuild keeps dynamically imported packages even when tree-shaking drops the import).
  const probe = [ONNX_RUNTIME];
  await build(input, probe);
  const manifest = await manifestOf(input);
  const stateful = manifest.state.length > 0 || manifest.steps.some((s) => s.kind === 'window');
  const scores = manifest.steps.some((s) => s.kind === 'score');
  const external = [...(stateful ? [] : STATEFUL_ONLY), ...(scores ? [] : [ONNX_RUNTIME])];
  if (external.join() !== probe.join()) await build(input, external);
  await checkModels(input, manifest);
  const files = listFiles(input.outDir);
  const unzippedBytes = files.reduce((n, f) => n + statSync(path.join(input.outDir, f)).size, 0);
  return { functionName: input.functionName, dir: input.outDir, files, unzippedBytes, manifest, stateful };
}

async function build(input: BundleInput, external: readonly string[]): Promise<void> {
  const esbuild = await import('esbuild');
  rmSync(input.outDir, { recursive: true, force: true });
  mkdirSync(input.outDir, { recursive: true });
  const copies = new CopyList();
  const result = await esbuild
    .build({
      entryPoints: { [input.handlerPath]: input.entry },
      outdir: input.outDir,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node22',
      minify: true,
      treeShaking: true,
      keepNames: true,
      sourcemap: 'linked',
      sourcesContent: false,
      legalComments: 'none',
      metafile: true,
      external: [...external],
      define: { ...(input.define ?? {}) },
      // CommonJS dependencies (kafkajs, the AWS SDK) call require(); an ESM bundle needs one.
      banner: { js: 'import{createRequire as __sluiceRequire}from"node:module";const require=__sluiceRequire(import.meta.url);' },
      chunkNames: 'chunks/[name]-[hash]',
      plugins: [assetPlugin(copies), ...(external.includes(ONNX_RUNTIME) ? [] : [onnxRuntimePlugin(copies, process.cwd())])],
      logLevel: 'silent',
    })
    .catch((e: { errors?: { text: string; location?: { file: string; line: number } }[] }) => {
      const first = e.errors?.[0];
      throw new ConfigError(
        `function "${input.functionName}": esbuild could not bundle ${input.entry}: ${first ? `${first.text}${first.location ? ` (${first.location.file}:${first.location.line})` : ''}` : String(e)}`,
      );
    });
  // Model files and ONNX Runtime's native files go next to the outputs that load them.
  placeCopies(copies, result.metafile, input.outDir, process.cwd());
  // Keep source maps for chunks with first-party code; drop those of purely third-party chunks.
  for (const [out, meta] of Object.entries(result.metafile.outputs)) {
    if (!out.endsWith('.mjs')) continue;
    const inputs = Object.keys(meta.inputs);
    if (inputs.length > 0 && inputs.every((i) => i.includes('node_modules/'))) {
      const file = path.resolve(out);
      rmSync(`${file}.map`, { force: true });
      writeFileSync(file, readFileSync(file, 'utf8').replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
    }
  }
}

/** Imports the built bundle and returns its handler's manifest, failing clearly if it has none. */
async function manifestOf(input: BundleInput): Promise<Manifest> {
  const file = path.join(input.outDir, `${input.handlerPath}.mjs`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(`${pathToFileURL(file).href}?t=${Date.now()}`)) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(
      `function "${input.functionName}": loading ${path.relative(process.cwd(), input.entry)} failed: ${errorText(e)}`,
      { cause: e },
    );
  }
  const h = mod[input.exportName] as SluiceHandler | undefined;
  if (typeof h !== 'function' || !h.sluice) {
    throw new ConfigError(
      `function "${input.functionName}": ${path.relative(process.cwd(), input.entry)} does not export a Sluice handler named "${input.exportName}"; ` +
        `add export const ${input.exportName} = sluice(YourClass), or fix the handler in serverless.yml.`,
    );
  }
  return h.sluice.manifest;
}

/**
 * Loads every ONNX model of the function into ONNX Runtime once, at build time, so a model it
 * cannot run fails `sls package` rather than the first batch in Lambda. Uses the build machine's
 * onnxruntime-node (the bundle carries the linux-x64 one).
 */
async function checkModels(input: BundleInput, manifest: Manifest): Promise<void> {
  const models = manifest.steps.flatMap((s) =>
    s.kind === 'score' && s.model.kind === 'onnx' ? [s.model as unknown as { name: string; file: string }] : [],
  );
  if (models.length === 0) return;
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (e) {
    throw new ConfigError(
      `function "${input.functionName}" scores ONNX models, but onnxruntime-node is not installed where it is packaged (${errorText(e)}); npm i onnxruntime-node.`,
    );
  }
  for (const m of models) {
    try {
      const session = await ort.InferenceSession.create(m.file, { logSeverityLevel: 3 });
      await session.release();
    } catch (e) {
      throw new ConfigError(
        `function "${input.functionName}": model "${m.name}" (${m.file}) cannot be loaded by ONNX Runtime: ${errorText(e)}. Export it again with an opset ONNX Runtime supports.`,
      );
    }
  }
}

function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}
