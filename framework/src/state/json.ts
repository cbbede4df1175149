/** Helpers for state values, which must be plain JSON data (as DynamoDB stores them). */

/**
 * Deep copy of plain JSON data (arrays, plain objects, primitives).
 *
 * @example
 * const copy = cloneJson({ w: [1, 2] }) as { w: number[] }; copy.w.push(3); // the original keeps [1, 2]
 */
export function cloneJson(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = cloneJson(v[i]);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const k in v as Record<string, unknown>) {
    const x = cloneJson((v as Record<string, unknown>)[k]);
    // Assigning `__proto__` would set the copy's prototype: keep it as the data it is (JSON.parse does).
    if (k === '__proto__') Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
    else out[k] = x;
  }
  return out;
}

/**
 * A description of the first value in `v` that is not plain JSON data, or undefined.
 *
 * @example
 * firstNonJson({ at: new Date() }); // 'Date'
 * firstNonJson([1, NaN]);           // 'NaN'
 * firstNonJson({ n: 1 });           // undefined
 */
export function firstNonJson(v: unknown): string | undefined {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(v) ? undefined : String(v);
    case 'object': {
      if (v === null) return undefined;
      if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
          const bad = firstNonJson(v[i]);
          if (bad !== undefined) return bad;
        }
        return undefined;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return (v as object).constructor?.name ?? 'an object';
      for (const k in v as Record<string, unknown>) {
        const bad = firstNonJson((v as Record<string, unknown>)[k]);
        if (bad !== undefined) return bad;
      }
      return undefined;
    }
    default:
      return typeof v;
  }
}
