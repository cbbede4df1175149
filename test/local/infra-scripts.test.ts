// scripts/infra/infra.ts: the Java checks `npm run infra:up` makes before it starts anything.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { javaMajor, requireJava, requireJavac } from '../../scripts/infra/infra.js';

test('javaMajor reads old and new java -version formats', () => {
  assert.equal(javaMajor('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment'), 17);
  assert.equal(javaMajor('java version "1.8.0_292"\nJava(TM) SE Runtime Environment'), 8);
  assert.equal(javaMajor('openjdk version "21" 2023-09-19'), 21);
  assert.equal(javaMajor('openjdk version "11.0.2" 2019-01-15'), 11);
  assert.equal(javaMajor('no version here'), undefined);
});

/** Runs `check` with PATH holding only fake java/javac scripts. */
function withFakeJdk(scripts: Record<string, string>, check: () => void) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-fake-jdk-'));
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(dir, name), 0o755);
  }
  const saved = process.env.PATH;
  process.env.PATH = dir;
  try {
    check();
  } finally {
    process.env.PATH = saved;
  }
}

test('infra:up refuses a Java older than 17, naming the version found and what to do', () => {
  withFakeJdk({ java: `echo 'openjdk version "11.0.2" 2019-01-15' >&2` }, () => {
    assert.throws(
      requireJava,
      /^Error: Java 17 or newer is needed \(Kafka 4 requires it\); found Java 11 \(java -version: openjdk version "11\.0\.2" 2019-01-15\)\. Install a JDK 17\+/,
    );
  });
  withFakeJdk({ java: `echo 'openjdk version "17.0.15" 2025-04-15' >&2` }, () => assert.doesNotThrow(requireJava));
});

test('without java, or without javac (a JRE only), it says a JDK 17+ is needed', () => {
  withFakeJdk({}, () => {
    assert.throws(requireJava, /java was not found: install a JDK 17 or newer/);
    assert.throws(
      requireJavac,
      /javac was not found: .*LoopbackDynamoDB\.java.*compiled once at first start; install a JDK 17\+ \(not only a JRE\)/,
    );
  });
});
