/**
 * bench:cost's arithmetic and its table: measured quantities per million records, priced with the
 * input file bench/prices.json (never constants here), beside a Quix Streams container.
 */
import { readFileSync } from 'node:fs';

type PerArch = { x86_64: number; arm64: number };

/**
 * The price table bench/prices.json holds (see its `about`, `sources` and `checked`).
 *
 * @example
 * const prices = readPrices('bench/prices.json');
 */
export interface Prices {
  dynamodb: { onDemandWriteRequestUnitsPerMillion: number; onDemandReadRequestUnitsPerMillion: number };
  lambda: { requestsPerMillion: number; gbSecond: PerArch; vcpuAtMb: number };
  container: {
    name: string;
    vcpu: number;
    memoryGb: number;
    hoursPerMonth: number;
    vcpuHour: PerArch;
    gbHour: PerArch;
    cpuMicrosecondsPerRecord: number;
  };
  sources: Record<string, string>;
  checked: string;
}

/**
 * Reads and checks the price file: every number bench:cost uses must be there.
 *
 * @example
 * const prices = readPrices(path.join(import.meta.dirname, 'prices.json'));
 */
export function readPrices(file: string): Prices {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Prices;
  const need = [
    'dynamodb.onDemandWriteRequestUnitsPerMillion',
    'dynamodb.onDemandReadRequestUnitsPerMillion',
    'lambda.requestsPerMillion',
    'lambda.gbSecond.x86_64',
    'lambda.gbSecond.arm64',
    'lambda.vcpuAtMb',
    'container.vcpu',
    'container.memoryGb',
    'container.hoursPerMonth',
    'container.vcpuHour.x86_64',
    'container.vcpuHour.arm64',
    'container.gbHour.x86_64',
    'container.gbHour.arm64',
    'container.cpuMicrosecondsPerRecord',
  ];
  for (const key of need) {
    const v = key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], p);
    if (typeof v !== 'number' || !(v > 0))
      throw new Error(
        `${file}: ${key} must be a positive number; received ${JSON.stringify(v)}. Fill it in from the price page named in "sources".`,
      );
  }
  return p;
}

/**
 * What bench:cost measured for one function at one batch size, per million records where it says so.
 *
 * @example
 * const m: Measured = { function: 'sensor-sums', batchSize: 1000, memoryMb: 512, perMillion: { writeUnits: 1e6, … }, … };
 */
export interface Measured {
  function: string;
  batchSize: number;
  records: number;
  keys: number;
  memoryMb: number;
  emulator: 'aws-lambda-rie' | 'stand-in';
  wallSeconds: number;
  perMillion: {
    invocations: number;
    /** The handler's wall time inside the runtime, summed. */
    handlerMs: number;
    /** Each invocation's handler time rounded up to a millisecond, as Lambda bills it. */
    billedMs: number;
    cpuMs: number;
    /** CPU time stretched to Lambda's CPU share at this memory, plus the time spent waiting. */
    lambdaScaledMs: number;
    readRequests: number;
    writeRequests: number;
    readUnits: number;
    writeUnits: number;
    outputs: number;
    outputBytes: number;
    deadLetters: number;
  };
  handlerMsP50: number;
  handlerMsMax: number;
  peakRssMb: number;
  lastRssMb: number;
  peakHeapUsedMb: number;
  stateRetries: number;
  stateConflicts: number;
}

/**
 * A measured row with its dollars per million records and the container beside it.
 *
 * @example
 * console.log(row.dollarsPerMillion.total.arm64, row.container.breakEvenRecordsPerSecond.arm64);
 */
export interface CostRow extends Measured {
  dollarsPerMillion: {
    lambdaRequests: number;
    /** At the measured (local CPU) billed duration. */
    lambdaCompute: PerArch;
    /** At the duration scaled to Lambda's CPU share ({@link Measured.perMillion.lambdaScaledMs}). */
    lambdaComputeScaled: PerArch;
    dynamodbWrites: number;
    dynamodbReads: number;
    /** Requests + scaled compute + DynamoDB: the figure the docs table shows. */
    total: PerArch;
  };
  container: {
    monthlyDollars: PerArch;
    /** Records per second one task handles with its CPU fully used. */
    capacityRecordsPerSecond: number;
    dollarsPerMillionAtCapacity: PerArch;
    /** The steady rate above which the container costs less than this row (while under its capacity). */
    breakEvenRecordsPerSecond: PerArch;
  };
}

const round = (x: number, digits = 6) => Number(x.toPrecision(digits));
const both = (f: (arch: 'x86_64' | 'arm64') => number): PerArch => ({ x86_64: round(f('x86_64')), arm64: round(f('arm64')) });

/**
 * Prices a measured row.
 *
 * @example
 * const row = priced(readPrices('bench/prices.json'), measured);
 */
export function priced(prices: Prices, m: Measured): CostRow {
  const gb = m.memoryMb / 1024;
  const pm = m.perMillion;
  const lambdaRequests = (pm.invocations * prices.lambda.requestsPerMillion) / 1e6;
  const compute = (ms: number) => both((arch) => (ms / 1000) * gb * prices.lambda.gbSecond[arch]);
  const lambdaCompute = compute(pm.billedMs);
  const lambdaComputeScaled = compute(pm.lambdaScaledMs);
  const dynamodbWrites = (pm.writeUnits * prices.dynamodb.onDemandWriteRequestUnitsPerMillion) / 1e6;
  const dynamodbReads = (pm.readUnits * prices.dynamodb.onDemandReadRequestUnitsPerMillion) / 1e6;
  const total = both((arch) => lambdaRequests + lambdaComputeScaled[arch] + dynamodbWrites + dynamodbReads);

  const c = prices.container;
  const secondsPerMonth = c.hoursPerMonth * 3600;
  const monthlyDollars = both((arch) => (c.vcpu * c.vcpuHour[arch] + c.memoryGb * c.gbHour[arch]) * c.hoursPerMonth);
  const capacityRecordsPerSecond = round((c.vcpu * 1e6) / c.cpuMicrosecondsPerRecord, 4);
  return {
    ...m,
    dollarsPerMillion: {
      lambdaRequests: round(lambdaRequests),
      lambdaCompute,
      lambdaComputeScaled,
      dynamodbWrites: round(dynamodbWrites),
      dynamodbReads: round(dynamodbReads),
      total,
    },
    container: {
      monthlyDollars,
      capacityRecordsPerSecond,
      dollarsPerMillionAtCapacity: both((arch) => (monthlyDollars[arch] / (capacityRecordsPerSecond * secondsPerMonth)) * 1e6),
      breakEvenRecordsPerSecond: both((arch) => monthlyDollars[arch] / ((total[arch] / 1e6) * secondsPerMonth)),
    },
  };
}

const fmt = (x: number, digits = 3) => (x === 0 ? '0' : x >= 100 ? Math.round(x).toLocaleString('en-US') : String(round(x, digits)));

/**
 * The markdown bench:cost writes into docs/benchmarks.md: how it was run, the table, the container line.
 *
 * @example
 * const md = docsTable(rows, prices, { cmd, machine, date, emulator });
 */
export function docsTable(
  rows: readonly CostRow[],
  prices: Prices,
  run: { cmd: string; machine: string; date: string; emulator: string },
): string {
  const c = rows[0]?.container;
  const lines = [
    `Generated by \`${run.cmd}\` on ${run.date.slice(0, 10)}; ${run.machine}; ${run.emulator}; DynamoDB Local on 127.0.0.1. ` +
      `Prices: bench/prices.json (${prices.checked.replace(/\.$/, '')}).`,
    '',
    '| function | batch | memory | invocations /M | handler ms /M (local) | at Lambda CPU share | WRU /M | RRU /M | output KB /M | peak RSS MB | $ /M x86 | $ /M arm64 | of which DynamoDB | break-even rec/s (x86) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const d = r.dollarsPerMillion;
      const dynamo = d.dynamodbWrites + d.dynamodbReads;
      return `| ${r.function} | ${r.batchSize.toLocaleString('en-US')} | ${r.memoryMb} MB | ${fmt(r.perMillion.invocations)} | ${fmt(r.perMillion.handlerMs)} | ${fmt(r.perMillion.lambdaScaledMs)} | ${fmt(r.perMillion.writeUnits)} | ${fmt(r.perMillion.readUnits)} | ${fmt(r.perMillion.outputBytes / 1024)} | ${fmt(r.peakRssMb)} | ${fmt(d.total.x86_64)} | ${fmt(d.total.arm64)} | ${d.total.x86_64 > 0 ? Math.round((dynamo / d.total.x86_64) * 100) : 0}% | ${fmt(r.container.breakEvenRecordsPerSecond.x86_64)} |`;
    }),
  ];
  if (c) {
    lines.push(
      '',
      `Beside it, ${prices.container.name}: ${prices.container.vcpu} vCPU + ${prices.container.memoryGb} GB at list price, ` +
        `$${fmt(c.monthlyDollars.x86_64)} a month (x86; $${fmt(c.monthlyDollars.arm64)} arm64), whatever the rate. At ` +
        `${prices.container.cpuMicrosecondsPerRecord} CPU-µs per record it handles up to ${fmt(c.capacityRecordsPerSecond)} records/s ` +
        `(CPU fully used), where it costs $${fmt(c.dollarsPerMillionAtCapacity.x86_64)} per million records. ` +
        'The break-even column is the steady rate above which that container costs less than the row; ' +
        `above ${fmt(c.capacityRecordsPerSecond)} records/s it takes more than one task.`,
    );
  }
  return lines.join('\n');
}
