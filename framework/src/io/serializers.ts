import { isUtf8 } from 'node:buffer';
import { ConfigError, PoisonRecordError } from '../errors.js';

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
 * Buffer per key and value (the hot path of every record). Throws a {@link PoisonRecordError}
 * when the bytes are not valid UTF-8, as {@link utf8Text} does.
 *
 * @example
 * base64ToUtf8('czE='); // 's1'
 */
export function base64ToUtf8(b64: string): string {
  const max = (b64.length * 3) >>> 2;
  if (max > scratch.length) {
    if (max > SCRATCH_LIMIT) return utf8Text(Buffer.from(b64, 'base64'));
    scratch = Buffer.allocUnsafe(Math.min(SCRATCH_LIMIT, max * 2));
  }
  const n = scratch.write(b64, 'base64');
  return utf8Text(scratch, n);
}

/**
 * The UTF-8 text of `bytes[0, end)`. Bytes that are not UTF-8 throw a {@link PoisonRecordError}
 * rather than becoming U+FFFD: two different binary keys would otherwise become one key.
 *
 * @example
 * utf8Text(Buffer.from('Zürich')); // 'Zürich'
 * utf8Text(Buffer.from([0x61, 0xff])); // throws: the 2 bytes are not valid UTF-8 text (0x61 0xff); …
 */
export function utf8Text(bytes: Buffer, end = bytes.length): string {
  const text = bytes.toString('utf8', 0, end);
  // Node turns invalid bytes into U+FFFD; only text that holds one needs the exact check.
  if (text.indexOf('\uFFFD') !== -1 && !isUtf8(bytes.subarray(0, end))) {
    const head = [...bytes.subarray(0, Math.min(end, 8))].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');
    throw new PoisonRecordError(
      `the ${end} bytes are not valid UTF-8 text (${head}${end > 8 ? ' …' : ''}); read binary data with the 'bytes' serializer.`,
    );
  }
  return text;
}

/**
 * How deeply JSON values may nest (arrays and objects in one another). Deeper values would
 * overflow the stack wherever a value is copied or written (outputs, state), so the json
 * serializer refuses them as it reads them.
 *
 * @example
 * json.deserialize(Buffer.from('['.repeat(100_000) + ']'.repeat(100_000))); // throws: nested deeper than 1000 levels
 */
export const MAX_JSON_DEPTH = 1_000;

/** JSON.parse, refusing values nested deeper than {@link MAX_JSON_DEPTH} (V8's parser itself does not overflow). */
function parseJson(text: string): unknown {
  const value = JSON.parse(text);
  // Nesting deeper than the limit takes at least two characters per level: short texts are safe.
  if (text.length > 2 * MAX_JSON_DEPTH) checkDepth(text);
  return value;
}

function checkDepth(text: string): void {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) {
        throw new PoisonRecordError(
          `the JSON value is nested deeper than ${MAX_JSON_DEPTH} levels (arrays and objects in one another, at character ${i}); flatten it, or read it with the 'string' serializer and parse it yourself.`,
        );
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
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
 * JSON (UTF-8). The default for values. Bytes that are not UTF-8, and values nested deeper than
 * {@link MAX_JSON_DEPTH}, throw a {@link PoisonRecordError}: the record becomes a dead letter.
 *
 * @example
 * json.serialize({ speed: 12 }).toString(); // '{"speed":12}'
 * stream('readings', { value: json }); // same as value: 'json'
 */
export const json: Serializer = {
  name: 'json',
  deserialize: (bytes) => parseJson(utf8Text(bytes)),
  deserializeBase64: (b64) => parseJson(base64ToUtf8(b64)),
  serialize: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
};

/**
 * UTF-8 text. The default for keys. Bytes that are not UTF-8 throw a {@link PoisonRecordError}
 * (use `bytes` for binary keys and values).
 *
 * @example
 * string.deserialize(Buffer.from('sensor-1')); // 'sensor-1'
 * stream<string>('log-lines', { value: string });
 */
export const string: Serializer<string> = {
  name: 'string',
  deserialize: (bytes) => utf8Text(bytes),
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
