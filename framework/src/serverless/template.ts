import { deployedGuarantee, type FunctionConfig, onFailureTopic } from '../config/function-config.js';
import { SERVERLESS_DEFAULT_TIMEOUT_SECONDS, transactionTimeoutMs } from '../config/limits.js';
import { outputTopics } from '../define/manifest.js';
import type { Manifest } from '../define/manifest.js';
import { SLUICE_ENV } from '../env.js';
import { ConfigError, SluiceError } from '../errors.js';
import { publishedGroup, transactionalId } from '../io/transactions.js';
import { STATE_TABLE_TTL_ATTRIBUTE, stateTableKeys } from '../state/dynamodb-table.js';
import { addTickSchedule, hasIdleWindows } from './schedule.js';

/** A CloudFormation template, as Serverless compiles it. */
export interface Template {
  Resources: Record<
    string,
    // biome-ignore lint/suspicious/noExplicitAny: CloudFormation resource properties are free-form
    { Type: string; Properties?: Record<string, any>; DependsOn?: string | string[]; DeletionPolicy?: string; UpdateReplacePolicy?: string }
  >;
  Outputs?: Record<string, unknown>;
}

/** One function as the template edits need it. */
export interface TemplateFunction {
  readonly options: FunctionConfig;
  readonly manifest: Manifest;
  readonly stateful: boolean;
  /** Logical id of its AWS::Lambda::Function, e.g. `SensorDashsumsLambdaFunction`. */
  readonly lambdaLogicalId: string;
  /** The deployed function name, e.g. `sluice-examples-dev-sensor-sums`. */
  readonly deployedName: string;
}

export const STATE_TABLE_ID = 'SluiceStateTable';
const SHARED_ROLE_ID = 'IamRoleLambdaExecution';

/**
 * Edits the compiled template for Sluice functions:
 *
 * - the event source mapping gets what Serverless v3 cannot express: partial batch responses,
 *   retry limit, on-failure destination and provisioned pollers (the last three only together,
 *   as Lambda supports them for Kafka only in provisioned mode);
 * - one DynamoDB state table for the service when any function keeps state (on-demand, TTL,
 *   point-in-time recovery, encryption, retained on stack deletion), its name in
 *   `SLUICE_ENV.stateTable` of the functions that use it;
 * - one IAM role per function, least privilege: DynamoDB actions on that table only,
 *   `kafka-cluster` actions on the cluster, the topics and the consumer group the function uses
 *   (for exactly-once, also its transactional ids and the group its published positions are
 *   committed to), the SASL/SCRAM secret if any; Serverless's shared role is removed once nothing
 *   uses it;
 * - the environment the runtime reads (outputs to Kafka, auth, dead-letter topic, the delivery
 *   guarantee and its transaction timeout, and where the brokers are for a container that only got
 *   ticks);
 * - for a function with idle windows, the schedule that ticks it (`schedule.ts`).
 *
 * @example
 * applySluice(serverless.service.provider.compiledCloudFormationTemplate, functions);
 */
export function applySluice(template: Template, functions: readonly TemplateFunction[]): void {
  const r = template.Resources;
  if (functions.some((f) => f.stateful)) {
    r[STATE_TABLE_ID] = {
      Type: 'AWS::DynamoDB::Table',
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        ...stateTableKeys(),
        TimeToLiveSpecification: { AttributeName: STATE_TABLE_TTL_ATTRIBUTE, Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true },
      },
    };
  }
  for (const f of functions) {
    const lambda = r[f.lambdaLogicalId];
    if (!lambda)
      throw new SluiceError(
        `Sluice: resource ${f.lambdaLogicalId} of function "${f.options.name}" is not in the compiled template; this is a bug in Sluice, please report it.`,
      );
    const roleId = `${f.lambdaLogicalId.replace(/LambdaFunction$/, '')}SluiceRole`;
    r[roleId] = role(f);
    lambda.Properties!.Role = { 'Fn::GetAtt': [roleId, 'Arn'] };
    // Role's GetAtt already orders the function after its role.
    lambda.DependsOn = replaceDependency(lambda.DependsOn, SHARED_ROLE_ID, undefined);
    const env = ((lambda.Properties!.Environment ??= { Variables: {} }).Variables ??= {});
    // Serverless always compiles Timeout (the function's, else the provider's, else 6 s).
    const timeout = lambda.Properties!.Timeout;
    Object.assign(env, environment(f, typeof timeout === 'number' ? timeout : SERVERLESS_DEFAULT_TIMEOUT_SECONDS));
    addTickSchedule(r, f);
    for (const res of Object.values(r)) {
      if (res.Type !== 'AWS::Lambda::EventSourceMapping' || !targets(res.Properties?.FunctionName, f.lambdaLogicalId)) continue;
      res.DependsOn = replaceDependency(res.DependsOn, SHARED_ROLE_ID, roleId);
      const p = res.Properties!;
      const o = f.options;
      if (o.provisionedPollers) {
        p.ProvisionedPollerConfig = { MinimumPollers: o.provisionedPollers.minimum, MaximumPollers: o.provisionedPollers.maximum };
        p.FunctionResponseTypes = ['ReportBatchItemFailures'];
        if (o.maximumRetryAttempts !== undefined) p.MaximumRetryAttempts = o.maximumRetryAttempts;
        if (o.onFailure) p.DestinationConfig = { OnFailure: { Destination: o.onFailure } };
      }
    }
  }
  // Serverless's shared role grants EC2 and kafka actions on every function; drop it when unused.
  if (r[SHARED_ROLE_ID] && !references(r, SHARED_ROLE_ID)) delete r[SHARED_ROLE_ID];
}

/**
 * The environment the Sluice runtime reads in Lambda (the contract is `SLUICE_ENV`, env.ts).
 * `SLUICE_GUARANTEE` is written for every function, at-least-once too: the deployed configuration
 * then says which delivery runs, and the runtime never falls back on a default nobody saw.
 */
function environment(f: TemplateFunction, timeoutSeconds: number): Record<string, unknown> {
  const o = f.options;
  const guarantee = deployedGuarantee(o, f.manifest.source.guarantee);
  return {
    ...(f.stateful ? { [SLUICE_ENV.stateTable]: { Ref: STATE_TABLE_ID } } : {}),
    [SLUICE_ENV.outputs]: 'kafka',
    [SLUICE_ENV.kafkaAuth]: o.auth,
    [SLUICE_ENV.kafkaTls]: String(o.tls),
    ...(o.auth === 'scram' ? { [SLUICE_ENV.kafkaSecretArn]: o.scramSecretArn } : {}),
    ...brokersEnvironment(f),
    [SLUICE_ENV.deadLetterTopic]: o.deadLetterTopic,
    // On-demand pollers ignore partial batch responses: the handler then fails the whole batch
    // instead, so no failed record is ever committed as done.
    [SLUICE_ENV.partialBatch]: String(o.provisionedPollers !== undefined),
    [SLUICE_ENV.guarantee]: guarantee,
    ...(guarantee === 'exactly-once' ? { [SLUICE_ENV.transactionTimeoutMs]: String(transactionTimeoutMs(timeoutSeconds)) } : {}),
  };
}

/**
 * Where a container finds the brokers before any Kafka event gave it `bootstrapServers` (a
 * container that only got ticks): a self-managed event's own list; an MSK cluster's ARN, for the
 * functions that tick, to ask for them (`kafka:GetBootstrapBrokers`, granted below).
 */
function brokersEnvironment(f: TemplateFunction): Record<string, unknown> {
  const o = f.options;
  if (o.bootstrapServers && o.bootstrapServers.length > 0) {
    const list = o.bootstrapServers;
    return { [SLUICE_ENV.kafkaBrokers]: list.every((b) => typeof b === 'string') ? list.join(',') : { 'Fn::Join': [',', list] } };
  }
  if (o.kind === 'msk' && hasIdleWindows(f.manifest)) return { [SLUICE_ENV.kafkaClusterArn]: o.clusterArn };
  return {};
}

function role(f: TemplateFunction): Template['Resources'][string] {
  const o = f.options;
  const statements: Record<string, unknown>[] = [
    {
      Effect: 'Allow',
      Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      Resource: { 'Fn::Sub': `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/${f.deployedName}:*` },
    },
  ];
  if (f.stateful) {
    statements.push({
      Effect: 'Allow',
      Action: ['dynamodb:BatchGetItem', 'dynamodb:PutItem'],
      Resource: { 'Fn::GetAtt': [STATE_TABLE_ID, 'Arn'] },
    });
  }
  const failed = onFailureTopic(o.onFailure);
  const writes = [...new Set([...outputTopics(f.manifest), o.deadLetterTopic, ...(failed !== undefined ? [failed] : [])])];
  if (o.kind === 'msk') {
    const cluster = o.clusterArn;
    statements.push(
      { Effect: 'Allow', Action: ['kafka:DescribeCluster', 'kafka:DescribeClusterV2', 'kafka:GetBootstrapBrokers'], Resource: cluster },
      {
        Effect: 'Allow',
        Action: ['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration', 'kafka-cluster:WriteDataIdempotently'],
        Resource: cluster,
      },
      { Effect: 'Allow', Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'], Resource: mskArn(cluster, 'topic', o.topic) },
      {
        Effect: 'Allow',
        Action: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
        Resource: mskArn(cluster, 'group', o.consumerGroupId),
      },
      {
        Effect: 'Allow',
        Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
        Resource: writes.map((t) => mskArn(cluster, 'topic', t)),
      },
    );
    if (deployedGuarantee(o, f.manifest.source.guarantee) === 'exactly-once') statements.push(...transactionStatements(f));
  }
  if (o.kind === 'msk' || o.vpc) {
    // Lambda reaches a cluster in a VPC through network interfaces; these EC2 actions have no
    // resource-level permissions (AWSLambdaMSKExecutionRole grants them the same way).
    statements.push({
      Effect: 'Allow',
      Action: [
        'ec2:CreateNetworkInterface',
        'ec2:DescribeNetworkInterfaces',
        'ec2:DescribeVpcs',
        'ec2:DeleteNetworkInterface',
        'ec2:DescribeSubnets',
        'ec2:DescribeSecurityGroups',
      ],
      Resource: '*',
    });
  }
  if (o.scramSecretArn !== undefined)
    statements.push({ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: o.scramSecretArn });
  if (o.onFailure?.startsWith('arn:')) {
    const service = o.onFailure.split(':')[2];
    const actions = service === 'sqs' ? ['sqs:SendMessage'] : service === 'sns' ? ['sns:Publish'] : ['s3:PutObject', 's3:ListBucket'];
    const resources = service === 's3' ? [o.onFailure, `${o.onFailure}/*`] : [o.onFailure];
    statements.push({ Effect: 'Allow', Action: actions, Resource: resources });
  }
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }],
      },
      Policies: [{ PolicyName: 'sluice', PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  };
}

/**
 * What an exactly-once function does beyond producing (io/kafka-transactions.ts): it claims and
 * uses one transactional id per source partition (InitProducerId, AddPartitionsToTxn, EndTxn:
 * Kafka's WRITE and DESCRIBE on TRANSACTIONAL_ID, which MSK maps to `AlterTransactionalId` and
 * `DescribeTransactionalId`), and commits its published positions to its own consumer group inside
 * each transaction and reads them back (AddOffsetsToTxn, TxnOffsetCommit, OffsetFetch: READ and
 * DESCRIBE on GROUP, i.e. `AlterGroup` and `DescribeGroup`). TxnOffsetCommit also needs READ on
 * the source topic, and a transactional producer IDEMPOTENT_WRITE on the cluster: both granted
 * already. https://docs.aws.amazon.com/msk/latest/developerguide/kafka-actions.html
 *
 * The partitions are not known at deploy time, so the ids end in `*`: the one wildcard, after the
 * function's and topic's names. The names are the runtime's own (`transactionalId`,
 * `publishedGroup`) with the deployed function name, which is `AWS_LAMBDA_FUNCTION_NAME`.
 */
function transactionStatements(f: TemplateFunction): Record<string, unknown>[] {
  const cluster = f.options.clusterArn;
  return [
    {
      Effect: 'Allow',
      Action: ['kafka-cluster:DescribeTransactionalId', 'kafka-cluster:AlterTransactionalId'],
      Resource: mskArn(cluster, 'transactional-id', everyPartition(f.deployedName, f.options.topic)),
    },
    {
      Effect: 'Allow',
      Action: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
      Resource: mskArn(cluster, 'group', publishedGroup(f.deployedName)),
    },
  ];
}

/**
 * The transactional ids of every partition of `topic`, as an IAM pattern: `transactionalId` with
 * the partition number replaced by `*`.
 *
 * @example
 * everyPartition('shop-prod-orders', 'orders'); // 'sluice-shop-prod-orders.orders-*'
 */
export function everyPartition(functionName: string, topic: string): string {
  const id = transactionalId(functionName, topic, 0);
  if (!id.endsWith('-0'))
    throw new SluiceError(`Sluice: transactional id "${id}" does not end with its partition; this is a bug in Sluice, please report it.`);
  return `${id.slice(0, -1)}*`;
}

/**
 * The ARN of a topic, group or transactional id of an MSK cluster:
 * `arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>` → `…:topic/<name>/<uuid>/<topic>`.
 * A cluster ARN given as an intrinsic (`Ref`, `Fn::ImportValue`) is split at deploy time.
 * https://docs.aws.amazon.com/msk/latest/developerguide/kafka-actions.html (Resources)
 *
 * @example
 * mskArn('arn:aws:kafka:us-east-1:123456789012:cluster/demo/u-1', 'group', 'g');
 * // 'arn:aws:kafka:us-east-1:123456789012:group/demo/u-1/g'
 */
export function mskArn(cluster: unknown, kind: 'topic' | 'group' | 'transactional-id', name: string): unknown {
  if (typeof cluster === 'string') {
    if (!cluster.includes(':cluster/'))
      throw new ConfigError(`"${cluster}" is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>).`);
    return `${cluster.replace(':cluster/', `:${kind}/`)}/${name}`;
  }
  const parts = { 'Fn::Split': [':cluster/', cluster] };
  return { 'Fn::Join': ['', [{ 'Fn::Select': [0, parts] }, `:${kind}/`, { 'Fn::Select': [1, parts] }, `/${name}`]] };
}

function targets(functionName: unknown, lambdaLogicalId: string): boolean {
  const getAtt = (functionName as { 'Fn::GetAtt'?: [string, string] } | undefined)?.['Fn::GetAtt'];
  const ref = (functionName as { Ref?: string } | undefined)?.Ref;
  return (
    getAtt?.[0] === lambdaLogicalId ||
    ref === lambdaLogicalId ||
    (typeof ref === 'string' && ref.startsWith(lambdaLogicalId.replace(/LambdaFunction$/, '')) && ref.endsWith('Alias'))
  );
}

function replaceDependency(dependsOn: string | string[] | undefined, from: string, to: string | undefined): string[] {
  const list = dependsOn === undefined ? [] : Array.isArray(dependsOn) ? dependsOn : [dependsOn];
  const out = list.filter((d) => d !== from);
  if (to !== undefined && !out.includes(to)) out.push(to);
  return out;
}

/** Whether any resource refers to `id` (Ref, Fn::GetAtt or DependsOn). */
function references(resources: Template['Resources'], id: string): boolean {
  const seen = (x: unknown): boolean => {
    if (x === id) return false;
    if (Array.isArray(x)) return x.some(seen);
    if (x && typeof x === 'object') {
      for (const [k, v] of Object.entries(x)) {
        if (k === 'Ref' && v === id) return true;
        if (k === 'Fn::GetAtt' && Array.isArray(v) && v[0] === id) return true;
        if (k === 'DependsOn' && (v === id || (Array.isArray(v) && v.includes(id)))) return true;
        if (seen(v)) return true;
      }
    }
    return false;
  };
  return Object.entries(resources).some(([rid, res]) => rid !== id && seen(res));
}
