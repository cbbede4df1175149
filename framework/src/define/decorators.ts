import './metadata.js';
import type { Duration } from '../duration.js';
import { ConfigError } from '../errors.js';
import { describe } from '../io/serializers.js';
import type { AggregationSpec } from '../windows/aggregators.js';
import { type CountWindowOptions, type TimeWindowOptions, windowSpecs } from '../windows/spec.js';
import type { LateRecord, RecordContext, Scorer, StepKind } from './manifest.js';
import { checkOutputOptions, rejectAsync, scoreStep } from './stream.js';
import { type Binding, nextSeq, type OutputOptions, recordOf, type SourceOptions } from './metadata.js';

type MemberContext = ClassMethodDecoratorContext | ClassFieldDecoratorContext;

function memberName(ctx: { name: string | symbol; static: boolean; private: boolean }, decorator: string): string {
  if (typeof ctx.name !== 'string' || ctx.static || ctx.private) {
    throw new ConfigError(
      `@${decorator}() must decorate a public instance member with a string name; received ${String(ctx.name)}${ctx.static ? ' (static)' : ''}${ctx.private ? ' (private)' : ''}.`,
    );
  }
  return ctx.name;
}

function stepDecorator(kind: StepKind) {
  const seq = nextSeq();
  return (_: unknown, ctx: ClassMethodDecoratorContext<any, any>) => {
    if (ctx.kind !== 'method') throw new ConfigError(`@${kind}() decorates a method; "${String(ctx.name)}" is a ${ctx.kind}.`);
    rejectAsync(_ as Function, `@${kind}() method "${String(ctx.name)}"`);
    recordOf(ctx.metadata).bindings.push({ seq, member: memberName(ctx, kind), role: 'step', kind });
  };
}

type Method<This, A extends unknown[], R> = (this: This, ...args: A) => R;

/**
 * Declares the function's source topic and how to read it. Class decorator.
 *
 * @example
 * @source('vehicle-speeds', { value: 'json', validate: (v) => typeof v.speed === 'number' || 'speed must be a number' })
 * class FastVehicles {}
 */
export function source<T = any>(topic: string, options: SourceOptions<T> = {}) {
  if (typeof topic !== 'string' || topic.length === 0) throw new ConfigError(`@source() needs a topic name; received ${describe(topic)}.`);
  return (_: Function, ctx: ClassDecoratorContext) => {
    recordOf(ctx.metadata).source = { topic, options };
  };
}

/** Transforms each value. @example @map() toKmh(r: Reading) { return { ...r, kmh: r.speed * 3.6 }; } */
export function map() {
  const d = stepDecorator('map');
  return <This, In, Out>(m: Method<This, [In, RecordContext], Out> | Method<This, [In], Out>, ctx: ClassMethodDecoratorContext<This>) =>
    d(m, ctx);
}

/** Keeps the values for which the method returns true. @example @filter() fast(r: Kmh) { return r.kmh > 100; } */
export function filter() {
  const d = stepDecorator('filter');
  return <This, In>(m: Method<This, [In, RecordContext], boolean> | Method<This, [In], boolean>, ctx: ClassMethodDecoratorContext<This>) =>
    d(m, ctx);
}

/** Turns one value into many (an iterable). @example @expand() items(o: Order) { return o.items; } */
export function expand() {
  const d = stepDecorator('expand');
  return <This, In, Out>(
    m: Method<This, [In, RecordContext], Iterable<Out>> | Method<This, [In], Iterable<Out>>,
    ctx: ClassMethodDecoratorContext<This>,
  ) => d(m, ctx);
}

/** Runs a side effect; the value passes on unchanged. @example @update() log(r: Reading) { console.log(r); } */
export function update() {
  const d = stepDecorator('update');
  return <This, In>(m: Method<This, [In, RecordContext], unknown> | Method<This, [In], unknown>, ctx: ClassMethodDecoratorContext<This>) =>
    d(m, ctx);
}

/** Sets the record key (state and windows are scoped by it). @example @key() bySensor(r: Reading) { return r.sensor; } */
export function key() {
  const d = stepDecorator('key');
  return <This, In>(
    m: Method<This, [In, RecordContext], string | null> | Method<This, [In], string | null>,
    ctx: ClassMethodDecoratorContext<This>,
  ) => d(m, ctx);
}

/** Sets the event time (epoch ms) used by windows; default is the Kafka record timestamp. @example @eventTime() at(r: Reading) { return r.ts; } */
export function eventTime() {
  const d = stepDecorator('timestamp');
  return <This, In>(m: Method<This, [In, RecordContext], number> | Method<This, [In], number>, ctx: ClassMethodDecoratorContext<This>) =>
    d(m, ctx);
}

/**
 * Sends what the decorated step produces to a topic (stack it above a step or window). Several
 * outputs per function are allowed.
 *
 * @example
 * @to('sensor-sums') @tumblingWindow('10s', { grace: '2s' }) total = sum('value');
 */
export function to(topic: string, options: OutputOptions = {}) {
  const seq = nextSeq();
  if (typeof topic !== 'string' || topic.length === 0) throw new ConfigError(`@to() needs a topic name; received ${describe(topic)}.`);
  checkOutputOptions(options, `@to('${topic}')`);
  return (_: unknown, ctx: MemberContext) => {
    recordOf(ctx.metadata).bindings.push({ seq, member: memberName(ctx, 'to'), role: 'to', topic, options });
  };
}

/**
 * Scores the values reaching this member with a model (see `onnxModel()`); the decorated method
 * maps the model's outputs and the value to what flows next. `features` turns a value into the
 * model's input row; all rows of a batch (or all windows closing in it) share one model run.
 *
 * @example
 * @to('transport-modes')
 * @score(transportMode, { features: (w: Stats) => [w.mean, w.max, w.std, w.count] })
 * mode(o: { label: string; probabilities: number[] }, w: Stats) { return { ...w, mode: o.label }; }
 */
export function score<O, In>(model: Scorer<O>, options: { features: (value: In, ctx: RecordContext) => unknown; name?: string }) {
  const seq = nextSeq();
  // Validate now (module load), with a placeholder mapper: the method is checked when decorated.
  scoreStep(model, options?.features, () => undefined, 'score', '@score()', ['features', 'name'], options);
  return <This, R>(
    m: Method<This, [O, In, RecordContext], R> | Method<This, [O, In], R> | Method<This, [O], R>,
    ctx: ClassMethodDecoratorContext<This>,
  ) => {
    if (ctx.kind !== 'method')
      throw new ConfigError(`@score() decorates a method that maps the model's outputs; "${String(ctx.name)}" is a ${ctx.kind}.`);
    rejectAsync(m as Function, `@score() method "${String(ctx.name)}"`);
    recordOf(ctx.metadata).bindings.push({ seq, member: memberName(ctx, 'score'), role: 'score', model, options });
  };
}

/**
 * Declares a field as keyed state: `get / set / delete` scoped to the current record's key.
 *
 * @example
 * @keyed({ ttl: '1d' }) lastSeen!: KeyedState<number>;
 */
export function keyed(options: { ttl?: Duration } = {}) {
  const seq = nextSeq();
  return (_: undefined, ctx: ClassFieldDecoratorContext) => {
    if (ctx.kind !== 'field') throw new ConfigError(`@keyed() decorates a field; "${String(ctx.name)}" is a ${ctx.kind}.`);
    recordOf(ctx.metadata).bindings.push({ seq, member: memberName(ctx, 'keyed'), role: 'keyed', options });
  };
}

type WindowFieldDecorator = <This, In>(_: undefined, ctx: ClassFieldDecoratorContext<This, AggregationSpec<In>>) => void;

function windowDecorator(
  label: string,
  build: (where: string) => unknown,
  extras: { onLate?: (late: LateRecord) => void },
): WindowFieldDecorator {
  const seq = nextSeq();
  return (_, ctx) => {
    if (ctx.kind !== 'field')
      throw new ConfigError(
        `@${label}() decorates a field holding its aggregation, e.g. total = sum('value'); "${String(ctx.name)}" is a ${ctx.kind}.`,
      );
    const member = memberName(ctx, label);
    // Validate now, at class definition (module load), naming the member.
    build(`${label} "${member}"`);
    const binding: Binding = { seq, member, role: 'window', build: (name) => build(`${label} "${name}"`), options: extras };
    recordOf(ctx.metadata).bindings.push(binding);
  };
}

type WithLate<O> = O & { onLate?: (late: LateRecord) => void };
function split<O extends object>(opts: WithLate<O> | undefined): [O | undefined, { onLate?: (late: LateRecord) => void }] {
  if (!opts) return [undefined, {}];
  const { onLate, ...rest } = opts as WithLate<O>;
  if (onLate !== undefined && typeof onLate !== 'function')
    throw new ConfigError(`onLate must be a function (late) => void; received ${describe(onLate)}.`);
  return [rest as O, onLate ? { onLate } : {}];
}

/**
 * A tumbling window over event time; the field holds its aggregation(s).
 *
 * @example
 * @tumblingWindow('10s', { grace: '2s' }) total = sum('value');
 */
export function tumblingWindow(size: Duration, options?: WithLate<TimeWindowOptions>) {
  const [o, x] = split(options);
  return windowDecorator('tumblingWindow', (w) => windowSpecs.tumbling(size, o, w), x);
}

/** A hopping window of `size` every `step`. @example @hoppingWindow('1m', '10s') avg = mean('speed'); */
export function hoppingWindow(size: Duration, step: Duration, options?: WithLate<TimeWindowOptions>) {
  const [o, x] = split(options);
  return windowDecorator('hoppingWindow', (w) => windowSpecs.hopping(size, step, o, w), x);
}

/** A sliding window: one window ending at each record, `size` long. @example @slidingWindow('30s') peak = max('speed'); */
export function slidingWindow(size: Duration, options?: WithLate<TimeWindowOptions>) {
  const [o, x] = split(options);
  return windowDecorator('slidingWindow', (w) => windowSpecs.sliding(size, o, w), x);
}

/** A session window: records closer than `gap` form one session. @example @sessionWindow('30s') clicks = count(); */
export function sessionWindow(gap: Duration, options?: WithLate<TimeWindowOptions>) {
  const [o, x] = split(options);
  return windowDecorator('sessionWindow', (w) => windowSpecs.session(gap, o, w), x);
}

/** A tumbling window of `count` records per key. @example @tumblingCountWindow(100) avg = mean('value'); */
export function tumblingCountWindow(count: number, options?: CountWindowOptions) {
  return windowDecorator('tumblingCountWindow', (w) => windowSpecs.tumblingCount(count, options, w), {});
}

/** A hopping window of `count` records every `step` records. @example @hoppingCountWindow(10, 5) s = sum('value'); */
export function hoppingCountWindow(count: number, step: number, options?: CountWindowOptions) {
  return windowDecorator('hoppingCountWindow', (w) => windowSpecs.hoppingCount(count, step, options, w), {});
}

/** A window of the last `count` records, one per record. @example @slidingCountWindow(5) last5 = mean('value'); */
export function slidingCountWindow(count: number, options?: CountWindowOptions) {
  return windowDecorator('slidingCountWindow', (w) => windowSpecs.slidingCount(count, options, w), {});
}
