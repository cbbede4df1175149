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
 * The longest Kafka transaction a broker accepts by default (`transaction.max.timeout.ms`, 15
 * minutes): a producer asking for more fails at InitProducerId. It equals Lambda's longest
 * timeout, so the margin below shrinks to nothing for a function that runs that long.
 * https://kafka.apache.org/documentation/#brokerconfigs_transaction.max.timeout.ms
 *
 * @example
 * Math.min(wanted, KAFKA_MAX_TRANSACTION_TIMEOUT_MS);
 */
export const KAFKA_MAX_TRANSACTION_TIMEOUT_MS = 900_000;

/** How much longer than its function a transaction may stay open before the broker aborts it. */
const TRANSACTION_TIMEOUT_MARGIN_MS = 10_000;

/**
 * The Kafka transaction timeout of an exactly-once function (`SLUICE_TRANSACTION_TIMEOUT_MS`): the
 * function's timeout plus 10 s, capped at the broker's default maximum. Longer than the
 * invocation, so the broker never aborts a transaction that a running invocation is about to
 * commit; bounded, so a transaction left open by an invocation that died (and never retried)
 * stops holding back `read_committed` readers after that long. A retry does not wait for it: its
 * claim of the transactional id aborts the old transaction at once.
 *
 * @example
 * transactionTimeoutMs(6);   // 16000
 * transactionTimeoutMs(900); // 900000
 */
export function transactionTimeoutMs(timeoutSeconds: number): number {
  return Math.min(timeoutSeconds * 1000 + TRANSACTION_TIMEOUT_MARGIN_MS, KAFKA_MAX_TRANSACTION_TIMEOUT_MS);
}

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
