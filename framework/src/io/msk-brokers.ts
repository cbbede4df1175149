import type { KafkaAuthMode } from '../env.js';
import { ConfigError, errorText, SluiceError } from '../errors.js';
import type { Credentials } from './msk-iam.js';

/**
 * The brokers of an MSK cluster, asked of the MSK API (`GetBootstrapBrokers`, through the AWS
 * SDK's `@aws-sdk/client-kafka`, loaded on first use), for a deployed function whose container has
 * not yet seen a Kafka event (whose `bootstrapServers` would say): one that only got ticks.
 * Requires `kafka:GetBootstrapBrokers` on the cluster, and a network path from the function to the
 * MSK API (NAT, or the interface VPC endpoint for MSK).
 * https://docs.aws.amazon.com/msk/1.0/apireference/clusters-clusterarn-bootstrap-brokers.html
 *
 * @example
 * await mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true });
 * // 'b-1.demo.abc.c2.kafka.us-east-1.amazonaws.com:9098,b-2.…:9098'
 */
export async function mskBootstrapBrokers(opts: {
  readonly clusterArn: string;
  readonly auth: KafkaAuthMode;
  readonly tls: boolean;
  readonly credentials?: Credentials;
  /** The MSK API's base URL; by default the SDK's endpoint for the ARN's region. */
  readonly endpoint?: string;
  readonly timeoutMs?: number;
}): Promise<string> {
  const arn = /^arn:(aws[a-zA-Z-]*):kafka:([a-z0-9-]+):\d+:cluster\/.+$/.exec(opts.clusterArn);
  if (!arn)
    throw new ConfigError(
      `"${opts.clusterArn}" is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>); fix the msk event's arn.`,
    );
  const region = arn[2];
  // CommonJS: bundled (an ESM chunk), its exports sit on `default` only.
  const mod = (await import('@aws-sdk/client-kafka')) as typeof import('@aws-sdk/client-kafka') & {
    default?: typeof import('@aws-sdk/client-kafka');
  };
  const { KafkaClient, GetBootstrapBrokersCommand } = mod.default ?? mod;
  const client = new KafkaClient({
    region,
    maxAttempts: 2,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
  });
  let brokers: Record<string, string | undefined>;
  try {
    brokers = (await client.send(new GetBootstrapBrokersCommand({ ClusterArn: opts.clusterArn }), {
      abortSignal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
    })) as unknown as Record<string, string | undefined>;
  } catch (e) {
    const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const denied = status === 401 || status === 403;
    throw new SluiceError(
      `kafka:GetBootstrapBrokers for ${opts.clusterArn} failed${status ? ` (${status})` : ''}: ${errorText(e)}` +
        (denied
          ? '; the execution role needs kafka:GetBootstrapBrokers on the cluster (the Sluice plugin grants it).'
          : '; the next tick tries again.'),
      { retriable: !denied, cause: e },
    );
  } finally {
    client.destroy();
  }
  const field =
    opts.auth === 'iam'
      ? 'BootstrapBrokerStringSaslIam'
      : opts.auth === 'scram'
        ? 'BootstrapBrokerStringSaslScram'
        : opts.tls
          ? 'BootstrapBrokerStringTls'
          : 'BootstrapBrokerString';
  const list = brokers[field];
  if (!list)
    throw new ConfigError(
      `MSK cluster ${opts.clusterArn} has no ${field} (its brokers for ${opts.auth === 'none' ? (opts.tls ? 'TLS' : 'plaintext') : opts.auth.toUpperCase()} clients); turn that access on for the cluster, or set SLUICE_KAFKA_BROKERS.`,
    );
  return list;
}
