#!/usr/bin/env node
/**
 * A stand-in for the AWS Lambda Runtime Interface Emulator (`aws-lambda-rie`) in plain Node, with no
 * dependencies, for machines where the Go binary cannot be built. It is NOT the official emulator:
 * it copies the official one's command line and observable behaviour (as read in its source) closely
 * enough that `startRie({ binary: EMULATOR_PATH })` in rie.ts drives both the same way:
 *
 *   node scripts/rie/emulator.mjs [--runtime-interface-emulator-address 0.0.0.0:8080]
 *        [--runtime-api-address 127.0.0.1:9001] [--log-level info] <bootstrap command…>
 *
 * - POST /2015-03-31/functions/function/invocations on the emulator address invokes the function
 *   with the request body as the event; invocations are served one at a time, in order.
 * - The bootstrap is started lazily, on the first invocation, with this process's working directory
 *   and its whole environment plus AWS_LAMBDA_RUNTIME_API, _HANDLER (from AWS_LAMBDA_FUNCTION_HANDLER,
 *   _HANDLER, or the last positional argument when there are two or more) and the AWS_LAMBDA_*
 *   defaults the official emulator fills in.
 * - AWS_LAMBDA_FUNCTION_TIMEOUT (seconds, default 300) bounds init and each invocation.
 * - Answers: the function's response with 200; a function error with 200, its error document as the
 *   body and headers `X-Amz-Function-Error: Unhandled` and `Error-Type`; an init failure or a runtime
 *   that exits during an invocation with 502, an error document and `Error-Type`; a timeout with 200
 *   and the text `Task timed out after N.00 seconds`, as the official emulator does. A failed init
 *   stays failed (every later invocation gets the same 502); after a timeout or a runtime exit the
 *   runtime is started again on the next invocation.
 * - START / END / REPORT lines go to stdout; the runtime's stdout and stderr are passed through.
 * - SIGTERM or SIGINT stops the runtime and exits 0.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';

const MAX_PAYLOAD = 6 * 1024 * 1024;
const API = '/2018-06-01/runtime';

// ---- command line (unknown flags are ignored, as go-flags does with IgnoreUnknown) ------------
const argv = process.argv.slice(2);
const opts = { rie: '0.0.0.0:8080', api: '127.0.0.1:9001', logLevel: process.env.LOG_LEVEL || 'info' };
const positional = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (positional.length === 0 && a.startsWith('--')) {
    const [flag, inline] = a.split(/=(.*)/s, 2);
    const value = () => (inline !== undefined ? inline : argv[++i]);
    if (flag === '--runtime-interface-emulator-address') opts.rie = value();
    else if (flag === '--runtime-api-address') opts.api = value();
    else if (flag === '--log-level') opts.logLevel = value();
    continue;
  }
  positional.push(a);
}
let bootstrapCmd = positional;
if (bootstrapCmd.length === 0) {
  const found = [`${process.cwd()}/bootstrap`, '/var/runtime/bootstrap', '/var/task/bootstrap', '/opt/bootstrap'].find((p) =>
    existsSync(p),
  );
  if (!found) fail('could not find runtime entrypoint in CLI args and in predefined locations');
  bootstrapCmd = [found];
}
const handler =
  process.env.AWS_LAMBDA_FUNCTION_HANDLER || process.env._HANDLER || (positional.length >= 2 ? positional[positional.length - 1] : '');
const timeoutSec = Number.parseInt(process.env.AWS_LAMBDA_FUNCTION_TIMEOUT ?? '300', 10) || 300;
const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME || 'test_function';
const region = process.env.AWS_REGION || 'us-east-1';
const functionArn = `arn:aws:lambda:${region}:012345678912:function:${functionName}`;
const functionVersion = process.env.AWS_LAMBDA_FUNCTION_VERSION || '$LATEST';
const memorySize = process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE || '3008';
const debug = opts.logLevel === 'debug' || opts.logLevel === 'trace';

function fail(msg) {
  process.stderr.write(`emulator: ${msg}\n`);
  process.exit(1);
}
function info(msg) {
  if (opts.logLevel !== 'error' && opts.logLevel !== 'warn') process.stdout.write(`${new Date().toISOString()} [INFO] (rie) ${msg}\n`);
}
function parseAddr(addr) {
  const i = addr.lastIndexOf(':');
  if (i < 0) fail(`not a host:port address: ${addr}`);
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}
function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a rejection nobody waits for is not an error here
  return { promise, resolve, reject };
}
function errorDoc(errorType, errorMessage) {
  return JSON.stringify({ errorType, errorMessage });
}
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_PAYLOAD + 1) chunks.push(c);
    });
    req.on('end', () => resolve({ body: Buffer.concat(chunks), size }));
    req.on('error', reject);
  });
}
function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

// ---- the runtime (the bootstrap process) ------------------------------------------------------
/**
 * @typedef {{ proc: import('node:child_process').ChildProcess, exited: Promise<string>,
 *   ready: ReturnType<typeof deferred>, waiting: import('node:http').ServerResponse | null }} Runtime
 */
/** @type {Runtime | null} */
let runtime = null;
/** A failed init, replayed to every later invocation. */
let initFailure = null;
/** The invocation in flight: id, and the deferred its outcome settles. */
let current = null;

function startRuntime() {
  const env = {
    AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/Functions',
    AWS_LAMBDA_LOG_STREAM_NAME: '$LATEST',
    AWS_LAMBDA_FUNCTION_VERSION: functionVersion,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: memorySize,
    AWS_LAMBDA_FUNCTION_NAME: functionName,
    AWS_REGION: region,
    ...process.env,
    AWS_LAMBDA_RUNTIME_API: opts.api,
    _HANDLER: handler,
  };
  info(`exec '${bootstrapCmd[0]}' (cwd=${process.cwd()}, handler=${handler})`);
  const proc = spawn(bootstrapCmd[0], bootstrapCmd.slice(1), { cwd: process.cwd(), env, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => {
    proc.on('error', (err) => resolve(`Runtime.InvalidEntrypoint: ${err.message}`));
    proc.on('exit', (code, signal) => resolve(signal ? `signal: ${signal}` : `exit status ${code}`));
  });
  /** @type {Runtime} */
  const rt = { proc, exited, ready: deferred(), waiting: null };
  exited.then((how) => {
    if (runtime === rt) runtime = null;
    rt.ready.reject(new Error(how));
    if (current) current.outcome.resolve({ kind: 'exit', how });
  });
  return rt;
}

async function stopRuntime(rt) {
  if (!rt || rt.proc.exitCode !== null || rt.proc.signalCode !== null) return;
  rt.proc.kill('SIGKILL');
  await rt.exited;
}

/** Starts the runtime if needed and waits until it polls for an invocation; null when it is ready. */
async function ensureRuntime() {
  if (initFailure) return initFailure;
  if (runtime) return null;
  const rt = startRuntime();
  runtime = rt;
  rt.initError = null;
  const timer = setTimeout(() => rt.ready.reject(new Error('timeout')), timeoutSec * 1000);
  try {
    await rt.ready.promise;
    return null;
  } catch (err) {
    let failure;
    if (rt.initError) {
      failure = { status: 502, type: rt.initError.type, body: rt.initError.body };
    } else if (err.message === 'timeout') {
      failure = {
        status: 502,
        type: 'Runtime.InitTimeout',
        body: errorDoc('Runtime.InitTimeout', `Init phase timed out after ${timeoutSec} seconds`),
      };
    } else {
      failure = {
        status: 502,
        type: 'Runtime.ExitError',
        body: errorDoc('Runtime.ExitError', `Runtime exited during init: ${err.message}`),
      };
    }
    await stopRuntime(rt);
    if (runtime === rt) runtime = null;
    initFailure = failure;
    return failure;
  } finally {
    clearTimeout(timer);
  }
}

// ---- Runtime API ------------------------------------------------------------------------------
const runtimeApi = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://runtime');
  const { body, size } = await readBody(req);
  if (debug) process.stdout.write(`emulator: runtime API ${req.method} ${url.pathname}\n`);
  const rt = runtime;
  if (req.method === 'GET' && url.pathname === `${API}/invocation/next`) {
    if (!rt) return send(res, 500, errorDoc('Runtime.Unknown', 'no runtime'));
    rt.waiting = res;
    rt.ready.resolve();
    return;
  }
  if (req.method === 'POST' && url.pathname === `${API}/init/error`) {
    if (rt) rt.initError = { type: req.headers['lambda-runtime-function-error-type'] || 'Runtime.Unknown', body: body.toString('utf8') };
    send(res, 202, '{"status":"OK"}');
    return;
  }
  const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url.pathname);
  if (req.method === 'POST' && m) {
    const [, id, kind] = m;
    if (!current || current.id !== id) return send(res, 400, errorDoc('InvalidRequestID', `Invalid request ID: ${id}`));
    if (kind === 'response' && size > MAX_PAYLOAD) {
      send(
        res,
        413,
        errorDoc(
          'RequestEntityTooLarge',
          `Response payload size (${size} bytes) exceeded maximum allowed payload size (${MAX_PAYLOAD} bytes).`,
        ),
      );
      current.outcome.resolve({
        kind: 'error',
        status: 200,
        type: 'Function.ResponseSizeTooLarge',
        body: errorDoc(
          'Function.ResponseSizeTooLarge',
          `Response payload size exceeded maximum allowed payload size (${MAX_PAYLOAD} bytes).`,
        ),
      });
      return;
    }
    send(res, 202, '{"status":"OK"}');
    if (kind === 'response') current.outcome.resolve({ kind: 'response', body });
    else
      current.outcome.resolve({
        kind: 'error',
        status: 200,
        type: req.headers['lambda-runtime-function-error-type'] || 'Unhandled',
        body: body.toString('utf8'),
      });
    return;
  }
  send(res, 404, errorDoc('NotFound', `${req.method} ${url.pathname}`));
});

// ---- invocations ------------------------------------------------------------------------------
let queue = Promise.resolve();
let initReported = false;

async function invoke(payload, traceId) {
  const initStart = Date.now();
  const failure = await ensureRuntime();
  const initMs = Date.now() - initStart;
  const id = randomUUID();
  process.stdout.write(`START RequestId: ${id} Version: ${functionVersion}\n`);
  const started = Date.now();
  let outcome;
  if (failure) {
    outcome = { kind: 'error', status: failure.status, type: failure.type, body: failure.body };
  } else {
    const rt = runtime;
    current = { id, outcome: deferred() };
    const deadline = Date.now() + timeoutSec * 1000;
    const timer = setTimeout(() => current?.id === id && current.outcome.resolve({ kind: 'timeout' }), timeoutSec * 1000);
    const poll = rt.waiting;
    rt.waiting = null;
    poll.writeHead(200, {
      'content-type': 'application/json',
      'lambda-runtime-aws-request-id': id,
      'lambda-runtime-deadline-ms': String(deadline),
      'lambda-runtime-invoked-function-arn': functionArn,
      'lambda-runtime-trace-id':
        traceId ||
        `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)};Parent=${randomUUID().replace(/-/g, '').slice(0, 16)};Sampled=0`,
    });
    poll.end(payload);
    outcome = await current.outcome.promise;
    clearTimeout(timer);
    current = null;
    if (outcome.kind === 'timeout' || outcome.kind === 'exit') {
      // Lambda resets the sandbox after a timeout or a crash: the next invocation starts afresh.
      if (runtime === rt) runtime = null;
      await stopRuntime(rt);
    } else if (!rt.waiting) {
      // Wait (briefly) for the runtime to poll again, so the next invocation finds it ready.
      rt.ready = deferred();
      const again = await Promise.race([
        rt.ready.promise.then(
          () => true,
          () => false,
        ),
        rt.exited.then(() => false),
      ]);
      if (!again && runtime === rt) runtime = null;
    }
  }
  const ms = Math.min(Date.now() - started, timeoutSec * 1000);
  process.stdout.write(`END RequestId: ${id}\n`);
  const initPart = !initReported && !failure ? `Init Duration: ${initMs.toFixed(2)} ms\t` : '';
  if (!failure) initReported = true;
  process.stdout.write(
    `REPORT RequestId: ${id}\t${initPart}Duration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.ceil(ms)} ms\tMemory Size: ${memorySize} MB\tMax Memory Used: ${memorySize} MB\t\n`,
  );
  return outcome;
}

const emulator = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://emulator');
  if (req.method !== 'POST' || url.pathname !== '/2015-03-31/functions/function/invocations') {
    return send(res, 404, errorDoc('NotFound', `${req.method} ${url.pathname}`));
  }
  const { body, size } = await readBody(req);
  if (size > MAX_PAYLOAD)
    return send(
      res,
      413,
      errorDoc('RequestEntityTooLarge', `Request must be smaller than ${MAX_PAYLOAD} bytes for the InvokeFunction operation`),
    );
  const traceId = req.headers['x-amzn-trace-id'];
  const run = queue.then(() => invoke(body, typeof traceId === 'string' ? traceId : undefined));
  queue = run.catch(() => {});
  let outcome;
  try {
    outcome = await run;
  } catch (err) {
    return send(res, 500, errorDoc('ServiceException', String(err?.message ?? err)));
  }
  if (outcome.kind === 'response') return send(res, 200, outcome.body);
  if (outcome.kind === 'timeout') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end(`Task timed out after ${timeoutSec}.00 seconds`);
  }
  if (outcome.kind === 'exit') {
    return send(res, 502, errorDoc('Runtime.ExitError', `Runtime exited with error: ${outcome.how}`), {
      'error-type': 'Runtime.ExitError',
    });
  }
  const headers = { 'error-type': outcome.type };
  if (outcome.status === 200) headers['x-amz-function-error'] = 'Unhandled';
  return send(res, outcome.status, outcome.body, headers);
});

// ---- start and stop ---------------------------------------------------------------------------
const apiAddr = parseAddr(opts.api);
const rieAddr = parseAddr(opts.rie);
runtimeApi.on('error', (err) => fail(`runtime API on ${opts.api}: ${err.message}`));
emulator.on('error', (err) => fail(`emulator on ${opts.rie}: ${err.message}`));
runtimeApi.listen(apiAddr.port, apiAddr.host, () => {
  emulator.listen(rieAddr.port, rieAddr.host, () =>
    info(`Node stand-in for aws-lambda-rie listening on ${opts.rie}, runtime API on ${opts.api}`),
  );
});

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  info(`Received signal ${signal}; shutting down`);
  const rt = runtime;
  runtime = null;
  if (rt && rt.proc.exitCode === null && rt.proc.signalCode === null) {
    rt.proc.kill('SIGTERM');
    const t = setTimeout(() => rt.proc.kill('SIGKILL'), 2000);
    await rt.exited;
    clearTimeout(t);
  }
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
