import type { KafkaEventRecord } from '../pipeline/records.js';
import type { KafkaEvent } from '../runtime/event.js';

/**
 * The MSK cluster ARN local events carry when the real one is not known (it is resolved at deploy
 * time, or there is no cluster at all).
 */
export const LOCAL_CLUSTER_ARN = 'arn:aws:kafka:us-east-1:123456789012:cluster/sluice-local/00000000-0000-0000-0000-000000000000-1';

/**
 * A record as users write it in input files and tests.
 *
 * @example
 * const r: InputRecord = { key: 's1', value: { value: 2 }, timestamp: 1_000, partition: 1, headers: { source: 'test' } };
 */
export interface InputRecord {
  readonly key: string | null;
  readonly value: unknown;
  readonly timestamp: number;
  readonly partition?: number;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * Encodes one record the way Lambda delivers it: base64 key and value, headers as byte arrays.
 *
 * @example
 * toEventRecord({ key: 's1', value: { value: 2 }, timestamp: 1_000 }, 'readings', 0, 7);
 * // { topic: 'readings', partition: 0, offset: 7, timestamp: 1000, timestampType: 'CREATE_TIME', key: 'czE=', value: 'eyJ2YWx1ZSI6Mn0=', headers: [] }
 */
export function toEventRecord(r: InputRecord, topic: string, partition: number, offset: number): KafkaEventRecord {
  const headers = r.headers ? Object.entries(r.headers).map(([name, v]) => ({ [name]: [...Buffer.from(String(v), 'utf8')] })) : [];
  return {
    topic, partition, offset,
    timestamp: r.timestamp,
    timestampType: 'CREATE_TIME',
    ...(r.key === null || r.key === undefined ? {} : { key: Buffer.from(String(r.key), 'utf8').toString('base64') }),
    value: r.value === undefined ? null : Buffer.from(typeof r.value === 'string' && (r as { raw?: boolean }).raw ? r.value : JSON.stringify(r.value), 'utf8').toString('base64'),
    headers,
  };
}

/**
 * Turns records into MSK-shaped events of at most `batchSize` records per partition, as the
 * event source mapping would: offsets count up per partition from `startOffset`, and one event may
 * hold several partitions.
 *
 * @example
 * for (const event of toKafkaEvents(records, { topic: 'readings', batchSize: 100 })) await handler(event, ctx);
 */
export function* toKafkaEvents(records: Iterable<InputRecord>, opts: { topic: string; batchSize?: number; startOffset?: number }): Generator<KafkaEvent> {
  const size = opts.batchSize ?? 100;
  const offsets = new Map<number, number>();
  let groups = new Map<string, KafkaEventRecord[]>();
  let fullest = 0;
  const emit = (): KafkaEvent => {
    const event: KafkaEvent = {
      eventSource: 'aws:kafka',
      eventSourceArn: LOCAL_CLUSTER_ARN,
      bootstrapServers: '127.0.0.1:9092',
      records: Object.fromEntries(groups),
    };
    groups = new Map();
    fullest = 0;
    return event;
  };
  for (const r of records) {
    const partition = r.partition ?? 0;
    const offset = offsets.get(partition) ?? opts.startOffset ?? 0;
    offsets.set(partition, offset + 1);
    const group = `${opts.topic}-${partition}`;
    let list = groups.get(group);
    if (!list) groups.set(group, (list = []));
    list.push(toEventRecord(r, opts.topic, partition, offset));
    if (list.length > fullest) fullest = list.length;
    if (fullest >= size) yield emit();
  }
  if (groups.size > 0) yield emit();
}

/**
 * A minimal Lambda context for local invocations.
 *
 * @example
 * const response = await handler(event, lambdaContext('sensor-sums'));
 */
export function lambdaContext(functionName: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
