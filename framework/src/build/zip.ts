import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Every zip entry gets this time, so the same files always give the same zip (and the same code hash). */
const FIXED_MTIME = new Date('1980-01-01T00:00:00Z');
/** Unix regular file, rw-r--r--: Lambda runs as another user and must read every file. */
const FILE_ATTRS = 0o100644 << 16;

/**
 * Zips files of a directory into a Lambda deployment package, deterministically: sorted entries,
 * a fixed timestamp, readable permissions. Returns the zip's size in bytes.
 *
 * @example
 * const bytes = await zipFiles(built.dir, built.files, '.serverless/sensor-sums.zip');
 */
export async function zipFiles(dir: string, files: readonly string[], zipPath: string): Promise<number> {
  const { zipSync } = await import('fflate');
  const entries: Record<string, [Uint8Array, { mtime: Date; os: number; attrs: number; level: 9 }]> = {};
  for (const f of [...files].sort())
    entries[f] = [readFileSync(path.join(dir, f)), { mtime: FIXED_MTIME, os: 3, attrs: FILE_ATTRS, level: 9 }];
  const zip = zipSync(entries);
  writeFileSync(zipPath, zip);
  return zip.byteLength;
}

/**
 * Unzips a deployment package into a directory (tests and the package benchmark run artifacts
 * from a clean directory, as Lambda does).
 *
 * @example
 * await unzipTo('.serverless/sensor-sums.zip', '/tmp/run');
 */
export async function unzipTo(zipPath: string, dir: string): Promise<string[]> {
  const { unzipSync } = await import('fflate');
  const { mkdirSync } = await import('node:fs');
  const files = unzipSync(readFileSync(zipPath));
  for (const [name, data] of Object.entries(files)) {
    const target = path.join(dir, name);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, data);
  }
  return Object.keys(files).sort();
}
