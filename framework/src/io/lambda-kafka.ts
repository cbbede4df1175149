import type { Admin, Kafka, KafkaConfig, Producer, SASLOptions } from 'kafkajs';
import type { Guarantee } from '../define/guarantee.js';
import type { Manifest } from '../define/manifest.js';
import { KAFKA_AUTH_MODES, type KafkaAuthMode, readEnv, SLUICE_ENV } from '../env.js';
import { ConfigError } from '../errors.js';
import type { DeadLetter, OutputMessage } from '../pipeline/records.js';
import type { Logger } from '../runtime/logger.js';
import { KafkaDeadLetterSink, KafkaOutputSink } from './kafka.js';
import { KafkaTransactions } from './kafka-transactions.js';
import { type DeadLetterSink, logDeadLetters, logOutputs, type OutputSink } from './sinks.js';

/**
 * The Kafka clients of a deployed function: a producer and an admin client (end offsets for
 * ticks), one each per container, connected on first use, to the cluster the invocation's event
 * came from (its `bootstrapServers`) unless SLUICE_KAFKA_BROKERS says otherwise. A container that
 * only got ticks has no event to ask: it uses SLUICE_KAFKA_BROKERS (self-managed clusters) or asks
 * the MSK cluster SLUICE_KAFKA_CLUSTER_ARN for its brokers (`msk-brokers.ts`). The plugin sets the
 * environment:
 *
 * - `SLUICE_OUTPUTS=kafka`: produce outputs (otherwise they are logged, as locally);
 * - `SLUICE_KAFKA_AUTH`: `iam` (MSK IAM: OAUTHBEARER tokens, see `msk-iam.ts`),
 *   `scram` (SASL/SCRAM-SHA-512 with the username and password of the Secrets Manager secret
 *   `SLUICE_KAFKA_SECRET_ARN`) or `none`; `SLUICE_KAFKA_TLS=true` for TLS;
 * - `SLUICE_DEAD_LETTER_TOPIC`: where poison records go (otherwise they are logged).
 *
 * The plugin also compiles `SLUICE_KAFKA_AUTH` into the bundle, so the libraries of the other
 * modes are not shipped.
 *
 * @example
 * const kafka = new LambdaKafka();
 * kafka.useBrokers(event.bootstrapServers);
 * await kafka.outputSink(manifest).send(messages);
 */
export class LambdaKafka {
  #brokers: string | undefined;
  #lookup: Promise<string> | undefined;
  #producer: Promise<Producer> | undefined;
  #admin: Promise<Admin> | undefined;

  /** The brokers of the current invocation's event (the first one seen wins for the container). */
  useBrokers(bootstrapServers: string | undefined): void {
    this.#brokers ??= readEnv('kafkaBrokers') || bootstrapServers || undefined;
  }

  outputSink(manifest: Manifest): OutputSink {
    let sink: KafkaOutputSink | undefined;
    return {
      send: async (messages: readonly OutputMessage[]) => (sink ??= new KafkaOutputSink(await this.#connect(), manifest)).send(messages),
    };
  }

  deadLetterSink(topic: string): DeadLetterSink {
    let sink: KafkaDeadLetterSink | undefined;
    return {
      send: async (letters: readonly DeadLetter[], fn: string) =>
        (sink ??= new KafkaDeadLetterSink(await this.#connect(), topic)).send(letters, fn),
    };
  }

  /**
   * Exactly-once transactions on this cluster: a transactional producer per source partition
   * (`kafka-transactions.ts`), named after the deployed function. Dead letters join the
   * transactions on `deadLetterTopic`, or go to `logLetters` without one.
   */
  transactions(manifest: Manifest, deadLetterTopic: string | undefined, logLetters: DeadLetterSink): KafkaTransactions {
    const timeout = Number(readEnv('transactionTimeoutMs'));
    return new KafkaTransactions({
      kafka: () => this.#kafka(),
      manifest,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME ?? manifest.name,
      ...(deadLetterTopic ? { deadLetterTopic } : {}),
      logLetters,
      ...(Number.isSafeInteger(timeout) && timeout > 0 ? { transactionTimeoutMs: timeout } : {}),
    });
  }

  /**
   * Every partition of `topic` with its end offset, for idle ticks (one ListOffsets request through
   * an admin client kept for the container).
   */
  async endOffsets(topic: string): Promise<Map<number, number>> {
    const admin = await (this.#admin ??= this.#createAdmin().catch((e) => {
      this.#admin = undefined;
      throw e;
    }));
    const offsets = await admin.fetchTopicOffsets(topic);
    return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  }

  async #createAdmin(): Promise<Admin> {
    const admin = (await this.#kafka()).admin();
    await admin.connect();
    return admin;
  }

  #connect(): Promise<Producer> {
    this.#producer ??= this.#create().catch((e) => {
      this.#producer = undefined; // the next invocation tries again
      throw e;
    });
    return this.#producer;
  }

  async #create(): Promise<Producer> {
    const producer = (await this.#kafka()).producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    await producer.connect();
    return producer;
  }

  #client: Promise<Kafka> | undefined;

  /** One kafkajs client per container (its producers and admin share its configuration). */
  #kafka(): Promise<Kafka> {
    this.#client ??= this.#newKafka().catch((e) => {
      this.#client = undefined;
      throw e;
    });
    return this.#client;
  }

  async #newKafka(): Promise<Kafka> {
    const brokers = this.#brokers ?? (readEnv('kafkaBrokers') || (await this.#lookUpBrokers()));
    if (!brokers)
      throw new ConfigError(
        `no Kafka brokers to connect to: no Kafka event gave bootstrapServers yet, and neither ${SLUICE_ENV.kafkaBrokers} nor ${SLUICE_ENV.kafkaClusterArn} is set (the Sluice plugin sets one of them).`,
      );
    // kafkajs is CommonJS: bundled, its exports sit on `default`.
    const kafkajs = (await import('kafkajs')) as typeof import('kafkajs') & { default?: typeof import('kafkajs') };
    const { Kafka, logLevel } = kafkajs.default ?? kafkajs;
    const config: KafkaConfig = {
      clientId: process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'sluice',
      brokers: brokers
        .split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      ssl: readEnv('kafkaTls') === 'true',
      logLevel: logLevel.ERROR,
      connectionTimeout: 5_000,
    };
    const sasl = await saslOptions();
    if (sasl) config.sasl = sasl;
    return new Kafka(config);
  }

  /** The MSK cluster's brokers, asked once per container; undefined when no cluster is configured. */
  async #lookUpBrokers(): Promise<string | undefined> {
    const clusterArn = readEnv('kafkaClusterArn');
    // A branch on the build constant (not an early return): esbuild drops the branch, and the
    // chunk it imports, from unauthenticated self-managed functions, which never have a cluster ARN.
    if (process.env.SLUICE_KAFKA_AUTH !== 'none' && clusterArn) {
      const auth = (process.env.SLUICE_KAFKA_AUTH ?? 'none') as KafkaAuthMode;
      this.#lookup ??= import('./msk-brokers.js')
        .then(({ mskBootstrapBrokers }) => mskBootstrapBrokers({ clusterArn, auth, tls: readEnv('kafkaTls') === 'true' }))
        .catch((e) => {
          this.#lookup = undefined;
          throw e;
        });
      return this.#lookup;
    }
    return undefined;
  }
}

// Written as a chain on the literal process.env.SLUICE_KAFKA_AUTH (SLUICE_ENV.kafkaAuth), not
// readEnv: the plugin compiles that expression in as a constant with esbuild's `define`, so the
// branches of the other modes (and their imports) drop out of the bundle. A computed
// process.env[SLUICE_ENV.kafkaAuth] would not be replaced.
async function saslOptions(): Promise<SASLOptions | undefined> {
  if (process.env.SLUICE_KAFKA_AUTH === 'iam') {
    const { mskIamToken } = await import('./msk-iam.js');
    const region = process.env.AWS_REGION ?? 'us-east-1';
    return { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: (await mskIamToken({ region })).token }) };
  }
  if (process.env.SLUICE_KAFKA_AUTH === 'scram') {
    const secretId = readEnv('kafkaSecretArn');
    if (!secretId)
      throw new ConfigError(
        `${SLUICE_ENV.kafkaAuth}=scram needs ${SLUICE_ENV.kafkaSecretArn}, the Secrets Manager secret with the SASL/SCRAM username and password.`,
      );
    // CommonJS: bundled (an ESM chunk), its exports sit on `default` only.
    const secrets = (await import('@aws-sdk/client-secrets-manager')) as typeof import('@aws-sdk/client-secrets-manager') & {
      default?: typeof import('@aws-sdk/client-secrets-manager');
    };
    const { SecretsManagerClient, GetSecretValueCommand } = secrets.default ?? secrets;
    const res = await new SecretsManagerClient({}).send(new GetSecretValueCommand({ SecretId: secretId }));
    const { username, password } = JSON.parse(res.SecretString ?? '{}') as { username?: string; password?: string };
    if (!username || !password)
      throw new ConfigError(`secret ${secretId} must be JSON with "username" and "password" (the MSK SASL/SCRAM secret format).`);
    return { mechanism: 'scram-sha-512', username, password };
  }
  const mode = process.env.SLUICE_KAFKA_AUTH;
  if (mode !== undefined && mode !== '' && mode !== 'none') {
    throw new ConfigError(`${SLUICE_ENV.kafkaAuth} must be one of ${KAFKA_AUTH_MODES.join(', ')}; received ${JSON.stringify(mode)}.`);
  }
  return undefined;
}

/**
 * The sinks a handler starts with: Kafka when deployed by the plugin (`SLUICE_OUTPUTS=kafka`),
 * otherwise entries of the handler's current logger; with the exactly-once guarantee, deployed,
 * Kafka transactions too (`transactions`), which then carry outputs and dead letters. `kafka` (the end offsets ticks read) is there
 * whenever the environment says where the cluster is, even when outputs are logged.
 *
 * @example
 * const { sink, deadLetters, kafka } = defaultSinks(manifest, () => runtime.logger);
 */
export function defaultSinks(
  manifest: Manifest,
  logger: () => Logger,
  guarantee: Guarantee = 'at-least-once',
): { sink: OutputSink; deadLetters: DeadLetterSink; kafka?: LambdaKafka; transactions?: KafkaTransactions } {
  if (readEnv('outputs') !== 'kafka') {
    const cluster = readEnv('kafkaBrokers') || readEnv('kafkaClusterArn');
    return { sink: logOutputs(logger), deadLetters: logDeadLetters(logger), ...(cluster ? { kafka: new LambdaKafka() } : {}) };
  }
  const kafka = new LambdaKafka();
  const topic = readEnv('deadLetterTopic');
  const deadLetters = topic ? kafka.deadLetterSink(topic) : logDeadLetters(logger);
  return {
    sink: kafka.outputSink(manifest),
    deadLetters,
    kafka,
    ...(guarantee === 'exactly-once' ? { transactions: kafka.transactions(manifest, topic, logDeadLetters(logger)) } : {}),
  };
}
