import type { KafkaAuthMode } from '../env.js';
import { ConfigError, SluiceError } from '../errors.js';
import { type Credentials, credentialsFromEnv, Sha256 } from './msk-iam.js';

/**
 * The brokers of an MSK cluster, asked of the MSK API (`GetBootstrapBrokers`), for a deployed
 * function whose container has not yet seen a Kafka event (whose `bootstrapServers` would say):
 * one that only got ticks. Requires `kafka:GetBootstrapBrokers` on the cluster, and a network path
 * from the function to the MSK API (NAT, or the interface VPC endpoint for MSK).
 *
 * One SigV4-signed GET with the SDK's own signer, which MSK IAM auth already ships
 * (`msk-iam.ts`), rather than `@aws-sdk/client-kafka` and its client stack for one call.
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
  /** The MSK API's base URL; by default `https://kafka.<region>.amazonaws.com` from the ARN. */
  readonly endpoint?: string;
  readonly timeoutMs?: number;
}): Promise<string> {
  const arn = /^arn:(aws[a-zA-Z-]*):kafka:([a-z0-9-]+):\d+:cluster\/.+$/.exec(opts.clusterArn);
  if (!arn)
    throw new ConfigError(
      `"${opts.clusterArn}" is not an MSK cluster ARN (arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid>); fix the msk event's arn.`,
    );
  const [, partition, region] = arn;
  const url = new URL(opts.endpoint ?? `https://kafka.${region}.amazonaws.com${partition === 'aws-cn' ? '.cn' : ''}`);
  const path = `/v1/clusters/${encodeURIComponent(opts.clusterArn)}/bootstrap-brokers`;
  // CommonJS: bundled (an ESM chunk), its exports sit on `default` only.
  const signing = (await import('@smithy/signature-v4')) as typeof import('@smithy/signature-v4') & {
    default?: typeof import('@smithy/signature-v4');
  };
  const { SignatureV4 } = signing.default ?? signing;
  const signer = new SignatureV4({ service: 'kafka', region, credentials: opts.credentials ?? credentialsFromEnv(), sha256: Sha256 });
  const signed = await signer.sign({
    method: 'GET',
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path,
    headers: { host: url.host, accept: 'application/json' },
  });
  const res = await fetch(`${url.origin}${path}`, {
    headers: signed.headers as Record<string, string>,
    signal: AbortSignal.timeout(opts.timeoutMs ?? 5_000),
  });
  const body = await res.text();
  if (!res.ok) {
    const denied = res.status === 401 || res.status === 403;
    throw new SluiceError(
      `kafka:GetBootstrapBrokers for ${opts.clusterArn} answered ${res.status}: ${body.slice(0, 300)}` +
        (denied
          ? '; the execution role needs kafka:GetBootstrapBrokers on the cluster (the Sluice plugin grants it).'
          : '; the next tick tries again.'),
      { retriable: !denied },
    );
  }
  const brokers = JSON.parse(body) as Record<string, string | undefined>;
  const field =
    opts.auth === 'iam'
      ? 'bootstrapBrokerStringSaslIam'
      : opts.auth === 'scram'
        ? 'bootstrapBrokerStringSaslScram'
        : opts.tls
          ? 'bootstrapBrokerStringTls'
          : 'bootstrapBrokerString';
  const list = brokers[field];
  if (!list)
    throw new ConfigError(
      `MSK cluster ${opts.clusterArn} has no ${field} (its brokers for ${opts.auth === 'none' ? (opts.tls ? 'TLS' : 'plaintext') : opts.auth.toUpperCase()} clients); turn that access on for the cluster, or set SLUICE_KAFKA_BROKERS.`,
    );
  return list;
}
