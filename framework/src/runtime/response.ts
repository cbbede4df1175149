/**
 * Lambda's rules for answering a Kafka event: the partial batch response, or, when Lambda would
 * ignore one, failing the whole invocation.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 */
import { readEnv } from '../env.js';
import { SluiceError } from '../errors.js';
import type { KafkaBatchResponse } from './msk-event.js';

/**
 * A partial batch response being built: each failed partition is listed with the offset Lambda
 * resumes it from.
 *
 * @example
 * const response = new BatchResponse();
 * response.fail('readings', 0, 42);
 * response.value; // { batchItemFailures: [{ itemIdentifier: { partition: 'readings-0', offset: 42 } }] }
 */
export class BatchResponse {
  readonly value: KafkaBatchResponse = { batchItemFailures: [] };

  fail(topic: string, partition: number, offset: number): void {
    this.value.batchItemFailures.push({ itemIdentifier: { partition: `${topic}-${partition}`, offset } });
  }
}

/**
 * What the handler returns to Lambda. With on-demand pollers Lambda ignores partial batch responses
 * for Kafka (the plugin says so with SLUICE_PARTIAL_BATCH=false): then any failure fails the
 * whole batch, by throwing, so that no failed record is committed.
 *
 * @example
 * return answer(report.response); // throws a retriable SluiceError if partitions failed and partial batches are off
 */
export function answer(response: KafkaBatchResponse, partialBatch = readEnv('partialBatch') !== 'false'): KafkaBatchResponse {
  if (partialBatch || response.batchItemFailures.length === 0) return response;
  const [first] = response.batchItemFailures;
  throw new SluiceError(
    `${response.batchItemFailures.length} partition(s) of this batch failed (first: ${first.itemIdentifier.partition}@${first.itemIdentifier.offset}); ` +
      `partial batch responses need provisioned pollers, so the whole batch fails and Lambda retries it.`,
    { retriable: true },
  );
}
