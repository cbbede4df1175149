// The invocation as a unit: partitions in, one report out; outputs, then dead letters, then state.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { poison, stream, sum } from 'sluice';
import { MemoryStore } from 'sluice/state';
import { type DeadLetter, manifestOf, type OutputMessage } from 'sluice/runtime';
import { CaptureLogger, toEventRecord } from 'sluice/testing';
import { flushPartition, type Invocation, invoke } from '../../framework/src/runtime/invoke.js';
import { partitionsOf, toKafkaEvents } from '../../framework/src/runtime/msk-event.js';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';

/** A memory store that reports its writes into a shared journal. */
class JournalStore extends MemoryStore {
  constructor(readonly journal: string[]) {
    super();
  }
  override async write(...args: Parameters<MemoryStore['write']>) {
    this.journal.push(`commit ${args[0].topic}-${args[0].partition}`);
    return super.write(...args);
  }
}

function setUp(def: Parameters<typeof manifestOf>[0], store?: MemoryStore) {
  const journal: string[] = [];
  const manifest = manifestOf(def);
  const logger = new CaptureLogger();
  const messages: OutputMessage[] = [];
  const letters: DeadLetter[] = [];
  const s = store ?? new JournalStore(journal);
  const run: Invocation = {
    manifest,
    runner: new PartitionRunner(manifest, s),
    runtime: {
      store: s,
      logger,
      sink: {
        async send(ms) {
          journal.push(`outputs ${ms.length}`);
          messages.push(...ms);
        },
      },
      deadLetters: {
        async send(ds, fn) {
          journal.push(`dead letters ${ds.length} of ${fn}`);
          letters.push(...ds);
        },
      },
    },
  };
  return { run, journal, logger, messages, letters };
}

const summed = stream<{ v: number }>('in', { name: 'summed', validate: (r) => typeof r?.v === 'number' || 'v must be a number' })
  .map((r) => (r.v < 0 ? poison('negative') : r), { name: 'sign' })
  .tumblingWindow('10s')
  .aggregate(sum('v'), { name: 'total' })
  .to('out');

describe('invoke', () => {
  test("outputs, then dead letters, then each partition's state; one report with stats summed over partitions", async () => {
    const { run, journal } = setUp(summed);
    const [event] = toKafkaEvents(
      [
        { key: 'a', value: { v: 1 }, timestamp: 1_000, partition: 0 },
        { key: 'a', value: { v: 'x' }, timestamp: 2_000, partition: 0 },
        { key: 'b', value: { v: 2 }, timestamp: 1_000, partition: 1 },
        { key: 'b', value: { v: -1 }, timestamp: 2_000, partition: 1 },
        { key: 'a', value: { v: 1 }, timestamp: 30_000, partition: 0 },
      ],
      { topic: 'in', batchSize: 100 },
    );
    const report = await invoke(run, partitionsOf(event));
    assert.deepEqual(journal.slice(0, 2), ['outputs 1', 'dead letters 2 of summed']);
    assert.deepEqual(journal.slice(2).sort(), ['commit in-0', 'commit in-1']);
    assert.deepEqual(report.stats, {
      recordsIn: 5,
      applied: 3,
      filtered: 0,
      late: 0,
      deadLettered: 2,
      messagesOut: 1,
      windowsEmitted: 1,
      poison: 2,
    });
    assert.deepEqual(report.response, { batchItemFailures: [] });
    assert.deepEqual(
      report.partitions.map((p) => `${p.topic}-${p.partition}`),
      ['in-0', 'in-1'],
    );
  });

  test('a partition whose state cannot be read fails whole at its first offset; the others deliver', async () => {
    const store = new MemoryStore();
    const { run, logger, messages } = setUp(summed, store);
    store.read = async (scope, ...rest) => {
      if (scope.partition === 1) throw new Error('throttled');
      return MemoryStore.prototype.read.call(store, scope, ...rest);
    };
    const [event] = toKafkaEvents(
      [
        { key: 'a', value: { v: 1 }, timestamp: 1_000, partition: 0 },
        { key: 'b', value: { v: 1 }, timestamp: 1_000, partition: 1 },
        { key: 'a', value: { v: 1 }, timestamp: 30_000, partition: 0 },
      ],
      { topic: 'in', startOffset: 7 },
    );
    const report = await invoke(run, partitionsOf(event));
    assert.deepEqual(report.response, { batchItemFailures: [{ itemIdentifier: { partition: 'in-1', offset: 7 } }] });
    assert.deepEqual(
      report.failed.map((f) => [f.topic, f.partition, f.stage]),
      [['in', 1, 'read']],
    );
    assert.deepEqual(logger.at('error'), [{ sluice: 'partition-failed', topic: 'in', partition: 1, error: 'throttled' }]);
    assert.deepEqual(
      messages.map((m) => m.id),
      ['summed:total:a:0:10000'],
    );
  });

  test('a deadline leaves a second for a clean failure', async () => {
    let seen: number | undefined;
    const store = new MemoryStore();
    const { run } = setUp(summed, store);
    store.read = async (scope, ns, keys, opts) => {
      seen = opts?.deadline;
      return MemoryStore.prototype.read.call(store, scope, ns, keys, opts);
    };
    const before = Date.now();
    await invoke(
      run,
      partitionsOf({
        eventSource: 'aws:kafka',
        records: { 'in-0': [toEventRecord({ key: 'a', value: { v: 1 }, timestamp: 1 }, 'in', 0, 0)] },
      }),
      5_000,
    );
    assert.ok(seen !== undefined && seen >= before + 4_000 && seen <= Date.now() + 4_000, `deadline ${seen}`);
  });
});

describe('flushPartition', () => {
  test('closes the open windows and delivers them like an invocation: outputs, dead letters, then state', async () => {
    const def = stream<{ v: number }>('in', { name: 'flushed' })
      .tumblingWindow('10s')
      .aggregate(sum('v'), { name: 'total' })
      .map((w) => (w.value > 5 ? poison(`too big: ${w.value}`) : w), { name: 'cap' })
      .to('out');
    const { run, journal, messages, letters } = setUp(def);
    const [event] = toKafkaEvents(
      [
        { key: 'a', value: { v: 1 }, timestamp: 1_000 },
        { key: 'b', value: { v: 9 }, timestamp: 1_000 },
      ],
      { topic: 'in' },
    );
    await invoke(run, partitionsOf(event));
    journal.length = 0;
    const result = await flushPartition(run, 'in', 0, 1);
    assert.deepEqual(journal, ['outputs 1', 'dead letters 1 of flushed', 'commit in-0']);
    assert.deepEqual(
      messages.map((m) => m.key),
      ['a'],
    );
    assert.deepEqual(
      letters.map((d) => [d.stage, d.reason]),
      [['cap', 'too big: 9']],
    );
    assert.equal(result.stats.windowsEmitted, 2);
  });
});
