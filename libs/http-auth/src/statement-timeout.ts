/**
 * The same Postgres URL with `statement_timeout` set for every connection opened from it (libpq
 * `options`), so no statement of the service, in any pool, waits longer than `ms`.
 */
export function withStatementTimeout(url: string, ms: number): string {
  const u = new URL(url);
  const others = (u.searchParams.get('options') ?? '').replace(/-c\s*statement_timeout=\S+/g, '').trim();
  u.searchParams.set('options', `${others ? `${others} ` : ''}-c statement_timeout=${Math.floor(ms)}`);
  return u.toString();
}
