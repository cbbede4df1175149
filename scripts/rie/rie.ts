/**
 * Runs a packaged Lambda function (an ESM bundle such as `<taskDir>/functions/sensor-sums/handler.mjs`)
 * under the AWS Lambda Runtime Interface Emulator (RIE) on 127.0.0.1, in a child process that cannot
 * see this repository's node_modules: it runs with cwd = the task directory and a minimal environment.
 *
 * The function is started by `bootstrap.mjs` (a dependency-free Lambda custom runtime) and the RIE
 * talks to it over the Lambda Runtime API, as in Lambda. The RIE binary is built once with
 * `go build` from the emulator's source in `SLUICE_RIE_SOURCE` (CI sets it to
 * `../shared/vendor/aws-lambda-rie`, see `.ci/run`; the Go module proxy refuses the module itself)
 * into `${SLUICE_CACHE:-~/.cache/sluice}/rie-<upstream commit>/aws-lambda-rie`, outside git;
 * `SLUICE_RIE_BIN` points at a binary to use instead. `emulator.mjs` beside this file is a plain-Node
 * stand-in with the same command line, for machines where the binary cannot be had: {@link selectRie}
 * picks the official binary when it can be had and says why not otherwise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dirname;

/** Absolute path of the custom-runtime bootstrap the emulator starts. */
export const BOOTSTRAP_PATH = path.join(here, 'bootstrap.mjs');

/** Absolute path of the plain-Node stand-in for the emulator (not the official RIE). */
export const EMULATOR_PATH = path.join(here, 'emulator.mjs');

const MAX_LOG_CHARS = 1 << 20;

/** The emulator's source folder (`SLUICE_RIE_SOURCE`), if set. */
function rieSource(): string | undefined {
  const dir = process.env.SLUICE_RIE_SOURCE;
  return dir ? path.resolve(dir) : undefined;
}

/** The upstream commit the vendored source records in UPSTREAM-COMMIT, or `source` when it records none. */
function sourceVersion(dir: string): string {
  const file = path.join(dir, 'UPSTREAM-COMMIT');
  const commit = existsSync(file) ? /^[0-9a-f]{7,40}/.exec(readFileSync(file, 'utf8').trim())?.[0] : undefined;
  return commit ? commit.slice(0, 12) : 'source';
}

/**
 * The folder the RIE binary built from `source` is cached in: `${SLUICE_CACHE:-~/.cache/sluice}/rie-<upstream commit>`.
 *
 * @example
 * ```ts
 * console.log(rieCacheDir('/work/shared/vendor/aws-lambda-rie')); // /root/.cache/sluice/rie-4fa215715260
 * ```
 */
function rieCacheDir(source: string): string {
  const cache = process.env.SLUICE_CACHE || path.join(os.homedir(), '.cache', 'sluice');
  return path.join(cache, `rie-${sourceVersion(source)}`);
}

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<{ code: number | null; out: string; error?: Error }> {
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (error) => resolve({ code: null, out, error }));
    child.on('close', (code) => resolve({ code, out }));
  });
}

/**
 * Returns the path of the official `aws-lambda-rie` binary. `SLUICE_RIE_BIN`, when set, is returned
 * as it is (it must exist). Otherwise the binary is built once with `go build ./cmd/aws-lambda-rie`
 * in `SLUICE_RIE_SOURCE` (read only: the output goes to {@link rieCacheDir}) and reused after.
 *
 * @throws Error saying what is missing (`SLUICE_RIE_SOURCE`, the folder, Go) or why the build failed.
 *
 * @example
 * ```ts
 * const bin = await rieBinary(); // ~/.cache/sluice/rie-<commit>/aws-lambda-rie
 * ```
 */
export async function rieBinary(): Promise<string> {
  const override = process.env.SLUICE_RIE_BIN;
  if (override) {
    if (!existsSync(override))
      throw new Error(`SLUICE_RIE_BIN=${override} does not exist; point it at an aws-lambda-rie binary or unset it.`);
    return path.resolve(override);
  }
  const source = rieSource();
  if (!source) {
    throw new Error(
      'SLUICE_RIE_SOURCE is not set: it names the source folder of the Lambda Runtime Interface Emulator ' +
        '(CI sets it to ../shared/vendor/aws-lambda-rie when that folder exists); or set SLUICE_RIE_BIN to a binary.',
    );
  }
  if (!existsSync(path.join(source, 'cmd', 'aws-lambda-rie'))) {
    throw new Error(`SLUICE_RIE_SOURCE=${source} holds no cmd/aws-lambda-rie: point it at the emulator's source folder.`);
  }
  const dir = rieCacheDir(source);
  const bin = path.join(dir, 'aws-lambda-rie');
  if (existsSync(bin) && statSync(bin).isFile()) return bin;

  const version = await run('go', ['version'], process.env);
  if (version.code !== 0) {
    throw new Error(
      `Building the Lambda Runtime Interface Emulator from ${source} needs Go: \`go\` is not installed or not on PATH` +
        `${version.error ? ` (${version.error.message})` : ''}. Install Go, or set SLUICE_RIE_BIN to an aws-lambda-rie binary.`,
    );
  }
  // Build into a private folder, then move the binary into place: parallel builds cannot clash.
  mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = mkdtempSync(`${dir}.build-`);
  try {
    process.stderr.write(`rie: building ${source} with ${version.out.trim()} (once)…\n`);
    const started = Date.now();
    const built = path.join(tmp, 'aws-lambda-rie');
    // -mod=readonly: the source folder is shared and read only; its go.sum pins every dependency.
    const build = await run(
      'go',
      ['build', '-mod=readonly', '-o', built, './cmd/aws-lambda-rie'],
      { ...process.env, CGO_ENABLED: '0' },
      source,
    );
    if (build.code !== 0 || !existsSync(built)) {
      throw new Error(
        `\`go build ./cmd/aws-lambda-rie\` in ${source} failed (exit ${build.code}); set SLUICE_RIE_BIN to a binary instead.\n` +
          build.out.trim().split('\n').slice(-20).join('\n'),
      );
    }
    chmodSync(built, 0o755);
    mkdirSync(dir, { recursive: true });
    renameSync(built, bin);
    process.stderr.write(`rie: built ${bin} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    return bin;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Which emulator {@link selectRie} chose, and why. */
export interface RieChoice {
  /** What to pass as {@link StartRieOptions.binary}. */
  binary: string;
  /** True for the official RIE, false for the stand-in `emulator.mjs`. */
  official: boolean;
  /** One line for the test or benchmark output: which emulator, and for the stand-in why the official one is not used. */
  note: string;
}

/**
 * The official RIE when it can be had ({@link rieBinary}: `SLUICE_RIE_BIN`, or built from
 * `SLUICE_RIE_SOURCE`), else the plain-Node stand-in, with the reason in `note`.
 *
 * @example
 * ```ts
 * const rie = await selectRie();
 * if (!rie.official) t.diagnostic(rie.note);
 * await startRie({ taskDir, handler, binary: rie.binary });
 * ```
 */
export async function selectRie(): Promise<RieChoice> {
  try {
    const binary = await rieBinary();
    return { binary, official: true, note: `official Lambda Runtime Interface Emulator: ${binary}` };
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    return { binary: EMULATOR_PATH, official: false, note: `stand-in emulator (scripts/rie/emulator.mjs), not the official RIE: ${why}` };
  }
}

/** Options of {@link startRie}. */
export interface StartRieOptions {
  /** Folder holding the packaged function; becomes LAMBDA_TASK_ROOT and the child's cwd. Keep it outside the repository. */
  taskDir: string;
  /** `path/to/file.export`, relative to taskDir (the file may be .mjs, .js or .cjs), e.g. `functions/sensor-sums/handler.handler`. */
  handler: string;
  /** Port for the emulator's invoke endpoint on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Extra environment for the function (it also reaches the emulator process). */
  env?: Record<string, string>;
  /** AWS_LAMBDA_FUNCTION_NAME; default `function`. */
  functionName?: string;
  /** AWS_LAMBDA_FUNCTION_TIMEOUT in seconds, for init and for each invocation; default 30. */
  timeoutSeconds?: number;
  /** Emulator executable; default {@link rieBinary}(). A `.mjs`/`.js` path (e.g. {@link EMULATOR_PATH}) is run with this Node. */
  binary?: string;
  /** How long to wait for the emulator's port, in ms; default 10000. */
  startTimeoutMs?: number;
  /**
   * The function's memory setting in MB: AWS_LAMBDA_FUNCTION_MEMORY_SIZE, and V8's heap limits as
   * Lambda's managed Node.js runtime derives them from it (new space = memory / 10, semi space half
   * of that, old space = memory - new space), so garbage collection runs as tight as deployed.
   * Nothing caps the process's memory: measure it (`SLUICE_RIE_METRICS=1` in `env`, see bootstrap.mjs).
   * The official emulator copies the function's output into its own stdout in chunks, so its START,
   * END and REPORT lines can land inside the function's lines: to read every line the function
   * wrote, give it `SLUICE_RIE_CAPTURE=<file>` in `env` (bootstrap.mjs).
   */
  memorySizeMb?: number;
}

/** A running emulator, from {@link startRie}. */
export interface RieHandle {
  /** The invoke endpoint: `http://127.0.0.1:<port>/2015-03-31/functions/function/invocations`. */
  url: string;
  /** The emulator's port on 127.0.0.1. */
  port: number;
  /**
   * Invokes the function with `event` and returns its parsed JSON result; throws {@link RieInvokeError} on a function, init or timeout error.
   * Calls made while one runs wait their turn, as one Lambda execution environment takes one invocation at a time.
   */
  invoke(event: unknown): Promise<unknown>;
  /** Stops the emulator and the function's runtime (the whole process group) and waits for them to exit. */
  stop(): Promise<void>;
  /** Everything the emulator and the function wrote to stdout and stderr so far (the last MiB). */
  logs(): string;
}

/** An invocation that did not return a result: a function error, a failed init, a timeout or a crash. */
export class RieInvokeError extends Error {
  /** HTTP status the emulator answered with. */
  readonly status: number;
  /** `errorType` of the error document, or the `Error-Type` header, or `Sandbox.Timedout` for a timeout. */
  readonly errorType: string;
  /** The parsed error document, when the body was JSON. */
  readonly payload: unknown;
  /** The raw response body. */
  readonly body: string;

  constructor(status: number, errorType: string, body: string, payload: unknown) {
    const doc = payload as { errorMessage?: unknown } | undefined;
    const message = typeof doc?.errorMessage === 'string' ? doc.errorMessage : body;
    super(`Lambda invocation failed (${status}, ${errorType}): ${message}`);
    this.name = 'RieInvokeError';
    this.status = status;
    this.errorType = errorType;
    this.body = body;
    this.payload = payload;
  }
}

/** Whether a parsed body has the shape of a Lambda error document ({errorType, errorMessage, stackTrace?}). */
function isErrorDocument(v: unknown): v is { errorType: string; errorMessage: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const allowed = new Set(['errorType', 'errorMessage', 'stackTrace', 'trace', 'cause']);
  return typeof o.errorType === 'string' && typeof o.errorMessage === 'string' && Object.keys(o).every((k) => allowed.has(k));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Starts the Lambda Runtime Interface Emulator on 127.0.0.1 for the function `handler` packaged in
 * `taskDir`, and resolves once its port accepts connections. The emulator starts the function (and
 * reports init errors) on the first invocation. The child runs in its own process group, with
 * cwd = taskDir and only PATH, HOME, the Lambda variables and `opts.env` in its environment, so it
 * cannot resolve this repository's node_modules.
 *
 * @example
 * ```ts
 * const rie = await startRie({ taskDir, handler: 'functions/sensor-sums/handler.handler', functionName: 'sensor-sums' });
 * try {
 *   const result = await rie.invoke({ records: {} });
 * } finally {
 *   await rie.stop();
 * }
 * ```
 */
export async function startRie(opts: StartRieOptions): Promise<RieHandle> {
  const taskDir = path.resolve(opts.taskDir);
  if (!existsSync(taskDir) || !statSync(taskDir).isDirectory()) throw new Error(`startRie: taskDir ${taskDir} is not a directory`);
  const binary = opts.binary ? path.resolve(opts.binary) : await rieBinary();
  const port = opts.port ?? (await freePort());
  const apiPort = await freePort();
  const functionName = opts.functionName ?? 'function';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? os.homedir(),
    LAMBDA_TASK_ROOT: taskDir,
    _HANDLER: opts.handler,
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_LAMBDA_FUNCTION_TIMEOUT: String(opts.timeoutSeconds ?? 30),
    ...(opts.memorySizeMb ? { AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(opts.memorySizeMb) } : {}),
    ...opts.env,
  };
  const newSpace = opts.memorySizeMb ? Math.floor(opts.memorySizeMb / 10) : 0;
  const heapFlags = opts.memorySizeMb
    ? [`--max-semi-space-size=${Math.floor(newSpace / 2)}`, `--max-old-space-size=${opts.memorySizeMb - newSpace}`]
    : [];
  const rieArgs = [
    '--runtime-interface-emulator-address',
    `127.0.0.1:${port}`,
    // Not the default 127.0.0.1:9001, so that emulators can run side by side.
    '--runtime-api-address',
    `127.0.0.1:${apiPort}`,
    // The bootstrap command; the emulator takes its last argument as the handler when _HANDLER is unset.
    // Flags it does not know (Node's) the official emulator's parser passes on to the command, in order.
    process.execPath,
    ...heapFlags,
    BOOTSTRAP_PATH,
    opts.handler,
  ];
  const isScript = /\.(mjs|cjs|js)$/.test(binary);
  const child = spawn(isScript ? process.execPath : binary, isScript ? [binary, ...rieArgs] : rieArgs, {
    cwd: taskDir,
    env,
    detached: true, // its own process group, so stop() reaches the runtime too
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  const append = (d: Buffer) => {
    logs += d.toString();
    if (logs.length > MAX_LOG_CHARS) logs = logs.slice(-MAX_LOG_CHARS);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let exitInfo: string | null = null;
  const exited = new Promise<void>((resolve) => {
    child.on('error', (err) => {
      exitInfo = `failed to start: ${err.message}`;
      resolve();
    });
    child.on('exit', (code, signal) => {
      exitInfo = signal ? `killed by ${signal}` : `exited with code ${code}`;
      resolve();
    });
  });
  // A test that forgets stop() must not leave the emulator behind, nor hang on it.
  const onExit = () => killGroup(child, 'SIGKILL');
  process.on('exit', onExit);
  child.unref();
  (child.stdout as unknown as net.Socket | null)?.unref?.();
  (child.stderr as unknown as net.Socket | null)?.unref?.();

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (exitInfo === null) {
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      // The runtime may have been left in the group (or its own group) by an emulator killed hard.
      killGroup(child, 'SIGKILL');
      process.off('exit', onExit);
    })();
    return stopped;
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 10_000);
  for (;;) {
    if (exitInfo !== null) {
      await stop();
      throw new Error(`startRie: the emulator ${exitInfo} before listening on 127.0.0.1:${port}\n${logs}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`startRie: the emulator did not listen on 127.0.0.1:${port} within ${opts.startTimeoutMs ?? 10_000} ms\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const url = `http://127.0.0.1:${port}/2015-03-31/functions/function/invocations`;
  let queue: Promise<unknown> = Promise.resolve();
  return {
    url,
    port,
    logs: () => logs,
    stop,
    invoke(event: unknown): Promise<unknown> {
      // The official RIE serves one invocation at a time and panics on a second one in flight
      // (ReserveFailed: AlreadyReserved), so calls queue here.
      const turn = queue.then(() => invokeNow(event));
      queue = turn.catch(() => {});
      return turn;
    },
  };

  async function invokeNow(event: unknown): Promise<unknown> {
    if (exitInfo !== null || stopped) throw new Error(`startRie: the emulator is not running (${exitInfo ?? 'stopped'})\n${logs}`);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event === undefined ? null : event),
    });
    const body = await res.text();
    let parsed: unknown;
    let isJson = true;
    try {
      parsed = body === '' ? null : JSON.parse(body);
    } catch {
      isJson = false;
    }
    const errorTypeHeader = res.headers.get('error-type') ?? res.headers.get('x-amz-function-error');
    if (!res.ok || errorTypeHeader || !isJson || isErrorDocument(parsed)) {
      const docType = isErrorDocument(parsed) ? parsed.errorType : undefined;
      const timedOut = !isJson && /^Task timed out after/.test(body);
      const errorType = docType ?? errorTypeHeader ?? (timedOut ? 'Sandbox.Timedout' : `HTTP ${res.status}`);
      throw new RieInvokeError(res.status, errorType, body, isJson ? parsed : undefined);
    }
    return parsed;
  }
}
