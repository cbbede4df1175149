/**
 * The shape of the DynamoDB state table, declared once: the Serverless plugin creates it in
 * CloudFormation, and `DynamoDBStore.ensureTable()` creates it locally (DynamoDB Local), from this.
 * Items: partition key `pk`, sort key `sk`, expiry in `ttl` (epoch seconds).
 *
 * @example
 * new CreateTableCommand({ TableName: 'sluice-state', BillingMode: 'PAY_PER_REQUEST', ...stateTableKeys() });
 */
export function stateTableKeys() {
  return {
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' as const },
      { AttributeName: 'sk', AttributeType: 'S' as const },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' as const },
      { AttributeName: 'sk', KeyType: 'RANGE' as const },
    ],
  };
}

/** The attribute DynamoDB's TTL deletes items by. */
export const STATE_TABLE_TTL_ATTRIBUTE = 'ttl';
