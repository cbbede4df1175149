/**
 * The environment contract between the Serverless plugin (which writes these variables into each
 * deployed function), `sluice dev` (which sets some for local runs) and the runtime (which reads
 * them). Every `SLUICE_*` name is declared here once.
 *
 * @example
 * const table = readEnv('stateTable');                // process.env.SLUICE_STATE_TABLE
 * const vars = { [SLUICE_ENV.outputs]: 'kafka' };     // written by the plugin
 */
export const SLUICE_ENV = {
  /** DynamoDB table holding window and keyed state; set only for stateful functions. */
  stateTable: 'SLUICE_STATE_TABLE',
  /** `pages` (default) or `items`: the DynamoDB state layout (docs/state.md, Upgrading). */
  stateLayout: 'SLUICE_STATE_LAYOUT',
  /** DynamoDB endpoint (DynamoDB Local); AWS's endpoint when unset. */
  dynamodbEndpoint: 'SLUICE_DYNAMODB_ENDPOINT',
  /** `kafka`: outputs and dead letters are produced to Kafka; anything else logs them. */
  outputs: 'SLUICE_OUTPUTS',
  /**
   * Brokers to produce to and read end offsets from, overriding the event's `bootstrapServers`;
   * the plugin sets it from a self-managed `kafka` event, so a container that only got ticks has them.
   */
  kafkaBrokers: 'SLUICE_KAFKA_BROKERS',
  /**
   * The MSK cluster of an `msk` event, for a function with idle windows: a container that only got
   * ticks asks it for its brokers (kafka:GetBootstrapBrokers, `io/msk-brokers.ts`).
   */
  kafkaClusterArn: 'SLUICE_KAFKA_CLUSTER_ARN',
  /** `none`, `iam` or `scram` (see {@link KAFKA_AUTH_MODES}). Compiled into bundles as a constant. */
  kafkaAuth: 'SLUICE_KAFKA_AUTH',
  /** `true` to connect to the brokers over TLS. */
  kafkaTls: 'SLUICE_KAFKA_TLS',
  /** Secrets Manager secret with the SASL/SCRAM username and password (auth `scram`). */
  kafkaSecretArn: 'SLUICE_KAFKA_SECRET_ARN',
  /** Kafka topic for dead letters; logged when unset. */
  deadLetterTopic: 'SLUICE_DEAD_LETTER_TOPIC',
  /**
   * `exactly-once` or `at-least-once`: the function's delivery guarantee as deployed (the `sluice:`
   * option, else the source's `guarantee`); a source that says otherwise fails at load (`guaranteeOf`).
   */
  guarantee: 'SLUICE_GUARANTEE',
  /** Kafka transaction timeout in ms (exactly-once): the plugin sets the function's timeout plus a margin. */
  transactionTimeoutMs: 'SLUICE_TRANSACTION_TIMEOUT_MS',
  /** `false` when Lambda ignores partial batch responses (no provisioned pollers): a failure fails the whole batch. */
  partialBatch: 'SLUICE_PARTIAL_BATCH',
} as const;

/**
 * How a deployed function authenticates to Kafka to produce (set by the plugin from the event: `SLUICE_KAFKA_AUTH`).
 *
 * @example
 * KAFKA_AUTH_MODES.includes(mode as KafkaAuthMode);
 */
export const KAFKA_AUTH_MODES = ['none', 'iam', 'scram'] as const;
/**
 * One of {@link KAFKA_AUTH_MODES}.
 *
 * @example
 * const mode: KafkaAuthMode = 'iam';
 */
export type KafkaAuthMode = (typeof KAFKA_AUTH_MODES)[number];

/** A name in {@link SLUICE_ENV}. */
export type SluiceEnvName = keyof typeof SLUICE_ENV;

/**
 * The value of one contract variable, or undefined when unset or empty.
 *
 * @example
 * if (readEnv('outputs') === 'kafka') connect();
 */
export function readEnv(name: SluiceEnvName, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env[SLUICE_ENV[name]];
  return v === undefined || v === '' ? undefined : v;
}
