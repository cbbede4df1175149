/**
 * The bad-input cases of issue 11, as one table: test/runtime/bad-input/*.test.ts asserts each
 * case in detail, and the fault suite (`npm run test:faults -- --json`) runs the same table for
 * its `badInputs`, `blockedPartitions`, `innocentDeadLetters` and `unaccounted` figures.
 *
 * A case is a function definition, the events that reach its real handler, and what must happen:
 * the exact dead letters (the bad records and nothing else), or, for an event that is not a Kafka
 * event as Lambda sends it, the error the handler throws. Either way no partition may be blocked
 * and every record of every batch is applied, filtered, late or dead-lettered.
 */
import { type Definition, keyedState, sluice, stream, sum } from 'sluice';
import { type BatchReport, type DeadLetter, type KafkaEvent, type KafkaEventRecord, manifestOf, unaccounted } from 'sluice/runtime';
import type { StateStore } from 'sluice/state';
import { CaptureLogger, CaptureSink, type InputRecord, lambdaContext, toEventRecord } from 'sluice/testing';
import { PartitionRunner } from '../../framework/src/runtime/partition-runner.js';

/** The state store a case runs with; some limits are DynamoDB's only. */
export type StoreKind = 'memory' | 'dynamodb';

/** A dead letter as the cases expect it: where it came from, the stage and the exact reason. */
export interface Letter {
  readonly offset: number;
  readonly key: string | null;
  readonly stage: string;
  readonly reason: string;
}

/** What must come of a case: exactly these dead letters, or (a malformed event) this error. */
export type Expected = { readonly letters: readonly Letter[] } | { readonly error: string };

/** One class of bad input, with innocent records around it. */
export interface BadInputCase {
  readonly name: string;
  readonly definition: Definition;
  readonly events: () => KafkaEvent[];
  readonly expect: (store: StoreKind) => Expected;
  /** Outputs and state the case must leave (the tests assert them; the fault suite counts a failure as a problem). */
  readonly check?: (run: CaseRun, store: StoreKind, state: StateStore) => void | Promise<void>;
}

/** What running a case's events through a fresh handler gave. */
export interface CaseRun {
  readonly responses: unknown[];
  /** What the handler threw, if it did (then the later events did not run). */
  readonly error: unknown;
  readonly messages: CaptureSink['messages'];
  readonly letters: readonly DeadLetter[];
  readonly logger: CaptureLogger;
  readonly reports: readonly BatchReport[];
}

const ctx = lambdaContext('bad-input') as never;
export const TOPIC = 'in';

/**
 * Runs events through a fresh handler of `def`, as deployed with SLUICE_PARTIAL_BATCH set to
 * `partialBatch` (false: no provisioned pollers, where any failure throws and Lambda retries the
 * whole batch).
 */
export async function run(def: Definition, store: StateStore, partialBatch: boolean, events: readonly KafkaEvent[]): Promise<CaseRun> {
  const handler = sluice(def);
  const sink = new CaptureSink();
  const letters = new CaptureSink();
  const logger = new CaptureLogger();
  const reports: BatchReport[] = [];
  handler.sluice.configure({ store, sink, deadLetters: letters, logger, onBatch: (r) => reports.push(r) });
  const saved = process.env.SLUICE_PARTIAL_BATCH;
  process.env.SLUICE_PARTIAL_BATCH = String(partialBatch);
  const responses: unknown[] = [];
  let error: unknown;
  try {
    for (const e of events) responses.push(await handler(e, ctx));
  } catch (e) {
    error = e;
  } finally {
    if (saved === undefined) delete process.env.SLUICE_PARTIAL_BATCH;
    else process.env.SLUICE_PARTIAL_BATCH = saved;
  }
  return { responses, error, messages: sink.messages, letters: letters.deadLetters, logger, reports };
}

/** Dead letters as {@link Letter}s. */
export const described = (ls: readonly DeadLetter[]): Letter[] =>
  ls.map((l) => ({ offset: l.record.offset, key: keyText(l.record), stage: l.stage, reason: l.reason }));

function keyText(r: KafkaEventRecord): string | null {
  return r.key == null ? null : Buffer.from(r.key, 'base64').toString('utf8');
}

/** The figures the fault suite adds up over cases. */
export interface Verdict {
  /** Partitions failed in a response, or in an event the handler threw on although it was a valid event. */
  readonly blockedPartitions: number;
  /** Dead letters of records the case does not call bad. */
  readonly innocentDeadLetters: number;
  readonly unaccounted: number;
  /** What differs from the case's expectation (reasons, the error), for the fault suite's problems. */
  readonly problems: readonly string[];
}

/** Counts what a case's run did wrong. */
export function judge(c: BadInputCase, r: CaseRun, store: StoreKind): Verdict {
  const expected = c.expect(store);
  const problems: string[] = [];
  let blocked = 0;
  for (const resp of r.responses) blocked += (resp as { batchItemFailures?: unknown[] }).batchItemFailures?.length ?? 0;
  if ('error' in expected) {
    const message = r.error instanceof Error ? r.error.message : String(r.error);
    if (message !== expected.error) problems.push(`threw ${JSON.stringify(message)}, not ${JSON.stringify(expected.error)}`);
  } else if (r.error !== undefined) {
    blocked += Object.keys(c.events()[r.responses.length].records).length;
    problems.push(`threw ${r.error instanceof Error ? r.error.message : String(r.error)}`);
  }
  const bad = new Set('letters' in expected ? expected.letters.map((l) => l.offset) : []);
  const got = described(r.letters);
  const innocent = got.filter((l) => !bad.has(l.offset)).length;
  if ('letters' in expected && JSON.stringify(got) !== JSON.stringify(expected.letters))
    problems.push(`dead letters ${JSON.stringify(got).slice(0, 500)}, not ${JSON.stringify(expected.letters).slice(0, 500)}`);
  let missing = 0;
  for (const report of r.reports) missing += unaccounted(report.stats);
  return { blockedPartitions: blocked, innocentDeadLetters: innocent, unaccounted: missing, problems };
}

// ---------- building events ----------

type Raw = { key?: Buffer | null; value?: Buffer | null; headers?: Record<string, Buffer> };

/** A record of partition 0 at `offset`, as users write them. */
const rec = (offset: number, r: InputRecord): KafkaEventRecord => toEventRecord(r, TOPIC, 0, offset);

/** A record of partition 0 at `offset` with raw bytes. */
function raw(offset: number, r: Raw & { timestamp: number }): KafkaEventRecord {
  return {
    topic: TOPIC,
    partition: 0,
    offset,
    timestamp: r.timestamp,
    timestampType: 'CREATE_TIME',
    ...(r.key == null ? {} : { key: r.key.toString('base64') }),
    value: r.value == null ? null : r.value.toString('base64'),
    headers: Object.entries(r.headers ?? {}).map(([name, v]) => ({ [name]: [...v] })),
  };
}

function event(records: KafkaEventRecord[]): KafkaEvent {
  return { eventSource: 'aws:kafka', records: { [`${TOPIC}-0`]: records } } as KafkaEvent;
}

/** Records of partition 0 from `from` on. */
const records = (from: number, rs: readonly InputRecord[]) => rs.map((r, i) => rec(from + i, r));

// ---------- definitions ----------

const windowed = (name: string, opts: { key?: 'json' | 'string'; value?: 'json' | 'string' } = {}) =>
  stream<{ v: number }>(TOPIC, { name, ...opts })
    .tumblingWindow('10s')
    .aggregate(sum('v'), { name: 'total' })
    .to('out');

const passThrough = (name: string, opts: { key?: 'json' | 'string' | 'bytes'; value?: 'json' | 'string' | 'bytes' } = {}) =>
  stream<unknown>(TOPIC, { name, ...opts })
    .map((v) => v, { name: 'same' })
    .to('out');

/** Window sums as `[key, sum]`, sorted by key. */
export const sums = (ms: readonly { key: string | null; value: unknown }[]): [string | null, unknown][] =>
  ms
    .map((m): [string | null, unknown] => [m.key, (m.value as { value: unknown }).value])
    .sort((x, y) => String(x[0]).localeCompare(String(y[0])));

/** Innocent records of keys a and b (v 1 and 2), then window closers at 20 s. */
const around = (from: number) =>
  records(from, [
    { key: 'a', value: { v: 1 }, timestamp: 1_000 },
    { key: 'b', value: { v: 2 }, timestamp: 1_000 },
  ]);
const closers = (from: number) =>
  records(from, [
    { key: 'a', value: { v: 0 }, timestamp: 20_000 },
    { key: 'b', value: { v: 0 }, timestamp: 20_000 },
  ]);

function expectSums(want: Record<string, number>) {
  const sorted = Object.entries(want).sort((x, y) => x[0].localeCompare(y[0]));
  return (r: CaseRun) => assertEqual(sums(r.messages), sorted, 'window sums');
}

function assertEqual(got: unknown, want: unknown, what: string): void {
  const a = JSON.stringify(got);
  const b = JSON.stringify(want);
  if (a !== b) throw new Error(`${what}: ${a.slice(0, 300)}, expected ${b.slice(0, 300)}`);
}

const MB = 1024 * 1024;
const big = (bytes: number, fill = 'x') => fill.repeat(bytes);
const deep = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
const notUtf8 = Buffer.from([0x61, 0xff, 0xfe, 0x62]);
const notUtf8Text = "the 4 bytes are not valid UTF-8 text (0x61 0xff 0xfe 0x62); read binary data with the 'bytes' serializer.";

const keyLimitReason = (def: Definition, key: string, fn: string) => {
  const namespace = new PartitionRunner(manifestOf(def), { kind: 'memory' } as never).windows[0].namespace;
  return (
    `the record key "${key.slice(0, 40)}…" is ${Buffer.byteLength(key)} bytes, over DynamoDB's 1,024-byte sort key limit (less the 2-byte \`k:\` prefix): ` +
    `state "${namespace}" of function "${fn}" cannot be kept under it (a key may be at most 1022 bytes); use a shorter key, e.g. a hash of it, with key().`
  );
};

const malformedError = (what: string) =>
  `the Lambda event is not a Kafka event as Lambda sends it: ${what}; no record of it was processed. Check how the event was built (sluice/testing's toKafkaEvents builds valid ones).`;

const kept = keyedState<unknown>('kept');
const protoValue = '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"v":1}';

// ---------- the cases ----------

const oversizedKeyWindow = windowed('oversized-key');
const bigKey = big(100_000, 'k');

/**
 * Every bad-input class, with innocent records around each bad one.
 *
 * @example
 * for (const c of badInputCases) judge(c, await run(c.definition, new MemoryStore(), true, c.events()), 'memory');
 */
export const badInputCases: readonly BadInputCase[] = [
  {
    name: 'oversized value, key and header (each near the 6 MB event cap), stateless',
    definition: passThrough('oversized-stateless'),
    events: () => [
      event([
        ...records(0, [{ key: 'a', value: { v: 1 }, timestamp: 1_000 }]),
        rec(1, { key: 'a', value: { pad: big(4 * MB) }, timestamp: 1_000 }),
      ]),
      event([
        rec(2, { key: big(4 * MB, 'k'), value: { v: 2 }, timestamp: 1_000 }),
        ...records(3, [{ key: 'b', value: { v: 3 }, timestamp: 1_000 }]),
      ]),
      event([
        rec(4, { key: 'h', value: { v: 4 }, timestamp: 1_000, headers: { trace: big(1 * MB, 't') } }),
        ...records(5, [{ key: 'b', value: { v: 5 }, timestamp: 1_000 }]),
      ]),
    ],
    expect: () => ({ letters: [] }),
    check: (r) => {
      assertEqual(r.messages.length, 6, 'outputs');
      assertEqual((r.messages[1].value as { pad: string }).pad.length, 4 * MB, 'the 4 MB value');
      assertEqual(r.messages[2].key?.length, 4 * MB, 'the 4 MB key');
      assertEqual(r.messages[4].headers?.trace?.length, MB, 'the 1 MB header');
    },
  },
  {
    name: 'oversized value (4 MB) into a window',
    definition: windowed('oversized-value'),
    events: () => [event([...around(0), rec(2, { key: 'a', value: { v: 5, pad: big(4 * MB) }, timestamp: 2_000 }), ...closers(3)])],
    expect: () => ({ letters: [] }),
    check: expectSums({ a: 6, b: 2 }),
  },
  {
    name: 'oversized key (100 KB) into a window',
    definition: oversizedKeyWindow,
    events: () => [
      event([
        ...around(0),
        rec(2, { key: bigKey, value: { v: 5 }, timestamp: 2_000 }),
        ...closers(3),
        rec(5, { key: bigKey, value: { v: 0 }, timestamp: 20_000 }),
      ]),
    ],
    expect: (store) => {
      if (store === 'memory') return { letters: [] };
      const reason = keyLimitReason(oversizedKeyWindow, bigKey, 'oversized-key');
      return {
        letters: [
          { offset: 2, key: bigKey, stage: 'state', reason },
          { offset: 5, key: bigKey, stage: 'state', reason },
        ],
      };
    },
    check: (r, store) => expectSums(store === 'memory' ? { a: 1, b: 2, [bigKey]: 5 } : { a: 1, b: 2 })(r),
  },
  {
    name: 'key bytes that are not UTF-8 (string key serializer)',
    definition: windowed('utf8-key'),
    events: () => [event([...around(0), raw(2, { key: notUtf8, value: Buffer.from('{"v":5}'), timestamp: 2_000 }), ...closers(3)])],
    expect: () => ({
      letters: [{ offset: 2, key: 'a\ufffd\ufffdb', stage: 'deserialize key', reason: `key is not valid string: ${notUtf8Text}` }],
    }),
    check: expectSums({ a: 1, b: 2 }),
  },
  {
    name: 'key bytes that are not UTF-8 (json key serializer)',
    definition: windowed('utf8-json-key', { key: 'json' }),
    events: () => [
      event([
        ...records(0, [
          { key: '"a"', value: { v: 1 }, timestamp: 1_000 },
          { key: '"ü€"', value: { v: 2 }, timestamp: 1_000 },
        ]),
        raw(2, { key: notUtf8, value: Buffer.from('{"v":5}'), timestamp: 2_000 }),
        ...records(3, [
          { key: '"a"', value: { v: 0 }, timestamp: 20_000 },
          { key: '"ü€"', value: { v: 0 }, timestamp: 20_000 },
        ]),
      ]),
    ],
    expect: () => ({
      letters: [{ offset: 2, key: 'a\ufffd\ufffdb', stage: 'deserialize key', reason: `key is not valid json: ${notUtf8Text}` }],
    }),
    check: expectSums({ a: 1, 'ü€': 2 }),
  },
  {
    name: 'value bytes that are not UTF-8 (json value serializer)',
    definition: windowed('utf8-value'),
    events: () => [event([...around(0), raw(2, { key: Buffer.from('a'), value: notUtf8, timestamp: 2_000 }), ...closers(3)])],
    expect: () => ({ letters: [{ offset: 2, key: 'a', stage: 'deserialize value', reason: `value is not valid json: ${notUtf8Text}` }] }),
    check: expectSums({ a: 1, b: 2 }),
  },
  {
    name: 'value bytes that are not UTF-8 (string value serializer); valid multi-byte text passes',
    definition: passThrough('utf8-string-value', { value: 'string' }),
    events: () => [
      event([
        raw(0, { key: Buffer.from('a'), value: Buffer.from('Zürich 😀 \ufffd'), timestamp: 1_000 }),
        raw(1, { key: Buffer.from('a'), value: notUtf8, timestamp: 1_000 }),
        raw(2, { key: Buffer.from('b'), value: Buffer.from('plain'), timestamp: 1_000 }),
      ]),
    ],
    expect: () => ({ letters: [{ offset: 1, key: 'a', stage: 'deserialize value', reason: `value is not valid string: ${notUtf8Text}` }] }),
    check: (r) =>
      assertEqual(
        r.messages.map((m) => m.value),
        ['Zürich 😀 \ufffd', 'plain'],
        'outputs',
      ),
  },
  {
    name: 'deeply nested JSON (100,000 levels); 1,000 levels pass',
    definition: passThrough('deep-json'),
    events: () => [
      event([
        raw(0, { key: Buffer.from('a'), value: Buffer.from(deep(1_000)), timestamp: 1_000 }),
        raw(1, { key: Buffer.from('a'), value: Buffer.from(deep(100_000)), timestamp: 1_000 }),
        raw(2, { key: Buffer.from('b'), value: Buffer.from(`{"s":"${'['.repeat(5_000)}"}`), timestamp: 1_000 }),
      ]),
    ],
    expect: () => ({
      letters: [
        {
          offset: 1,
          key: 'a',
          stage: 'deserialize value',
          reason:
            "value is not valid json: the JSON value is nested deeper than 1000 levels (arrays and objects in one another, at character 1000); flatten it, or read it with the 'string' serializer and parse it yourself.",
        },
      ],
    }),
    check: (r) => {
      assertEqual(r.messages.length, 2, 'outputs');
      assertEqual(JSON.stringify(r.messages[0].value), deep(1_000), 'the 1,000-level value');
    },
  },
  {
    name: '__proto__ and constructor keys in JSON values, kept in keyed state and outputs',
    definition: stream<Record<string, unknown>>(TOPIC, { name: 'proto', state: [kept] })
      .map(
        (v) => {
          const before = kept.get();
          kept.set(v);
          return { now: v, before: before ?? null };
        },
        { name: 'keep' },
      )
      .to('out'),
    events: () => [
      // Two events: the second reads the first's state back from the store.
      event([raw(0, { key: Buffer.from('a'), value: Buffer.from(protoValue), timestamp: 1_000 })]),
      event([
        raw(1, { key: Buffer.from('a'), value: Buffer.from('{"v":2}'), timestamp: 1_000 }),
        raw(2, { key: Buffer.from('b'), value: Buffer.from(protoValue), timestamp: 1_000 }),
      ]),
    ],
    expect: () => ({ letters: [] }),
    check: async (r, _store, state) => {
      assertEqual(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype');
      const out = r.messages.map((m) => JSON.stringify(m.value));
      const want = [`{"now":${protoValue},"before":null}`, `{"now":{"v":2},"before":${protoValue}}`, `{"now":${protoValue},"before":null}`];
      // Read back in a later batch (the memory store copies state), __proto__ stays data.
      assertEqual(out, want, 'outputs keep __proto__ as data');
      const stored = await state.read({ functionName: 'proto', topic: TOPIC, partition: 0 }, 'keyed:kept', ['a', 'b']);
      assertEqual(stored.get('a')?.value, { v: 2 }, 'state of a');
      assertEqual(JSON.stringify(stored.get('b')?.value), protoValue, 'state of b keeps __proto__ as data');
    },
  },
  {
    name: 'null and empty keys into a window: null is a dead letter, empty is a key',
    definition: windowed('null-key'),
    events: () => [
      event([
        ...around(0),
        ...records(2, [
          { key: null, value: { v: 5 }, timestamp: 2_000 },
          { key: '', value: { v: 7 }, timestamp: 2_000 },
          { key: '', value: { v: 0 }, timestamp: 20_000 },
        ]),
        ...closers(5),
      ]),
    ],
    expect: () => ({
      letters: [
        { offset: 2, key: null, stage: 'total', reason: 'window "total" needs a record key, and this record has none; set one with key()' },
      ],
    }),
    check: expectSums({ a: 1, b: 2, '': 7 }),
  },
  {
    name: 'null and empty keys, stateless: both pass',
    definition: passThrough('null-key-stateless'),
    events: () => [
      event(
        records(0, [
          { key: null, value: { v: 1 }, timestamp: 1_000 },
          { key: '', value: { v: 2 }, timestamp: 1_000 },
        ]),
      ),
    ],
    expect: () => ({ letters: [] }),
    check: (r) =>
      assertEqual(
        r.messages.map((m) => [m.key, m.value]),
        [
          [null, { v: 1 }],
          ['', { v: 2 }],
        ],
        'outputs',
      ),
  },
  {
    name: 'duplicate offsets in one event: the first is processed, the others are dead letters',
    definition: windowed('duplicates'),
    events: () => {
      const [a, b] = around(0);
      const dup = rec(1, { key: 'b', value: { v: 100 }, timestamp: 1_000 });
      const c = rec(2, { key: 'a', value: { v: 3 }, timestamp: 2_000 });
      return [event([a, b, c, dup, rec(2, { key: 'a', value: { v: 200 }, timestamp: 2_000 }), ...closers(3)])];
    },
    expect: () => {
      const why = (o: number) =>
        `offset ${o} of in-0 comes more than once in this event; the first record at that offset was processed and this one left out (Lambda's Kafka event never repeats an offset: check how the event was built).`;
      return {
        letters: [
          { offset: 1, key: 'b', stage: 'offset', reason: why(1) },
          { offset: 2, key: 'a', stage: 'offset', reason: why(2) },
        ],
      };
    },
    check: expectSums({ a: 4, b: 2 }),
  },
  {
    name: 'malformed event: no records object',
    definition: windowed('no-records'),
    events: () => [{ eventSource: 'aws:sqs', Records: [] } as unknown as KafkaEvent],
    expect: () => ({
      error:
        'the Lambda event has no "records" object, so it is not an MSK or self-managed Kafka event (eventSource: "aws:sqs"); trigger this function from an msk or kafka event.',
    }),
  },
  {
    name: 'malformed event: records is an array',
    definition: windowed('records-array'),
    events: () => [{ eventSource: 'aws:kafka', records: [around(0)] } as unknown as KafkaEvent],
    expect: () => ({ error: malformedError('records["0"] is not named <topic>-<partition> (e.g. "readings-0")') }),
  },
  {
    name: "malformed event: a partition's records are not an array",
    definition: windowed('group-object'),
    events: () => [{ eventSource: 'aws:kafka', records: { 'in-0': { 0: around(0)[0] } } } as unknown as KafkaEvent],
    expect: () => ({ error: malformedError('records["in-0"] is an object, not an array of records') }),
  },
  {
    name: 'malformed event: a partition key not of the form topic-N',
    definition: windowed('group-name'),
    events: () => [{ eventSource: 'aws:kafka', records: { 'in-0': around(0), in: closers(3) } } as unknown as KafkaEvent],
    expect: () => ({ error: malformedError('records["in"] is not named <topic>-<partition> (e.g. "readings-0")') }),
  },
  {
    name: 'malformed event: a record without an offset',
    definition: windowed('no-offset'),
    events: () => {
      const [a, b] = around(0);
      const { offset: _, ...noOffset } = b;
      return [event([a, noOffset as KafkaEventRecord])];
    },
    expect: () => ({ error: malformedError('record 1 of records["in-0"] has offset undefined, not a whole number of at least 0') }),
  },
  {
    name: 'malformed event: a record with a non-numeric offset',
    definition: windowed('text-offset'),
    events: () => {
      const [a, b] = around(0);
      return [event([a, { ...b, offset: '1' as unknown as number }])];
    },
    expect: () => ({ error: malformedError('record 1 of records["in-0"] has offset "1", not a whole number of at least 0') }),
  },
];
