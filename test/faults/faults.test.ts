/**
 * Exactly-once under faults, small: the suite of `npm run test:faults` with about 60 injected
 * crashes per store (and, more often than there, throttling storms, broker outages and
 * timeouts), plus proof that its checks fail on a broken store, plus the minimal reproductions of
 * what the suite found.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collect, keyedState, sluice, stream, sum } from 'sluice';
import { CaptureLogger, CaptureSink } from 'sluice/testing';
import { DynamoDBStore, MemoryStore } from 'sluice/state';
import type { KafkaEvent, KafkaEventRecord } from 'sluice/runtime';
import { lambdaContext, toEventRecord } from 'sluice/testing';
import { isPartitionNamespace, isWindowNamespace } from '../../framework/src/state/namespaces.js';
import {
  ChunkCrash,
  compare,
  dropTable,
  emptyStats,
  FaultyStore,
  ForgetfulStore,
  runReference,
  runSuite,
  runWithFaults,
  type SuiteResult,
  Throttle,
  throttledDynamoDBStore,
  timeoutCut,
  workloads,
} from './harness.js';
import { badInputCases, judge, run } from '../support/bad-inputs.js';
import { dynamodbAvailability, dynamodbEndpoint } from '../support/dynamodb.js';
import { runBadInputs } from './bad-inputs.js';
import { judgeTicks, runTicksWithFaults, runTickSuite, type TickSuiteResult, tickWorkloads } from './ticks.js';
import { EOS_CRASH_POINTS, type EosSuiteOptions, runEosSuite } from './exactly-once.js';
import { freshTopics, kafkaAvailability, kafkaClient } from '../support/kafka.js';
import { loadDefinition } from 'sluice/runtime';
import { KafkaTransactions } from '../../framework/src/io/kafka-transactions.js';
import { publishedGroup } from '../../framework/src/io/transactions.js';

const endpoint = dynamodbEndpoint;

function explain(r: SuiteResult): string {
  return JSON.stringify({ failures: r.failures.slice(0, 3), unexpectedErrors: r.unexpectedErrors.slice(0, 3) }, null, 1);
}

function assertExactlyOnce(r: SuiteResult, crashes: number): void {
  assert.ok(r.crashPoints >= crashes, `${r.crashPoints} crashes injected, wanted ${crashes}`);
  assert.ok(
    r.crashesBeforeAnyItem > 0 && r.crashesAfterEveryItem > 0 && r.crashPoints > r.crashesBeforeAnyItem + r.crashesAfterEveryItem,
    'crashes land before, between and after item writes',
  );
  assert.ok(r.fatalCrashes > 0 && r.fatalCrashes < r.crashPoints, 'some crashes kill the invocation, others are caught by the handler');
  assert.ok(r.replays > 0, 'batches were replayed');
  assert.ok(
    r.staleInvocations > 0 && r.staleFenced > 0,
    `stale invocations ran (${r.staleInvocations}) and some were fenced (${r.staleFenced})`,
  );
  assert.ok(r.stepFailures > 0 && r.sinkFailures > 0, 'steps and the output sink failed too');
  assert.ok(r.storms > 0 && r.throttledCalls > 0, `throttling storms rejected calls (${r.storms} storms, ${r.throttledCalls} calls)`);
  assert.ok(r.throttleExhausted > 0, 'some storms outlasted the deadline: the invocation failed retriably and was retried');
  assert.ok(r.outages > 0 && r.produceFailures > 0, `the broker was down while outputs were sent (${r.produceFailures} failed sends)`);
  assert.equal(r.commitsAfterFailedSend, 0, 'no state is committed in an invocation whose send failed');
  assert.ok(
    r.timeoutsBeforeOutputs > 0 && r.timeoutsBeforeCommit > 0 && r.timeoutsMidCommit > 0,
    `timeouts cut invocations off before outputs, before the commit and mid-commit (${r.timeoutsBeforeOutputs}, ${r.timeoutsBeforeCommit}, ${r.timeoutsMidCommit})`,
  );
  assert.ok(
    r.timeoutsResumed > 0 && r.timeoutsResumed < r.timeouts,
    'some timed-out invocations resumed beside their retries, others never did',
  );
  assert.ok(r.duplicateEmits > 0, 'retries emit some results again');
  assert.deepEqual(r.unexpectedErrors, []);
  assert.equal(r.staleOverwrites, 0, 'a stale invocation overwrote newer state');
  assert.equal(r.lost, 0, `results lost: ${explain(r)}`);
  assert.equal(r.appliedTwice, 0, `results or state differ from the reference: ${explain(r)}`);
  assert.ok(r.batches > 0, 'invocations reported their stats');
  assert.equal(r.unaccounted, 0, 'every record of every batch is applied, filtered, late or dead-lettered');
}

const CRASHES = 60;
// A small run: the issue 11 fault classes more often than in `npm run test:faults`, so each shows up.
const FAULTS = { stormChance: 0.04, outageChance: 0.05, timeoutChance: 0.12 };
const dynamodb = await dynamodbAvailability();
const allWorkloads = Object.values(workloads);

describe('exactly-once under crashes, replays and stale invocations', () => {
  test('in-memory store', async () => {
    const throttle = new Throttle();
    const r = await runSuite({
      label: 'memory',
      seed: 11,
      crashPoints: CRASHES,
      deadline: Date.now() + 15_000,
      store: () => throttle.store(new MemoryStore()),
      throttle,
      faults: FAULTS,
      workloads: allWorkloads,
    });
    assertExactlyOnce(r, CRASHES);
  });

  describe('DynamoDB Local', dynamodb, () => {
    test('DynamoDB store', async () => {
      const table = `sluice-faults-test-${process.pid}-${Date.now()}`;
      const throttle = new Throttle();
      const chunkCrash = new ChunkCrash();
      const store = await throttledDynamoDBStore(endpoint, table, throttle, chunkCrash);
      try {
        const r = await runSuite({
          label: 'dynamodb',
          seed: 11,
          crashPoints: CRASHES,
          deadline: Date.now() + 25_000,
          store: () => store,
          throttle,
          chunkCrash,
          faults: FAULTS,
          workloads: allWorkloads,
        });
        assertExactlyOnce(r, CRASHES);
        // Pages: the workloads' keys share pages and split them, and crashes hit between page writes and after splits.
        assert.ok(r.pageSplits > 0, `pages split: ${r.pageSplits}`);
        assert.ok(r.crashesBetweenPages > 0 && r.crashesAfterSplit > 0, `crashes inside page writes: ${JSON.stringify(r)}`);
      } finally {
        throttle.close();
        await dropTable(endpoint, table);
      }
    });

    test('state over 64 KB: chunked, with crashes between chunk puts and between the chunks and the head', async () => {
      const table = `sluice-faults-big-${process.pid}-${Date.now()}`;
      const throttle = new Throttle();
      const chunkCrash = new ChunkCrash();
      const store = await throttledDynamoDBStore(endpoint, table, throttle, chunkCrash);
      try {
        const r = await runSuite({
          label: 'dynamodb',
          seed: 11,
          crashPoints: 30,
          deadline: Date.now() + 20_000,
          store: () => store,
          throttle,
          chunkCrash,
          workloads: [workloads.bigState],
        });
        assert.ok(r.chunkedValues > 20, `chunked versions written: ${r.chunkedValues}`);
        assert.equal(r.chunkedValues, chunkCrash.chunkedValues);
        assert.ok(r.crashesBetweenChunks > 0 && r.crashesBeforeHead > 0, `crashes inside chunked writes: ${JSON.stringify(r)}`);
        assert.ok(r.replays > 0 && r.staleInvocations > 0);
        assert.deepEqual(r.unexpectedErrors, []);
        assert.equal(r.staleOverwrites, 0);
        assert.equal(r.lost, 0, `results lost: ${explain(r)}`);
        assert.equal(r.appliedTwice, 0, `results or state differ from the reference: ${explain(r)}`);
        assert.equal(r.unaccounted, 0);
      } finally {
        throttle.close();
        await dropTable(endpoint, table);
      }
    });
  });
});

describe('idle ticks racing invocations, crashing and running stale (issue 12)', () => {
  /** With `everyPoint`, each crash point fired (a run of a few hundred scenarios); otherwise some did. */
  function assertTicksHold(r: TickSuiteResult, everyPoint: boolean): void {
    const detail = JSON.stringify({ failures: r.failures.slice(0, 3), unexpectedErrors: r.unexpectedErrors.slice(0, 3) }, null, 1);
    assert.ok(r.scenarios >= 3 && r.windowsClosedByTicks > 0, `ticks closed windows mid-stream: ${JSON.stringify(r)}`);
    if (everyPoint) {
      for (const [point, n] of Object.entries(r.tickCrashPoints))
        assert.ok(n > 0, `ticks crashed ${point}: ${JSON.stringify(r.tickCrashPoints)}`);
      assert.ok(r.moved > 0, 'a record arrived between the two checks of a tick');
    }
    assert.ok(
      r.tickCrashes > 0 && r.staleTicks > 0 && r.races > 0 && r.raced > 0,
      `crashed and stale ticks, races, raced ticks: ${JSON.stringify(r)}`,
    );
    assert.deepEqual(r.unexpectedErrors, []);
    assert.equal(r.lost, 0, `records lost: ${detail}`);
    assert.equal(r.appliedTwice, 0, `records in two outcomes: ${detail}`);
    assert.equal(r.conflictingValues, 0, `ids emitted with two values: ${detail}`);
    assert.equal(r.unclosed, 0, `windows left open: ${detail}`);
  }

  test('in-memory store', async () => {
    assertTicksHold(await runTickSuite({ label: 'memory', seed: 11, deadline: Date.now() + 4_000, store: () => new MemoryStore() }), true);
  });

  test('DynamoDB store', dynamodb, async () => {
    const table = `sluice-faults-ticks-${process.pid}-${Date.now()}`;
    const store = new DynamoDBStore({ table, endpoint });
    await store.ensureTable();
    try {
      assertTicksHold(await runTickSuite({ label: 'dynamodb', seed: 11, deadline: Date.now() + 8_000, store: () => store }), false);
    } finally {
      await dropTable(endpoint, table);
    }
  });

  test('the tick checks count a lost record, a record in two outcomes, an id with two values, a window left open', async () => {
    const run = await runTicksWithFaults(tickWorkloads.idleSessions, 3, 'Checks', new MemoryStore());
    assert.deepEqual(
      { ...judgeTicks(run), results: 0, late: 0, examples: [] },
      { lost: 0, appliedTwice: 0, conflictingValues: 0, unclosed: 0, results: 0, late: 0, examples: [] },
    );
    const result = run.messages.find((m) => m.topic === 'idle-sessions' && (m.value as { ids: string[] }).ids.length > 1)!;
    const { ids, n, v } = result.value as { ids: string[]; n: number; v: number };
    const others = run.messages.filter((m) => m.id !== result.id);
    const lost = judgeTicks({ ...run, messages: others });
    assert.equal(lost.lost, ids.length, 'a result never emitted loses its records');
    const late = { ...result, topic: 'idle-late', id: 'late-one', value: { id: ids[0], v: 1 } };
    assert.equal(judgeTicks({ ...run, messages: [...run.messages, late] }).appliedTwice, 1, 'in a result and reported late');
    const changed = { ...result, value: { ...(result.value as object), n: n + 1, v: v + 1 } };
    const twice = judgeTicks({ ...run, messages: [...run.messages, changed] });
    assert.deepEqual([twice.conflictingValues, twice.appliedTwice], [1, 0], 'same id, another value');
    const open = judgeTicks({ ...run, messages: others, open: ids, openItems: 1 });
    assert.deepEqual([open.lost, open.unclosed], [0, 1], 'still open: not lost, but not closed');
  });
});

describe('bad inputs (issue 11)', () => {
  test('every bad-input case in both modes, in-memory store: no partition blocked, no innocent dead letter, nothing unaccounted', async () => {
    const figures = await runBadInputs('memory', async () => new MemoryStore());
    assert.deepEqual(figures, {
      badInputs: 2 * badInputCases.length,
      blockedPartitions: 0,
      innocentDeadLetters: 0,
      unaccounted: 0,
      problems: [],
    });
  });

  test('the figures count what goes wrong: innocent dead letters, a blocked partition, a record in no outcome', async () => {
    const first = badInputCases.find((c) => c.name.startsWith('duplicate offsets'))!;
    const r = await run(first.definition, new MemoryStore(), true, first.events());
    const everything = { ...r, letters: r.letters.concat(r.letters.map((l) => ({ ...l, record: { ...l.record, offset: 0 } }))) };
    assert.equal(judge(first, everything, 'memory').innocentDeadLetters, 2);
    const blocked = { ...r, responses: [{ batchItemFailures: [{ itemIdentifier: { partition: 'in-0', offset: 0 } }] }] };
    assert.equal(judge(first, blocked, 'memory').blockedPartitions, 1);
    const vanished = { ...r, reports: r.reports.map((x) => ({ ...x, stats: { ...x.stats, applied: x.stats.applied - 1 } })) };
    assert.equal(judge(first, vanished, 'memory').unaccounted, 1);
  });
});

describe('the checks can fail', () => {
  test('a store that forgets offsets applies replayed records again: appliedTwice > 0', async () => {
    for (const workload of [workloads.sensorSums, workloads.partitionSums]) {
      const records = workload.records(5);
      const topic = `forgetful.${workload.name}`;
      const reference = await runReference(workload, records, topic);
      const run = await runWithFaults(workload, records, topic, new MemoryStore(), { seed: 5, wrap: (s) => new ForgetfulStore(s) });
      assert.ok(run.stats.crashPoints > 0 && run.stats.replays > 0);
      const v = compare(reference, run);
      assert.ok(v.appliedTwice > 0 && v.stateDiffs > 0 && v.valueDiffs > 0, `${workload.name}: ${JSON.stringify(v)}`);
    }
  });

  test("a throttling storm: the store's retries absorb a share of rejections, and give up retriably when the deadline runs out", async () => {
    const throttle = new Throttle();
    const inner = new MemoryStore();
    const store = throttle.store(inner);
    const scope = { functionName: 'f', topic: 't', partition: 0 };
    const changes = [{ namespace: 'w', key: 'a', value: 1, offset: 3 }];
    throttle.share = 1;
    await store.read(scope, 'w', ['a']);
    assert.equal(throttle.throttledCalls, 0, 'only calls made during a storm are throttled');
    throttle.share = 0.5;
    await throttle.during(async () => {
      for (let i = 0; i < 8; i++) await store.read(scope, 'w', ['a'], { deadline: Date.now() + 5_000 });
    });
    assert.ok(throttle.throttledCalls > 0, 'calls were rejected and retried');
    throttle.share = 1;
    const e = await throttle
      .during(() => store.write(scope, changes, { firstOffset: 3, lastOffset: 3 }, { deadline: Date.now() + 60 }))
      .then(
        () => assert.fail('a write throttled past its deadline must fail'),
        (error: unknown) => error,
      );
    assert.match(String((e as Error).message), /DynamoDB kept failing \(ProvisionedThroughputExceededException|ThrottlingException/);
    assert.equal((e as { retriable?: boolean }).retriable, true, 'Lambda retries the batch');
    assert.ok(throttle.owns(e), 'the harness recognizes its own rejection behind the error');
    assert.ok(!throttle.owns(new Error('x')));
    assert.deepEqual(inner.dump(), {}, 'nothing was written');
  });

  test('a timeout mid-commit: some items land, the rest only if the invocation resumes', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner, emptyStats());
    const scope = { functionName: 'f', topic: 't', partition: 0 };
    const changes = [
      { namespace: 'w#partition', key: 'partition', value: 'p', offset: 3 },
      { namespace: 'w', key: 'a', value: 1, offset: 3 },
      { namespace: 'w', key: 'b', value: 2, offset: 3 },
    ];
    // cut 0.5 of n + 1 = 4 slots: k = 2, the two key items (partition-level items come last).
    const cut = timeoutCut('mid-commit', 0.5, 1);
    store.cutPlan = cut;
    let settled = false;
    const write = store.write(scope, changes, { firstOffset: 3, lastOffset: 3 }).finally(() => (settled = true));
    await cut.freeze.arrived;
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(settled, false, 'the write stopped where the timeout hit');
    assert.deepEqual(Object.keys(inner.dump()), ['f/t/0/w'], 'the two key items landed, not the partition item');
    cut.freeze.open();
    await write;
    assert.deepEqual(Object.keys(inner.dump()).sort(), ['f/t/0/w', 'f/t/0/w#partition'], 'resumed, it writes the rest');
  });

  test('a crash inside a chunked write: chunks land, the head does not, the value reads as before', async (t) => {
    if (dynamodb.skip) return t.skip(String(dynamodb.skip));
    const table = `sluice-faults-chunk-${process.pid}-${Date.now()}`;
    const throttle = new Throttle();
    const chunkCrash = new ChunkCrash();
    const store = await throttledDynamoDBStore(endpoint, table, throttle, chunkCrash);
    try {
      const scope = { functionName: 'f', topic: 't', partition: 0 };
      const big = 'é'.repeat(250_000); // 500 KB of UTF-8: two chunks
      await store.write(scope, [{ namespace: 'w', key: 'a', value: [1], offset: 3 }], { firstOffset: 3, lastOffset: 3 });
      const before = (await store.read(scope, 'w', ['a'])).get('a')!;
      for (const point of ['between-chunks', 'before-head'] as const) {
        const { fired, error } = await chunkCrash.during(point, () =>
          store.write(scope, [{ namespace: 'w', key: 'a', value: [big], offset: 4, revision: before.revision }], {
            firstOffset: 4,
            lastOffset: 4,
          }),
        );
        assert.equal(fired, point);
        assert.equal((error as Error).name, 'InjectedCrash');
        assert.deepEqual((await store.read(scope, 'w', ['a'])).get('a')?.value, [1], 'the head still holds the old value');
      }
      assert.equal(chunkCrash.chunkedValues, 0, 'no head references the chunks written');
      await store.write(scope, [{ namespace: 'w', key: 'a', value: [big], offset: 4, revision: before.revision }], {
        firstOffset: 4,
        lastOffset: 4,
      });
      assert.deepEqual((await store.read(scope, 'w', ['a'])).get('a')?.value, [big]);
      assert.equal(chunkCrash.chunkedValues, 1);
    } finally {
      throttle.close();
      await dropTable(endpoint, table);
    }
  });

  test('a crash leaves some items written and others not, then throws', async () => {
    const inner = new MemoryStore();
    const stats = emptyStats();
    const store = new FaultyStore(inner, stats);
    const scope = { functionName: 'f', topic: 't', partition: 0 };
    const changes = [
      { namespace: 'w#partition', key: 'partition', value: 'p', offset: 3 },
      { namespace: 'w', key: 'a', value: 1, offset: 3 },
      { namespace: 'w', key: 'b', value: 2, offset: 3 },
    ];
    // cut 0.5 of n + 1 = 4 slots: k = 2, the two key items (partition-level items come last).
    store.plans.set(0, { cut: 0.5, order: 1, fatal: true });
    await assert.rejects(store.write(scope, changes, { firstOffset: 3, lastOffset: 3 }), {
      name: 'InjectedCrash',
      message: /after 2 of 3 item writes/,
    });
    assert.deepEqual(Object.keys(inner.dump()).sort(), ['f/t/0/w']);
    assert.equal(stats.crashPoints, 1);
    assert.equal(store.crashedFatally, true);
    await store.write(scope, changes, { firstOffset: 4, lastOffset: 4 }).catch(() => undefined);
    assert.deepEqual(Object.keys(inner.dump()).sort(), ['f/t/0/w', 'f/t/0/w#partition'], 'without a plan, a write goes through whole');
  });
});

// ---------- what the suite found, shrunk ----------

function event(...records: KafkaEventRecord[]): KafkaEvent {
  return { eventSource: 'aws:kafka', records: { 'readings-0': records } };
}
const at = (offset: number, key: string, value: number, timestamp: number) =>
  toEventRecord({ key, value: { value }, timestamp }, 'readings', 0, offset);

describe('found by the suite', () => {
  test("closeBy partition: a crash between the key item and the partition item does not lose a quiet key's window", async () => {
    const handler = sluice(
      stream<{ value: number }>('readings', { name: 'quiet' })
        .tumblingWindow('10s', { closeBy: 'partition' })
        .aggregate(sum('value'), { name: 'w' })
        .to('sums'),
    );
    const store = new MemoryStore();
    const sink = new CaptureSink();
    handler.sluice.configure({ store, sink, logger: new CaptureLogger() });
    let crashes = 1;
    store.beforeItemWrite = (c) => {
      if (isPartitionNamespace(c.namespace) && crashes-- > 0) throw new Error('crash');
    };
    const ctx = lambdaContext('quiet') as never;
    assert.equal((await handler(event(at(0, 'q', 5, 1_000)), ctx)).batchItemFailures.length, 1, 'q written, the partition item not');
    assert.deepEqual(await handler(event(at(0, 'q', 5, 1_000)), ctx), { batchItemFailures: [] });
    await handler(event(at(1, 'a', 1, 20_000)), ctx);
    assert.deepEqual(
      sink.messages.map((m) => [m.id, m.value]),
      [['quiet:w:q:0:10000', { start: 0, end: 10_000, value: 5 }]],
    );
  });

  // Keyed state read by a replayed record used to include that record already: items are now
  // versioned and a batch reads them as of just before its first offset (state/versions.ts).
  test("keyed state: a retried batch re-emits each record's output with the value it first had", async () => {
    const total = keyedState<number>('total');
    const handler = sluice(
      stream<{ value: number }>('readings', { name: 'totals', state: [total] })
        .map((r) => {
          const t = (total.get() ?? 0) + r.value;
          total.set(t);
          return t;
        })
        .to('totals'),
    );
    const store = new MemoryStore();
    const sink = new CaptureSink();
    handler.sluice.configure({ store, sink, logger: new CaptureLogger() });
    const batch = event(at(0, 'a', 1, 1), at(1, 'a', 2, 2));
    await handler(batch, lambdaContext('totals') as never);
    // The invocation committed, then timed out: Lambda retries the same batch.
    await handler(batch, lambdaContext('totals') as never);
    const stored = (await store.read({ functionName: 'totals', topic: 'readings', partition: 0 }, 'keyed:total', ['a'])).get('a');
    assert.deepEqual({ value: stored?.value, offset: stored?.offset }, { value: 3, offset: 1 }, 'state is right');
    assert.deepEqual(
      sink.messages.map((m) => `${m.id}=${m.value}`),
      ['totals:readings-0:0:0=1', 'totals:readings-0:1:0=3', 'totals:readings-0:0:0=1', 'totals:readings-0:1:0=3'],
    );
  });

  test('keyed state read before a window: a crash between the keyed item and the window item counts no record twice', async () => {
    const total = keyedState<number>('total');
    const definition = stream<{ value: number }>('readings', { name: 'totals', state: [total] })
      .map((r) => {
        const t = (total.get() ?? 0) + r.value;
        total.set(t);
        return { t };
      })
      .tumblingWindow('10s')
      .aggregate(sum('t'), { name: 'w' })
      .to('sums');
    const batch = event(at(0, 'a', 1, 1_000), at(1, 'a', 2, 2_000));
    const results: unknown[] = [];
    for (const crash of [false, true]) {
      const handler = sluice(definition);
      const store = new MemoryStore();
      const sink = new CaptureSink();
      handler.sluice.configure({ store, sink, logger: new CaptureLogger() });
      let crashes = crash ? 1 : 0;
      store.beforeItemWrite = (c) => {
        if (isWindowNamespace(c.namespace) && crashes-- > 0) throw new Error('crash');
      };
      await handler(batch, lambdaContext('totals') as never);
      if (crash) await handler(batch, lambdaContext('totals') as never);
      await handler.sluice.flush('readings', 0, 1);
      results.push(sink.messages.map((m) => m.value));
    }
    assert.deepEqual(results[0], [{ start: 0, end: 10_000, value: 4 }], 'totals 1 and 3');
    assert.deepEqual(results[1], results[0]);
  });
});

// ---------- what the tick scenarios found, shrunk ----------

describe('found by the tick scenarios (issue 12)', () => {
  const T = 1_767_225_600_000;
  const click = (offset: number, id: string, ts: number) =>
    toEventRecord({ key: 'k', value: { id }, timestamp: T + ts }, 'clicks', 0, offset);
  const clicks = (...records: KafkaEventRecord[]): KafkaEvent => ({ eventSource: 'aws:kafka', records: { 'clicks-0': records } });
  const setup = () => {
    const handler = sluice(
      stream<{ id: string }>('clicks', { name: 'S', lateTopic: 'late' })
        .sessionWindow('3s', { idle: '4s' })
        .aggregate({ ids: collect((r: { id: string }) => r.id) }, { name: 's' })
        .to('sessions'),
    );
    const sink = new CaptureSink();
    const clock = { wall: T + 1_000, end: 2 };
    handler.sluice.configure({ store: new MemoryStore(), sink, logger: new CaptureLogger(), clock: () => clock.wall });
    const tick = () => handler.sluice.tick({ now: clock.wall, offsets: { endOffsets: async () => new Map([[0, clock.end]]) } });
    return { handler, sink, clock, tick, ctx: lambdaContext('S') as never };
  };

  // The batch committed its state, then its invocation failed (a crash or timeout before it
  // answered): Lambda retries it. A tick in between finds the partition caught up and closes the
  // session at position 1.5; its writes used to drop the versions from before the batch, so the
  // retry's read was refused as stale, on every retry: the partition was blocked for good.
  test('a tick between a committed batch and its retry: the retry still reads its state', async () => {
    const { handler, sink, clock, tick, ctx } = setup();
    const batch = clicks(click(0, 'a', 0), click(1, 'b', 500));
    assert.deepEqual(await handler(batch, ctx), { batchItemFailures: [] });
    clock.wall += 10_000;
    assert.equal((await tick()).windowsClosed, 1);
    for (let retry = 0; retry < 2; retry++) assert.deepEqual(await handler(batch, ctx), { batchItemFailures: [] });
    clock.wall += 20_000;
    assert.equal((await tick()).windowsClosed, 0, "the retries left the tick's state newest: the session stays closed");
    assert.deepEqual(
      sink.messages.map((m) => (m.value as { ids: string[] }).ids),
      [['a', 'b']],
    );
  });

  // A crash cut the batch's commit after its idle item and before its window's partition item (the
  // index of keys with open windows): a tick took the batch as applied and closed windows by the
  // stale index, and the retry's writes landed under the tick's newer versions: a window that no
  // index named stayed open for good. The store now writes the idle item last, over a whole write.
  test("a crash before the window's partition item: the idle item is not written, no tick acts on the torn commit", async () => {
    const { handler, clock, tick, ctx, sink } = setup();
    const store = handler.sluice.runtime.store as MemoryStore;
    let crashes = 1;
    store.beforeItemWrite = (c) => {
      if (isWindowNamespace(c.namespace.replace(/#partition$/, '')) && isPartitionNamespace(c.namespace) && crashes-- > 0)
        throw new Error('crash');
    };
    const batch = clicks(click(0, 'a', 0), click(1, 'b', 500));
    assert.equal((await handler(batch, ctx)).batchItemFailures.length, 1);
    clock.wall += 10_000;
    const torn = await tick();
    assert.deepEqual(torn.partitions[0].decision, { action: 'skip', reason: 'no state' }, 'no idle item: nothing applied');
    assert.deepEqual(await handler(batch, ctx), { batchItemFailures: [] });
    clock.wall += 10_000;
    assert.equal((await tick()).windowsClosed, 1);
    assert.deepEqual(
      sink.messages.map((m) => (m.value as { ids: string[] }).ids),
      [['a', 'b']],
    );
  });

  // The retry also holds a record that arrived after the tick (Lambda re-polls from the committed
  // offset). Read as of its first offset, it saw no floor and ran through the tick's position,
  // so 'c' joined the session the tick had already closed and emitted: a and b in two results.
  // The retry now replays the tick at its position: the records after it see its floors. (It
  // must not stop there with a partial batch response: with on-demand pollers Lambda ignores
  // those and retries the same batch for ever.)
  test("a retry reaching past a tick's position replays the tick there: later records see its floors", async () => {
    const { handler, sink, clock, tick, ctx } = setup();
    assert.deepEqual(await handler(clicks(click(0, 'a', 0), click(1, 'b', 500)), ctx), { batchItemFailures: [] });
    clock.wall += 10_000;
    assert.equal((await tick()).windowsClosed, 1);
    clock.end = 3;
    clock.wall += 500;
    const retry = await handler(clicks(click(0, 'a', 0), click(1, 'b', 500), click(2, 'c', 1_000)), ctx);
    clock.wall += 20_000;
    await tick();
    const results = new Map(sink.messages.filter((m) => m.topic === 'sessions').map((m) => [m.id, (m.value as { ids: string[] }).ids]));
    assert.deepEqual([...results.values()], [['a', 'b']], 'one session, closed by the tick');
    assert.deepEqual(
      sink.messages.filter((m) => m.topic === 'late').map((m) => (m.value as { id: string }).id),
      ['c'],
      "c came after the tick's floor had closed its session: late",
    );
    assert.deepEqual(retry, { batchItemFailures: [] }, 'the whole retry went through: nothing to resume');
  });
});

describe('exactly-once outputs through Kafka transactions, on the broker (issue 14)', await kafkaAvailability(), () => {
  // Two workloads (keyed state, windows by partition), a few crashes: seconds. `npm run test:faults` runs the full variant.
  const small: EosSuiteOptions = {
    seed: 3,
    crashes: 8,
    deadline: Date.now() + 60_000,
    workloads: [workloads.runningTotals, workloads.partitionSums],
    ticks: false,
    staleChance: 0.2,
    readTimeoutMs: 15_000,
  };

  test('crashes at every point, whole and re-batched retries, zombies: every output read back once, read_committed', async () => {
    const r = await runEosSuite({ ...small, deadline: Date.now() + 60_000 });
    const detail = JSON.stringify({ ...r, examples: r.examples.slice(0, 5) });
    assert.deepEqual(r.unexpectedErrors, [], detail);
    for (const p of EOS_CRASH_POINTS) assert.ok(r.crashPoints[p] > 0, `no crash ${p}: ${detail}`);
    assert.ok(r.wholeRetries > 0 && r.rebatchedRetries > 0, `retries: ${detail}`);
    assert.ok(r.staleInvocations > 0 && r.staleFenced === r.staleInvocations, `zombies ran and were all fenced: ${detail}`);
    assert.equal(r.staleCommits, 0);
    assert.ok(r.outputsExpected > 0);
    assert.equal(r.duplicates, 0, detail);
    assert.equal(r.missing, 0, detail);
    assert.equal(r.wrongValues, 0, detail);
    assert.equal(r.outputsSeen, r.outputsExpected);
  });

  test('the check can fail: the same driver delivering at least once reads outputs twice', async () => {
    const r = await runEosSuite({ ...small, deadline: Date.now() + 60_000, guarantee: 'at-least-once' });
    assert.deepEqual(r.unexpectedErrors, []);
    assert.ok(r.crashes >= small.crashes);
    assert.ok(r.duplicates > 0, `duplicates: ${r.duplicates}`);
    assert.ok(r.outputsSeen > r.outputsExpected);
    assert.equal(r.missing, 0);
  });

  test('a producer fenced in a warm container claims its id again at its next transaction', async () => {
    // Found by the suite: a zombie (or any newer container) claims the id; the warm container's
    // next send is refused as fenced, and the container must not keep that producer, or every
    // later invocation it gets fails the partition again.
    const kafka = kafkaClient('sluice-faults-fenced');
    const admin = kafka.admin();
    await admin.connect();
    const prefix = `sluice-fenced-${process.pid}-${Date.now()}`;
    const [source, out] = [`${prefix}-in`, `${prefix}-out`];
    await freshTopics(admin, [
      { topic: source, numPartitions: 1 },
      { topic: out, numPartitions: 1 },
    ]);
    const { manifest } = loadDefinition(stream('in', { guarantee: 'exactly-once' }).to(out));
    const message = (n: number) => ({ topic: out, key: 'k', value: { n }, timestamp: 0, headers: { 'sluice-id': `m${n}` }, id: `m${n}` });
    const opts = { kafka: async () => kafka, manifest, functionName: prefix };
    const warm = new KafkaTransactions(opts);
    const zombie = new KafkaTransactions(opts);
    try {
      const first = await warm.begin(source, 0);
      await first.send([message(0)], [], 'F');
      await first.commit({ at: 0 });
      const claim = await zombie.begin(source, 0);
      await claim.abort();
      const fenced = await warm.begin(source, 0);
      await assert.rejects(fenced.send([message(1)], [], 'F'), /epoch|fenced/i);
      const again = await warm.begin(source, 0);
      await again.send([message(1)], [], 'F');
      await again.commit({ at: 1 });
      assert.deepEqual(again.published, { at: 0 });
    } finally {
      await warm.close();
      await zombie.close();
      await admin.deleteTopics({ topics: [source, out] }).catch(() => undefined);
      await admin.deleteGroups([publishedGroup(prefix)]).catch(() => undefined);
      await admin.disconnect();
    }
  });
});
