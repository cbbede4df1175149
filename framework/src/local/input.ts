import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { errorText } from '../errors.js';
import type { InputRecord } from '../runtime/msk-event.js';

/** A line of an input file that could not be used, with where and why. */
export interface InputProblem {
  readonly file: string;
  readonly line: number;
  readonly problem: string;
}

/**
 * Reads a JSON-lines input file: `{"key": string|null, "value": any, "timestamp": epoch ms,
 * "partition"?: int, "headers"?: {name: string}}` per line. Bad lines are reported, not fatal.
 */
export async function readInputFile(file: string): Promise<{ records: InputRecord[]; problems: InputProblem[] }> {
  const records: InputRecord[] = [];
  const problems: InputProblem[] = [];
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === '') continue;
    const problem = (p: string) => problems.push({ file, line: n, problem: p });
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(text);
    } catch (e) {
      problem(`not JSON (${errorText(e)})`);
      continue;
    }
    if (!r || typeof r !== 'object' || Array.isArray(r)) {
      problem('expected an object like {"key": "k", "value": {...}, "timestamp": 1700000000000}');
      continue;
    }
    if (!('value' in r)) {
      problem('missing "value"');
      continue;
    }
    if (r.key !== null && r.key !== undefined && typeof r.key !== 'string') {
      problem(`"key" must be a string or null; got ${JSON.stringify(r.key)}`);
      continue;
    }
    if (typeof r.timestamp !== 'number' || !Number.isFinite(r.timestamp) || r.timestamp < 0) {
      problem(`"timestamp" must be epoch milliseconds (a non-negative number); got ${JSON.stringify(r.timestamp)}`);
      continue;
    }
    if (r.partition !== undefined && (!Number.isInteger(r.partition) || (r.partition as number) < 0)) {
      problem(`"partition" must be a non-negative integer; got ${JSON.stringify(r.partition)}`);
      continue;
    }
    if (
      r.headers !== undefined &&
      (typeof r.headers !== 'object' || r.headers === null || Object.values(r.headers).some((v) => typeof v !== 'string'))
    ) {
      problem('"headers" must be an object of string values');
      continue;
    }
    records.push({
      key: (r.key as string | null | undefined) ?? null,
      value: r.value,
      timestamp: r.timestamp,
      ...(r.partition !== undefined ? { partition: r.partition as number } : {}),
      ...(r.headers !== undefined ? { headers: r.headers as Record<string, string> } : {}),
    });
  }
  return { records, problems };
}
