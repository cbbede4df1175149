import { GUARANTEES, type Guarantee, readGuarantee } from '../define/guarantee.js';
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
  /**
   * The delivery guarantee serverless.yml asks for: the function's `guarantee`, else the service's
   * (`custom.sluice.guarantee`); absent when neither says. {@link deployedGuarantee} settles it
   * with the handler source's.
   */
  readonly guarantee?: GuaranteeOption;
}

/**
 * A `guarantee` set in serverless.yml, with the option that set it (for messages) and whether it
 * is the service's default rather than the function's own.
 *
 * @example
 * const g: GuaranteeOption = { value: 'exactly-once', option: 'functions.orders.sluice.guarantee', serviceDefault: false };
 */
export interface GuaranteeOption {
  readonly value: Guarantee;
  readonly option: string;
  readonly serviceDefault: boolean;
}

/**
 * The service-wide Sluice options of serverless.yml (`custom.sluice`), unchecked: defaults for
 * every function's `sluice:` block. Only `tick` and `guarantee` may be set there.
 *
 * @example
 * const defaults: ServiceSluiceOptions = { tick: '5 minutes', guarantee: 'exactly-once' };
 */
export type ServiceSluiceOptions = Readonly<Record<string, unknown>>;

const SERVICE_OPTIONS = ['tick', 'guarantee'];

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
  const service = serviceOptions(ctx.defaults);
  const tickMs = opts.tickMs ?? service.tickMs;
  const guarantee: GuaranteeOption | undefined =
    opts.guarantee !== undefined
      ? { value: opts.guarantee, option: `${where}.sluice.guarantee`, serviceDefault: false }
      : service.guarantee !== undefined
        ? { value: service.guarantee, option: 'custom.sluice.guarantee', serviceDefault: true }
        : undefined;
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
    ...(guarantee ? { guarantee } : {}),
  };
}

/**
 * The guarantee a function is deployed with: its own `sluice:` option, else what its handler's
 * source says (`guarantee` of `@source`/`stream()`, `manifest.source.guarantee`), else the
 * service's default (`custom.sluice.guarantee`), else at-least-once. A service default yields to
 * the source: it fills in for functions that say nothing, it does not overrule code that does. The
 * function's own option and the source's must agree: two explicit choices that differ are a
 * mistake, whichever one was meant.
 *
 * @example
 * deployedGuarantee(fn, handler.sluice.manifest.source.guarantee); // 'exactly-once'
 */
export function deployedGuarantee(fn: Pick<FunctionConfig, 'name' | 'guarantee'>, source: Guarantee | undefined): Guarantee {
  const yml = fn.guarantee;
  if (yml && !yml.serviceDefault) {
    if (source !== undefined && source !== yml.value)
      throw new ConfigError(
        `function "${fn.name}": ${yml.option} is '${yml.value}' in serverless.yml but its handler's source sets guarantee '${source}'; ` +
          `make them the same, or remove one of the two (either is enough).`,
      );
    return yml.value;
  }
  return source ?? yml?.value ?? GUARANTEES[0];
}

/** The service's defaults (`custom.sluice`), checked: the tick period (or its default) and the guarantee, if set. */
function serviceOptions(defaults: ServiceSluiceOptions | undefined): { tickMs: number | false; guarantee?: Guarantee } {
  if (defaults === undefined || defaults === null) return { tickMs: DEFAULT_TICK_MS };
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
  return {
    tickMs: defaults.tick === undefined ? DEFAULT_TICK_MS : readTickPeriod(defaults.tick, 'custom.sluice.tick'),
    ...(defaults.guarantee === undefined ? {} : { guarantee: readGuarantee(defaults.guarantee, 'custom.sluice.guarantee') }),
  };
}
