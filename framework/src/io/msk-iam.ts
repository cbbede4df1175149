import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { ConfigError, SluiceError } from '../errors.js';

/**
 * MSK IAM authentication tokens for Kafka's SASL/OAUTHBEARER, in the format of AWS's
 * `aws-msk-iam-sasl-signer-js`: a SigV4-presigned `GET https://kafka.<region>.amazonaws.com/?Action=kafka-cluster:Connect`
 * (service `kafka-cluster`, valid 15 minutes) with a `User-Agent` parameter, base64url-encoded.
 * See https://docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html.
 *
 * Signed with the SDK's own `@smithy/signature-v4`, with the credentials Lambda puts in the
 * environment. AWS's package does the same but pulls the STS client and every credential
 * provider into the bundle (about 550 KB); a test checks both produce the same token.
 *
 * @example
 * const { token } = await mskIamToken({ region: 'eu-west-1' });
 * // kafkajs: sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: (await mskIamToken({ region })).token }) }
 */
export async function mskIamToken(opts: {
  region: string;
  credentials?: Credentials;
  signingDate?: Date;
  userAgent?: string;
}): Promise<{ token: string; expiresAt: number }> {
  // CommonJS: bundled (an ESM chunk), its exports sit on `default` only.
  const signing = (await import('@smithy/signature-v4')) as typeof import('@smithy/signature-v4') & {
    default?: typeof import('@smithy/signature-v4');
  };
  const { SignatureV4 } = signing.default ?? signing;
  const credentials = opts.credentials ?? credentialsFromEnv();
  const hostname = `kafka.${opts.region}.amazonaws.com`;
  const signer = new SignatureV4({ service: 'kafka-cluster', region: opts.region, credentials, sha256: Sha256, applyChecksum: false });
  const signingDate = opts.signingDate ?? new Date();
  const signed = await signer.presign(
    { method: 'GET', protocol: 'https:', hostname, path: '/', headers: { host: hostname }, query: { Action: 'kafka-cluster:Connect' } },
    { expiresIn: TOKEN_SECONDS, signingDate },
  );
  const query = { ...(signed.query as Record<string, string>), 'User-Agent': opts.userAgent ?? USER_AGENT };
  const url = `https://${hostname}/?${Object.entries(query)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${escapeUri(k)}=${escapeUri(v)}`)
    .join('&')}`;
  return { token: Buffer.from(url, 'utf8').toString('base64url'), expiresAt: signingDate.getTime() + TOKEN_SECONDS * 1000 };
}

/** AWS credentials, as the SDK's signer takes them. */
export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

const TOKEN_SECONDS = 900;
const USER_AGENT = 'sluice-msk-iam/1';

/**
 * The execution role's credentials, which Lambda sets in the environment of every function.
 *
 * @example
 * const { accessKeyId } = credentialsFromEnv();
 */
export function credentialsFromEnv(): Credentials {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new ConfigError(
      'Signing requests to MSK (IAM auth, the bootstrap brokers) needs AWS credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Lambda sets them from the execution role).',
    );
  }
  return { accessKeyId, secretAccessKey, ...(process.env.AWS_SESSION_TOKEN ? { sessionToken: process.env.AWS_SESSION_TOKEN } : {}) };
}

/** RFC 3986 encoding, as the SDK formats presigned URLs (parameters sorted by name, as there). */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function bytes(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === 'string') return d;
  return d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * SHA-256 (or HMAC-SHA-256 with a secret) on node:crypto, in the shape the SigV4 signer expects.
 *
 * @example
 * new SignatureV4({ service: 'kafka', region, credentials, sha256: Sha256 });
 */
export class Sha256 {
  readonly #h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#h.digest());
  }
  reset(): void {
    throw new SluiceError('Sha256.reset is not used by the SigV4 signer; this is a bug in Sluice, please report it.');
  }
}
