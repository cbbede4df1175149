/**
 * A function's delivery guarantee for what it produces (outputs, late records, dead letters), one
 * concept for every layer: the source option `guarantee`, the `sluice:` option in serverless.yml,
 * `SLUICE_GUARANTEE` in a deployed function, and the runtime's choice of delivery order
 * (`runtime/invoke.ts` or `runtime/exactly-once.ts`). State is exactly-once in both; see
 * docs/guarantees.md.
 */
import { readEnv, SLUICE_ENV } from '../env.js';
import { ConfigError } from '../errors.js';
import type { Manifest } from './manifest.js';

/**
 * The guarantees a function may choose; the first is the default.
 *
 * @example
 * GUARANTEES.includes('exactly-once'); // true
 */
export const GUARANTEES = ['at-least-once', 'exactly-once'] as const;

/**
 * One of {@link GUARANTEES}.
 *
 * @example
 * const g: Guarantee = 'exactly-once';
 */
export type Guarantee = (typeof GUARANTEES)[number];

/**
 * Checks a `guarantee` option (undefined: the default); `where` names the option in the error.
 *
 * @example
 * readGuarantee('exactly-once', 'guarantee of stream "readings"'); // 'exactly-once'
 * readGuarantee('once', 'guarantee of stream "readings"');         // throws ConfigError
 */
export function readGuarantee(value: unknown, where: string): Guarantee {
  if (value === undefined) return GUARANTEES[0];
  if (typeof value === 'string' && (GUARANTEES as readonly string[]).includes(value)) return value as Guarantee;
  throw new ConfigError(
    `${where} must be one of ${GUARANTEES.map((g) => `'${g}'`).join(' or ')}; received ${JSON.stringify(value)}. ` +
      `'exactly-once' publishes each partition batch's outputs in one Kafka transaction committed with its state; at-least-once (the default) may publish an output again on a retry, with the same sluice-id.`,
  );
}

/**
 * The guarantee a function runs with: `SLUICE_GUARANTEE` when deployed (the plugin writes the
 * `sluice:` option there, or the source's, after checking they agree), else the source's, else
 * at-least-once. A value the runtime does not know, or one that disagrees with the source's (a
 * stale deployment), fails at load.
 *
 * @example
 * guaranteeOf(handler.sluice.manifest); // 'exactly-once'
 */
export function guaranteeOf(manifest: Manifest, env: NodeJS.ProcessEnv = process.env): Guarantee {
  const deployed = readEnv('guarantee', env);
  const own = manifest.source.guarantee;
  if (deployed === undefined) return own ?? GUARANTEES[0];
  const g = readGuarantee(deployed, SLUICE_ENV.guarantee);
  if (own !== undefined && own !== g)
    throw new ConfigError(
      `function "${manifest.name}" is deployed with ${SLUICE_ENV.guarantee}=${g}, but its source says guarantee: '${own}'; ` +
        `the deployment is stale or was changed by hand (\`sls deploy function\` does not rewrite the environment). Run \`sls deploy\`, or make the source and the sluice: option agree.`,
    );
  return g;
}
