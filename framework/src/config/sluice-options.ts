import { createRequire } from 'node:module';
import { type Guarantee, readGuarantee } from '../define/guarantee.js';
import { ConfigError } from '../errors.js';
import { readTickPeriod } from './tick-period.js';

/**
 * The shape of `sluice-options.schema.json`, so code reads its limits typed. The values live only
 * in the JSON: Serverless validates serverless.yml with it (framework/serverless/index.cjs requires
 * it), and {@link readSluiceOptions} takes its ranges and option names from it.
 * https://www.serverless.com/framework/docs/guides/plugins/custom-configuration
 *
 * @example
 * const range: SluiceOptionsSchema['properties']['maximumRetryAttempts'] = SLUICE_OPTIONS_SCHEMA.properties.maximumRetryAttempts;
 */
export interface SluiceOptionsSchema {
  readonly type: 'object';
  readonly additionalProperties: false;
  readonly properties: {
    readonly maximumRetryAttempts: IntegerSchema;
    readonly deadLetterTopic: StringSchema;
    readonly onFailure: StringSchema;
    readonly provisionedPollers: {
      readonly type: 'object';
      readonly additionalProperties: false;
      readonly properties: { readonly minimum: IntegerSchema; readonly maximum: IntegerSchema };
      readonly required: readonly string[];
    };
    readonly tick: { readonly anyOf: readonly unknown[] };
    /** The values of {@link GUARANTEES} (define/guarantee.ts); a test keeps the two lists equal. */
    readonly guarantee: { readonly enum: readonly string[] };
  };
}

interface IntegerSchema {
  readonly type: 'integer';
  readonly minimum: number;
  readonly maximum: number;
}

interface StringSchema {
  readonly type: 'string';
  readonly minLength: number;
}

/**
 * The JSON schema of `functions.<name>.sluice` in serverless.yml, as the plugin registers it with
 * Serverless (loaded from the one JSON file both use).
 *
 * @example
 * const { minimum, maximum } = SLUICE_OPTIONS_SCHEMA.properties.maximumRetryAttempts; // -1, 10000
 */
export const SLUICE_OPTIONS_SCHEMA: SluiceOptionsSchema = createRequire(import.meta.url)('./sluice-options.schema.json');

/**
 * The name of one option of the `sluice:` block.
 *
 * @example
 * const name: SluiceOptionName = 'provisionedPollers';
 */
export type SluiceOptionName = keyof SluiceOptionsSchema['properties'];

/**
 * The options `functions.<name>.sluice` may hold, in the schema's order.
 *
 * @example
 * SLUICE_FUNCTION_OPTIONS; // ['maximumRetryAttempts', 'deadLetterTopic', 'onFailure', 'provisionedPollers', 'tick', 'guarantee']
 */
export const SLUICE_FUNCTION_OPTIONS = Object.keys(SLUICE_OPTIONS_SCHEMA.properties) as readonly SluiceOptionName[];

/**
 * The `sluice:` block of one function, checked; absent options stay absent.
 *
 * @example
 * const opts: SluiceOptions = { provisionedPollers: { minimum: 1, maximum: 2 }, maximumRetryAttempts: 3 };
 */
export interface SluiceOptions {
  readonly maximumRetryAttempts?: number;
  /** `kafka://topic`, an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN. */
  readonly onFailure?: string;
  readonly provisionedPollers?: { readonly minimum: number; readonly maximum: number };
  readonly deadLetterTopic?: string;
  /** The idle tick period in milliseconds (whole minutes), or false for no schedule (`tick-period.ts`). */
  readonly tickMs?: number | false;
  /** The delivery guarantee of the function's outputs (`guarantee:`), if the block sets one. */
  readonly guarantee?: Guarantee;
}

/** What an on-failure destination may be: a Kafka topic, or an SQS, SNS or S3 ARN. */
const ON_FAILURE = /^(kafka:\/\/[a-zA-Z0-9._-]{1,249}|arn:aws[a-zA-Z-]*:(sqs|s3|sns):.+)$/;

/**
 * Checks a function's `sluice:` block against the schema's ranges and the rules a schema cannot
 * say (an on-failure destination's form; retries and destinations only with provisioned pollers,
 * as Lambda supports them for Kafka only in that mode). Fails with the option named.
 *
 * @example
 * readSluiceOptions('functions.orders', { provisionedPollers: { maximum: 2 }, maximumRetryAttempts: 3 });
 * // { maximumRetryAttempts: 3, provisionedPollers: { minimum: 1, maximum: 2 } }
 */
export function readSluiceOptions(where: string, opts: Readonly<Record<string, unknown>>): SluiceOptions {
  const schema = SLUICE_OPTIONS_SCHEMA.properties;
  for (const k of Object.keys(opts)) {
    if (!(SLUICE_FUNCTION_OPTIONS as readonly string[]).includes(k))
      throw new ConfigError(`unknown option ${where}.sluice.${k} in serverless.yml; allowed: ${SLUICE_FUNCTION_OPTIONS.join(', ')}.`);
  }
  const retries = opts.maximumRetryAttempts;
  const r = schema.maximumRetryAttempts;
  if (retries !== undefined && !isIntegerIn(retries, r.minimum, r.maximum)) {
    throw new ConfigError(
      `${where}.sluice.maximumRetryAttempts must be a whole number from ${r.minimum} (forever) to ${r.maximum}; received ${JSON.stringify(retries)}.`,
    );
  }
  const onFailure = opts.onFailure;
  if (onFailure !== undefined && (typeof onFailure !== 'string' || !ON_FAILURE.test(onFailure))) {
    throw new ConfigError(
      `${where}.sluice.onFailure must be kafka://<topic>, an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN; received ${JSON.stringify(onFailure)}.`,
    );
  }
  let provisionedPollers: SluiceOptions['provisionedPollers'];
  if (opts.provisionedPollers !== undefined) {
    const p = opts.provisionedPollers as { minimum?: unknown; maximum?: unknown };
    const { minimum: lo, maximum: hi } = schema.provisionedPollers.properties;
    // `minimum: ~` is not absent: the schema refuses null, and so do the checks.
    const min = p?.minimum === undefined ? lo.minimum : p.minimum;
    const max = p?.maximum;
    const known = Object.keys(schema.provisionedPollers.properties);
    const stray = typeof p === 'object' && p !== null && Object.keys(p).some((k) => !known.includes(k));
    if (stray || !isIntegerIn(min, lo.minimum, lo.maximum) || !isIntegerIn(max, min, hi.maximum)) {
      throw new ConfigError(
        `${where}.sluice.provisionedPollers must be { minimum: ${lo.minimum}-${lo.maximum}, maximum: minimum-${hi.maximum} }; received ${JSON.stringify(opts.provisionedPollers)}.`,
      );
    }
    provisionedPollers = { minimum: min, maximum: max };
  }
  if (!provisionedPollers && (retries !== undefined || onFailure !== undefined)) {
    throw new ConfigError(
      `${where}.sluice.${retries !== undefined ? 'maximumRetryAttempts' : 'onFailure'} needs ${where}.sluice.provisionedPollers: Lambda supports retry limits, ` +
        `on-failure destinations and partial batch responses for Kafka only in provisioned poller mode. Add provisionedPollers: { minimum: 1, maximum: 2 }, or remove the option (then a failing batch is retried until it succeeds).`,
    );
  }
  const deadLetterTopic = opts.deadLetterTopic;
  if (deadLetterTopic !== undefined && (typeof deadLetterTopic !== 'string' || deadLetterTopic.length < schema.deadLetterTopic.minLength)) {
    throw new ConfigError(`${where}.sluice.deadLetterTopic must be a topic name; received ${JSON.stringify(deadLetterTopic)}.`);
  }
  const tickMs = opts.tick === undefined ? undefined : readTickPeriod(opts.tick, `${where}.sluice.tick`);
  const guarantee = opts.guarantee === undefined ? undefined : readGuarantee(opts.guarantee, `${where}.sluice.guarantee`);
  return {
    ...(retries !== undefined ? { maximumRetryAttempts: retries as number } : {}),
    ...(onFailure !== undefined ? { onFailure } : {}),
    ...(provisionedPollers ? { provisionedPollers } : {}),
    ...(deadLetterTopic !== undefined ? { deadLetterTopic } : {}),
    ...(tickMs !== undefined ? { tickMs } : {}),
    ...(guarantee !== undefined ? { guarantee } : {}),
  };
}

function isIntegerIn(x: unknown, min: number, max: number): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max;
}
