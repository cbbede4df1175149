/**
 * Local infrastructure for Sluice: a single-node Apache Kafka broker (KRaft) and DynamoDB Local,
 * both from Maven Central jars, both on 127.0.0.1.
 *
 *   node --import tsx scripts/infra/infra.ts up|down|status [kafka|dynamodb]
 *
 * Jars are fetched once with Maven into $SLUICE_CACHE (default ~/.cache/sluice), outside git.
 * Runtime files (data, logs, pids) live in .cache/infra of the checkout.
 * Ports: SLUICE_KAFKA_PORT (9092), SLUICE_KAFKA_CONTROLLER_PORT (9093), SLUICE_DYNAMODB_PORT (8000).
 * DynamoDB Local keeps its tables in memory; with SLUICE_DYNAMODB_PERSIST=1, in .cache/infra/dynamodb/data,
 * so that they survive a restart (bench:soak --kill dynamodb needs that).
 * Needs a JDK 17+ (java for both; javac once, for the DynamoDB Local launcher) and Maven.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { portOpen } from './port.js';

const here = import.meta.dirname;
const root = path.resolve(here, '../..');
const cache = process.env.SLUICE_CACHE ?? path.join(os.homedir(), '.cache', 'sluice');
const runDir = path.join(root, '.cache', 'infra');

const KAFKA_VERSION = '4.1.1';
const DYNAMODB_VERSION = '3.1.0';

export const endpoints = {
  kafkaPort: Number(process.env.SLUICE_KAFKA_PORT ?? 9092),
  controllerPort: Number(process.env.SLUICE_KAFKA_CONTROLLER_PORT ?? 9093),
  dynamodbPort: Number(process.env.SLUICE_DYNAMODB_PORT ?? 8000),
  get brokers() {
    return `127.0.0.1:${this.kafkaPort}`;
  },
  get dynamodb() {
    return `http://127.0.0.1:${this.dynamodbPort}`;
  },
};

type Service = 'kafka' | 'dynamodb';

function log(msg: string) {
  process.stderr.write(`infra: ${msg}\n`);
}

/** Copies a pom's runtime dependencies into a cache folder, once. */
function fetchJars(pom: string, dir: string, marker: string): string {
  if (existsSync(path.join(dir, marker))) return dir;
  log(`fetching jars with Maven into ${dir} (once)…`);
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync(
      'mvn',
      ['-q', '-B', '-f', path.join(here, pom), 'dependency:copy-dependencies', '-DincludeScope=runtime', `-DoutputDirectory=${dir}`],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
  } catch (e) {
    throw new Error(`Maven could not fetch ${pom} (is Maven installed and Maven Central reachable?): ${(e as Error).message}`);
  }
  writeFileSync(path.join(dir, marker), new Date().toISOString());
  return dir;
}

/** The major version in `java -version` output: `17.0.2` → 17, `1.8.0_292` → 8. */
export function javaMajor(versionOutput: string): number | undefined {
  const m = /version "(\d+)(?:\.(\d+))?[^"]*"/.exec(versionOutput);
  if (!m) return undefined;
  return m[1] === '1' && m[2] ? Number(m[2]) : Number(m[1]);
}

export function requireJava(): void {
  const r = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      "java was not found: install a JDK 17 or newer (Kafka 4 needs Java 17; DynamoDB Local's launcher is compiled with javac), or use docker compose -f scripts/infra/docker-compose.yml up -d.",
    );
  }
  // java -version writes to stderr.
  const out = `${r.stderr}${r.stdout}`;
  const major = javaMajor(out);
  if (major === undefined || major < 17) {
    const first = out.split('\n')[0].trim();
    throw new Error(
      `Java 17 or newer is needed (Kafka 4 requires it); found ${major === undefined ? 'an unrecognised version' : `Java ${major}`} (java -version: ${first}). Install a JDK 17+ and put it first on PATH, or use docker compose -f scripts/infra/docker-compose.yml up -d.`,
    );
  }
}

/** javac, needed once to compile the DynamoDB Local launcher (a JRE alone has none). */
export function requireJavac(): void {
  const r = spawnSync('javac', ['-version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(
      'javac was not found: DynamoDB Local is started through a small launcher (scripts/infra/LoopbackDynamoDB.java) that binds it to 127.0.0.1, compiled once at first start; install a JDK 17+ (not only a JRE), or use docker compose -f scripts/infra/docker-compose.yml up -d.',
    );
  }
}

function pidFile(s: Service) {
  return path.join(runDir, `${s}.pid`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function runningPid(s: Service): number | undefined {
  const f = pidFile(s);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8'));
  return alive(pid) ? pid : undefined;
}

async function waitFor(what: string, check: () => Promise<boolean>, pid: number, logFile: string, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (!alive(pid)) {
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n') : '(no log)';
      throw new Error(`${what} exited during start-up; last lines of ${logFile}:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not answer within ${timeoutMs / 1000}s; see ${logFile}`);
}

function startJava(s: Service, args: string[], cwd: string): number {
  mkdirSync(runDir, { recursive: true });
  const logFile = path.join(runDir, `${s}.out`);
  const fd = openSync(logFile, 'w');
  const child = spawn('java', args, { cwd, detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  writeFileSync(pidFile(s), String(child.pid));
  return child.pid!;
}

async function upKafka() {
  const existing = runningPid('kafka');
  if (existing) return log(`kafka already running (pid ${existing}) on ${endpoints.brokers}`);
  if (await portOpen('127.0.0.1', endpoints.kafkaPort))
    throw new Error(`port ${endpoints.kafkaPort} is already in use by another process; stop it or set SLUICE_KAFKA_PORT.`);
  requireJava();
  const lib = fetchJars('kafka-pom.xml', path.join(cache, `kafka-${KAFKA_VERSION}`), '.complete');
  const dir = path.join(runDir, 'kafka');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const props = path.join(dir, 'server.properties');
  const { kafkaPort, controllerPort } = endpoints;
  writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${kafkaPort},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${kafkaPort}`,
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${path.join(dir, 'data')}`,
      'num.partitions=1',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=false',
      // Never delete data by age or size: replays carry old timestamps, and a broker that deletes
      // the segments being consumed loses records under the emulator (issue 11).
      'log.retention.ms=-1',
      'log.retention.bytes=-1',
      '',
    ].join('\n'),
  );
  const cp = `${lib}/*`;
  const jvm = [
    '-Xms256m',
    '-Xmx768m',
    `-Dlog4j2.configurationFile=${path.join(here, 'log4j2.properties')}`,
    `-Dkafka.logs.dir=${dir}`,
    '-cp',
    cp,
  ];
  const clusterId = 'c2x1aWNlLWxvY2FsLWthZmth'.slice(0, 22);
  execFileSync('java', [...jvm, 'kafka.tools.StorageTool', 'format', '-t', clusterId, '-c', props, '--ignore-formatted'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const pid = startJava('kafka', [...jvm, 'kafka.Kafka', props], dir);
  await waitFor('kafka', () => kafkaReady(), pid, path.join(dir, 'server.log'));
  log(`kafka up (pid ${pid}) on ${endpoints.brokers}`);
}

/** The broker answers metadata requests (not just an open port). */
async function kafkaReady(): Promise<boolean> {
  if (!(await portOpen('127.0.0.1', endpoints.kafkaPort))) return false;
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({ brokers: [endpoints.brokers], logLevel: logLevel.NOTHING, retry: { retries: 0 } }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    // The group coordinator answers only once __consumer_offsets has loaded.
    await admin.fetchOffsets({ groupId: 'sluice-infra-ready', topics: [] });
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function upDynamo() {
  const existing = runningPid('dynamodb');
  if (existing) return log(`dynamodb already running (pid ${existing}) on ${endpoints.dynamodb}`);
  if (await portOpen('127.0.0.1', endpoints.dynamodbPort))
    throw new Error(`port ${endpoints.dynamodbPort} is already in use by another process; stop it or set SLUICE_DYNAMODB_PORT.`);
  requireJava();
  const lib = fetchJars('dynamodb-pom.xml', path.join(cache, `dynamodb-local-${DYNAMODB_VERSION}`), '.complete');
  const jar = readdirSync(lib).find((f) => /^DynamoDBLocal-.*\.jar$/.test(f));
  if (!jar) throw new Error(`DynamoDBLocal jar not found in ${lib}; delete that folder to fetch again.`);
  // DynamoDB Local's ServerRunner binds every interface; our launcher binds 127.0.0.1 only. Its
  // class is cached per version of its source.
  const source = path.join(here, 'LoopbackDynamoDB.java');
  const launcher = path.join(lib, `launcher-${createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 12)}`);
  if (!existsSync(path.join(launcher, 'LoopbackDynamoDB.class'))) {
    requireJavac();
    mkdirSync(launcher, { recursive: true });
    execFileSync('javac', ['-d', launcher, '-cp', `${lib}/*`, source], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
  const dir = path.join(runDir, 'dynamodb');
  mkdirSync(dir, { recursive: true });
  const persist = process.env.SLUICE_DYNAMODB_PERSIST === '1' ? [path.join(dir, 'data')] : [];
  for (const d of persist) mkdirSync(d, { recursive: true });
  const pid = startJava(
    'dynamodb',
    [
      '-Xmx512m',
      `-Djava.library.path=${lib}`,
      '-cp',
      `${lib}/*${path.delimiter}${launcher}`,
      'LoopbackDynamoDB',
      String(endpoints.dynamodbPort),
      ...persist,
    ],
    dir,
  );
  await waitFor('dynamodb', () => portOpen('127.0.0.1', endpoints.dynamodbPort), pid, path.join(runDir, 'dynamodb.out'));
  log(`dynamodb up (pid ${pid}) on ${endpoints.dynamodb}${persist.length > 0 ? `, tables kept in ${persist[0]}` : ''}`);
}

async function down(s: Service) {
  const pid = runningPid(s);
  if (!pid) {
    rmSync(pidFile(s), { force: true });
    return log(`${s} not running`);
  }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 20_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile(s), { force: true });
  log(`${s} stopped`);
}

async function main() {
  const [cmd = 'status', which] = process.argv.slice(2);
  const services: Service[] = which === 'kafka' || which === 'dynamodb' ? [which] : ['kafka', 'dynamodb'];
  if (which && !['kafka', 'dynamodb'].includes(which)) throw new Error(`unknown service "${which}"; use kafka or dynamodb.`);
  if (cmd === 'up') {
    // Fetch both sets of jars before starting either, so a cold cache is one Maven step each.
    await Promise.all(services.map((s) => (s === 'kafka' ? upKafka() : upDynamo())));
    console.log(
      JSON.stringify({
        brokers: services.includes('kafka') ? endpoints.brokers : undefined,
        dynamodb: services.includes('dynamodb') ? endpoints.dynamodb : undefined,
      }),
    );
  } else if (cmd === 'down') {
    for (const s of services) await down(s);
  } else if (cmd === 'status') {
    for (const s of services) {
      const pid = runningPid(s);
      console.log(`${s}: ${pid ? `running (pid ${pid})` : 'stopped'}`);
    }
  } else {
    throw new Error(`unknown command "${cmd}"; use up, down or status.`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    log((e as Error).message);
    process.exit(1);
  });
}
