/** Deep equality of JSON values: objects compare by their own keys in any order, arrays in order. No text is built. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!Object.hasOwn(b, k) || !jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  return true;
}

/**
 * Hands back one shared object for equal JSON values seen under the same key (an inventory under its
 * digest, say): 10,000 nodes reporting the same inventory leave one object alive instead of 10,000,
 * and the decoded copies die young. Equality is checked (`jsonEqual`), never assumed from the key, so
 * a sender claiming another's key keeps its own value. Bounded: the oldest key goes first, and a key
 * keeps a few distinct values at most. The values it returns are shared: treat them as read-only.
 */
export class JsonInterner<T> {
  private readonly byKey = new Map<string, T[]>();

  constructor(
    private readonly maxKeys = 1024,
    private readonly maxPerKey = 4,
  ) {}

  intern(key: string, value: T): T {
    const known = this.byKey.get(key);
    if (known) {
      for (const v of known) if (jsonEqual(v, value)) return v;
      if (known.length < this.maxPerKey) known.push(value);
      return value;
    }
    if (this.byKey.size >= this.maxKeys) this.byKey.delete(this.byKey.keys().next().value as string);
    this.byKey.set(key, [value]);
    return value;
  }

  get size(): number {
    return this.byKey.size;
  }
}
