import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Metafile, Plugin } from 'esbuild';
import { ConfigError } from '../errors.js';

/** Where each copied file goes, relative to the output file that needs it. */
interface Copy {
  /** The input module (absolute) whose output needs the file next to it. */
  readonly importer: string;
  readonly from: string;
  /** Path relative to the directory of the output file holding `importer`. */
  readonly to: string;
}

/** Files the plugins asked to copy; {@link placeCopies} puts them next to the right outputs. */
export class CopyList {
  readonly copies: Copy[] = [];
  add(copy: Copy): void {
    if (!this.copies.some((c) => c.importer === copy.importer && c.to === copy.to)) this.copies.push(copy);
  }
}

const URL_ASSET = /new\s+URL\(\s*(['"])(\.{1,2}\/[^'"\n]+)\1\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Files a handler refers to with `new URL('./model.onnx', import.meta.url)` (the Node idiom for a
 * file next to the module): esbuild leaves the expression as is, so the file must sit next to the
 * output that ends up holding the module. The reference is rewritten to `./sluice-assets/<name>`
 * and the file copied there, for the function's own code (not node_modules).
 */
export function assetPlugin(copies: CopyList): Plugin {
  return {
    name: 'sluice-assets',
    setup(build) {
      build.onLoad({ filter: /\.[cm]?[jt]s$/ }, (args) => {
        if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        const source = readFileSync(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return undefined;
        let changed = false;
        const contents = source.replace(URL_ASSET, (whole, _q: string, rel: string) => {
          const file = path.resolve(path.dirname(args.path), rel);
          if (!existsSync(file) || !statSync(file).isFile()) return whole;
          const to = `sluice-assets/${path.basename(file)}`;
          const clash = copies.copies.find((c) => c.to === to && c.from !== file);
          if (clash) {
            throw new ConfigError(
              `${args.path} and ${clash.importer} both refer to a file named ${path.basename(file)} (${file}, ${clash.from}); rename one so they can sit side by side in the bundle.`,
            );
          }
          copies.add({ importer: args.path, from: file, to });
          changed = true;
          return `new URL(${JSON.stringify(`./${to}`)}, import.meta.url)`;
        });
        if (!changed) return undefined;
        const ext = path.extname(args.path);
        return { contents, loader: ext.endsWith('ts') ? 'ts' : 'js', resolveDir: path.dirname(args.path) };
      });
    },
  };
}

/** The ONNX Runtime files a Lambda function needs: the linux-x64 N-API binding and its shared library. */
export const ONNX_RUNTIME_FILES = ['onnxruntime_binding.node', 'libonnxruntime.so.1'] as const;

/**
 * onnxruntime-node loads its native binding with a `require` over the build machine's platform
 * and architecture, which esbuild cannot bundle. This plugin points that `require` at
 * `./onnxruntime/onnxruntime_binding.node` (external), and copies only the linux-x64 binding and
 * `libonnxruntime.so.1` there, next to the output holding the rest of ONNX Runtime's JavaScript.
 * The binding finds the library in its own directory (its RUNPATH is `$ORIGIN`).
 */
export function onnxRuntimePlugin(copies: CopyList, resolveFrom: string): Plugin {
  return {
    name: 'sluice-onnxruntime',
    setup(build) {
      build.onResolve({ filter: /onnxruntime_binding\.node$/ }, (args) => ({ path: args.path, external: true }));
      build.onLoad({ filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/ }, (args) => {
        const source = readFileSync(args.path, 'utf8');
        const pattern = /require\(`\.\.\/bin\/napi-v(\d+)\/\$\{process\.platform\}\/\$\{process\.arch\}\/onnxruntime_binding\.node`\)/;
        const m = pattern.exec(source);
        if (!m) {
          throw new ConfigError(
            `onnxruntime-node at ${args.path} loads its binding differently than Sluice expects (${path.basename(args.path)} changed); pin onnxruntime-node to 1.30.x or report this.`,
          );
        }
        const binDir = path.resolve(path.dirname(args.path), `../bin/napi-v${m[1]}/linux/x64`);
        for (const f of ONNX_RUNTIME_FILES) {
          const from = path.join(binDir, f);
          if (!existsSync(from)) {
            throw new ConfigError(
              `onnxruntime-node has no linux-x64 ${f} at ${from}; reinstall it (npm ci) so the Lambda bundle can include it.`,
            );
          }
          copies.add({ importer: args.path, from, to: `onnxruntime/${f}` });
        }
        return {
          contents: source.replace(pattern, 'require("./onnxruntime/onnxruntime_binding.node")'),
          loader: 'js',
          resolveDir: path.dirname(args.path),
        };
      });
      // Resolve onnxruntime-node from the project, even when the handler lives elsewhere.
      build.onResolve({ filter: /^onnxruntime-node$/ }, () => {
        try {
          return { path: createRequire(path.join(resolveFrom, 'package.json')).resolve('onnxruntime-node') };
        } catch {
          return undefined;
        }
      });
    },
  };
}

/**
 * Copies each requested file next to every output file that holds its importer (per esbuild's
 * metafile), and returns the files written, relative to `outDir`.
 */
export function placeCopies(copies: CopyList, metafile: Metafile, outDir: string, workingDir: string): string[] {
  const written: string[] = [];
  for (const [out, meta] of Object.entries(metafile.outputs)) {
    if (!out.endsWith('.mjs')) continue;
    const holds = new Set(Object.keys(meta.inputs).map((i) => path.resolve(workingDir, i)));
    for (const c of copies.copies) {
      if (!holds.has(c.importer)) continue;
      const dest = path.join(path.dirname(path.resolve(workingDir, out)), c.to);
      mkdirSync(path.dirname(dest), { recursive: true });
      copyFileSync(c.from, dest);
      written.push(path.relative(outDir, dest));
    }
  }
  return written;
}
