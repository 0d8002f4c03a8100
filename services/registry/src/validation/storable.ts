import { ChangeoverError } from '@changeover/contracts';

// Postgres text and jsonb refuse NUL characters and lone surrogates; a request carrying them is bad input, not a server fault.
// eslint-disable-next-line no-control-regex
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Deeper than any wire shape of ours; deeper input is refused before recursive code (canonical JSON, SQL) sees it. */
export const MAX_DEPTH = 64;

/**
 * Throws VALIDATION_FAILED naming the field when a decoded request holds text Postgres cannot
 * store or is nested deeper than MAX_DEPTH. Iterative, so hostile input cannot exhaust the stack.
 */
export function assertStorable(value: unknown, what = 'request'): void {
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path: '', depth: 0 }];
  while (stack.length > 0) {
    const { v, path, depth } = stack.pop()!;
    const field = path === '' ? what : `${what}.${path}`;
    if (typeof v === 'string') {
      if (UNSTORABLE.test(v)) throw new ChangeoverError('VALIDATION_FAILED', `${field}: holds a NUL character or a lone surrogate`, { field: path || what });
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= MAX_DEPTH) throw new ChangeoverError('VALIDATION_FAILED', `${field}: nested deeper than ${MAX_DEPTH} levels`, { field: path || what });
    for (const [k, child] of Object.entries(v)) {
      if (UNSTORABLE.test(k)) throw new ChangeoverError('VALIDATION_FAILED', `${field}: a key holds a NUL character or a lone surrogate`, { field: path || what });
      stack.push({ v: child, path: path === '' ? k : `${path}.${k}`, depth: depth + 1 });
    }
  }
}
