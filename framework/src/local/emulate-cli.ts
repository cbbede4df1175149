import path from 'node:path';
import { parseArgs } from 'node:util';
import { esmConfig } from '../config/event-source-mapping.js';
import { MAX_TIMEOUT_SECONDS } from '../config/limits.js';
import { type FunctionEntry, readServerless } from '../config/serverless-yml.js';
import { deployedGuarantee } from '../config/function-config.js';
import { readGuarantee } from '../define/guarantee.js';
import { SLUICE_ENV } from '../env.js';
import { formatMs } from '../duration.js';
import { SluiceError } from '../errors.js';
import { emulateFunction, type EmulatedFunction } from './emulator/index.js';
import { loadHandler, resolveFunction } from './functions.js';
import { devStateStore } from './state-option.js';
import { tickPeriod } from './time-options.js';
import { guaranteeText, startView, transactionsText } from './view.js';

/**
 * `sluice dev [function] --brokers host:port [--config serverless.yml] [--stage s] [--tick 1m|off]
 * [--guarantee exactly-once|at-least-once]`: the event source mapping emulator, with idle ticks on
 * the deployed schedule, and the functions' guarantee (or the one given). Returns the exit code.
 */
export async function emulate(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      brokers: { type: 'string' },
      config: { type: 'string', short: 'c' },
      stage: { type: 'string', short: 's' },
      timeout: { type: 'string' },
      view: { type: 'boolean', default: true },
      'no-view': { type: 'boolean', default: false },
      state: { type: 'string' },
      'dynamodb-endpoint': { type: 'string' },
      'stall-notice': { type: 'string' },
      tick: { type: 'string' },
      'wall-clock': { type: 'string' },
      'tick-at': { type: 'string', multiple: true },
      guarantee: { type: 'string' },
    },
  });
  if (values['wall-clock'] !== undefined || values['tick-at'] !== undefined) {
    throw new SluiceError(
      `--${values['wall-clock'] !== undefined ? 'wall-clock' : 'tick-at'} is for file mode (sluice dev <function> without --brokers); against a broker the wall clock is the real one and ticks run every --tick period (e.g. --tick 1s).`,
    );
  }
  const guarantee = values.guarantee === undefined ? undefined : readGuarantee(values.guarantee, '--guarantee');
  // Without --tick, the function's deployed period (its `tick` option in serverless.yml, else 1 minute).
  const tickMs = values.tick === undefined ? undefined : tickPeriod(values.tick);
  const brokers = values.brokers ?? '';
  if (!/^[^\s,:]+:\d+(,[^\s,:]+:\d+)*$/.test(brokers)) {
    throw new SluiceError(`--brokers must be host:port[,host:port…], e.g. 127.0.0.1:9092; received ${JSON.stringify(values.brokers)}.`);
  }
  const yml = path.resolve(values.config ?? 'serverless.yml');
  const service = readServerless(yml);
  if (values.stage !== undefined && !/^[a-zA-Z0-9-]+$/.test(values.stage))
    throw new SluiceError(`--stage must be letters, digits and -; received ${JSON.stringify(values.stage)}.`);
  const stage = values.stage ?? service.stage ?? 'dev';
  let entries: FunctionEntry[];
  if (positionals.length === 0) {
    entries = service.functions.filter((f) => f.event);
    if (entries.length === 0) throw new SluiceError(`no function in ${yml} has an msk or kafka event to emulate.`);
  } else {
    entries = positionals.map((p) => resolveFunction(p, process.cwd(), yml));
  }
  const timeoutSeconds = values.timeout === undefined ? undefined : Number(values.timeout);
  if (timeoutSeconds !== undefined && !(timeoutSeconds > 0 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
    throw new SluiceError(`--timeout must be seconds from 1 to ${MAX_TIMEOUT_SECONDS} (Lambda's limit); received ${values.timeout}.`);
  }
  const stallSeconds = values['stall-notice'] === undefined ? undefined : Number(values['stall-notice']);
  if (stallSeconds !== undefined && !(stallSeconds > 0))
    throw new SluiceError(
      `--stall-notice must be the seconds a partition with records waiting may go without progress before it is named, e.g. 60; received ${values['stall-notice']}.`,
    );
  const configs = entries.map((e) =>
    esmConfig(timeoutSeconds ? { ...e, timeout: timeoutSeconds } : e, service.service, { ...service, stage }),
  );
  // Deployed, the plugin sets SLUICE_ENV.partialBatch per function; one process shares one
  // environment, so it is set when every emulated function agrees (the emulator enforces the
  // setting per function either way).
  const partial = new Set(configs.map((c) => c.provisionedPollers));
  if (partial.size === 1) process.env[SLUICE_ENV.partialBatch] = String([...partial][0]);

  const { Kafka, logLevel } = await import('kafkajs');
  const kafka = new Kafka({
    clientId: 'sluice-dev',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { retries: 3, initialRetryTime: 200 },
  });

  const notes: string[] = [];
  let view: ReturnType<typeof startView> | undefined;
  // Held until the functions' start-up lines are out; then through the view, or straight out
  // with --no-view (where they used to stay held, never shown).
  let started = false;
  const notice = (m: string) => {
    if (view) view.note(m);
    else if (started) console.error(m);
    else notes.push(m);
  };
  const running: EmulatedFunction[] = [];
  try {
    for (const [i, entry] of entries.entries()) {
      const handler = await loadHandler(entry);
      const store = await devStateStore(values.state, values['dynamodb-endpoint'], service.service);
      running.push(
        await emulateFunction({
          kafka,
          brokers,
          handler,
          config: configs[i],
          store,
          notice,
          ...(stallSeconds ? { stallNoticeMs: stallSeconds * 1000 } : {}),
          tickMs: tickMs ?? configs[i].tickMs,
          // The flag, else what the function is deployed with (its sluice: option, the source's, the service's).
          guarantee:
            guarantee ?? deployedGuarantee({ name: entry.name, guarantee: configs[i].guarantee }, handler.sluice.manifest.source.guarantee),
        }),
      );
      const c = configs[i];
      const where = store.durable ? `state in DynamoDB table ${(store as { table?: string }).table}` : 'in-memory state';
      const failures =
        c.maximumRetryAttempts === undefined
          ? 'no provisioned pollers: a failing batch is retried until it succeeds'
          : `provisioned pollers: ${c.maximumRetryAttempts} retries, then → ${c.onFailureTopic}`;
      const { stats } = running[running.length - 1];
      const period = stats.ticks.periodMs;
      const ticks =
        period !== undefined
          ? `idle ticks every ${formatMs(period)}`
          : handler.sluice.idleWindows.length > 0
            ? 'idle ticks off (--tick off)'
            : 'no idle windows, no ticks';
      console.error(
        `sluice dev: ${entry.name} ← ${c.topic} (${c.eventSource}, group ${c.consumerGroupId}, batch ${c.batchSize}, window ${c.maximumBatchingWindowMs} ms, ${c.startingPosition}, timeout ${c.timeoutMs / 1000} s, ${failures}; poison → ${c.deadLetterTopic}; ${ticks}; ${guaranteeText(stats.guarantee)}) on ${brokers}, ${where}`,
      );
    }
  } catch (e) {
    await Promise.all(running.map((r) => r.stop().catch(() => undefined)));
    throw e;
  }
  for (const n of notes) console.error(n);
  started = true;
  view = values.view && !values['no-view'] ? startView(running) : undefined;
  console.error('press Ctrl-C to stop');

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) {
        console.error('stopping immediately: the batch in flight is abandoned and its offsets are not committed');
        process.exit(130);
      }
      stopping = true;
      console.error('\nstopping: letting the batch in flight finish (Ctrl-C again to abandon it)…');
      resolve();
    };
    process.on('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await Promise.all(running.map((r) => r.stop()));
  view?.stop();
  for (const r of running) {
    const s = r.stats;
    const t = s.ticks;
    const ticks =
      t.periodMs === undefined
        ? ''
        : `; ${t.runs} idle ticks closed ${t.windowsClosed} windows` +
          (t.skipped > 0 ? ` (${t.skipped} skipped while one ran)` : '') +
          (t.failed > 0 ? ` (${t.failed} failed, see the notices)` : '');
    const blocked = [...s.blocked].map(([p, b]) => `p${p}@${b.offset} after ${b.attempts} attempts`).join(', ');
    console.error(
      `${s.name}: ${s.records} records, ${s.batches} batches, ${s.retries} retries, ${s.windowsEmitted} window results, ${s.late} late, ${s.poison} poison, ${s.failedToDeadLetter} failed records dead-lettered${ticks}; ${guaranteeText(s.guarantee)}${transactionsText(s)}; committed ${[...s.committed].map(([p, o]) => `p${p}@${o}`).join(' ')}` +
        (blocked ? `; still failing (not committed): ${blocked}` : '') +
        (s.lost > 0 ? `; LOST ${s.lost} records: gone from the broker before they were processed (see the notices)` : ''),
    );
  }
  return 0;
}
