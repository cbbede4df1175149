// Large state through the real handler with DynamoDB Local: a collect() session of one busy key
// grows past 4 MB among other keys (chunk items), survives a restart and crashes between its chunk
// writes and its head write, and a value over the cap dead-letters exactly the record that makes it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AttributeValue, DynamoDBClient, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { collect, keyedState, sluice, stream } from 'sluice';
import { type KafkaEvent, type KafkaEventRecord, manifestOf } from 'sluice/runtime';
import { MemoryStore } from 'sluice/state';
import { CaptureLogger, CaptureSink, lambdaContext, toEventRecord } from 'sluice/testing';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';
import { decodePage } from '../../framework/src/state/dynamodb-pages.js';
import { DynamoDBStore } from '../../framework/src/state/dynamodb-store.js';
import type { StateScope, StateStore } from '../../framework/src/state/store.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';

const ctx = lambdaContext('large-state-test') as never;
const TOPIC = 'in';
const dynamo = await dynamodbAvailability();
let tables = 0;

const raw = new DynamoDBClient({
  endpoint: dynamodbEndpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  maxAttempts: 1,
});

async function table(opts: { client?: DynamoDBClient; maxValueBytes?: number } = {}): Promise<DynamoDBStore> {
  const store = new DynamoDBStore({ table: `sluice-large-${process.pid}-${Date.now()}-${tables++}`, endpoint: dynamodbEndpoint, ...opts });
  await store.ensureTable();
  return store;
}

/** Another container's store on the same table, optionally through another client. */
const reopen = (store: DynamoDBStore, opts: { client?: DynamoDBClient } = {}) =>
  new DynamoDBStore({ table: store.table, endpoint: dynamodbEndpoint, ...opts });

/** A client that crashes (as a killed invocation would) on the first PutItem `when` picks. */
function crashingOn(when: (item: Record<string, AttributeValue>, put: number) => boolean): DynamoDBClient & { crashed: boolean } {
  let puts = 0;
  const c = {
    crashed: false,
    send(command: unknown) {
      if (!c.crashed && command instanceof PutItemCommand && when(command.input.Item!, ++puts)) {
        c.crashed = true;
        return Promise.reject(new Error('injected crash'));
      }
      return raw.send(command as never);
    },
  };
  return c as unknown as DynamoDBClient & { crashed: boolean };
}

/** A head (an item of its own, or a page) whose new version is chunked: its chunks were written just before it. */
const chunkedHead = (item: Record<string, AttributeValue>) =>
  item.h?.L?.at(-1)?.M?.w !== undefined ||
  (item.sk.S!.startsWith('p:') && [...pageEntries(item).values()].some((e) => e.line.includes('"w":')));

function pageEntries(item: Record<string, AttributeValue>) {
  return item.z?.B ? decodePage(item.z.B, true) : decodePage(item.j?.S ?? '', false);
}

async function chunkCount(store: DynamoDBStore, pk: string): Promise<number> {
  let n = 0;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const res = await raw.send(
      new QueryCommand({
        TableName: store.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :c)',
        ExpressionAttributeValues: { ':pk': { S: pk }, ':c': { S: 'c:' } },
        ProjectionExpression: 'sk',
        ExclusiveStartKey: start,
      }),
    );
    n += res.Items?.length ?? 0;
    start = res.LastEvaluatedKey;
  } while (start);
  return n;
}

function event(from: number, rs: readonly { key: string; value: unknown; timestamp: number }[]): KafkaEvent {
  const records: KafkaEventRecord[] = rs.map((r, i) => toEventRecord(r, TOPIC, 0, from + i));
  return { eventSource: 'aws:kafka', records: { [`${TOPIC}-0`]: records } } as KafkaEvent;
}

const sessions = stream<{ p: string }>(TOPIC, { name: 'sessions' })
  .sessionWindow('1h', { closeBy: 'partition' })
  .aggregate(
    collect((x: { p: string }) => x.p),
    { name: 'clicks' },
  )
  .to('out');

/** 3,000 clicks of ~1.5 KB by one busy user among three others, in events of 500, then an event that closes every session. */
function clickEvents(): KafkaEvent[] {
  const rs: { key: string; value: unknown; timestamp: number }[] = [];
  for (let i = 0; i < 3_000; i++) {
    rs.push({ key: 'busy', value: { p: `${i}:`.padEnd(1_500, 'x') }, timestamp: 1_000 + i });
    if (i % 10 === 0) rs.push({ key: ['a', 'b', 'c'][i % 3], value: { p: `${i}` }, timestamp: 1_000 + i });
  }
  const events: KafkaEvent[] = [];
  for (let i = 0; i < rs.length; i += 500) events.push(event(i, rs.slice(i, i + 500)));
  events.push(event(rs.length, [{ key: 'z', value: { p: 'closer' }, timestamp: 100_000_000 }]));
  return events;
}

interface Invocation {
  readonly sink: CaptureSink;
  readonly letters: CaptureSink;
  invoke(e: KafkaEvent): Promise<{ ok: boolean }>;
}

/** A fresh handler (a new container) on `store`; a thrown error or a partial batch response is a failed invocation. */
function container(
  def: Parameters<typeof sluice>[0],
  store: StateStore,
  sink = new CaptureSink(),
  letters = new CaptureSink(),
): Invocation {
  const handler = sluice(def);
  handler.sluice.configure({ store, sink, deadLetters: letters, logger: new CaptureLogger() });
  return {
    sink,
    letters,
    async invoke(e) {
      try {
        const res = await handler(e, ctx);
        return { ok: res.batchItemFailures.length === 0 };
      } catch {
        return { ok: false };
      }
    },
  };
}

/** Window results by key, each once (a retry sends the same result again, with the same sluice-id). */
function results(sink: CaptureSink): Record<string, unknown> {
  const seen = new Map<string, unknown>();
  for (const m of sink.messages) {
    const id = String(m.headers?.['sluice-id'] ?? JSON.stringify([m.key, m.value]));
    const prev = seen.get(id);
    if (prev !== undefined) assert.deepEqual(prev, [m.key, m.value], 'a retry sends the same result');
    seen.set(id, [m.key, m.value]);
  }
  return Object.fromEntries([...seen.values()].map((x) => [(x as [string, unknown])[0], (x as [string, { value: unknown }])[1].value]));
}

const scope: StateScope = { functionName: 'sessions', topic: TOPIC, partition: 0 };

describe('large state with DynamoDB Local', dynamo, () => {
  const events = clickEvents();
  let reference: Record<string, unknown>;
  let referenceState: Map<string, unknown>;
  const namespace = new PartitionRunner(manifestOf(sessions), new MemoryStore()).windows[0].namespace;

  /** Every key of the session namespace with its value, read as a new batch would. */
  async function state(store: StateStore): Promise<Map<string, unknown>> {
    const keys = (await store.keys!(scope, namespace)).sort();
    const got = await store.read(scope, namespace, keys);
    return new Map(keys.map((k) => [k, got.get(k)?.value]));
  }

  test('the reference, in memory: the busy session holds more than 4 MB', async () => {
    const memory = new MemoryStore();
    const c = container(sessions, memory);
    for (const e of events.slice(0, -1)) assert.ok((await c.invoke(e)).ok);
    referenceState = await state(memory);
    assert.ok(JSON.stringify(referenceState.get('busy')).length > 4 * 1024 * 1024, 'over 4 MB before it closes');
    for (const e of events.slice(-1)) assert.ok((await c.invoke(e)).ok);
    reference = results(c.sink);
    assert.equal((reference.busy as string[]).length, 3_000);
    assert.deepEqual(Object.keys(reference).sort(), ['a', 'b', 'busy', 'c']);
  });

  test('a > 4 MB collect() session among other keys: exact results, exact state after a restart, chunk items', async () => {
    const store = await table();
    const sink = new CaptureSink();
    const first = container(sessions, store, sink);
    for (const e of events.slice(0, 3)) assert.ok((await first.invoke(e)).ok);
    // A new container with a new store instance: state as the first left it.
    const restarted = container(sessions, reopen(store), sink);
    for (const e of events.slice(3, -1)) assert.ok((await restarted.invoke(e)).ok);
    assert.deepEqual(await state(reopen(store)), referenceState, 'the state reads back exact');
    const pk = `sessions#${TOPIC}#0#${namespace}`;
    // Two versions of ~4.5 MB kept (the one read, for retries, and the new one), and the orphans of earlier batches.
    assert.ok((await chunkCount(store, pk)) >= 12, 'the busy session is in chunk items');
    for (const e of events.slice(-1)) assert.ok((await restarted.invoke(e)).ok);
    assert.deepEqual(results(sink), reference);
    assert.deepEqual(first.letters.deadLetters, []);
    assert.deepEqual(restarted.letters.deadLetters, []);
  });

  for (const crash of [
    { name: 'between the chunk writes and the head write', when: chunkedHead },
    {
      name: 'among the chunk writes',
      when: (item: Record<string, AttributeValue>) => item.sk.S!.startsWith('c:') && item.sk.S!.endsWith('#2'),
    },
  ]) {
    test(`a crash ${crash.name}, then Lambda's retry in a new container: exact results`, async () => {
      const store = await table();
      const sink = new CaptureSink();
      let c = container(sessions, store, sink);
      for (const [i, e] of events.entries()) {
        // The 4th batch crashes once, at the point under test; the retry runs in a new container.
        if (i === 3) {
          const client = crashingOn(crash.when);
          const dying = container(sessions, reopen(store, { client }), sink);
          assert.equal((await dying.invoke(e)).ok, false);
          assert.ok(client.crashed, 'the crash happened');
          c = container(sessions, reopen(store), sink);
          // The dying invocation's other puts may still land after it failed: the retry is then
          // fenced (a conflict) and Lambda retries again.
          let ok = false;
          for (let attempt = 0; attempt < 4 && !ok; attempt++) {
            if (attempt > 0) c = container(sessions, reopen(store), sink);
            ok = (await c.invoke(e)).ok;
          }
          assert.ok(ok, 'a retry succeeds');
          continue;
        }
        assert.ok((await c.invoke(e)).ok, `event ${i}`);
      }
      assert.deepEqual(results(sink), reference);
      assert.deepEqual(c.letters.deadLetters, []);
    });
  }

  test('a keyed value over the cap dead-letters exactly the record that would take it over; a later one that fits is applied', async () => {
    const notes = keyedState<string[]>('notes');
    const def = stream<{ note: string }>(TOPIC, { name: 'notes', state: [notes] })
      .map(
        (r) => {
          const next = [...(notes.get() ?? []), r.note];
          notes.set(next);
          return { count: next.length };
        },
        { name: 'keep' },
      )
      .to('out');
    const store = await table({ maxValueBytes: 1024 * 1024 });
    const c = container(def, store);
    const big = (i: number) => `${i}`.padEnd(300 * 1024, '.');
    // 300 KB, 600 KB, 900 KB: fits (under 1 MiB); a fourth 300 KB note would be 1.2 MB; a small one fits again.
    assert.ok(
      (
        await c.invoke(
          event(0, [
            { key: 'k', value: { note: big(0) }, timestamp: 1 },
            { key: 'other', value: { note: 'o' }, timestamp: 1 },
            { key: 'k', value: { note: big(1) }, timestamp: 2 },
            { key: 'k', value: { note: big(2) }, timestamp: 3 },
            { key: 'k', value: { note: big(3) }, timestamp: 4 },
          ]),
        )
      ).ok,
    );
    // In its own batch: within one batch the runner leaves out the last change of the item until it fits.
    assert.ok((await c.invoke(event(5, [{ key: 'k', value: { note: 'small' }, timestamp: 5 }]))).ok);
    assert.deepEqual(
      c.letters.deadLetters.map((l) => [l.record.offset, l.stage]),
      [[4, 'state']],
    );
    assert.match(
      c.letters.deadLetters[0].reason,
      /^state "keyed:notes" of function "notes" for key "k" \(partition 0\) would hold 1228\d{3} bytes, over the state value cap of the DynamoDB store \(DynamoDBStoreOptions.maxValueBytes\) \(1048576 bytes\)/,
    );
    assert.deepEqual(
      c.sink.messages.map((m) => [m.key, (m.value as { count: number }).count]),
      [
        ['k', 1],
        ['other', 1],
        ['k', 2],
        ['k', 3],
        ['k', 4],
      ],
      'no output for the record left out',
    );
    const stored = (await reopen(store).read({ functionName: 'notes', topic: TOPIC, partition: 0 }, 'keyed:notes', ['k'])).get('k');
    assert.deepEqual(stored?.value, [big(0), big(1), big(2), 'small']);
  });
});
