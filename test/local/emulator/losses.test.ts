// Lost records and stalled partitions, without a broker: the pure gap and stall rules, the
// notices and counts built on them, and the stages the partition loop records.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EsmConfig } from '../../../framework/src/config/event-source-mapping.js';
import { gapOf, jumped, type LogRange, LostRecords } from '../../../framework/src/local/emulator/losses.js';
import { type PartitionContext, runPartition } from '../../../framework/src/local/emulator/partition-loop.js';
import { emptyStats, type FunctionStats, type PartitionStage } from '../../../framework/src/local/emulator/stats.js';
import { stalls, watchProgress } from '../../../framework/src/local/emulator/watchdog.js';
import { type Converted, toLambdaRecord } from '../../../framework/src/runtime/msk-event.js';

test('a fetch position is checked only when it is not the committed next offset', () => {
  assert.equal(jumped(undefined, 0), false, 'nothing committed yet: TRIM_HORIZON starts at the log start, whatever it is');
  assert.equal(jumped(10, 10), false);
  assert.equal(jumped(10, 11), true);
  assert.equal(jumped(10, 9), true);
});

test('gapOf: what a jump lost, given the log the broker holds now', () => {
  const cases: [expected: number, first: number, log: LogRange, gap: ReturnType<typeof gapOf>][] = [
    // Retention deleted the head while it was consumed; kafkajs reset to the new log start.
    [10_000, 240_000, { low: 240_000, high: 250_000 }, { kind: 'deleted', from: 10_000, to: 240_000, count: 230_000 }],
    // The log start moved on again after the fetch: still only what the batch skipped.
    [10_000, 240_000, { low: 245_000, high: 250_000 }, { kind: 'deleted', from: 10_000, to: 240_000, count: 230_000 }],
    // Reset to the end of the log (LATEST): records still there were skipped too.
    [5, 100, { low: 50, high: 100 }, { kind: 'deleted', from: 5, to: 100, count: 95 }],
    // A transaction marker or compacted records between: the log still starts before them.
    [10, 12, { low: 0, high: 500 }, undefined],
    [10, 12, { low: 10, high: 500 }, undefined],
    // The topic was recreated: its log ends before where the function was.
    [250_000, 0, { low: 0, high: 500 }, { kind: 'rewound', from: 250_000, to: 0 }],
    // A redelivery of records the log still holds.
    [250, 200, { low: 0, high: 500 }, undefined],
  ];
  for (const [expected, first, log, gap] of cases) assert.deepEqual(gapOf(expected, first, log), gap, `${expected} → ${first}`);
});

const config = { functionName: 'sums', topic: 'readings' } as const;

function losses(log: (p: number) => Promise<LogRange>) {
  const stats = emptyStats('sums');
  const notes: string[] = [];
  return { stats, notes, lost: new LostRecords({ config, stats, notice: (m) => notes.push(m), log }) };
}

test('records deleted before they were processed are said at once, with the partition, the offsets and the count, and counted once', async () => {
  let low = 240_000;
  const { stats, notes, lost } = losses(async () => ({ low, high: 250_000 }));
  stats.committed.set(0, 10_000).set(1, 7);
  await lost.check(1, 7);
  assert.deepEqual(notes, [], 'a batch at the committed offset lost nothing, and the broker is not asked');
  await lost.check(0, 240_000);
  assert.equal(stats.lost, 230_000);
  assert.deepEqual(notes, [
    'sums: readings-0: LOST 230,000 records, offsets 10,000–239,999, never processed: they were gone from the broker when the function got to them ' +
      "(the partition's log now starts at 240,000: retention by time or size, deleted records, or a recreated topic). " +
      'Going on from offset 240,000, as the event source mapping does. To keep records whatever their timestamps, set retention.ms=-1 on the topic.',
  ]);
  // The same batch fetched again (a rebalance before the first commit): not counted twice.
  await lost.check(0, 240_000);
  assert.equal(stats.lost, 230_000);
  // Fetched again later still, after more was deleted: only the part not yet reported.
  low = 245_000;
  await lost.check(0, 245_000);
  assert.equal(stats.lost, 235_000);
  assert.match(notes[1], /^sums: readings-0: LOST 5,000 records, offsets 240,000–244,999, never processed/);
  assert.equal(notes.length, 2);
});

test('an offset reset past records still on the broker says how many of the lost it skipped', async () => {
  const { stats, notes, lost } = losses(async () => ({ low: 50, high: 100 }));
  stats.committed.set(2, 5);
  await lost.check(2, 100);
  assert.equal(stats.lost, 95);
  assert.match(
    notes[0],
    /LOST 95 records, offsets 5–99, .*; of these, the 50 at 50–99 are still there, but the offset reset went past them\./,
  );
});

test('gaps the log start does not explain (transaction markers, compaction) are neither said nor counted', async () => {
  const { stats, notes, lost } = losses(async () => ({ low: 0, high: 500 }));
  stats.committed.set(0, 10);
  await lost.check(0, 12);
  assert.equal(stats.lost, 0);
  assert.deepEqual(notes, []);
});

test('a recreated topic is said once, without a count it cannot know', async () => {
  const { stats, notes, lost } = losses(async () => ({ low: 0, high: 500 }));
  stats.committed.set(3, 250_000);
  await lost.check(3, 0);
  await lost.check(3, 0);
  assert.equal(stats.lost, 0);
  assert.deepEqual(notes, [
    "sums: readings-3: the partition's log now ends at offset 500, before 250,000 where the function was (the topic was recreated, or its records deleted): " +
      'records that followed 250,000 in the old log, if any, were never processed and cannot be counted. Going on from offset 0, as the event source mapping does.',
  ]);
});

test('when the broker cannot say where its log starts, a jump is still said, as a possible loss, and not counted', async () => {
  const { stats, notes, lost } = losses(async () => {
    throw new Error('connection refused');
  });
  stats.committed.set(0, 10);
  await lost.check(0, 40);
  assert.equal(stats.lost, 0);
  assert.deepEqual(notes, [
    "sums: readings-0: the consumer fetched from offset 40 where 10 was next, and the broker could not be asked for the partition's log start (connection refused); offsets 10–39 may have been lost",
  ]);
});

function activity(stats: FunctionStats, p: number, stage: PartitionStage, sinceAgo: number, progressAgo: number, now: number) {
  stats.activity.set(p, { stage, since: now - sinceAgo, progressAt: now - progressAgo });
}

test('stalls: partitions with records waiting and no commit for the period, at their stage', () => {
  const now = 1_000_000;
  const stats = emptyStats('sums');
  stats.highWatermarks.set(0, 100).set(1, 100).set(2, 100).set(3, 50);
  stats.committed.set(0, 40).set(1, 100).set(2, 90);
  activity(stats, 0, 'invoking', 70_000, 70_000, now); // stalled while invoking
  activity(stats, 1, 'waiting', 90_000, 90_000, now); // caught up: nothing waits
  activity(stats, 2, 'retrying', 10_000, 30_000, now); // committed 30 s ago: not yet
  // Partition 3 never had a batch: waiting since the watch started.
  assert.deepEqual(stalls(stats, now, 60_000, now - 61_000), [
    { partition: 0, stage: 'invoking', stageMs: 70_000, stalledMs: 70_000, next: 40, end: 100 },
    { partition: 3, stage: 'waiting', stageMs: 61_000, stalledMs: 61_000, next: undefined, end: 50 },
  ]);
  assert.deepEqual(stalls(stats, now, 60_000, now - 1_000).length, 1, 'the watch has only just started for partition 3');
});

test('the progress watchdog names a stalled partition and its stage once per stall, and again after it moved on and stalled again', async () => {
  const stats = emptyStats('sums');
  const notes: string[] = [];
  stats.highWatermarks.set(1, 1_010);
  stats.committed.set(1, 10);
  stats.activity.set(1, { stage: 'committing', since: Date.now(), progressAt: Date.now() });
  const stop = watchProgress(stats, {
    topic: 'readings',
    functionName: 'sums',
    timeoutMs: 6_000,
    stallMs: 60,
    notice: (m) => notes.push(m),
  });
  try {
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(notes.length, 1, notes.join('\n'));
    assert.match(
      notes[0],
      /^sums: readings-1 has made no progress for 0 s \(1,000 records waiting from offset 10\); it has been committing its offset for 0 s: the offset commit has not returned: the group coordinator may be unavailable$/,
    );
    stats.activity.set(1, { stage: 'waiting', since: Date.now(), progressAt: Date.now() });
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(notes.length, 2, notes.join('\n'));
    assert.match(notes[1], /it has been waiting for a batch from the broker for 0 s: the consumer has fetched nothing for it/);
    stats.committed.set(1, 1_010);
    stats.activity.set(1, { stage: 'waiting', since: Date.now(), progressAt: Date.now() });
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(notes.length, 2, 'caught up: nothing waits, nothing to say');
  } finally {
    stop();
  }
});

const base: EsmConfig = {
  functionName: 'sums',
  topic: 'readings',
  batchSize: 2,
  maximumBatchingWindowMs: 0,
  startingPosition: 'TRIM_HORIZON',
  consumerGroupId: 'g',
  eventSource: 'SelfManagedKafka',
  provisionedPollers: false,
  deadLetterTopic: 'readings.sums.dlq',
  timeoutMs: 6_000,
};

function records(...offsets: number[]): Converted[] {
  return offsets.map((o) =>
    toLambdaRecord('readings', 0, {
      key: null,
      value: Buffer.from('{}'),
      timestamp: '1',
      offset: String(o),
      attributes: 0,
      headers: {},
    } as never),
  );
}

test('the partition loop records its stages: invoking, committing (progress), retrying while blocked, waiting once the batch is done', async () => {
  const stats = emptyStats('sums');
  const seen: string[] = [];
  const stage = () => stats.activity.get(0)?.stage;
  let fail = 1;
  let sleeps = 0;
  const ctx: PartitionContext = {
    config: base,
    stats,
    limit: 1_000_000,
    async submit(rs) {
      seen.push(`submit ${rs[0].offset} ${stage()}`);
      return fail-- > 0 ? { failedOffset: rs[0].offset, error: 'boom' } : {};
    },
    async commit(next) {
      seen.push(`commit ${next} ${stage()}`);
    },
    deadLetter: async () => undefined,
    reason: () => undefined,
    notice: () => undefined,
    heartbeat: async () => undefined,
    running: () => true,
    async sleep() {
      if (sleeps++ === 0) seen.push(`sleep ${stage()}`);
    },
  };
  const before = Date.now();
  await runPartition(0, records(0, 1, 2), ctx);
  assert.deepEqual(seen, [
    'submit 0 invoking',
    'sleep retrying',
    'submit 0 retrying',
    'commit 2 committing',
    'submit 2 invoking',
    'commit 3 committing',
  ]);
  assert.equal(stage(), 'waiting');
  assert.ok(stats.activity.get(0)!.progressAt >= before, 'a commit is progress');
});
