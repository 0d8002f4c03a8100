import { ChangeoverError } from '@changeover/contracts';

/** Deeper than any wire shape of ours; deeper input is refused before recursive code (canonical JSON, SQL) sees it. */
export const MAX_DEPTH = 64;

// Postgres text and jsonb refuse NUL characters and lone surrogates; a request carrying them is bad input, not a server fault.
// String.prototype.isWellFormed (V8, Node 20) is exactly "holds no lone surrogate", in native code.
const wellFormed = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const unstorable = (s: string): boolean => s.includes('\u0000') || (wellFormed ? !wellFormed.call(s) : LONE_SURROGATE.test(s));

/** A value still to check; its path is built from the parents only when it is refused. */
interface Frame {
  v: unknown;
  parent: Frame | null;
  key: string;
  depth: number;
}

function pathOf(f: Frame): string {
  const keys: string[] = [];
  for (let x: Frame | null = f; x?.parent; x = x.parent) keys.push(x.key);
  return keys.reverse().join('.');
}

function refuse(what: string, f: Frame, reason: string): ChangeoverError {
  const path = pathOf(f);
  return new ChangeoverError('VALIDATION_FAILED', `${path === '' ? what : `${what}.${path}`}: ${reason}`, { field: path || what });
}

/**
 * Throws VALIDATION_FAILED naming the field when a decoded request holds text Postgres cannot
 * store or is nested deeper than MAX_DEPTH. Iterative, so hostile input cannot exhaust the stack.
 */
export function assertStorable(value: unknown, what = 'request'): void {
  const stack: Frame[] = [{ v: value, parent: null, key: '', depth: 0 }];
  while (stack.length > 0) {
    const f = stack.pop()!;
    const v = f.v;
    if (typeof v === 'string') {
      if (unstorable(v)) throw refuse(what, f, 'holds a NUL character or a lone surrogate');
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (f.depth >= MAX_DEPTH) throw refuse(what, f, `nested deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const child: unknown = v[i];
        // Numbers, booleans and null need no look.
        if (typeof child === 'string' || (typeof child === 'object' && child !== null)) stack.push({ v: child, parent: f, key: String(i), depth: f.depth + 1 });
      }
      continue;
    }
    for (const k of Object.keys(v)) {
      if (unstorable(k)) throw refuse(what, f, 'a key holds a NUL character or a lone surrogate');
      const child: unknown = (v as Record<string, unknown>)[k];
      if (typeof child === 'string' || (typeof child === 'object' && child !== null)) stack.push({ v: child, parent: f, key: k, depth: f.depth + 1 });
    }
  }
}
