/**
 * Idle closing at scale, on DynamoDB Local (issue 12's acceptance): 10,000 keys in 8 partitions,
 * each with an open window, go quiet at once; one tick closes every window. A tick never scans
 * the table: it reads each partition's idle item, then, where something is due, the partition
 * item that indexes the due keys and those keys' state. So its DynamoDB requests grow with the
 * partitions and the windows closed, not with all keys: a tick with nothing due costs one read
 * per partition, and a tick closing a few windows among 10,000 keys costs about a write per window.
 * The numbers are printed as JSON (`idle-scale` line) for the closing note.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { count, type SluiceHandler, sluice, stream, sum } from 'sluice';
import type { BatchReport, KafkaEvent } from 'sluice/runtime';
import { DynamoDBStore } from 'sluice/state';
import { CaptureLogger, CaptureSink, type InputRecord, lambdaContext, type TickReport, toKafkaEvents } from 'sluice/testing';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const dynamo = await dynamodbAvailability();
const KEYS = 10_000;
const PARTITIONS = 8;
const T = 1_800_000_000_000;
const TOPIC = 'devices';

const def = stream<{ v: number }>(TOPIC, { name: 'idle-scale' })
  .tumblingWindow('10s', { idle: '30s' })
  .aggregate({ n: count(), total: sum('v') }, { name: 'w' })
  .to('out');

/** Requests of one tick or invocation, from the DynamoDB store's counters. */
function requests(state: Readonly<Record<string, number>> | undefined): { reads: number; writes: number } {
  assert.ok(state, 'the DynamoDB store counts requests');
  return { reads: state.readRequests, writes: state.writeRequests };
}

describe('idle closing at scale (DynamoDB Local)', dynamo, () => {
  test('10,000 quiet keys in 8 partitions: one tick closes every window; cost grows with windows closed', async (t) => {
    const started = performance.now();
    const table = `sluice-idle-scale-${process.pid}-${Date.now()}`;
    const store = new DynamoDBStore({ table, endpoint: dynamodbEndpoint });
    await store.ensureTable();
    const handler = sluice(def) as SluiceHandler;
    const sink = new CaptureSink();
    const reports: BatchReport[] = [];
    let wall = T;
    handler.sluice.configure({
      store,
      sink,
      deadLetters: sink,
      logger: new CaptureLogger(),
      onBatch: (r) => reports.push(r),
      clock: () => wall,
    });
    const ctx = lambdaContext('idle-scale') as never;
    const ends = new Map<number, number>();
    const offsets = { endOffsets: async () => ends };
    const feed = async (records: InputRecord[]) => {
      const first = reports.length;
      for (const event of toKafkaEvents(records, { topic: TOPIC, batchSize: 1_250, startOffset: 0 })) {
        assert.deepEqual((await handler(event as KafkaEvent, ctx)).batchItemFailures, []);
      }
      return reports.slice(first);
    };
    const tick = async (now: number): Promise<TickReport> => {
      const report = await handler.sluice.tick({ now, offsets });
      for (const p of report.partitions) assert.equal(p.error, undefined, `partition ${p.partition}: ${p.error}`);
      return report;
    };

    try {
      // Every key once, key i in partition i % 8, all in the window [0, 10 s); each partition's
      // last key is at 9.999 s, its newest event time.
      const records: InputRecord[] = [];
      for (let i = 0; i < KEYS; i++) {
        const timestamp = i < KEYS - PARTITIONS ? 1_000 + (i % 8_000) : 9_999;
        records.push({ key: `device-${i}`, value: { v: i % 7 }, timestamp, partition: i % PARTITIONS });
      }
      for (let p = 0; p < PARTITIONS; p++) ends.set(p, KEYS / PARTITIONS);
      const fed = performance.now();
      const load = await feed(records);
      const loadMs = Math.round(performance.now() - fed);
      assert.equal(
        load.reduce((n, r) => n + r.stats.windowsEmitted, 0),
        0,
      );

      // Quiet for the allowance, but the floor (9.999 s) closes nothing yet: one read per partition, nothing written.
      const early = await tick(T + 30_000);
      assert.equal(early.windowsClosed, 0);
      assert.deepEqual(requests(early.state), { reads: PARTITIONS, writes: 0 });

      // Newest event time 9.999 s: the floor reaches the windows' end (10 s) a millisecond later.
      const tickStarted = performance.now();
      const closing = await tick(T + 30_001);
      const closingMs = Math.round(performance.now() - tickStarted);
      assert.equal(closing.windowsClosed, KEYS);
      assert.equal(sink.messages.length, KEYS);
      assert.equal(new Set(sink.messages.map((m) => m.id)).size, KEYS, 'one result per key');
      const big = requests(closing.state);

      // Nothing left: a tick costs one read per partition, and writes nothing.
      const after = await tick(T + 90_000);
      assert.equal(after.windowsClosed, 0);
      const idle = requests(after.state);

      // 80 keys among the 10,000 come back and go quiet: closing them costs about what 80 windows cost.
      wall = T + 100_000;
      const back: InputRecord[] = [];
      for (let i = 0; i < 80; i++)
        back.push({ key: `device-${i * 97}`, value: { v: 1 }, timestamp: 60_000, partition: (i * 97) % PARTITIONS });
      const backEnds = new Map(ends);
      for (const r of back) backEnds.set(r.partition!, backEnds.get(r.partition!)! + 1);
      await feedFrom(handler, ctx, back, ends);
      for (const [p, e] of backEnds) ends.set(p, e);
      const few = await tick(wall + 30_000 + 10_000);
      assert.equal(few.windowsClosed, 80);
      const small = requests(few.state);

      const numbers = {
        keys: KEYS,
        partitions: PARTITIONS,
        loadMs,
        loadRequests: load.reduce((n, r) => ({ reads: n.reads + requests(r.state).reads, writes: n.writes + requests(r.state).writes }), {
          reads: 0,
          writes: 0,
        }),
        quietNothingDueTick: requests(early.state),
        closingTick: {
          windowsClosed: closing.windowsClosed,
          ...big,
          ms: closingMs,
          readsPerWindow: big.reads / KEYS,
          writesPerWindow: big.writes / KEYS,
        },
        nothingDueTick: idle,
        fewDueTick: { windowsClosed: few.windowsClosed, ...small, readsPerWindow: small.reads / 80, writesPerWindow: small.writes / 80 },
        totalMs: Math.round(performance.now() - started),
      };
      t.diagnostic(`idle-scale ${JSON.stringify(numbers)}`);

      // Bounds: per partition a handful of requests for the protocol (idle item read, propose,
      // re-read, confirm; the tick's run reads the idle and partition items and writes both),
      // reads of the due keys in batches of 100, and one write per window closed.
      const perPartition = 8;
      assert.ok(big.writes <= KEYS + perPartition * PARTITIONS, `writes ${big.writes}`);
      assert.ok(big.reads <= Math.ceil(KEYS / PARTITIONS / 100) * PARTITIONS + perPartition * PARTITIONS, `reads ${big.reads}`);
      assert.deepEqual(idle, { reads: PARTITIONS, writes: 0 });
      // A few windows among many keys: the cost follows the windows, not the 10,000 keys.
      const touched = new Set(back.map((r) => r.partition)).size;
      assert.ok(small.writes <= 80 + perPartition * touched, `writes ${small.writes}`);
      assert.ok(small.reads <= PARTITIONS + perPartition * touched, `reads ${small.reads}`);
    } finally {
      await new DynamoDBClient({
        endpoint: dynamodbEndpoint,
        region: 'us-east-1',
        credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      })
        .send(new DeleteTableCommand({ TableName: table }))
        .catch(() => undefined);
    }
  });
});

/** Feeds records that continue each partition at `ends` (its next offset). */
async function feedFrom(handler: SluiceHandler, ctx: never, records: InputRecord[], ends: ReadonlyMap<number, number>): Promise<void> {
  for (const [p, start] of ends) {
    const part = records.filter((r) => r.partition === p);
    if (part.length === 0) continue;
    for (const event of toKafkaEvents(part, { topic: TOPIC, batchSize: 1_000, startOffset: start })) {
      assert.deepEqual((await handler(event as KafkaEvent, ctx)).batchItemFailures, []);
    }
  }
}
