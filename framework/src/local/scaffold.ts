import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError } from '../errors.js';

/** templates/ at the package root (framework/src/local → ../../../templates). */
const TEMPLATES = path.resolve(import.meta.dirname, '../../../templates');

/**
 * `sluice new <name> [--topic <topic>] [--dir <functions dir>]`: creates `functions/<name>/` from
 * `templates/function` (a handler with a filter and a window, and a sample input) and prints the
 * serverless.yml entry to add. Refuses to overwrite an existing function.
 *
 * @example
 * await scaffold(['payments', '--topic', 'payments-in']); // functions/payments/handler.ts, sample.jsonl
 */
export async function scaffold(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { topic: { type: 'string' }, dir: { type: 'string', default: 'functions' } },
  });
  const [name] = positionals;
  if (!name || !/^[a-z][a-z0-9-]*$/.test(name)) {
    throw new ConfigError(
      `sluice new needs a function name in kebab-case (letters, digits, dashes; e.g. payment-totals); received ${name === undefined ? 'nothing' : `"${name}"`}.`,
    );
  }
  const topic = values.topic ?? name;
  if (!/^[A-Za-z0-9._-]+$/.test(topic))
    throw new ConfigError(`--topic "${topic}" is not a valid Kafka topic name (letters, digits, '.', '_', '-').`);
  const target = path.resolve(values.dir!, name);
  if (existsSync(target))
    throw new ConfigError(`${path.relative(process.cwd(), target) || target} already exists; pick another name or remove it first.`);
  const className = name
    .split('-')
    .map((p) => p[0].toUpperCase() + p.slice(1))
    .join('');
  mkdirSync(target, { recursive: true });
  const source = path.join(TEMPLATES, 'function');
  for (const file of readdirSync(source)) {
    const text = readFileSync(path.join(source, file), 'utf8');
    if (/\.(ts|jsonl|md)$/.test(file)) {
      writeFileSync(
        path.join(target, file),
        text.replaceAll('__NAME__', name).replaceAll('__CLASS__', className).replaceAll('__TOPIC__', topic),
      );
    } else cpSync(path.join(source, file), path.join(target, file));
  }
  const rel = path.relative(process.cwd(), target).split(path.sep).join('/');
  console.log(`created ${rel}/handler.ts and ${rel}/sample.jsonl. Try it:\n\n  npx sluice dev ${rel}/handler.ts\n`);
  console.log(
    `Add it to serverless.yml:\n\n  ${name}:\n    handler: ${rel}/handler.handler\n    events:\n      - msk:\n          arn: <your MSK cluster ARN>\n          topic: ${topic}\n          startingPosition: TRIM_HORIZON\n`,
  );
  return 0;
}
