import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateAuthTokenFromCredentialsProvider } from 'aws-msk-iam-sasl-signer-js';
import { mskIamToken } from '../../framework/src/io/msk-iam.js';

const credentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  sessionToken: 'session/token+with=chars',
};

test("an MSK IAM token is exactly what AWS's signer makes for the same credentials, region and time", async () => {
  const theirs = await generateAuthTokenFromCredentialsProvider({ region: 'eu-west-1', awsCredentialsProvider: async () => credentials });
  const url = new URL(Buffer.from(theirs.token, 'base64url').toString('utf8'));
  const amzDate = url.searchParams.get('X-Amz-Date')!;
  const signingDate = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const ours = await mskIamToken({ region: 'eu-west-1', credentials, signingDate, userAgent: url.searchParams.get('User-Agent')! });
  assert.equal(ours.token, theirs.token);
  assert.equal(ours.expiresAt, signingDate.getTime() + 900_000);
});

test('the token is a presigned kafka-cluster:Connect URL for the region, with the session token', async () => {
  const { token } = await mskIamToken({ region: 'us-east-2', credentials, signingDate: new Date('2026-01-02T03:04:05Z') });
  const url = new URL(Buffer.from(token, 'base64url').toString('utf8'));
  assert.equal(url.host, 'kafka.us-east-2.amazonaws.com');
  assert.equal(url.searchParams.get('Action'), 'kafka-cluster:Connect');
  assert.equal(url.searchParams.get('X-Amz-Credential'), 'AKIDEXAMPLE/20260102/us-east-2/kafka-cluster/aws4_request');
  assert.equal(url.searchParams.get('X-Amz-Expires'), '900');
  assert.equal(url.searchParams.get('X-Amz-Security-Token'), credentials.sessionToken);
  assert.match(url.searchParams.get('X-Amz-Signature')!, /^[0-9a-f]{64}$/);
});

test('without credentials in the environment it says which variables it needs', async () => {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
  try {
    await assert.rejects(mskIamToken({ region: 'us-east-1' }), /needs AWS credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  } finally {
    if (saved.id !== undefined) process.env.AWS_ACCESS_KEY_ID = saved.id;
    if (saved.secret !== undefined) process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  }
});
