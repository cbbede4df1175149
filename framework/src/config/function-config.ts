import type { KafkaAuthMode } from '../env.js';
import { ConfigError } from '../errors.js';
import { readSluiceOptions } from './sluice-options.js';
import { DEFAULT_TICK_MS, readTickPeriod } from './tick-period.js';

/**
 * The two Kafka event kinds of serverless.yml: Amazon MSK (`msk`) and self-managed (`kafka`).
 *
 * @example
 * const kind: KafkaEventKind = 'msk' in event ? 'msk' : 'kafka';
 */
export type KafkaEventKind = 'msk' | 'kafka';

/**
 * A function as serverless.yml declares it, in the shape Serverless hands the plugin
 * (`serverless.service.getFunction(name)`): its events and its `sluice:` block, unchecked.
 *
 * @example
 * const fn: FunctionDeclaration = { events: [{ msk: { arn, topic: 'orders' } }], sluice: { deadLetterTopic: 'orders-dlq' } };
 */
export interface FunctionDeclaration {
  readonly events?: readonly unknown[];
  readonly sluice?: Readonly<Record<string, unknown>>;
}

/**
 * One Sluice function's configuration, read and checked from serverless.yml: its Kafka event (an
 * `msk` or a self-managed `kafka` event) and its own `sluice:` options, with Sluice's defaults
 * filled in. The plugin deploys it; the emulator derives its event source mapping from it
 * (`event-source-mapping.ts`).
 *
 * @example
 * const fn = functionConfig('sensor-sums', functionObject, { service: 'app', stage: 'dev' });
 * fn?.consumerGroupId; // 'sluice-app-dev-sensor-sums'
 */
export interface FunctionConfig {
  /** The name in serverless.yml. */
  readonly name: string;
  readonly kind: KafkaEventKind;
  readonly topic: string;
  readonly consumerGroupId: string;
  /** The MSK cluster ARN (a string or a CloudFormation intrinsic), for `msk` events. */
  readonly clusterArn?: unknown;
  /** The brokers of a self-managed `kafka` event (its `bootstrapServers`: strings or intrinsics). */
  readonly bootstrapServers?: readonly unknown[];
  /** The SASL/SCRAM secret ARN, if the event authenticates with one. */
  readonly scramSecretArn?: unknown;
  /** Whether the self-managed event runs in a VPC (needs the ENI actions). */
  readonly vpc: boolean;
  readonly auth: KafkaAuthMode;
  readonly tls: boolean;
  readonly deadLetterTopic: string;
  readonly maximumRetryAttempts?: number;
  /** `kafka://topic`, an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN. */
  readonly onFailure?: string;
  readonly provisionedPollers?: { readonly minimum: number; readonly maximum: number };
  /**
   * How often the deployed schedule ticks the function (ms, whole minutes), or false for no
   * schedule; only functions with idle windows get one. The function's `tick`, else the service's
   * (`custom.sluice.tick`), else one minute.
   */
  readonly tickMs: number | false;
}

/**
 * The service-wide Sluice options of serverless.yml (`custom.sluice`), unchecked: defaults for
 * every function's `sluice:` block. Only `tick` may be set there.
 *
 * @example
 * const defaults: ServiceSluiceOptions = { tick: '5 minutes' };
 */
export type ServiceSluiceOptions = Readonly<Record<string, unknown>>;

const SERVICE_OPTIONS = ['tick'];

/**
 * The consumer group a function's mapping uses when its event names none.
 *
 * @example
 * defaultConsumerGroupId('shop', 'dev', 'orders'); // 'sluice-shop-dev-orders'
 */
export function defaultConsumerGroupId(service: string, stage: string, name: string): string {
  return `sluice-${service}-${stage}-${name}`;
}

/**
 * The dead-letter topic of a function whose `sluice:` block names none.
 *
 * @example
 * defaultDeadLetterTopic('orders', 'order-totals'); // 'orders.order-totals.dlq'
 */
export function defaultDeadLetterTopic(topic: string, name: string): string {
  return `${topic}.${name}.dlq`;
}

/**
 * The Kafka topic of an on-failure destination written `kafka://<topic>`; undefined for an SQS,
 * SNS or S3 ARN.
 *
 * @example
 * onFailureTopic('kafka://failed'); // 'failed'
 */
export function onFailureTopic(onFailure: string | undefined): string | undefined {
  return onFailure?.startsWith(KAFKA_DESTINATION) ? onFailure.slice(KAFKA_DESTINATION.length) : undefined;
}

const KAFKA_DESTINATION = 'kafka://';

/**
 * Reads and checks one function's Kafka event and `sluice:` block, failing with the function and
 * the option named. Undefined for a function without a Kafka event (not a Sluice function).
 *
 * @example
 * functionConfig('orders', { events: [{ msk: { arn, topic: 'orders' } }] }, { service: 'shop', stage: 'dev' });
 * // { name: 'orders', kind: 'msk', topic: 'orders', consumerGroupId: 'sluice-shop-dev-orders', auth: 'iam', tls: true, deadLetterTopic: 'orders.orders.dlq', … }
 */
export function functionConfig(
  name: string,
  fn: FunctionDeclaration,
  ctx: { readonly service: string; readonly stage: string; readonly defaults?: ServiceSluiceOptions },
): FunctionConfig | undefined {
  const where = `functions.${name}`;
  // biome-ignore lint/suspicious/noExplicitAny: serverless.yml events are free-form YAML, checked field by field below
  const events = (fn.events ?? []) as Record<string, any>[];
  const kafkaEvents = events.filter((e) => e && (e.msk || e.kafka));
  if (kafkaEvents.length === 0) {
    if (fn.sluice)
      throw new ConfigError(
        `${where} has a sluice: block but no msk or kafka event; add the event (events: [{ msk: { arn, topic } }]) or remove the block.`,
      );
    return undefined;
  }
  if (kafkaEvents.length > 1)
    throw new ConfigError(
      `${where} has ${kafkaEvents.length} Kafka events; a Sluice function reads one topic. Split it into one function per topic.`,
    );
  const kind: KafkaEventKind = kafkaEvents[0].msk ? 'msk' : 'kafka';
  // biome-ignore lint/suspicious/noExplicitAny: serverless.yml events are free-form YAML, checked field by field below
  const ev = kafkaEvents[0][kind] as Record<string, any>;
  if (typeof ev?.topic !== 'string' || ev.topic.length === 0)
    throw new ConfigError(`${where}.events[].${kind}.topic must be a topic name; received ${JSON.stringify(ev?.topic)}.`);
  const opts = readSluiceOptions(where, fn.sluice ?? {});
  const deadLetterTopic = opts.deadLetterTopic ?? defaultDeadLetterTopic(ev.topic, name);
  const scramSecretArn = kind === 'msk' ? ev.saslScram512 : (ev.accessConfigurations?.saslScram512Auth ?? undefined);
  const access = (ev.accessConfigurations ?? {}) as Record<string, unknown>;
  const tickMs = opts.tickMs ?? serviceTick(ctx.defaults);
  return {
    name,
    kind,
    topic: ev.topic,
    consumerGroupId: ev.consumerGroupId ?? defaultConsumerGroupId(ctx.service, ctx.stage, name),
    ...(kind === 'msk' ? { clusterArn: ev.arn } : {}),
    ...(kind === 'kafka' && ev.bootstrapServers !== undefined ? { bootstrapServers: [ev.bootstrapServers].flat() } : {}),
    ...(scramSecretArn !== undefined ? { scramSecretArn: Array.isArray(scramSecretArn) ? scramSecretArn[0] : scramSecretArn } : {}),
    vpc: kind === 'kafka' && (access.vpcSubnet !== undefined || access.vpcSecurityGroup !== undefined),
    auth: scramSecretArn !== undefined ? 'scram' : kind === 'msk' ? 'iam' : 'none',
    tls: kind === 'msk',
    deadLetterTopic,
    ...(opts.maximumRetryAttempts !== undefined ? { maximumRetryAttempts: opts.maximumRetryAttempts } : {}),
    ...(opts.onFailure !== undefined
      ? { onFailure: opts.onFailure }
      : opts.provisionedPollers
        ? { onFailure: `${KAFKA_DESTINATION}${deadLetterTopic}` }
        : {}),
    ...(opts.provisionedPollers ? { provisionedPollers: opts.provisionedPollers } : {}),
    tickMs,
  };
}

/** The service's tick period (`custom.sluice.tick`), checked, or the default. */
function serviceTick(defaults: ServiceSluiceOptions | undefined): number | false {
  if (defaults === undefined || defaults === null) return DEFAULT_TICK_MS;
  if (typeof defaults !== 'object' || Array.isArray(defaults))
    throw new ConfigError(
      `custom.sluice in serverless.yml must be an object such as { tick: '5 minutes' }; received ${JSON.stringify(defaults)}.`,
    );
  for (const k of Object.keys(defaults)) {
    if (!SERVICE_OPTIONS.includes(k))
      throw new ConfigError(
        `unknown option custom.sluice.${k} in serverless.yml; allowed: ${SERVICE_OPTIONS.join(', ')} (set the others per function, in functions.<name>.sluice).`,
      );
  }
  return defaults.tick === undefined ? DEFAULT_TICK_MS : readTickPeriod(defaults.tick, 'custom.sluice.tick');
}
