import { describe, expect, it } from '@jest/globals';
import { RestClient } from './client.js';
import { runCli } from './program.js';

const record = { tokenId: 'tok_0123456789abcdef', name: 'ci-bot', role: 'operator', createdAt: '2030-01-01T00:00:00.000Z', createdBy: 'bootstrap-admin', revokedAt: null, revokedBy: null };

/** Records requests, answers from a table (a fake of the REST API). */
function harness(answers: Record<string, { status: number; body: unknown }>) {
  const calls: { method: string; url: string; body: unknown; auth: string | null }[] = [];
  const out: string[] = [];
  const err: string[] = [];
  const fake: typeof fetch = async (input, init) => {
    const method = init?.method ?? 'GET';
    calls.push({ method, url: String(input), body: init?.body ? JSON.parse(String(init.body)) : undefined, auth: new Headers(init?.headers).get('authorization') });
    const a = answers[`${method} ${new URL(String(input)).pathname}`];
    return a ? new Response(JSON.stringify(a.body), { status: a.status }) : new Response(JSON.stringify({ code: 'NOT_FOUND', message: 'no route' }), { status: 404 });
  };
  const run = (...argv: string[]) => runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), env: { CHANGEOVER_REGISTRY_URL: 'http://registry:1', CHANGEOVER_TOKEN: 'admin-secret' }, isTty: false, sleep: async () => undefined, fetch: fake });
  return { calls, out, err, run };
}

describe('changeover token', () => {
  it('should create a token with the admin token and print its secret once', async () => {
    const h = harness({ 'POST /tokens': { status: 201, body: { ...record, token: 'chg_secret' } } });
    expect(await h.run('token', 'create', '--name', 'ci-bot', '--role', 'operator')).toBe(0);
    expect(h.calls).toEqual([{ method: 'POST', url: 'http://registry:1/tokens', body: { name: 'ci-bot', role: 'operator' }, auth: 'Bearer admin-secret' }]);
    expect(h.out.join('\n')).toContain('chg_secret');
  });

  it('should refuse a role that does not exist before calling anything', async () => {
    const h = harness({});
    expect(await h.run('token', 'create', '--name', 'x', '--role', 'root')).toBe(2);
    expect(h.calls).toEqual([]);
    expect(h.err.join('\n')).toMatch(/VALIDATION_FAILED/);
  });

  it('should list tokens without secrets and revoke one', async () => {
    const h = harness({ 'GET /tokens': { status: 200, body: { tokens: [record] } }, 'DELETE /tokens/tok_0123456789abcdef': { status: 200, body: { ...record, revokedAt: '2030-01-02T00:00:00.000Z', revokedBy: 'alice' } } });
    expect(await h.run('token', 'list')).toBe(0);
    expect(h.out[0]).toMatch(/tok_0123456789abcdef\s+ci-bot\s+operator/);
    expect(await h.run('token', 'revoke', 'tok_0123456789abcdef')).toBe(0);
    expect(h.out[1]).toBe('revoked tok_0123456789abcdef (ci-bot)');
  });

  it('should report a 403 as a typed FORBIDDEN error', async () => {
    const h = harness({ 'GET /tokens': { status: 403, body: { code: 'FORBIDDEN', message: 'ci-bot (operator) may not do this: the admin role is needed' } } });
    expect(await h.run('token', 'list')).toBe(2);
    expect(h.err.join('\n')).toMatch(/FORBIDDEN.*admin role/);
  });
});

describe('REST client timeout', () => {
  it('should give up with TIMEOUT when no answer comes in time', async () => {
    const never: typeof fetch = (_input, init) => new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
    const client = new RestClient('http://slow:1', undefined, never, 50);
    await expect(client.request('GET', '/rollouts')).rejects.toMatchObject({ code: 'TIMEOUT' });
  });
});
