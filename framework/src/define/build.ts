import './metadata.js';
import { toMs } from '../duration.js';
import { ConfigError, errorText } from '../errors.js';
import { describe, resolveSerializer } from '../io/serializers.js';
import { KeyedState } from '../state/keyed.js';
import { normalizeAggregations } from '../windows/aggregators.js';
import { createWindowOperator } from '../windows/operators/index.js';
import type { WindowSpec } from '../windows/spec.js';
import type { KeyedStateSpec, Manifest, Step, WindowStep } from './manifest.js';
import { type Binding, classRecord } from './metadata.js';
import { SOURCE_OPTIONS, sourceSpec } from './source.js';
import { scoreStep, Stream } from './stream.js';

/**
 * A function definition: a decorated class or a function-first {@link Stream}.
 *
 * @example
 * const defs: Definition[] = [SensorSums, stream('clicks').to('clicks-copy')];
 * const handlers = defs.map((d) => sluice(d));
 */
export type Definition = Stream<any> | (new () => object);

/** A manifest plus the object whose methods the steps call (the class instance), if any. */
export interface LoadedDefinition {
  readonly manifest: Manifest;
  readonly instance: object | undefined;
}

/**
 * Reads a definition into its manifest, validating everything a record could trip on later.
 *
 * @example
 * const { manifest } = loadDefinition(SensorSums);
 */
export function loadDefinition(def: Definition): LoadedDefinition {
  if (def instanceof Stream) return { manifest: checkManifest(def.manifest()), instance: undefined };
  if (typeof def === 'function') return fromClass(def);
  throw new ConfigError(`sluice() takes a decorated class or a stream(...) chain; received ${describe(def)}.`);
}

/** The manifest of a definition. @example manifestOf(SensorSums).steps */
export function manifestOf(def: Definition): Manifest {
  return loadDefinition(def).manifest;
}

function fromClass(cls: new () => object): LoadedDefinition {
  const rec = classRecord(cls);
  const className = cls.name || '(anonymous class)';
  if (!rec?.source) {
    throw new ConfigError(`class ${className} has no @source('topic'); decorate it with @source('<topic>') so Sluice knows what it reads.`);
  }
  const { topic, options } = rec.source;
  for (const k of Object.keys(options)) {
    if (!SOURCE_OPTIONS.includes(k))
      throw new ConfigError(`unknown option "${k}" in @source() of class ${className}; allowed: ${SOURCE_OPTIONS.join(', ')}.`);
  }
  const name = options.name ?? className;
  let instance: Record<string, unknown>;
  try {
    instance = new cls() as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(
      `class ${className} could not be constructed without arguments (${errorText(e)}); Sluice creates one instance per container.`,
      { cause: e },
    );
  }

  const byMember = new Map<string, Binding[]>();
  for (const b of [...rec.bindings].sort((a, z) => a.seq - z.seq)) {
    const list = byMember.get(b.member) ?? [];
    list.push(b);
    byMember.set(b.member, list);
  }
  const steps: Step[] = [];
  const state: KeyedStateSpec[] = [];
  // Members in source order (first decorator of each); on one member the step comes before its outputs.
  for (const [member, bindings] of byMember) {
    const core = bindings.filter((b) => b.role !== 'to');
    if (core.length > 1) {
      throw new ConfigError(
        `member "${member}" of class ${className} has ${core.length} step decorators (${core.map((b) => (b.role === 'step' ? `@${b.kind}` : `@${b.role}`)).join(', ')}); give each step its own member.`,
      );
    }
    const main = core[0];
    if (!main) {
      throw new ConfigError(
        `@to() on member "${member}" of class ${className} has nothing to send; stack it on a step or window, e.g. @to('out') @map() enrich(r) {…}.`,
      );
    }
    if (main.role === 'keyed') {
      if (bindings.length > 1)
        throw new ConfigError(`@to() cannot decorate keyed state "${member}" of class ${className}; put it on a step.`);
      const handle = new KeyedState(member, main.options as { ttl?: never });
      instance[member] = handle;
      state.push({ name: member, ...(handle.ttlMs !== undefined ? { ttlMs: handle.ttlMs } : {}) });
      continue;
    }
    if (main.role === 'step') {
      const fn = instance[member];
      if (typeof fn !== 'function') throw new ConfigError(`@${main.kind}() member "${member}" of class ${className} is not a method.`);
      steps.push({ kind: main.kind, name: member, fn: (fn as Function).bind(instance) as never });
    } else if (main.role === 'score') {
      const fn = instance[member];
      if (typeof fn !== 'function') throw new ConfigError(`@score() member "${member}" of class ${className} is not a method.`);
      const name = main.options.name ?? member;
      steps.push(
        scoreStep(
          main.model,
          main.options.features,
          (fn as Function).bind(instance),
          name,
          `@score() on "${member}" of class ${className}`,
          ['features', 'name'],
          main.options,
        ),
      );
    } else if (main.role === 'window') {
      const window = main.build(member) as WindowSpec;
      const aggregations = normalizeAggregations(instance[member], `window "${member}" of class ${className}`);
      steps.push({ kind: 'window', name: member, window, aggregations, ...(main.options.onLate ? { onLate: main.options.onLate } : {}) });
    }
    for (const b of bindings) {
      if (b.role !== 'to') continue;
      steps.push({
        kind: 'to',
        name: b.topic,
        topic: b.topic,
        key: resolveSerializer(b.options.key, 'string', `key serializer of @to('${b.topic}')`),
        value: resolveSerializer(b.options.value, 'json', `value serializer of @to('${b.topic}')`),
      });
    }
  }
  const manifest: Manifest = {
    name,
    source: sourceSpec(topic, options, `@source() of class ${className}`),
    steps,
    state,
    ...(options.lateTopic ? { lateTopic: options.lateTopic } : {}),
  };
  return { manifest: checkManifest(manifest), instance };
}

/** The source's idle default given to every window that sets no `idle` of its own. */
function withIdleDefault(m: Manifest): Manifest {
  const idleMs = m.source.idleMs;
  if (idleMs === undefined) return m;
  const steps = m.steps.map((s) => (s.kind === 'window' && s.window.idleMs === undefined ? { ...s, window: { ...s.window, idleMs } } : s));
  return { ...m, steps };
}

/**
 * Idle closing emits window results from a tick, where no record fences what later steps do
 * with them: another window, or keyed state, after an idle window could apply a result twice
 * after a tick that crashed half-way. Refused at load until ticks fence them.
 */
function checkIdleWindows(m: Manifest): void {
  const first = m.steps.findIndex((s) => s.kind === 'window' && typeof s.window.idleMs === 'number');
  if (first < 0) return;
  const idle = m.steps[first] as WindowStep;
  const later = m.steps.slice(first + 1).find((s) => s.kind === 'window');
  if (later) {
    throw new ConfigError(
      `window "${idle.name}" of function "${m.name}" closes when idle, and window "${later.name}" follows it; a window after an idle window is not supported. ` +
        `Turn idle off on one of them (idle: false), or split the function in two at a topic.`,
    );
  }
  if (m.state.length > 0 && m.steps.slice(first + 1).some((s) => s.kind !== 'to' && s.kind !== 'score')) {
    throw new ConfigError(
      `window "${idle.name}" of function "${m.name}" closes when idle, and the function has keyed state (${m.state.map((s) => `"${s.name}"`).join(', ')}) that steps after the window could use; ` +
        `keyed state after an idle window is not supported. Move the keyed-state steps before the window, turn idle off (idle: false), or split the function at a topic.`,
    );
  }
}

/** Whole-manifest checks shared by both forms. */
export function checkManifest(input: Manifest): Manifest {
  const m = withIdleDefault(input);
  const names = new Set<string>();
  for (const s of m.steps) {
    if (s.kind !== 'window') continue;
    if (names.has(s.name)) {
      throw new ConfigError(
        `two windows of function "${m.name}" are named "${s.name}"; window names key their stored state, so give each a distinct name.`,
      );
    }
    names.add(s.name);
    // Operators check what only they know (session merge, sliding closing); fail here, at load.
    createWindowOperator(s.window, s.aggregations, s.name);
  }
  checkIdleWindows(m);
  const stateNames = new Set<string>();
  for (const s of m.state) {
    if (stateNames.has(s.name)) throw new ConfigError(`keyed state "${s.name}" is declared twice on function "${m.name}".`);
    stateNames.add(s.name);
    if (s.ttlMs !== undefined) toMs(s.ttlMs, `ttl of keyed state "${s.name}"`);
  }
  if (m.lateTopic !== undefined && (typeof m.lateTopic !== 'string' || m.lateTopic.length === 0)) {
    throw new ConfigError(`lateTopic of function "${m.name}" must be a topic name; received ${describe(m.lateTopic)}.`);
  }
  return m;
}
