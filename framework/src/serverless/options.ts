import { ConfigError } from '../errors.js';

/**
 * What Sluice needs to know of one deployed function, read from serverless.yml: its Kafka event
 * (an `msk` or a self-managed `kafka` event) and its own `sluice:` options.
 *
 * @example
 * const fn = deployOptions('sensor-sums', functionObject, { service: 'app', stage: 'dev' });
 */
export interface DeployFunction {
  /** The name in serverless.yml. */
  readonly name: string;
  readonly kind: 'msk' | 'kafka';
  readonly topic: string;
  readonly consumerGroupId: string;
  /** The MSK cluster ARN (a string or a CloudFormation intrinsic), for `msk` events. */
  readonly clusterArn?: unknown;
  /** The SASL/SCRAM secret ARN, if the event authenticates with one. */
  readonly scramSecretArn?: unknown;
  /** Whether the self-managed event runs in a VPC (needs the ENI actions). */
  readonly vpc: boolean;
  readonly auth: 'iam' | 'scram' | 'none';
  readonly tls: boolean;
  readonly deadLetterTopic: string;
  readonly maximumRetryAttempts?: number;
  /** `kafka://topic`, an SQS queue ARN or an S3 bucket ARN. */
  readonly onFailure?: string;
  readonly provisionedPollers?: { readonly minimum: number; readonly maximum: number };
}

/** The options of `functions.<name>.sluice` that deploys understand (the emulator reads the same block). */
export const DEPLOY_OPTIONS = ['maximumRetryAttempts', 'deadLetterTopic', 'onFailure', 'provisionedPollers'] as const;

/**
 * Reads and checks one function's Kafka event and `sluice:` block, failing with the function and
 * the option named. Undefined for a function without a Kafka event (not a Sluice function).
 */
export function deployOptions(name: string, fn: { events?: unknown[]; sluice?: Record<string, unknown> }, ctx: { service: string; stage: string }): DeployFunction | undefined {
  const where = `functions.${name}`;
  const events = (fn.events ?? []) as Record<string, any>[];
  const kafkaEvents = events.filter((e) => e && (e.msk || e.kafka));
  if (kafkaEvents.length === 0) {
    if (fn.sluice) throw new ConfigError(`${where} has a sluice: block but no msk or kafka event; add the event (events: [{ msk: { arn, topic } }]) or remove the block.`);
    return undefined;
  }
  if (kafkaEvents.length > 1) throw new ConfigError(`${where} has ${kafkaEvents.length} Kafka events; a Sluice function reads one topic. Split it into one function per topic.`);
  const kind = kafkaEvents[0].msk ? 'msk' : 'kafka';
  const ev = kafkaEvents[0][kind] as Record<string, any>;
  if (typeof ev?.topic !== 'string' || ev.topic.length === 0) throw new ConfigError(`${where}.events[].${kind}.topic is missing; name the topic the function reads.`);
  const opts = fn.sluice ?? {};
  for (const k of Object.keys(opts)) {
    if (!(DEPLOY_OPTIONS as readonly string[]).includes(k)) throw new ConfigError(`unknown option ${where}.sluice.${k} in serverless.yml; allowed: ${DEPLOY_OPTIONS.join(', ')}.`);
  }
  const retries = opts.maximumRetryAttempts;
  if (retries !== undefined && (typeof retries !== 'number' || !Number.isInteger(retries) || retries < -1 || retries > 10_000)) {
    throw new ConfigError(`${where}.sluice.maximumRetryAttempts must be a whole number from -1 (forever) to 10000; received ${JSON.stringify(retries)}.`);
  }
  const onFailure = opts.onFailure;
  if (onFailure !== undefined && (typeof onFailure !== 'string' || !/^(kafka:\/\/[a-zA-Z0-9._-]{1,249}|arn:aws[a-zA-Z-]*:(sqs|s3|sns):.+)$/.test(onFailure))) {
    throw new ConfigError(`${where}.sluice.onFailure must be kafka://<topic>, an SQS queue ARN, an SNS topic ARN or an S3 bucket ARN; received ${JSON.stringify(onFailure)}.`);
  }
  let provisionedPollers: DeployFunction['provisionedPollers'];
  if (opts.provisionedPollers !== undefined) {
    const p = opts.provisionedPollers as { minimum?: unknown; maximum?: unknown };
    const min = p?.minimum ?? 1;
    const max = p?.maximum;
    if (typeof min !== 'number' || !Number.isInteger(min) || min < 1 || min > 200 || typeof max !== 'number' || !Number.isInteger(max) || max < min || max > 2000) {
      throw new ConfigError(`${where}.sluice.provisionedPollers must be { minimum: 1-200, maximum: minimum-2000 }; received ${JSON.stringify(opts.provisionedPollers)}.`);
    }
    provisionedPollers = { minimum: min, maximum: max };
  }
  if (!provisionedPollers && (retries !== undefined || onFailure !== undefined)) {
    throw new ConfigError(
      `${where}.sluice.${retries !== undefined ? 'maximumRetryAttempts' : 'onFailure'} needs ${where}.sluice.provisionedPollers: Lambda supports retry limits, ` +
        `on-failure destinations and partial batch responses for Kafka only in provisioned poller mode. Add provisionedPollers: { minimum: 1, maximum: 2 }, or remove the option (then a failing batch is retried until it succeeds).`,
    );
  }
  const deadLetterTopic = typeof opts.deadLetterTopic === 'string' && opts.deadLetterTopic ? opts.deadLetterTopic : `${ev.topic}.${name}.dlq`;
  if (opts.deadLetterTopic !== undefined && (typeof opts.deadLetterTopic !== 'string' || !opts.deadLetterTopic)) {
    throw new ConfigError(`${where}.sluice.deadLetterTopic must be a topic name; received ${JSON.stringify(opts.deadLetterTopic)}.`);
  }
  const scramSecretArn = kind === 'msk' ? ev.saslScram512 : (ev.accessConfigurations?.saslScram512Auth ?? undefined);
  const access = (ev.accessConfigurations ?? {}) as Record<string, unknown>;
  const groupId = ev.consumerGroupId ?? `sluice-${ctx.service}-${ctx.stage}-${name}`;
  return {
    name, kind, topic: ev.topic, consumerGroupId: groupId,
    ...(kind === 'msk' ? { clusterArn: ev.arn } : {}),
    ...(scramSecretArn !== undefined ? { scramSecretArn: Array.isArray(scramSecretArn) ? scramSecretArn[0] : scramSecretArn } : {}),
    vpc: kind === 'kafka' && (access.vpcSubnet !== undefined || access.vpcSecurityGroup !== undefined),
    auth: scramSecretArn !== undefined ? 'scram' : kind === 'msk' ? 'iam' : 'none',
    tls: kind === 'msk',
    deadLetterTopic,
    ...(retries !== undefined ? { maximumRetryAttempts: retries } : {}),
    ...(onFailure !== undefined ? { onFailure } : provisionedPollers ? { onFailure: `kafka://${deadLetterTopic}` } : {}),
    ...(provisionedPollers ? { provisionedPollers } : {}),
  };
}
