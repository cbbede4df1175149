/**
 * The numbers a deployed Kafka function lives by: Lambda's limits and the defaults that Lambda,
 * the Serverless Framework and Sluice apply when serverless.yml says nothing. The plugin and the
 * emulator quote them from here. The ranges of the `sluice:` options themselves are in
 * `sluice-options.schema.json`, the schema Serverless validates serverless.yml with.
 *
 * https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html
 */

/**
 * Lambda's 6 MB invocation payload cap, which the event source mapping honours.
 *
 * @example
 * if (eventBytes > MAX_PAYLOAD_BYTES) deadLetter(record);
 */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/**
 * Records per event: Lambda's default and its cap for Kafka sources.
 *
 * @example
 * const size = event.batchSize ?? BATCH_SIZE.default;
 */
export const BATCH_SIZE = { default: 100, min: 1, max: 10_000 } as const;

/**
 * How long the mapping gathers records before it invokes, in seconds (`maximumBatchingWindow`).
 *
 * @example
 * const windowMs = (event.maximumBatchingWindow ?? BATCHING_WINDOW_SECONDS.default) * 1000;
 */
export const BATCHING_WINDOW_SECONDS = { default: 0.5, min: 0, max: 300 } as const;

/**
 * Where a new mapping starts reading, and the default (Serverless's, for `msk` and `kafka` events).
 *
 * @example
 * if (!STARTING_POSITIONS.includes(position)) throw new ConfigError(…);
 */
export const STARTING_POSITIONS = ['LATEST', 'TRIM_HORIZON', 'AT_TIMESTAMP'] as const;

/** One of {@link STARTING_POSITIONS}. */
export type StartingPosition = (typeof STARTING_POSITIONS)[number];

/**
 * The starting position of an event that names none.
 *
 * @example
 * const position = event.startingPosition ?? DEFAULT_STARTING_POSITION;
 */
export const DEFAULT_STARTING_POSITION: StartingPosition = 'TRIM_HORIZON';

/**
 * Serverless Framework's default function timeout, in seconds, when serverless.yml sets none.
 *
 * @example
 * const seconds = fn.timeout ?? provider.timeout ?? SERVERLESS_DEFAULT_TIMEOUT_SECONDS;
 */
export const SERVERLESS_DEFAULT_TIMEOUT_SECONDS = 6;

/**
 * Lambda's longest function timeout, in seconds.
 *
 * @example
 * if (seconds > MAX_TIMEOUT_SECONDS) throw new ConfigError(…);
 */
export const MAX_TIMEOUT_SECONDS = 900;

/**
 * Lambda's own retry cap for Kafka when retries are infinite (-1, the default) and an on-failure
 * destination is configured. https://docs.aws.amazon.com/lambda/latest/dg/kafka-on-failure-destination.html
 *
 * @example
 * const attempts = retries === -1 ? INFINITE_RETRIES_WITH_DESTINATION : retries;
 */
export const INFINITE_RETRIES_WITH_DESTINATION = 10;

/**
 * A consumer group id the emulator accepts (and Kafka tools quote without escaping).
 *
 * @example
 * CONSUMER_GROUP_ID.test('sluice-shop-dev-orders'); // true
 */
export const CONSUMER_GROUP_ID = /^[a-zA-Z0-9._:-]{1,200}$/;
