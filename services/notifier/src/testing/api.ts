import { TEST_ADMIN_TOKEN } from '@changeover/test-kit';

/** The notifier's auth settings in tests: the test admin token is the bootstrap admin. */
export const TEST_AUTH_ENV = { CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN } as const;

/** A tiny REST client for the notifier's API in tests, as `token` (the test admin by default; null: none). */
export function restClient(port: number, token: string | null = TEST_ADMIN_TOKEN) {
  return async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T; text: string }> {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed as T, text };
  };
}

/** Silent unless NOTIFIER_TEST_LOG names a level (debugging a failing test). */
export const TEST_LOG_LEVEL = (process.env['NOTIFIER_TEST_LOG'] ?? 'silent') as 'debug' | 'info' | 'warn' | 'error' | 'silent';
