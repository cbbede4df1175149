import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { errorText, SluiceError } from '../errors.js';
import { loadHandler, resolveFunction } from './functions.js';
import { readInputFile } from './input.js';

/**
 * `sluice produce <function|topic> --brokers host:port [--input file.jsonl] [--partitions N]`:
 * creates the topic if it is missing and produces the JSON-lines records to it (keys as UTF-8,
 * values as JSON, the given timestamps and partitions). With a function name, the topic is its
 * source topic and the default input its sample file.
 */
export async function produce(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { brokers: { type: 'string' }, input: { type: 'string', short: 'i' }, partitions: { type: 'string', default: '4' } },
  });
  if (positionals.length !== 1 || !values.brokers)
    throw new SluiceError(
      'produce needs a function or topic and --brokers host:port, e.g. sluice produce sensor-sums --brokers 127.0.0.1:9092',
    );
  const partitions = Number(values.partitions);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new SluiceError(`--partitions must be a whole number of at least 1; received ${values.partitions}.`);
  let topic = positionals[0];
  let input = values.input;
  try {
    const entry = resolveFunction(positionals[0]);
    topic = (await loadHandler(entry)).sluice.manifest.source.topic;
    input ??= path.join(path.dirname(entry.file), 'sample.jsonl');
  } catch (e) {
    if (!(e instanceof SluiceError) || values.input === undefined) {
      if (values.input === undefined) throw e;
    }
  }
  if (!input || !existsSync(input)) throw new SluiceError(`input file ${input ?? '(none)'} does not exist; pass --input <file.jsonl>.`);
  const { records, problems } = await readInputFile(input);
  for (const p of problems) console.error(`${p.file}:${p.line}: ${p.problem} (line skipped)`);
  const { Kafka, logLevel } = await import('kafkajs');
  const kafka = new Kafka({
    clientId: 'sluice-produce',
    brokers: values.brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { retries: 3 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (e) {
    throw new SluiceError(`could not reach Kafka at ${values.brokers}: ${errorText(e)}. Is the broker running (npm run infra:up)?`);
  }
  const existing = new Set(await admin.listTopics());
  if (!existing.has(topic)) {
    // Retention off: sample and replayed records carry old timestamps, which time-based retention
    // would delete before the function reads them.
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions, configEntries: [{ name: 'retention.ms', value: '-1' }] }],
      waitForLeaders: true,
    });
    console.error(`created topic ${topic} with ${partitions} partitions (retention.ms=-1: records are kept whatever their timestamps)`);
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const count = meta.topics[0].partitions.length;
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (let i = 0; i < records.length; i += 5000) {
    await producer.send({
      topic,
      acks: -1,
      messages: records.slice(i, i + 5000).map((r) => ({
        key: r.key,
        value: JSON.stringify(r.value),
        timestamp: String(r.timestamp),
        ...(r.partition !== undefined ? { partition: r.partition % count } : {}),
        ...(r.headers ? { headers: { ...r.headers } } : {}),
      })),
    });
  }
  await producer.disconnect();
  console.error(`produced ${records.length} records to ${topic}`);
  return 0;
}
