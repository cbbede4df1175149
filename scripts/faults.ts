/**
 * The exactly-once fault-injection suite (issue 4, Acceptance): the workloads of
 * test/faults/harness.ts under injected crashes in the middle of state writes, replays with random
 * re-batching and concurrent stale invocations, and (issue 11) DynamoDB throttling storms, Kafka
 * broker outages while outputs are sent, invocations cut off by their timeout, and state over
 * 64 KB (chunked on DynamoDB, with crashes between its chunk puts and its head put), against
 * DynamoDB Local and the in-memory store, compared with a run without faults.
 *
 *   npm run test:faults -- [--json] [--seed N] [--crashes N] [--time-limit SECONDS]
 *                          [--store both|memory|dynamodb] [--workloads sensor-sums,sessions,…]
 *
 * `--crashes` is the number of crashes to inject per store (default 500). Progress goes to stderr.
 *
 * Then, per store (issue 14), the exactly-once variant of test/faults/exactly-once.ts on the
 * real broker (127.0.0.1:SLUICE_KAFKA_PORT, 9092): outputs through Kafka transactions under
 * crashes at every point of the exactly-once order, whole and re-batched retries, zombies and idle
 * ticks, read back read_committed and compared with the fault-free reference; its figures are the
 * stores' added up.
 * `--eos-crashes N` (default 80, half of it on DynamoDB when both stores run; 0 skips it) and
 * `--eos-time-limit SECONDS` (default 150, for all stores) bound it; without a broker it is skipped
 * with a note and its fields are null.
 * Then, per store, the idle-tick scenarios of test/faults/ticks.ts (issue 12: ticks racing
 * invocations, crashing at random points and running stale; about a sixth of the store's time),
 * and every bad-input case of test/support/bad-inputs.ts through the real handler in both
 * deployment modes (issue 11).
 * With `--json`, stdout gets one detail line per store, then as its last line
 * `{"crashPoints": …, "replays": …, "staleInvocations": …, "lost": 0, "appliedTwice": 0, "duplicateEmits": …,
 *   "throttledCalls": …, "produceFailures": …, "timeouts": …, "chunkedValues": …, "pageSplits": …, "pageCrashes": …,
 *   "badInputs": …, "blockedPartitions": 0, "innocentDeadLetters": 0, "unaccounted": 0,
 *   "ticks": …, "tickCrashes": …, "staleTicks": …, "raced": …, "windowsClosedByTicks": …, "conflictingValues": 0, "unclosedWindows": 0,
 *   "outputsExpected": …, "outputsSeen": …, "duplicates": 0, "missing": 0, "eosCrashes": …, "eosStale": …, "eosRetries": …, "eosTickCrashes": …}`
 * (`duplicateEmits` counts the at-least-once run's; `duplicates` and `missing` the exactly-once
 * variant's: result ids read back more than once, and expected ids or tick-closed records never read).
 * (`lost` and `appliedTwice` include the tick scenarios': records in no outcome, or in two;
 * `conflictingValues`: result ids emitted with two values; `unclosedWindows`: window items still
 * open once the input ended and the partitions stayed quiet).
 * (`unaccounted`: input records in no outcome, over every batch of the workloads and the bad inputs;
 * `chunkedValues`: state versions the DynamoDB store kept in chunk items, counted at its client;
 * `pageSplits`: page splits it committed, with pages of 160 bytes; `pageCrashes`: crashes inside its
 * page writes: between pages, right after a split, before the directory item).
 * Exits 1 when a result was lost or applied twice, a stale invocation overwrote newer state,
 * something failed that was not injected, state was committed after a failed send, a fault class
 * was never injected (throttled calls, produce failures, timeouts), fewer crashes than asked for
 * fit in the time limit, the DynamoDB run chunked no value although the big-state workload ran,
 * split no page or crashed neither between page writes nor right after a split, or
 * a bad input blocked a partition, took an innocent record with it, or left a record unaccounted,
 * or a tick scenario lost a record, applied one twice, emitted an id with two values, left a window
 * open, or never injected one of its fault classes, or the exactly-once variant read an output
 * twice, missed one, read one with another value, let a zombie commit, or never injected one of
 * its crash points, zombie points, retry kinds or tick crashes.
 * DynamoDB Local: SLUICE_DYNAMODB_ENDPOINT, or 127.0.0.1:SLUICE_DYNAMODB_PORT (8000); `npm run infra:up` starts it.
 */
import { parseArgs } from 'node:util';
import { endpointOpen } from './infra/port.js';
import { type EosSuiteResult, mergeEosResults, runEosSuite } from '../test/faults/exactly-once.js';
import { brokers } from '../test/support/kafka.js';
import { DynamoDBStore, MemoryStore } from 'sluice/state';
import { type BadInputFigures, runBadInputs } from '../test/faults/bad-inputs.js';
import { runTickSuite, type TickSuiteResult } from '../test/faults/ticks.js';
import {
  ChunkCrash,
  dropTable,
  runSuite,
  type SuiteResult,
  Throttle,
  throttledDynamoDBStore,
  type Totals,
  type Workload,
  workloads,
} from '../test/faults/harness.js';

const { values: args } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    crashes: { type: 'string', default: '500' },
    'time-limit': { type: 'string', default: '150' },
    store: { type: 'string', default: 'both' },
    workloads: { type: 'string' },
    'eos-crashes': { type: 'string', default: '80' },
    'eos-time-limit': { type: 'string', default: '150' },
  },
});

function positiveInt(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer; received ${JSON.stringify(text)}.`);
    process.exit(2);
  }
  return n;
}

const seed = positiveInt('seed', args.seed!);
const crashes = positiveInt('crashes', args.crashes!);
const limitMs = positiveInt('time-limit', args['time-limit']!) * 1_000;
const eosCrashes = positiveInt('eos-crashes', args['eos-crashes']!);
const eosLimitMs = positiveInt('eos-time-limit', args['eos-time-limit']!) * 1_000;
const stores = args.store === 'both' ? ['memory', 'dynamodb'] : [args.store!];
if (!stores.every((s) => s === 'memory' || s === 'dynamodb')) {
  console.error(`--store must be both, memory or dynamodb; received ${JSON.stringify(args.store)}.`);
  process.exit(2);
}
const all: Workload[] = Object.values(workloads);
const selected = args.workloads
  ? args.workloads.split(',').map((name) => {
      const w = all.find((x) => x.name === name.trim());
      if (!w) {
        console.error(`unknown workload "${name}"; known: ${all.map((x) => x.name).join(', ')}.`);
        process.exit(2);
      }
      return w;
    })
  : all;

const endpoint = process.env.SLUICE_DYNAMODB_ENDPOINT ?? `http://127.0.0.1:${process.env.SLUICE_DYNAMODB_PORT ?? 8000}`;

const started = Date.now();
// The suite stops starting scenarios at the time limit; this only catches a hang.
const watchdog = setTimeout(
  () => {
    console.error(
      `test:faults: still running ${Math.round((Date.now() - started) / 1000)} s after starting (limit ${limitMs / 1000} s); giving up.`,
    );
    process.exit(3);
  },
  limitMs + (eosCrashes > 0 ? eosLimitMs + 90_000 : 0) + 60_000,
);
watchdog.unref();

if (stores.includes('dynamodb') && !(await endpointOpen(endpoint))) {
  console.error(
    `test:faults: nothing answers on ${endpoint}; start DynamoDB Local with npm run infra:up, or run only the in-memory part with --store memory.`,
  );
  process.exit(2);
}

const results: SuiteResult[] = [];
const tickResults: TickSuiteResult[] = [];
const badInputs: (BadInputFigures & { store: string })[] = [];
const tables: string[] = [];
const newTable = async () => {
  const table = `sluice-faults-${Date.now()}-${process.pid}-${tables.length}`;
  tables.push(table);
  // Small pages, as the crash suite's store: the tick workloads' keys share pages and split them.
  const store = new DynamoDBStore({ table, endpoint, pageBytes: 160 });
  await store.ensureTable();
  return store;
};
try {
  for (const [i, kind] of stores.entries()) {
    // Memory is fast; give DynamoDB what memory leaves of its share.
    const share = (limitMs - (Date.now() - started)) / (stores.length - i);
    const storeMs = kind === 'memory' && stores.length > 1 ? Math.min(share, limitMs / 4) : share;
    const deadline = Date.now() + storeMs * 0.85;
    const throttle = new Throttle();
    const chunkCrash = new ChunkCrash();
    let shared: DynamoDBStore | undefined;
    if (kind === 'dynamodb') {
      const table = `sluice-faults-${Date.now()}-${process.pid}-${tables.length}`;
      tables.push(table);
      shared = await throttledDynamoDBStore(endpoint, table, throttle, chunkCrash);
      console.error(`test:faults: DynamoDB Local at ${endpoint}, table ${table}`);
    }
    results.push(
      await runSuite({
        label: kind,
        seed,
        crashPoints: crashes,
        deadline,
        workloads: selected,
        throttle,
        chunkCrash,
        store: () => shared ?? throttle.store(new MemoryStore()),
        onProgress: (line) => console.error(line),
      }),
    );
    throttle.close();
    const tickStore = kind === 'dynamodb' ? await newTable() : undefined;
    const ticks = await runTickSuite({
      label: kind,
      seed,
      deadline: Date.now() + storeMs * 0.15,
      store: () => tickStore ?? new MemoryStore(),
      onProgress: (line) => console.error(line),
    });
    tickResults.push(ticks);
    console.error(
      `test:faults: ${kind}: ${ticks.scenarios} tick scenarios, ${ticks.invocations} invocations, ${ticks.ticks} ticks (${ticks.tickCrashes} crashed: ${JSON.stringify(ticks.tickCrashPoints)}; ` +
        `${ticks.staleTicks} stale, ${ticks.races} races, ${ticks.raced} raced, ${ticks.moved} moved by ${ticks.movingEnds} arrivals), ${ticks.windowsClosedByTicks} windows closed by ticks, ` +
        `lost ${ticks.lost}, appliedTwice ${ticks.appliedTwice}, conflictingValues ${ticks.conflictingValues}, unclosed ${ticks.unclosed}, ${(ticks.ms / 1000).toFixed(1)} s`,
    );
    const figures = await runBadInputs(kind as 'memory' | 'dynamodb', async () =>
      kind === 'dynamodb' ? await newTable() : new MemoryStore(),
    );
    badInputs.push({ store: kind, ...figures });
    console.error(
      `test:faults: ${kind}: ${figures.badInputs} bad-input runs, blocked partitions ${figures.blockedPartitions}, innocent dead letters ${figures.innocentDeadLetters}, unaccounted ${figures.unaccounted}`,
    );
  }
} finally {
  for (const table of tables) await dropTable(endpoint, table);
}

let eos: EosSuiteResult | undefined;
if (eosCrashes > 0) {
  if (await endpointOpen(brokers)) {
    // Per store, as the suites above: the state commit runs beside the transaction's sends, so the
    // store's own crash points (page writes on DynamoDB) meet the transaction's. DynamoDB gets half
    // the crashes and the time (its writes are slower).
    for (const [i, kind] of stores.entries()) {
      const share = kind === 'dynamodb' && stores.length > 1 ? 0.5 : 1;
      const store = kind === 'dynamodb' ? await newTable() : undefined;
      console.error(`test:faults: exactly-once variant on the broker at ${brokers}, ${kind} state`);
      try {
        const run = await runEosSuite({
          seed: seed + i,
          crashes: Math.ceil(eosCrashes * share),
          deadline: Date.now() + (eosLimitMs * share) / (stores.length > 1 ? 1.5 : 1),
          ...(store ? { store: () => store } : {}),
          onProgress: (line) => console.error(`${line} (${kind})`),
        });
        eos = eos ? mergeEosResults(eos, run) : run;
      } finally {
        if (store) await dropTable(endpoint, store.table);
      }
    }
  } else
    console.error(`test:faults: no Kafka broker answers on ${brokers}; the exactly-once variant is skipped (npm run infra:up starts one).`);
}
const eosCrashesAsked = stores.reduce((n, kind) => n + Math.ceil(eosCrashes * (kind === 'dynamodb' && stores.length > 1 ? 0.5 : 1)), 0);

const totals: Totals = {
  crashPoints: 0,
  replays: 0,
  staleInvocations: 0,
  lost: 0,
  appliedTwice: 0,
  duplicateEmits: 0,
  throttledCalls: 0,
  produceFailures: 0,
  timeouts: 0,
  chunkedValues: 0,
};
const problems: string[] = [];
for (const r of results) {
  for (const k of Object.keys(totals) as (keyof Totals)[]) totals[k] += r[k];
  if (r.crashPoints < crashes)
    problems.push(`${r.store}: only ${r.crashPoints} of ${crashes} crashes fit in the time limit; raise --time-limit or lower --crashes.`);
  if (r.staleOverwrites > 0) problems.push(`${r.store}: stale invocations overwrote newer state ${r.staleOverwrites} time(s).`);
  if (r.commitsAfterFailedSend > 0)
    problems.push(`${r.store}: state was committed after the invocation's output send failed, ${r.commitsAfterFailedSend} time(s).`);
  // A run of a few hundred invocations injects each class many times; a tiny one may miss one.
  for (const k of ['throttledCalls', 'produceFailures', 'timeouts'] as const)
    if (r[k] === 0 && r.invocations >= 500)
      problems.push(`${r.store}: no ${k} were injected; the run was too short to exercise that fault class.`);
  // The big-state workload's values chunk on DynamoDB: a run that wrote none did not test large state.
  if (
    r.store === 'dynamodb' &&
    r.scenarios > selected.indexOf(workloads.bigState) &&
    selected.includes(workloads.bigState) &&
    r.chunkedValues === 0
  )
    problems.push(`${r.store}: no state value was chunked (over 64 KB); large state was not exercised.`);
  // Pages: the suite's store splits them, and crashes hit between page writes and after splits.
  if (r.store === 'dynamodb' && r.invocations >= 500 && (r.pageSplits === 0 || r.crashesBetweenPages === 0 || r.crashesAfterSplit === 0))
    problems.push(
      `${r.store}: pages were not exercised: ${r.pageSplits} splits, ${r.crashesBetweenPages} crashes between page writes, ${r.crashesAfterSplit} right after a split.`,
    );
  for (const e of r.unexpectedErrors.slice(0, 5)) problems.push(`${r.store}: not injected: ${e.split('\n')[0]}`);
  for (const f of r.failures.slice(0, 5)) {
    problems.push(
      `${r.store}: ${f.workload} seed ${f.seed}: lost ${f.lost} (${f.lostUntilFlush} only at the final flush), values differing ${f.valueDiffs}, state differing ${f.stateDiffs}; e.g. ${f.examples.slice(0, 2).join(' | ')}`,
    );
  }
  console.error(
    `test:faults: ${r.store}: ${r.scenarios} scenarios, ${r.invocations} invocations, ${r.crashPoints} crashes (${r.fatalCrashes} fatal, ${r.crashesBeforeAnyItem} before any item, ${r.crashesAfterEveryItem} after every item, ${r.crashesBetweenChunks} between chunk puts, ${r.crashesBeforeHead} between chunks and head, ${r.crashesBetweenPages} between pages, ${r.crashesAfterSplit} right after a page split, ${r.crashesBeforeDirectory} before the directory), ${r.chunkedValues} chunked values, ${r.pageSplits} page splits, ${r.replays} replays, ${r.staleInvocations} stale invocations (${r.staleFenced} fenced), ` +
      `${r.storms} throttling storms (${r.throttledCalls} calls throttled, ${r.throttleExhausted} out of time), ${r.outages} broker outages (${r.produceFailures} failed sends), ` +
      `${r.timeouts} timeouts (${r.timeoutsBeforeOutputs} before outputs, ${r.timeoutsBeforeCommit} before the commit, ${r.timeoutsMidCommit} mid-commit; ${r.timeoutsResumed} resumed), ` +
      `lost ${r.lost}, appliedTwice ${r.appliedTwice}, duplicateEmits ${r.duplicateEmits}, ${(r.ms / 1000).toFixed(1)} s`,
  );
}
const tickTotals = { ticks: 0, tickCrashes: 0, staleTicks: 0, raced: 0, windowsClosedByTicks: 0, conflictingValues: 0, unclosedWindows: 0 };
for (const t of tickResults) {
  totals.lost += t.lost;
  totals.appliedTwice += t.appliedTwice;
  for (const k of ['ticks', 'tickCrashes', 'staleTicks', 'raced', 'windowsClosedByTicks', 'conflictingValues'] as const)
    tickTotals[k] += t[k];
  tickTotals.unclosedWindows += t.unclosed;
  for (const f of t.failures.slice(0, 5))
    problems.push(`${t.store}: ticks: ${f.workload} seed ${f.seed}: ${f.examples.slice(0, 3).join(' | ')}`);
  for (const e of t.unexpectedErrors.slice(0, 5)) problems.push(`${t.store}: ticks: not injected: ${e.split('\n')[0]}`);
  if (t.tickCrashes === 0 || t.staleTicks === 0 || t.raced === 0 || t.windowsClosedByTicks === 0)
    problems.push(
      `${t.store}: ticks: a fault class was never injected (crashed ${t.tickCrashes}, stale ${t.staleTicks}, raced ${t.raced}, windows closed ${t.windowsClosedByTicks}).`,
    );
  // A few hundred scenarios hit every crash point; a shorter run (DynamoDB's) may miss one.
  if (t.scenarios >= 200) {
    for (const [what, n] of Object.entries({
      ...t.tickCrashPoints,
      'stale ticks': t.staleTicks,
      'raced ticks': t.raced,
      'windows closed by ticks': t.windowsClosedByTicks,
    }))
      if (n === 0) problems.push(`${t.store}: ticks: none of ${what}; the tick scenarios did not exercise it.`);
  }
}
if (tickTotals.conflictingValues > 0)
  problems.push(`${tickTotals.conflictingValues} window result id(s) were emitted with two different values.`);
if (tickTotals.unclosedWindows > 0)
  problems.push(`${tickTotals.unclosedWindows} window item(s) stayed open after the input ended and the partitions stayed quiet.`);
const bad = { badInputs: 0, blockedPartitions: 0, innocentDeadLetters: 0, unaccounted: 0 };
for (const r of results) bad.unaccounted += r.unaccounted;
for (const b of badInputs) {
  bad.badInputs += b.badInputs;
  bad.blockedPartitions += b.blockedPartitions;
  bad.innocentDeadLetters += b.innocentDeadLetters;
  bad.unaccounted += b.unaccounted;
  for (const p of b.problems.slice(0, 5)) problems.push(`${b.store}: bad input: ${p}`);
}
if (bad.blockedPartitions > 0) problems.push(`bad inputs blocked ${bad.blockedPartitions} partition(s).`);
if (bad.innocentDeadLetters > 0) problems.push(`bad inputs took ${bad.innocentDeadLetters} innocent record(s) to the dead-letter path.`);
if (bad.unaccounted > 0)
  problems.push(`${bad.unaccounted} input record(s) were counted in no outcome (applied, filtered, late, dead-lettered).`);
if (eos) {
  if (eos.duplicates > 0 || eos.missing > 0 || eos.wrongValues > 0)
    problems.push(
      `exactly-once: ${eos.duplicates} output(s) read twice, ${eos.missing} missing, ${eos.wrongValues} with a wrong value; e.g. ${eos.examples.slice(0, 3).join(' | ')}`,
    );
  if (eos.outputsExpected === 0) problems.push('exactly-once: no output was expected: the variant tested nothing.');
  if (eos.staleCommits > 0)
    problems.push(`exactly-once: zombies committed ${eos.staleCommits} transaction(s) after their retry claimed the id.`);
  if (eos.crashes < eosCrashesAsked)
    problems.push(
      `exactly-once: only ${eos.crashes} of ${eosCrashesAsked} crashes fit in the time limit; raise --eos-time-limit or lower --eos-crashes.`,
    );
  const never = [
    ...Object.entries(eos.crashPoints)
      .filter(([, n]) => n === 0)
      .map(([p]) => `crashes ${p}`),
    ...Object.entries(eos.stalePoints)
      .filter(([, n]) => n === 0)
      .map(([p]) => `zombies stopped ${p}`),
    ...(eos.wholeRetries === 0 ? ['whole retries'] : []),
    ...(eos.rebatchedRetries === 0 ? ['re-batched retries'] : []),
    ...(eos.tickCrashes === 0 ? ['tick crashes'] : []),
    ...(eos.windowsClosedByTicks === 0 ? ['windows closed by ticks'] : []),
  ];
  if (never.length > 0) problems.push(`exactly-once: never injected: ${never.join(', ')}.`);
  for (const e of eos.unexpectedErrors.slice(0, 5)) problems.push(`exactly-once: not injected: ${e.split('\n')[0]}`);
  console.error(
    `test:faults: exactly-once: ${eos.scenarios} scenarios, ${eos.invocations} invocations, ${eos.crashes} crashes ${JSON.stringify(eos.crashPoints)}, ` +
      `${eos.ticks} ticks (${eos.tickCrashes} crashed: ${JSON.stringify(eos.tickCrashPoints)}; ${eos.windowsClosedByTicks} windows closed), ` +
      `${eos.retries} retries (${eos.wholeRetries} whole, ${eos.rebatchedRetries} re-batched, ${eos.warmRetries} in the same container), ` +
      `${eos.staleInvocations} zombies ${JSON.stringify(eos.stalePoints)} (${eos.staleFenced} fenced, ${eos.staleCommits} committed), ` +
      `${eos.partitionFailures} partition failures ${JSON.stringify(eos.failureReasons)}; read by ${eos.reader}: ` +
      `expected ${eos.outputsExpected}, seen ${eos.outputsSeen}, duplicates ${eos.duplicates}, missing ${eos.missing}, wrong values ${eos.wrongValues}; ` +
      `a kafkajs read_committed reader saw ${eos.kafkajsAbortedSeen} aborted message(s) (${eos.kafkajsDuplicates} duplicates); ${(eos.ms / 1000).toFixed(1)} s`,
  );
}
for (const p of problems) console.error(`test:faults: ${p}`);
console.error(`test:faults: ${((Date.now() - started) / 1000).toFixed(1)} s in all`);

if (args.json) {
  for (const r of results) {
    const { failures, unexpectedErrors, ...detail } = r;
    console.log(JSON.stringify({ ...detail, unexpectedErrors: unexpectedErrors.length, failures: failures.slice(0, 10) }));
  }
  for (const t of tickResults) {
    const { failures, unexpectedErrors, ...detail } = t;
    console.log(
      JSON.stringify({ ticksOf: t.store, ...detail, unexpectedErrors: unexpectedErrors.length, failures: failures.slice(0, 10) }),
    );
  }
  const pages = { pageSplits: 0, pageCrashes: 0 };
  for (const r of results) {
    pages.pageSplits += r.pageSplits;
    pages.pageCrashes += r.crashesBetweenPages + r.crashesAfterSplit + r.crashesBeforeDirectory;
  }
  if (eos) {
    const { examples, unexpectedErrors, ...detail } = eos;
    console.log(JSON.stringify({ eosOf: eos.guarantee, ...detail, unexpectedErrors: unexpectedErrors.length, examples }));
  }
  const exactlyOnce = {
    outputsExpected: eos?.outputsExpected ?? null,
    outputsSeen: eos?.outputsSeen ?? null,
    duplicates: eos?.duplicates ?? null,
    missing: eos?.missing ?? null,
    eosCrashes: eos?.crashes ?? null,
    eosStale: eos?.staleInvocations ?? null,
    eosRetries: eos?.retries ?? null,
    eosTickCrashes: eos?.tickCrashes ?? null,
  };
  console.log(JSON.stringify({ ...totals, ...bad, ...tickTotals, ...pages, ...exactlyOnce }));
} else {
  console.log(
    `crash points ${totals.crashPoints}, replays ${totals.replays}, stale invocations ${totals.staleInvocations}, throttled calls ${totals.throttledCalls}, produce failures ${totals.produceFailures}, timeouts ${totals.timeouts}, ` +
      `lost ${totals.lost}, applied twice ${totals.appliedTwice}, duplicate emits ${totals.duplicateEmits}; ` +
      `bad inputs ${bad.badInputs}, blocked partitions ${bad.blockedPartitions}, innocent dead letters ${bad.innocentDeadLetters}, unaccounted ${bad.unaccounted}; ` +
      `ticks ${tickTotals.ticks} (${tickTotals.tickCrashes} crashed, ${tickTotals.staleTicks} stale, ${tickTotals.raced} raced), windows closed by ticks ${tickTotals.windowsClosedByTicks}, conflicting values ${tickTotals.conflictingValues}, unclosed windows ${tickTotals.unclosedWindows}` +
      (eos
        ? `; exactly-once: outputs expected ${eos.outputsExpected}, seen ${eos.outputsSeen}, duplicates ${eos.duplicates}, missing ${eos.missing} (${eos.crashes} crashes, ${eos.staleInvocations} zombies, ${eos.retries} retries)`
        : ''),
  );
}
process.exitCode = totals.lost > 0 || totals.appliedTwice > 0 || problems.length > 0 ? 1 : 0;
