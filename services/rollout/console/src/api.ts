import type { ErrorBody, WhoAmI } from '@changeover/contracts';

// Every call carries the token as a bearer token; the token lives in this tab's sessionStorage only.

const KEY = 'changeover-console-token';

export const token = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (t: string) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

/** A refused call: the service's typed error. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const headers = (extra: Record<string, string> = {}): Record<string, string> => {
  const t = token.get();
  return { ...(t ? { authorization: `Bearer ${t}` } : {}), ...extra };
};

/** JSON over the rollout service's REST API; a refusal throws ApiError with its code. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, 'INTERNAL', `${method} ${path}: the answer is not JSON (${res.status})`);
  }
  if (!res.ok) {
    const e = (json ?? {}) as Partial<ErrorBody>;
    throw new ApiError(res.status, e.code ?? 'INTERNAL', e.message ?? `${method} ${path} → ${res.status}`);
  }
  return json as T;
}

/** A query string of the non-empty values. */
export function query(values: Record<string, string | undefined>): string {
  const q = new URLSearchParams(Object.entries(values).filter((e): e is [string, string] => !!e[1]));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const whoami = () => api<WhoAmI>('GET', '/whoami');

const RANK = { viewer: 0, operator: 1, admin: 2 } as const;
/** True when the caller's role is at least `needs` (the server checks again on every call). */
export const may = (me: WhoAmI | null, needs: keyof typeof RANK) => !!me && RANK[me.role] >= RANK[needs];
