import { errorText } from '../log.js';
import { isPermanentStatus, type SendResult } from './channel.js';

/** POSTs a body with a deadline; every failure (timeout, refused, reset, non-2xx) becomes a SendResult. */
export async function postWithTimeout(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<SendResult> {
  try {
    const res = await fetch(url, { method: 'POST', body, headers, signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    // Read the answer (bounded by the same deadline) so the connection is released.
    const text = await res.text().catch(() => '');
    if (res.ok) return { ok: true, permanent: false, statusCode: res.status, error: null };
    return { ok: false, permanent: isPermanentStatus(res.status), statusCode: res.status, error: `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}` };
  } catch (e) {
    // Duck-typed: fetch's errors may come from another realm.
    const name = (e as { name?: unknown } | null)?.name;
    const timedOut = name === 'TimeoutError' || name === 'AbortError';
    return { ok: false, permanent: false, statusCode: null, error: timedOut ? `timed out after ${timeoutMs} ms` : errorText(e) };
  }
}
