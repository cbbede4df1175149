// `sluice dev --brokers` runs idle ticks on the deployed schedule: once the producer stops, the
// sessions example's last sessions appear on the output topic when the idle floor makes them due,
// within one tick. Takes about 50 s: the sample's last session is due 45 s after its last click
// arrives (idle 10 s + grace 5 s + the 30 s gap past the partition's newest event time).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Admin, Kafka } from 'kafkajs';
import { brokers, freshTopics, kafkaAvailability, kafkaClient, produceJson } from '../support/kafka.js';

const root = path.resolve(import.meta.dirname, '../..');
// The sessions example on topics of its own (the broker is shared; other tests use `clicks`).
const project = path.join(root, 'test/fixtures/ticks-project');
const [input, output] = ['it-ticks-clicks', 'it-ticks-click-sessions'];
const bin = path.join(root, 'framework/bin/sluice.js');
const availability = await kafkaAvailability();

const IDLE_MS = 10_000;
const GRACE_MS = 5_000;
const GAP_MS = 30_000;
const TICK_MS = 1_000;
/** Fetch and batching latency between the producer's ack and the batch being applied, reading, scheduling on a shared machine. */
const MARGIN_MS = 3_000;

interface Click {
  readonly key: string;
  readonly value: { user: string; page: string };
  readonly timestamp: number;
}

/** The sample's sessions per user (gap 30 s): [first click, last click]. */
function sessionsOf(clicks: readonly Click[]): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const c of clicks) {
    const list = out.get(c.key) ?? [];
    const last = list[list.length - 1];
    if (last && c.timestamp < last[1] + GAP_MS) last[1] = c.timestamp;
    else list.push([c.timestamp, c.timestamp]);
    out.set(c.key, list);
  }
  return out;
}

describe('sluice dev --brokers with idle ticks, on a real broker', { ...availability, timeout: 180_000 }, () => {
  let kafka: Kafka;
  let admin: Admin;
  before(async () => {
    kafka = kafkaClient('sluice-test-ticks');
    admin = kafka.admin();
    await admin.connect();
  });
  after(async () => {
    await admin?.disconnect();
  });

  test('after the producer stops, every user session of the sessions sample is on the output topic within idle + one tick of being due', async (t) => {
    const clicks: Click[] = readFileSync(path.join(root, 'functions/sessions/sample.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    // One partition, as the sample has no partitions: the partition's newest event time is the
    // last click of all, so each user's last session is due at its own distance from it.
    await freshTopics(admin, [
      { topic: input, numPartitions: 1 },
      { topic: output, numPartitions: 1 },
    ]);
    const newest = Math.max(...clicks.map((c) => c.timestamp));
    // Wall-clock ms after arrival at which the floor (newest + quiet - idle) passes the session's
    // end (last click + gap) by grace: newest + quiet - idle - grace >= last + gap.
    const dueAfter = (last: number) => Math.max(0, last + GAP_MS + GRACE_MS + IDLE_MS - newest);
    const expected = sessionsOf(clicks);

    const received: { user: string; start: number; end: number; clicks: number; at: number }[] = [];
    const reader = kafka.consumer({ groupId: `sluice-test-ticks-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 200 });
    await reader.connect();
    await reader.subscribe({ topic: output, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        const v = JSON.parse(message.value!.toString());
        received.push({ user: message.key!.toString(), start: v.start, end: v.end, clicks: v.clicks, at: Date.now() });
      },
    });

    // A fresh stage: a fresh consumer group (sluice-<service>-<stage>-sessions).
    const child = spawn(
      process.execPath,
      [bin, 'dev', 'sessions', '--brokers', brokers, '--tick', '1s', '--no-view', '--stage', `t${Date.now()}`],
      {
        cwd: project,
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      for (let i = 0; !/joined consumer group .*partitions 0/.test(stderr); i++) {
        assert.ok(i < 600, `the emulator did not join its group within 60 s:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(stderr, /idle ticks every 1s/);
      await produceJson(kafka, input, clicks);
      const producedAt = Date.now();
      const total = [...expected.values()].reduce((n, s) => n + s.length, 0);
      const lastDue = Math.max(...[...expected.values()].map((s) => dueAfter(s[s.length - 1][1])));
      while (received.length < total && Date.now() < producedAt + lastDue + TICK_MS + MARGIN_MS + 10_000)
        await new Promise((r) => setTimeout(r, 50));
      const measuredMs = Math.max(...received.map((r) => r.at)) - producedAt;

      assert.equal(received.length, total, `sessions received: ${JSON.stringify(received)}\n${stderr}`);
      for (const [user, sessions] of expected) {
        for (const [first, last] of sessions) {
          const got = received.find((r) => r.user === user && r.start === first);
          assert.ok(got, `${user}'s session from ${new Date(first).toISOString()} was not emitted`);
          assert.equal(got.end, last + GAP_MS);
          const due = dueAfter(last);
          const after = got.at - producedAt;
          // Never before the floor makes it due (it arrived after producedAt), and at most one
          // tick (plus latency) after.
          assert.ok(after >= due, `${user}'s session ending ${got.end} appeared ${after} ms after the producer stopped; due at ${due} ms`);
          assert.ok(
            after <= due + TICK_MS + MARGIN_MS,
            `${user}'s session ending ${got.end} appeared ${after} ms after the producer stopped; due at ${due} ms, allowed ${TICK_MS} ms tick + ${MARGIN_MS} ms`,
          );
        }
      }
      // The last sessions are due 25.1 s (bo) and 45 s (ana) after the last click arrives.
      assert.ok(measuredMs >= 45_000 && measuredMs <= 45_000 + TICK_MS + MARGIN_MS, `last session after ${measuredMs} ms`);
      t.diagnostic(`last session on the output topic ${measuredMs} ms after the producer stopped (due at 45000 ms)`);
    } finally {
      child.kill('SIGINT');
      await reader.disconnect();
    }
    // Shutdown is clean: no tick or timer keeps the process alive, and the summary counts ticks.
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 20_000).unref())]);
    if (code === 'hung') child.kill('SIGKILL');
    assert.equal(code, 0, stderr);
    const summary = /sessions: 20 records.*; (\d+) idle ticks closed (\d+) windows/.exec(stderr);
    assert.ok(summary, stderr);
    assert.equal(Number(summary[2]), 2, 'the two last sessions were closed by ticks, the others by later clicks');
    assert.ok(Number(summary[1]) >= 40, `a tick a second for about 45 s; got ${summary[1]}`);
  });
});
