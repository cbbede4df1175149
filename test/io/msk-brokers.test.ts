// kafka:GetBootstrapBrokers as a container that only got ticks calls it (io/msk-brokers.ts), against
// a stand-in for the MSK API on 127.0.0.1 that checks the request and answers as MSK does.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { mskBootstrapBrokers } from '../../framework/src/io/msk-brokers.js';

const clusterArn = 'arn:aws:kafka:eu-west-1:123456789012:cluster/demo/11111111-2222-3333-4444-555555555555-2';
const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret', sessionToken: 'token' };
// MSK's REST API answers with lowerCamel field names.
const brokers = {
  bootstrapBrokerString: 'b-1:9092',
  bootstrapBrokerStringTls: 'b-1:9094',
  bootstrapBrokerStringSaslScram: 'b-1:9096',
  bootstrapBrokerStringSaslIam: 'b-1:9098,b-2:9098',
};
const requests: { url: string; headers: http.IncomingHttpHeaders }[] = [];
let answer: { status: number; body: unknown } = { status: 200, body: brokers };
let server: http.Server;
let endpoint: string;

before(async () => {
  server = http.createServer((req, res) => {
    requests.push({ url: req.url!, headers: req.headers });
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(answer.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

test('one SigV4-signed GET (the AWS SDK) of the cluster, service kafka, in the ARN region; the brokers for the auth mode', async () => {
  answer = { status: 200, body: brokers };
  requests.length = 0;
  assert.equal(await mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true, credentials, endpoint }), 'b-1:9098,b-2:9098');
  assert.equal(requests.length, 1);
  const [req] = requests;
  assert.equal(req.url, `/v1/clusters/${encodeURIComponent(clusterArn)}/bootstrap-brokers`);
  assert.match(
    String(req.headers.authorization),
    /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/kafka\/aws4_request, SignedHeaders=[a-z0-9;-]*host[a-z0-9;-]*, Signature=[0-9a-f]{64}$/,
  );
  assert.equal(req.headers['x-amz-security-token'], 'token');
  assert.match(String(req.headers['x-amz-date']), /^\d{8}T\d{6}Z$/);
  assert.equal(await mskBootstrapBrokers({ clusterArn, auth: 'scram', tls: true, credentials, endpoint }), 'b-1:9096');
  assert.equal(await mskBootstrapBrokers({ clusterArn, auth: 'none', tls: true, credentials, endpoint }), 'b-1:9094');
  assert.equal(await mskBootstrapBrokers({ clusterArn, auth: 'none', tls: false, credentials, endpoint }), 'b-1:9092');
});

test('a refusal names the action to grant and is not retriable; a cluster without that access says which field is missing', async () => {
  answer = { status: 403, body: { message: 'User is not authorized to perform: kafka:GetBootstrapBrokers' } };
  await assert.rejects(
    () => mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true, credentials, endpoint }),
    (e: Error & { retriable?: boolean }) =>
      /failed \(403\): .*not authorized.*; the execution role needs kafka:GetBootstrapBrokers on the cluster/.test(e.message) &&
      e.retriable === false,
  );
  answer = { status: 503, body: { message: 'busy' } };
  await assert.rejects(
    () => mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true, credentials, endpoint }),
    (e: Error & { retriable?: boolean }) => /failed \(503\): .*the next tick tries again/.test(e.message) && e.retriable === true,
  );
  answer = { status: 200, body: { bootstrapBrokerStringTls: 'b-1:9094' } };
  await assert.rejects(
    () => mskBootstrapBrokers({ clusterArn, auth: 'iam', tls: true, credentials, endpoint }),
    /has no BootstrapBrokerStringSaslIam \(its brokers for IAM clients\); turn that access on for the cluster, or set SLUICE_KAFKA_BROKERS/,
  );
  await assert.rejects(
    () => mskBootstrapBrokers({ clusterArn: 'arn:aws:sqs:eu-west-1:1:q', auth: 'iam', tls: true, credentials, endpoint }),
    /is not an MSK cluster ARN/,
  );
});
