import { ConfigError } from '../errors.js';

/**
 * Turns Kafka bytes into values and back. `deserialize` throws on bad input; the runtime turns
 * that into a poison record. Pass your own object to plug in another format (Avro, Protobuf).
 *
 * @example
 * const csv: Serializer<string[]> = {
 *   name: 'csv',
 *   deserialize: (b) => b.toString('utf8').split(','),
 *   serialize: (v) => Buffer.from(v.join(',')),
 * };
 */
export interface Serializer<T = unknown> {
  readonly name: string;
  deserialize(bytes: Buffer): T;
  serialize(value: T): Buffer;
  /**
   * Optional fast path for Lambda's base64 payloads; must equal `deserialize(Buffer.from(b64, 'base64'))`
   * and be a pure function of its input: decoded keys are cached per container.
   */
  deserializeBase64?(b64: string): T;
}

const SCRATCH_LIMIT = 1 << 20;
let scratch = Buffer.allocUnsafe(64 * 1024);

/**
 * Decodes base64 text to a UTF-8 string through one reused buffer, instead of allocating a
 * Buffer per key and value (the hot path of every record).
 *
 * @example
 * base64ToUtf8('czE='); // 's1'
 */
export function base64ToUtf8(b64: string): string {
  const max = (b64.length * 3) >>> 2;
  if (max > scratch.length) {
    if (max > SCRATCH_LIMIT) return Buffer.from(b64, 'base64').toString('utf8');
    scratch = Buffer.allocUnsafe(Math.min(SCRATCH_LIMIT, max * 2));
  }
  const n = scratch.write(b64, 'base64');
  return scratch.toString('utf8', 0, n);
}

/**
 * The built-in serializer names.
 *
 * @example
 * SERIALIZER_NAMES.includes('json'); // true
 */
export const SERIALIZER_NAMES = ['json', 'string', 'bytes'] as const;
/**
 * The name of a built-in serializer, accepted wherever a serializer is.
 *
 * @example
 * @source('raw-frames', { key: 'string', value: 'bytes' })
 */
export type SerializerName = (typeof SERIALIZER_NAMES)[number];

/**
 * JSON (UTF-8). The default for values.
 *
 * @example
 * json.serialize({ speed: 12 }).toString(); // '{"speed":12}'
 * stream('readings', { value: json }); // same as value: 'json'
 */
export const json: Serializer = {
  name: 'json',
  deserialize: (bytes) => JSON.parse(bytes.toString('utf8')),
  deserializeBase64: (b64) => JSON.parse(base64ToUtf8(b64)),
  serialize: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
};

/**
 * UTF-8 text. The default for keys.
 *
 * @example
 * string.deserialize(Buffer.from('sensor-1')); // 'sensor-1'
 * stream<string>('log-lines', { value: string });
 */
export const string: Serializer<string> = {
  name: 'string',
  deserialize: (bytes) => bytes.toString('utf8'),
  deserializeBase64: base64ToUtf8,
  serialize: (value) => Buffer.from(String(value), 'utf8'),
};

/**
 * Raw bytes, untouched. As a key serializer, keys become their base64 text.
 *
 * @example
 * stream<Buffer>('images', { value: bytes }).map((b) => ({ size: b.length })).to('image-sizes');
 */
export const bytes: Serializer<Buffer> = {
  name: 'bytes',
  deserialize: (b) => b,
  serialize: (v) => v,
};

// biome-ignore lint/suspicious/noExplicitAny: a serializer is both producer and consumer of its type: any keeps the table assignable
const BUILT_IN: Record<SerializerName, Serializer<any>> = { json, string, bytes };

/**
 * Resolves a serializer name or object, failing at load time with the accepted names.
 *
 * @example
 * resolveSerializer('json', 'json', 'value serializer of "readings"'); // the json serializer
 */
export function resolveSerializer(
  // biome-ignore lint/suspicious/noExplicitAny: a serializer is both producer and consumer of its type: any keeps it assignable
  spec: SerializerName | Serializer<any> | undefined,
  fallback: SerializerName,
  what: string,
  // biome-ignore lint/suspicious/noExplicitAny: a serializer is both producer and consumer of its type: any keeps it assignable
): Serializer<any> {
  if (spec === undefined) return BUILT_IN[fallback];
  if (typeof spec === 'string') {
    const found = Object.hasOwn(BUILT_IN, spec) ? BUILT_IN[spec as SerializerName] : undefined;
    if (!found) {
      throw new ConfigError(
        `${what} "${spec}" is not a serializer; use one of ${SERIALIZER_NAMES.map((n) => `'${n}'`).join(', ')} or an object with deserialize/serialize.`,
      );
    }
    return found;
  }
  if (typeof spec !== 'object' || spec === null || typeof spec.deserialize !== 'function' || typeof spec.serialize !== 'function') {
    throw new ConfigError(
      `${what} must be one of ${SERIALIZER_NAMES.map((n) => `'${n}'`).join(', ')} or an object with deserialize(bytes) and serialize(value); received ${describe(spec)}.`,
    );
  }
  return spec;
}

/**
 * A short description of a value for error messages (functions named, objects with functions
 * shown by shape).
 *
 * @example
 * describe({ deserialize: () => 1 }); // '{ deserialize: function }'
 */
export function describe(value: unknown): string {
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).some((v) => typeof v === 'function')) {
    // JSON would drop the functions; show the shape instead.
    return `{ ${Object.entries(value)
      .map(([k, v]) => `${k}: ${typeof v === 'function' ? 'function' : JSON.stringify(v)}`)
      .join(', ')} }`;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
