import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SLUICE_ENV } from '../env.js';
import { errorText, SluiceError, StateConflictError } from '../errors.js';
import { CaptureSink } from '../io/sinks.js';
import { type DeadLetter, letterOrigin, type OutputMessage } from '../pipeline/records.js';
import { type BatchStats, newStats, sumStats } from '../pipeline/stats.js';
import type { SluiceHandler } from '../runtime/handler.js';
import { lambdaContext } from '../runtime/lambda-context.js';
import type { EndOffsets } from '../runtime/tick.js';
import { type KafkaEvent, toKafkaEvents } from '../runtime/msk-event.js';
import { MemoryStore } from '../state/memory-store.js';
import { readServerless } from '../config/serverless-yml.js';
import { loadHandler, resolveFunction } from './functions.js';
import { devStateStore } from './state-option.js';
import { readInputFile } from './input.js';
import { invokeWithRetries } from './retry.js';
import { countOpenWindows } from './view.js';
import { emulate } from './emulate-cli.js';
import { produce } from './produce.js';
import { scaffold } from './scaffold.js';
import { tickTimes, wallClock } from './time-options.js';

const USAGE = `Usage:
  sluice dev <function> [--input <file.jsonl>] [--output <file.jsonl>] [--batch-size N] [--retries N] [--flush] [--quiet]
             [--state memory|dynamodb] [--dynamodb-endpoint <url>] [--wall-clock <time>] [--tick-at <time>]...
      Runs a function on a JSON-lines file (default: the sample.jsonl beside its handler) through its
      real Lambda handler, as MSK events, with in-memory state. No Kafka, no AWS.
      --wall-clock: the wall clock while the input is read (ISO time or epoch ms; default: now).
      --tick-at: after the input, an idle tick at this wall-clock time (repeat, or comma-separate):
      a duration after --wall-clock (45s) or an ISO time / epoch ms. Ticks close idle windows as
      the deployed schedule would, each partition caught up at its last record; before --flush.
  sluice dev [<function>] --brokers <host:port> [--config <serverless.yml>] [--stage <stage>] [--timeout <seconds>] [--no-view]
             [--state memory|dynamodb] [--dynamodb-endpoint <url>] [--stall-notice <seconds>] [--tick <duration>|off]
             [--guarantee exactly-once|at-least-once]
      Emulates Lambda's event source mapping against a real Kafka broker for one function, or for
      every function of serverless.yml with an msk/kafka event, with the settings the Serverless
      plugin deploys (stage: --stage, provider.stage or dev). Outputs and dead letters go to Kafka.
      Functions with idle windows get an idle tick every --tick (default: its deployed period, the
      sluice tick option of serverless.yml, else 1m; off: none).
      --guarantee: run with this delivery guarantee instead of the source's; exactly-once sends
      each partition batch's outputs and dead letters in one Kafka transaction (read them with
      isolation.level=read_committed).
  sluice produce <function|topic> --brokers <host:port> [--input <file.jsonl>] [--partitions N]
      Creates the topic if missing and produces a JSON-lines file to it (default: the function's
      source topic and its sample file).
  sluice invoke <function> --event <msk-event.json>
      One invocation with a given Lambda event; prints the outputs and the handler's response.

  sluice new <name> [--topic <topic>] [--dir functions]
      Creates functions/<name>/ (a handler and a sample input) from templates/ and prints its
      serverless.yml entry.

<function> is a name from serverless.yml or a path to a handler file.`;

/**
 * Entry point of the `sluice` CLI; returns the exit code.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'dev':
        return await dev(rest);
      case 'invoke':
        return await invoke(rest);
      case 'produce':
        return await produce(rest);
      case 'new':
        return await scaffold(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        console.log(USAGE);
        return command === undefined ? 1 : 0;
      default:
        console.error(`sluice: unknown command "${command}".\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (
      e instanceof SluiceError ||
      (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ||
      (e as { code?: string }).code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
    ) {
      console.error(`sluice ${command}: ${errorText(e)}`);
      return 2;
    }
    throw e;
  }
}

async function dev(args: string[]): Promise<number> {
  if (args.some((a) => a === '--brokers' || a.startsWith('--brokers='))) return emulate(args);
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      input: { type: 'string', short: 'i' },
      output: { type: 'string', short: 'o' },
      'batch-size': { type: 'string' },
      flush: { type: 'boolean', default: false },
      quiet: { type: 'boolean', short: 'q', default: false },
      retries: { type: 'string', default: '2' },
      state: { type: 'string' },
      'dynamodb-endpoint': { type: 'string' },
      'wall-clock': { type: 'string' },
      'tick-at': { type: 'string', multiple: true },
      tick: { type: 'string' },
      guarantee: { type: 'string' },
    },
  });
  if (values.guarantee !== undefined) {
    throw new SluiceError(
      `--guarantee is for sluice dev --brokers (exactly-once needs Kafka transactions); on a file, outputs are printed once per invocation; received --guarantee ${values.guarantee}.`,
    );
  }
  if (values.tick !== undefined) {
    throw new SluiceError(
      `--tick sets the tick period of sluice dev --brokers; on a file, run ticks at given wall-clock times with --tick-at (e.g. --tick-at 45s); received --tick ${values.tick}.`,
    );
  }
  const wall = wallClock(values['wall-clock'], Date.now());
  const tickAt = tickTimes(values['tick-at'] ?? [], wall);
  if (!/^\d+$/.test(values.retries))
    throw new SluiceError(`--retries must be a whole number of retries per failing record; received ${values.retries}.`);
  if (positionals.length !== 1)
    throw new SluiceError(`dev takes one function (a serverless.yml name or a handler file); received ${positionals.length}.\n\n${USAGE}`);
  const entry = resolveFunction(positionals[0]);
  const input = values.input ?? path.join(path.dirname(entry.file), 'sample.jsonl');
  if (!existsSync(input)) {
    throw new SluiceError(
      values.input
        ? `input file ${input} does not exist.`
        : `no --input given and ${path.relative(process.cwd(), input)} (the default sample) does not exist; pass --input <file.jsonl>.`,
    );
  }
  const batchSize = values['batch-size'] === undefined ? 100 : Number(values['batch-size']);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new SluiceError(`--batch-size must be a whole number from 1 to 10000 (Lambda's range); received ${values['batch-size']}.`);
  }

  const handler = await loadHandler(entry);
  const { manifest } = handler.sluice;
  const { records, problems } = await readInputFile(input);
  for (const p of problems) console.error(`${path.relative(process.cwd(), p.file)}:${p.line}: ${p.problem} (line skipped)`);

  const yml = path.join(process.cwd(), 'serverless.yml');
  const store = await devStateStore(values.state, values['dynamodb-endpoint'], existsSync(yml) ? readServerless(yml).service : 'local');
  const capture = new CaptureSink();
  let late = 0;
  let windowsEmitted = 0;
  let counted = newStats();
  // A durable table that already holds this function's state past these offsets (an earlier run
  // of the same file): every batch would be refused as stale, so stop at the first one.
  let rewound: Error | undefined;
  const printed = { n: 0 };
  const print = (m: OutputMessage) => {
    if (!values.quiet) console.log(formatMessage(m));
    printed.n++;
  };
  handler.sluice.configure({
    store,
    // One wall clock for the whole input: ticks at --tick-at times then see it as arrived at once.
    clock: () => wall,
    sink: {
      send: async (ms) => {
        for (const m of ms) print(m);
        await capture.send(ms);
      },
    },
    deadLetters: {
      send: async (ds) => {
        for (const d of ds) console.error(letterLine(d));
        await capture.send(ds);
      },
    },
    onBatch: (r) => {
      rewound ??= r.failed.find((f) => f.stage === 'read' && f.error instanceof StateConflictError)?.error as Error | undefined;
      windowsEmitted += r.stats.windowsEmitted;
      counted = sumStats([counted, r.stats]);
      for (const l of r.late) {
        late++;
        if (!values.quiet)
          console.error(
            `late         ${l.key}@${iso(l.timestamp)} missed ${l.windows.map(([s, e]) => `[${iso(s)}, ${iso(e)})`).join(', ')} of "${l.window}" (clock ${iso(l.clock)})`,
          );
      }
    },
  });

  console.error(
    `sluice dev: ${entry.name} (${manifest.name}) on ${path.relative(process.cwd(), input)}: ${records.length} records, source topic "${manifest.source.topic}", batch size ${batchSize}, ${store instanceof MemoryStore ? 'in-memory state' : `state in DynamoDB table ${(store as { table?: string }).table}`}`,
  );
  const ctx = lambdaContext(entry.name);
  let failures = 0;
  const retries = Number(values.retries);
  const stopIfRewound = (where: string) => {
    if (rewound) {
      throw new SluiceError(
        `table ${(store as { table?: string }).table} already holds state of ${manifest.name} past ${where}, from an earlier run of this input; set ${SLUICE_ENV.stateTable} to a new table to start over, or use --state memory. (${rewound.message})`,
      );
    }
  };
  for (const event of toKafkaEvents(records, { topic: manifest.source.topic, batchSize })) {
    await invokeWithRetries((e) => handler(e, ctx as never), event, retries, {
      retry: (group, offset, n, of) => {
        stopIfRewound(`${group}@${offset}`);
        console.error(`retry        ${group}@${offset}: attempt ${n + 1} of ${of + 1}`);
      },
      giveUp: async (d) => {
        stopIfRewound(position(d));
        failures++;
        console.error(letterLine(d));
        await capture.send([d]);
      },
    });
  }
  const counts = new Map<number, number>();
  for (const r of records) counts.set(r.partition ?? 0, (counts.get(r.partition ?? 0) ?? 0) + 1);
  const ticked = await runTicks(handler, tickAt, counts, values.quiet);
  windowsEmitted += ticked.windowsClosed;
  if (values.flush) {
    for (const [p, n] of counts) windowsEmitted += (await handler.sluice.flush(manifest.source.topic, p, n - 1)).stats.windowsEmitted;
  }
  const open = values.flush ? 0 : (countOpenWindows(store) ?? 0);
  if (values.output) {
    writeFileSync(
      values.output,
      capture.messages.map((m) => JSON.stringify({ topic: m.topic, key: m.key, value: m.value, timestamp: m.timestamp })).join('\n') +
        (capture.messages.length ? '\n' : ''),
    );
  }
  console.error(
    [
      `\nsummary: ${records.length} records in, ${capture.messages.length} messages out` +
        (windowsEmitted ? ` (${windowsEmitted} window results)` : ''),
      `${late} late, ${capture.deadLetters.length - failures} poison (dead-lettered), ${problems.length} bad input lines` +
        (failures ? `, ${failures} records dead-lettered after failing every retry` : ''),
      accountingLine(records.length, counted, failures),
      tickAt.length > 0
        ? `${tickAt.length} idle ticks closed ${ticked.windowsClosed} windows${ticked.failed ? `, ${ticked.failed} failed` : ''}`
        : '',
      open > 0
        ? `${open} windows still open at the end of the input (not emitted, as in Quix Streams; add --flush to close them${handler.sluice.idleWindows.length > 0 ? ', or --tick-at to let idle ticks close the due ones' : ''})`
        : '',
      values.output ? `wrote ${capture.messages.length} messages to ${values.output}` : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  return failures > 0 || ticked.failed > 0 ? 1 : 0;
}

/**
 * The idle ticks of `--tick-at`, as runFunction's `ticks` runs them: each partition of the input
 * is caught up at its last record (its end offset is its record count).
 */
async function runTicks(
  handler: SluiceHandler,
  times: readonly number[],
  counts: ReadonlyMap<number, number>,
  quiet: boolean,
): Promise<{ windowsClosed: number; failed: number }> {
  if (times.length > 0 && handler.sluice.idleWindows.length === 0)
    console.error(`note: ${handler.sluice.manifest.name} has no idle windows (the window option idle), so --tick-at closes nothing`);
  const offsets: EndOffsets = { endOffsets: async () => new Map(counts) };
  let windowsClosed = 0;
  let failed = 0;
  for (const now of times) {
    const report = await handler.sluice.tick({ now, offsets });
    windowsClosed += report.windowsClosed;
    const errors = report.partitions.filter((p) => p.error !== undefined);
    failed += errors.length;
    for (const p of errors) console.error(`tick failed  ${iso(now)} p${p.partition}: ${p.error}`);
    if (!quiet) console.error(`tick         ${iso(now)}  closed ${report.windowsClosed} windows`);
  }
  return { windowsClosed, failed };
}

async function invoke(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { event: { type: 'string', short: 'e' } } });
  if (positionals.length !== 1 || !values.event) throw new SluiceError(`invoke needs a function and --event <file.json>.\n\n${USAGE}`);
  const entry = resolveFunction(positionals[0]);
  let event: KafkaEvent;
  try {
    event = JSON.parse(readFileSync(values.event, 'utf8'));
  } catch (e) {
    throw new SluiceError(`could not read the event ${values.event}: ${errorText(e)}`);
  }
  const handler = await loadHandler(entry);
  const capture = new CaptureSink();
  handler.sluice.configure({ store: new MemoryStore(), sink: capture, deadLetters: capture });
  const response = await handler(event, lambdaContext(entry.name) as never);
  for (const m of capture.messages) console.log(formatMessage(m));
  for (const d of capture.deadLetters) console.log(letterLine(d));
  console.log(`response: ${JSON.stringify(response)}`);
  return response.batchItemFailures.length > 0 ? 1 : 0;
}

/** Where every input record went: the four outcomes add up to the records in (see pipeline/stats.ts). */
function accountingLine(recordsIn: number, s: BatchStats, failedEveryRetry: number): string {
  const dead = s.deadLettered + failedEveryRetry;
  const missing = recordsIn - (s.applied + s.filtered + s.late + dead);
  return (
    `accounted: ${recordsIn} records in = ${s.applied} applied + ${s.filtered} filtered + ${s.late} late + ${dead} dead-lettered` +
    (missing === 0 ? '' : ` (${missing} not accounted for: a Sluice bug, please report it with this input)`)
  );
}

function position(d: DeadLetter): string {
  const { topic, partition, offset } = letterOrigin(d);
  return `${topic}-${partition}@${offset}`;
}

function letterLine(d: DeadLetter): string {
  return `dead letter  ${position(d)}  [${d.stage}] ${d.reason}`;
}

function iso(ms: number): string {
  return Number.isFinite(ms) && ms >= 0 && ms < 8.64e15 ? new Date(ms).toISOString().replace('.000Z', 'Z') : String(ms);
}

function formatMessage(m: OutputMessage): string {
  const v = m.value as Record<string, unknown> | null;
  if (v && typeof v === 'object' && typeof v.start === 'number' && typeof v.end === 'number') {
    const { start, end, ...rest } = v;
    return `${m.topic.padEnd(16)} ${String(m.key).padEnd(12)} [${iso(start as number)}, ${iso(end as number)})  ${JSON.stringify(rest)}`;
  }
  return `${m.topic.padEnd(16)} ${String(m.key).padEnd(12)} ${iso(m.timestamp)}  ${JSON.stringify(m.value)}`;
}
