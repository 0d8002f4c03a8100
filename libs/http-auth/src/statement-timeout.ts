/**
 * The same Postgres URL with `statement_timeout` set for every connection opened from it (libpq
 * `options`), so no statement of the service, in any pool, waits longer than `ms`.
 */
export function withStatementTimeout(url: string, ms: number): string {
  // Not new URL(): a multi-host URL (h1:5432,h2:5432) is not a WHATWG URL.
  const at = url.indexOf('?');
  const base = at < 0 ? url : url.slice(0, at);
  const params = new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
  const others = (params.get('options') ?? '').replace(/-c\s*statement_timeout=\S+/g, '').trim();
  params.set('options', `${others ? `${others} ` : ''}-c statement_timeout=${Math.floor(ms)}`);
  return `${base}?${params.toString()}`;
}
