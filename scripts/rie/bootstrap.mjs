#!/usr/bin/env node
/**
 * A minimal AWS Lambda custom-runtime bootstrap for Node.js, with no dependencies: it implements
 * the Lambda Runtime API loop (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html) so
 * that a bundled ESM (or CJS) handler can run under the AWS Lambda Runtime Interface Emulator, or
 * any other Runtime API server, outside the Lambda base images.
 *
 *   AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001 LAMBDA_TASK_ROOT=/tmp/task _HANDLER=functions/x/handler.handler \
 *     node scripts/rie/bootstrap.mjs
 *
 * `_HANDLER` is `path/to/file.export` (the export may be a dotted path): the module is
 * `$LAMBDA_TASK_ROOT/path/to/file` with the first of .mjs, .js, .cjs that exists. When `_HANDLER` is
 * unset, the last command-line argument is used (the emulator's own convention).
 *
 * The module is imported once; an import failure is posted to /runtime/init/error and the process
 * exits 1. Each invocation's result is posted as JSON to /invocation/{id}/response; a thrown error
 * (or rejected promise) to /invocation/{id}/error as {errorType, errorMessage, stackTrace}. An
 * uncaught exception or unhandled rejection during an invocation is reported for that invocation
 * and then ends the process, as the managed Node.js runtimes do.
 *
 * With `SLUICE_RIE_METRICS=1`, each invocation also writes one line to stderr before its answer is
 * posted: `{"sluice":"rie-metrics","requestId","handlerMs","cpuUserMs","cpuSystemMs","rss",
 * "maxRss","heapTotal","heapUsed","external","arrayBuffers"}` (bytes; `maxRss` is the process's
 * peak resident set so far, VmHWM), for benchmarks of the packaged function (bench/cost.ts).
 * With `SLUICE_RIE_CAPTURE=<file>`, everything written to stdout and stderr is also appended to that
 * file, synchronously and whole: the official emulator copies the runtime's output in chunks and
 * can split a line with its own START / END / REPORT lines.
 */
import http from 'node:http';
import { existsSync, openSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const API_VERSION = '2018-06-01';
const runtimeApi = process.env.AWS_LAMBDA_RUNTIME_API;
const taskRoot = process.env.LAMBDA_TASK_ROOT || process.cwd();
const handlerSpec = process.env._HANDLER || process.argv[process.argv.length - 1];

if (!runtimeApi) {
  process.stderr.write('bootstrap: AWS_LAMBDA_RUNTIME_API is not set; run this under a Lambda Runtime API server\n');
  process.exit(1);
}
const [apiHost, apiPortText] = splitHostPort(runtimeApi);
const apiPort = Number(apiPortText || 80);
const base = `http://${runtimeApi}/${API_VERSION}/runtime`;
const metrics = process.env.SLUICE_RIE_METRICS === '1';
if (process.env.SLUICE_RIE_CAPTURE) {
  const fd = openSync(process.env.SLUICE_RIE_CAPTURE, 'a');
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream);
    stream.write = (chunk, ...rest) => {
      writeSync(fd, typeof chunk === 'string' ? chunk : Buffer.from(chunk));
      return write(chunk, ...rest);
    };
  }
}

/** The request id of the invocation in flight, if any. */
let current = null;
/** Whether the function's module finished importing. */
let initialised = false;

function splitHostPort(hostPort) {
  const i = hostPort.lastIndexOf(':');
  if (i < 0) return [hostPort, ''];
  return [hostPort.slice(0, i).replace(/^\[|\]$/g, ''), hostPort.slice(i + 1)];
}

/** Turns anything thrown into the error document the Runtime API takes. */
function errorDocument(err, fallbackType) {
  if (err instanceof Error) {
    const errorType = err.name && err.name !== 'Error' ? err.name : (fallbackType ?? 'Error');
    return {
      errorType,
      errorMessage: err.message,
      stackTrace:
        typeof err.stack === 'string'
          ? err.stack
              .split('\n')
              .slice(1)
              .map((l) => l.trim())
          : [],
    };
  }
  let message;
  try {
    message = typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    message = String(err);
  }
  return { errorType: fallbackType ?? 'Error', errorMessage: message ?? String(err), stackTrace: [] };
}

async function post(pathname, body, headers = {}) {
  const res = await fetch(`${base}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  // Drain the body so the connection can be reused.
  const text = await res.text();
  if (res.status >= 300) {
    process.stderr.write(`bootstrap: POST ${pathname} answered ${res.status}: ${text}\n`);
  }
  return res;
}

async function postError(pathname, err, fallbackType) {
  const doc = errorDocument(err, fallbackType);
  // Log it as the managed runtimes do, so it shows up in the emulator's output.
  process.stderr.write(`${new Date().toISOString()}\t${current ?? 'undefined'}\tERROR\t${JSON.stringify(doc)}\n`);
  await post(pathname, JSON.stringify(doc), { 'Lambda-Runtime-Function-Error-Type': doc.errorType });
}

/**
 * GET /invocation/next. This long poll can wait for minutes between invocations, so it uses
 * node:http without a timeout: fetch (undici) gives up on headers after 300 s, and an abandoned
 * poll could swallow the next invocation.
 */
function nextInvocation() {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: apiHost, port: apiPort, method: 'GET', path: `/${API_VERSION}/runtime/invocation/next`, timeout: 0 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function resolveModule(spec) {
  const dir = path.dirname(spec);
  const base = path.basename(spec);
  const m = /^([^.]*)\.(.*)$/.exec(base);
  if (!m?.[1] || !m[2]) {
    const e = new Error(`Bad handler ${spec}: expected path/to/module.export`);
    e.name = 'Runtime.MalformedHandlerName';
    throw e;
  }
  const stem = path.resolve(taskRoot, dir, m[1]);
  for (const ext of ['.mjs', '.js', '.cjs']) {
    const file = stem + ext;
    if (existsSync(file) && statSync(file).isFile()) return { file, exportPath: m[2].split('.') };
  }
  const e = new Error(`Cannot find module '${path.relative(taskRoot, stem) || stem}' (tried .mjs, .js, .cjs under ${taskRoot})`);
  e.name = 'Runtime.ImportModuleError';
  throw e;
}

async function loadHandler(spec) {
  if (!spec) {
    const e = new Error('No handler: set _HANDLER to path/to/module.export');
    e.name = 'Runtime.MalformedHandlerName';
    throw e;
  }
  const { file, exportPath } = resolveModule(spec);
  let mod;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    if (err instanceof SyntaxError) err.name = 'Runtime.UserCodeSyntaxError';
    else if (err && err.code === 'ERR_MODULE_NOT_FOUND') err.name = 'Runtime.ImportModuleError';
    throw err;
  }
  const pick = (root) => exportPath.reduce((o, k) => (o == null ? undefined : o[k]), root);
  const fn = pick(mod) ?? pick(mod.default);
  if (typeof fn !== 'function') {
    const e = new Error(`${path.basename(file)}.${exportPath.join('.')} is undefined or not exported`);
    e.name = 'Runtime.HandlerNotFound';
    throw e;
  }
  return fn;
}

function buildContext(headers) {
  const header = (name) => {
    const v = headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const deadline = Number(header('Lambda-Runtime-Deadline-Ms'));
  const parseJson = (s) => {
    if (!s) return undefined;
    try {
      return JSON.parse(s);
    } catch {
      return undefined;
    }
  };
  const traceId = header('Lambda-Runtime-Trace-Id');
  if (traceId) process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;
  return {
    awsRequestId: header('Lambda-Runtime-Aws-Request-Id'),
    invokedFunctionArn: header('Lambda-Runtime-Invoked-Function-Arn'),
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: parseJson(header('Lambda-Runtime-Client-Context')),
    identity: parseJson(header('Lambda-Runtime-Cognito-Identity')),
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => (Number.isFinite(deadline) ? Math.max(0, deadline - Date.now()) : 0),
  };
}

/** Calls the handler, promise style or (for a handler declaring three parameters) callback style. */
function callHandler(fn, event, context) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err != null) reject(err);
      else resolve(result);
    };
    try {
      const out = fn(event, context, callback);
      if (out && typeof out.then === 'function') {
        out.then(
          (r) => callback(null, r),
          (e) => callback(e ?? new Error('Handler rejected with no reason')),
        );
      } else if (fn.length < 3) {
        callback(null, out);
      }
    } catch (err) {
      callback(err);
    }
  });
}

/** One line of what the invocation just cost: wall and CPU time, and memory (pipes to stderr are synchronous on Linux, so it precedes the answer). */
function writeMetrics(requestId, started) {
  const handlerMs = performance.now() - started.at;
  const cpu = process.cpuUsage(started.cpu);
  const m = process.memoryUsage();
  const line = {
    sluice: 'rie-metrics',
    requestId,
    handlerMs: Math.round(handlerMs * 1000) / 1000,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    rss: m.rss,
    maxRss: process.resourceUsage().maxRSS * 1024,
    heapTotal: m.heapTotal,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
  process.stderr.write(`${JSON.stringify(line)}\n`);
}

let dying = false;
async function fatal(err) {
  if (dying) return;
  dying = true;
  try {
    if (current) {
      const id = current;
      await postError(`/invocation/${id}/error`, err, 'Runtime.UnhandledError');
    } else if (!initialised) {
      await postError('/init/error', err, 'Runtime.UnhandledError');
    } else {
      process.stderr.write(`bootstrap: uncaught error between invocations: ${err?.stack ?? err}\n`);
    }
  } finally {
    process.exit(1);
  }
}
process.on('uncaughtException', (err) => void fatal(err));
process.on('unhandledRejection', (reason) => void fatal(reason));

async function main() {
  let handler;
  try {
    handler = await loadHandler(handlerSpec);
  } catch (err) {
    await postError('/init/error', err);
    process.exit(1);
  }
  initialised = true;

  for (;;) {
    const next = await nextInvocation();
    if (next.status !== 200) throw new Error(`GET /invocation/next answered ${next.status}: ${next.body}`);
    const context = buildContext(next.headers);
    const id = context.awsRequestId;
    if (!id) throw new Error('GET /invocation/next gave no Lambda-Runtime-Aws-Request-Id');
    current = id;
    try {
      let event;
      try {
        event = next.body === '' ? {} : JSON.parse(next.body);
      } catch (err) {
        err.name = 'Runtime.UnmarshalError';
        throw err;
      }
      const started = metrics ? { at: performance.now(), cpu: process.cpuUsage() } : undefined;
      let result;
      try {
        result = await callHandler(handler, event, context);
      } finally {
        if (started) writeMetrics(id, started);
      }
      let body;
      try {
        body = JSON.stringify(result === undefined ? null : result);
      } catch (err) {
        err.name = 'Runtime.MarshalError';
        throw err;
      }
      await post(`/invocation/${id}/response`, body);
    } catch (err) {
      await postError(`/invocation/${id}/error`, err);
    } finally {
      current = null;
    }
  }
}

main().catch((err) => {
  process.stderr.write(`bootstrap: ${err?.stack ?? err}\n`);
  process.exit(1);
});
