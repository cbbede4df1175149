/**
 * Helpers for tests against the DynamoDB Local server that the test command starts
 * (scripts/infra/infra.ts). Without it those tests are skipped, unless SLUICE_REQUIRE_INFRA is set
 * (as `npm run test:all` and CI do), in which case they fail.
 */
import { endpointOpen } from '../../scripts/infra/port.js';

export const dynamodbEndpoint = process.env.SLUICE_DYNAMODB_ENDPOINT ?? `http://127.0.0.1:${process.env.SLUICE_DYNAMODB_PORT ?? 8000}`;

/** `{ skip: reason }` for node:test when DynamoDB Local does not answer and is not required. */
export async function dynamodbAvailability(): Promise<{ skip?: string }> {
  if (await endpointOpen(dynamodbEndpoint)) return {};
  if (process.env.SLUICE_REQUIRE_INFRA)
    throw new Error(`DynamoDB Local is required (SLUICE_REQUIRE_INFRA) but nothing answers on ${dynamodbEndpoint}; run npm run infra:up.`);
  return { skip: `no DynamoDB Local on ${dynamodbEndpoint} (npm run infra:up starts one)` };
}
