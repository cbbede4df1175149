// The emulated tick schedule on its own, without a broker: the sessions example's handler invoked
// with the tick event on a period, never piled up, stopped cleanly, its failures said.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Context } from 'aws-lambda';
import { handler as sessions } from '../../../functions/sessions/handler.js';
import { CaptureSink } from '../../../framework/src/io/sinks.js';
import { emptyStats } from '../../../framework/src/local/emulator/stats.js';
import { startTicker } from '../../../framework/src/local/emulator/ticker.js';
import type { SluiceHandler } from '../../../framework/src/runtime/handler.js';
import { lambdaContext } from '../../../framework/src/runtime/lambda-context.js';
import { type InputRecord, type KafkaEvent, toKafkaEvents } from '../../../framework/src/runtime/msk-event.js';
import type { EndOffsets } from '../../../framework/src/runtime/tick.js';
import { MemoryStore } from '../../../framework/src/state/memory-store.js';
import { CaptureLogger } from '../../../framework/src/testing/index.js';

const sample: InputRecord[] = readFileSync(path.resolve(import.meta.dirname, '../../../functions/sessions/sample.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const config = { functionName: 'sessions', timeoutMs: 2_000 };
const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; !cond(); i++) {
    assert.ok(i < 200, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** The sessions handler with the sample applied at wall clock `wall`; `clock.now` moves its wall clock. */
async function sessionsAfterSample(wall: number) {
  const clock = { now: wall };
  const capture = new CaptureSink();
  sessions.sluice.configure({
    store: new MemoryStore(),
    sink: capture,
    deadLetters: capture,
    logger: new CaptureLogger(),
    clock: () => clock.now,
  });
  for (const event of toKafkaEvents(sample, { topic: 'clicks', batchSize: 100 }))
    await sessions(event as KafkaEvent, lambdaContext('sessions') as never);
  return { clock, capture };
}

/** Wraps a handler to see what it is invoked with, and to make each tick last `ms`. */
function spying(h: SluiceHandler, seen: { event: unknown; functionName: string }[], ms = 0, inFlight = { n: 0 }): SluiceHandler {
  return Object.assign(
    async (event: KafkaEvent, context: Context) => {
      inFlight.n++;
      seen.push({ event, functionName: context.functionName });
      try {
        await new Promise((r) => setTimeout(r, ms));
        return await h(event, context);
      } finally {
        inFlight.n--;
      }
    },
    { sluice: h.sluice },
  ) as unknown as SluiceHandler;
}

const offsets: EndOffsets = { endOffsets: async () => new Map([[0, sample.length]]) };

test('each period the handler gets the tick event with a Lambda context; once the floor makes them due, the last sessions close and are counted', async () => {
  const wall = Date.parse('2026-01-01T00:10:00Z');
  const { clock, capture } = await sessionsAfterSample(wall);
  assert.equal(capture.messages.length, 4, 'the sessions later clicks closed');
  const stats = emptyStats('sessions');
  const seen: { event: unknown; functionName: string }[] = [];
  const notes: string[] = [];
  const ticker = startTicker({ handler: spying(sessions, seen), config, offsets, stats, periodMs: 20, notice: (m) => notes.push(m) });
  await until(() => stats.ticks.runs >= 2, 'two ticks');
  assert.equal(capture.messages.length, 4, 'nothing is due 0 s after the last click arrived');
  clock.now = wall + 26_000; // bo's last session: due 25.117 s after arrival
  await until(() => capture.messages.length === 5, "bo's last session");
  clock.now = wall + 45_000; // ana's: the newest click + 30 s gap + 5 s grace + 10 s idle
  await until(() => capture.messages.length === 6, "ana's last session");
  await ticker.stop();
  assert.deepEqual(
    capture.messages.slice(4).map((m) => m.key),
    ['bo', 'ana'],
  );
  assert.equal(stats.ticks.windowsClosed, 2);
  assert.equal(stats.windowsEmitted, 2, 'tick results count as window results too');
  assert.equal(stats.ticks.periodMs, 20);
  assert.equal(stats.ticks.failed, 0, notes.join('\n'));
  assert.ok(stats.ticks.lastAt !== undefined && Date.now() - stats.ticks.lastAt < 5_000);
  assert.ok(seen.length >= 3);
  for (const s of seen) assert.deepEqual(s, { event: { sluice: 'tick' }, functionName: 'sessions' });
});

test('a tick still running when the next is due makes it skip; stop() waits for the tick in flight and no tick starts after it', async () => {
  await sessionsAfterSample(Date.now());
  const stats = emptyStats('sessions');
  const seen: { event: unknown; functionName: string }[] = [];
  const inFlight = { n: 0 };
  const notes: string[] = [];
  const ticker = startTicker({
    handler: spying(sessions, seen, 150, inFlight),
    config,
    offsets,
    stats,
    periodMs: 20,
    notice: (m) => notes.push(m),
  });
  await until(() => stats.ticks.runs >= 1 && inFlight.n === 1, 'a second tick in flight');
  await ticker.stop();
  assert.equal(inFlight.n, 0, 'stop() returned with a tick still running');
  const calls = seen.length;
  assert.ok(stats.ticks.skipped >= 4, `ticks due while one ran are skipped; skipped ${stats.ticks.skipped}`);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(seen.length, calls, 'no tick after stop()');
  assert.equal(stats.ticks.runs, calls, 'every tick started ran to the end');
  assert.equal(notes.filter((n) => /still running after 20ms; ticks are skipped until it ends/.test(n)).length, 1, notes.join('\n'));
});

test('a tick that fails (the broker cannot say its end offsets) is counted and said, first and then at every doubling of the streak', async () => {
  await sessionsAfterSample(Date.now());
  const stats = emptyStats('sessions');
  const notes: string[] = [];
  const broken: EndOffsets = {
    endOffsets: async () => {
      throw new Error('broker down');
    },
  };
  const ticker = startTicker({ handler: sessions, config, offsets: broken, stats, periodMs: 10, notice: (m) => notes.push(m) });
  await until(() => stats.ticks.failed >= 5, 'five failed ticks');
  await ticker.stop();
  assert.equal(stats.ticks.runs, 0);
  assert.match(notes[0], /^sessions: idle tick failed \(broker down\); the next tick tries again$/);
  assert.match(notes[1], /^sessions: idle tick failed 2 times in a row \(broker down\)/);
  assert.match(notes[2], /^sessions: idle tick failed 4 times in a row/);
  assert.equal(notes.length, Math.floor(Math.log2(stats.ticks.failed)) + 1, 'one notice per doubling');
});

test('the emulator refuses to tick a function whose event is on another topic than its handler reads, before connecting', async () => {
  const { emulateFunction } = await import('../../../framework/src/local/emulator/index.js');
  const { esmConfig } = await import('../../../framework/src/config/event-source-mapping.js');
  const { readServerless } = await import('../../../framework/src/config/serverless-yml.js');
  const root = path.resolve(import.meta.dirname, '../../..');
  const service = readServerless(path.join(root, 'serverless.yml'));
  const entry = service.functions.find((f) => f.name === 'sessions')!;
  const config = { ...esmConfig(entry, service.service, service), topic: 'other-clicks' };
  const kafka = {} as never; // never reached: the check comes first
  await assert.rejects(emulateFunction({ kafka, handler: sessions, config }), {
    message:
      'function "sessions": its handler reads topic "clicks" but its event is on topic "other-clicks", and its idle windows need ticks on the topic it reads; make them the same, or run without ticks (--tick off).',
  });
});
