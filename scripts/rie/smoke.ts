/**
 * Smoke test of rie.ts and bootstrap.mjs: runs throwaway handlers, written to a fresh temp folder,
 * under the emulator and checks results, errors, timeouts and isolation.
 *
 *   node --import tsx scripts/rie/smoke.ts [--stand-in]
 *
 * Without `--stand-in` it uses the official RIE when it can be had (SLUICE_RIE_BIN, or built from
 * SLUICE_RIE_SOURCE: see rie.ts) and otherwise the plain-Node stand-in emulator.mjs, saying why on
 * its first line; `--official` fails instead of falling back. With `--stand-in`, always the stand-in.
 * Ends with `N passed, N failed` and exits 1 on a failure.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EMULATOR_PATH, RieInvokeError, type RieHandle, type StartRieOptions, selectRie, startRie } from './rie.js';

const choice = process.argv.includes('--stand-in')
  ? { binary: EMULATOR_PATH, official: false, note: 'stand-in emulator (scripts/rie/emulator.mjs), as --stand-in asks' }
  : await selectRie();
console.log(`# ${choice.note}`);
if (!choice.official && process.argv.includes('--official')) {
  console.log('0 passed, 1 failed (--official: the official RIE is not available)');
  process.exit(1);
}
const { binary } = choice;
const taskDir = mkdtempSync(path.join(os.tmpdir(), 'rie-smoke-'));
mkdirSync(path.join(taskDir, 'functions', 'echo'), { recursive: true });
writeFileSync(
  path.join(taskDir, 'functions', 'echo', 'handler.mjs'),
  `let inits = (globalThis.__inits ?? 0) + 1; globalThis.__inits = inits;
export const handler = async (event, ctx) => {
  let isolated = false;
  try { await import('kafkajs'); } catch { isolated = true; }
  return {
    echo: event, name: ctx.functionName, requestId: ctx.awsRequestId, arn: ctx.invokedFunctionArn,
    remaining: ctx.getRemainingTimeInMillis() > 0, cwd: process.cwd(), isolated, inits,
    nodeOptions: process.env.NODE_OPTIONS ?? null, nodePath: process.env.NODE_PATH ?? null, extra: process.env.EXTRA ?? null,
  };
};\n`,
);
writeFileSync(path.join(taskDir, 'cjs.cjs'), `exports.run = async (event) => ({ cjs: true, event });\n`);
writeFileSync(path.join(taskDir, 'init-error.mjs'), `throw new Error('boom at import');\nexport const handler = async () => 'never';\n`);
writeFileSync(
  path.join(taskDir, 'handler-error.mjs'),
  `export const handler = async (event) => { if (event.fail) { const e = new TypeError('bad event'); throw e; } return 'ok'; };\n`,
);
writeFileSync(
  path.join(taskDir, 'slow.mjs'),
  `export const handler = async (event) => { await new Promise((r) => setTimeout(r, event.ms)); return 'done'; };\n`,
);
writeFileSync(
  path.join(taskDir, 'crash.mjs'),
  `export const handler = async () => { setTimeout(() => { throw new Error('async crash'); }, 1); await new Promise((r) => setTimeout(r, 1000)); return 'never'; };\n`,
);

let passed = 0;
let failed = 0;
async function check(name: string, opts: Omit<StartRieOptions, 'taskDir' | 'binary'>, body: (rie: RieHandle) => Promise<void>) {
  const started = Date.now();
  const rie = await startRie({ taskDir, binary, ...opts });
  try {
    await body(rie);
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${(err as Error).stack}\n--- logs ---\n${rie.logs()}\n------------`);
  } finally {
    await rie.stop();
  }
}
async function rejects(p: Promise<unknown>, errorType: RegExp): Promise<RieInvokeError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof RieInvokeError, `expected RieInvokeError, got ${err}`);
    assert.match(err.errorType, errorType);
    return err;
  }
  throw new Error('expected the invocation to fail');
}

await check(
  'echo: result, context, isolation, env',
  { handler: 'functions/echo/handler.handler', functionName: 'sensor-sums', env: { EXTRA: 'x' } },
  async (rie) => {
    const a = (await rie.invoke({ hello: 'world', n: [1, 2] })) as Record<string, unknown>;
    assert.deepEqual(a.echo, { hello: 'world', n: [1, 2] });
    assert.equal(a.name, 'sensor-sums');
    assert.equal(a.remaining, true);
    assert.match(String(a.requestId), /^[0-9a-f-]{36}$/);
    assert.match(String(a.arn), /:function:sensor-sums$/);
    assert.equal(a.cwd, taskDir);
    assert.equal(a.isolated, true, 'the function could import kafkajs from the repo');
    assert.equal(a.nodeOptions, null);
    assert.equal(a.nodePath, null);
    assert.equal(a.extra, 'x');
    const b = (await rie.invoke({ second: true })) as Record<string, unknown>;
    assert.deepEqual(b.echo, { second: true });
    assert.equal(b.inits, 1, 'module imported once across invocations');
    assert.notEqual(b.requestId, a.requestId);
    const [c, d] = await Promise.all([rie.invoke(1), rie.invoke(2)]);
    assert.deepEqual([(c as { echo: unknown }).echo, (d as { echo: unknown }).echo], [1, 2]);
    assert.match(rie.logs(), /START RequestId/);
  },
);
await check('cjs module, .cjs extension', { handler: 'cjs.run' }, async (rie) => {
  assert.deepEqual(await rie.invoke({ a: 1 }), { cjs: true, event: { a: 1 } });
});
await check('init error is reported, twice', { handler: 'init-error.handler' }, async (rie) => {
  const e = await rejects(rie.invoke({}), /./);
  assert.match(e.body, /boom at import/);
  const e2 = await rejects(rie.invoke({}), /./);
  assert.match(e2.body, /boom at import/);
});
await check('missing module is an init error', { handler: 'nope.handler' }, async (rie) => {
  const e = await rejects(rie.invoke({}), /ImportModuleError/);
  assert.match(e.body, /Cannot find module/);
});
await check('missing export is an init error', { handler: 'handler-error.nothere' }, async (rie) => {
  await rejects(rie.invoke({}), /HandlerNotFound/);
});
await check('handler error is reported, then the function still works', { handler: 'handler-error.handler' }, async (rie) => {
  const e = await rejects(rie.invoke({ fail: true }), /TypeError/);
  assert.match(e.message, /bad event/);
  assert.equal(await rie.invoke({ fail: false }), 'ok');
});
await check('timeout is reported, then the function restarts', { handler: 'slow.handler', timeoutSeconds: 1 }, async (rie) => {
  await rejects(rie.invoke({ ms: 3000 }), /Timedout|Timeout/i);
  assert.equal(await rie.invoke({ ms: 10 }), 'done');
});
await check('uncaught exception is reported for its invocation', { handler: 'crash.handler' }, async (rie) => {
  const e = await rejects(rie.invoke({}), /./);
  assert.match(e.body, /async crash|exit/i);
});

rmSync(taskDir, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
