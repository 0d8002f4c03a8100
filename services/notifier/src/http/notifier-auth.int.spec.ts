import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pg from 'pg';
import { createTestDatabase, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { startNotifier, type RunningNotifier } from '../notifier.js';
import { restClient, TEST_AUTH_ENV } from '../testing/api.js';

// Every route of the notifier REST API against its role, the audit log of mutating requests, and the body limit.

const MAX_BODY = 4096;
let db: TestDatabase;
let nats: TestNats;
let notifier: RunningNotifier;
const tokens = {} as Record<'viewer' | 'operator' | 'admin', { token: string; tokenId: string }>;
const as = (token: string | null) => restClient(notifier.httpPort, token);
const subscription = (name: string) => ({ name, channel: { type: 'webhook', url: 'http://127.0.0.1:9/hook', secret: 'sixteen-or-more-secret' } });

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('notifier_auth'), startNats()]);
  notifier = await startNotifier({ DATABASE_URL: db.url, NATS_URL: nats.url, NOTIFIER_HTTP_PORT: '0', NOTIFIER_MAX_BODY_BYTES: String(MAX_BODY), LOG_LEVEL: 'silent', ...TEST_AUTH_ENV });
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    const r = await as(TEST_ADMIN_TOKEN)<{ token: string; tokenId: string }>('POST', '/tokens', { name: `${role}-bot`, role });
    expect(r.status).toBe(201);
    tokens[role] = r.body;
  }
}, 60_000);

afterAll(async () => {
  await notifier?.close();
  await nats?.stop();
  await db?.drop();
});

type Route = { method: string; path: string; role: 'viewer' | 'operator' | 'admin'; body?: () => unknown };
let seq = 0;
const ROUTES: Route[] = [
  { method: 'GET', path: '/subscriptions', role: 'viewer' },
  { method: 'GET', path: '/subscriptions/00000000-0000-4000-8000-000000000000', role: 'viewer' },
  { method: 'POST', path: '/subscriptions', role: 'operator', body: () => subscription(`s-${++seq}`) },
  { method: 'DELETE', path: '/subscriptions/00000000-0000-4000-8000-000000000000', role: 'operator' },
  { method: 'GET', path: '/deliveries', role: 'viewer' },
  { method: 'GET', path: '/deliveries/00000000-0000-4000-8000-000000000000', role: 'viewer' },
  { method: 'POST', path: '/deliveries/00000000-0000-4000-8000-000000000000/redeliver', role: 'operator' },
  { method: 'GET', path: '/tokens', role: 'admin' },
  { method: 'POST', path: '/tokens', role: 'admin', body: () => ({ name: `t-${++seq}`, role: 'viewer' }) },
  { method: 'DELETE', path: '/tokens/tok_0000000000000000', role: 'admin' },
];
const weaker = { viewer: undefined, operator: 'viewer', admin: 'operator' } as const;

describe('notifier REST API roles', () => {
  it.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))('%s: no token 401, a weaker role 403, its role passes', async (_name, r) => {
    const none = await as(null)(r.method, r.path, r.body?.());
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await as('chg_wrong')(r.method, r.path, r.body?.())).status).toBe(401);
    const below = weaker[r.role];
    if (below) {
      const refused = await as(tokens[below].token)(r.method, r.path, r.body?.());
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ code: 'FORBIDDEN' });
    }
    const ok = await as(tokens[r.role].token)(r.method, r.path, r.body?.());
    expect([401, 403]).not.toContain(ok.status);
    // Every mutating request that passed the role check is in the audit log, with its outcome.
    if (r.method !== 'GET') {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        const q = () => c.query(`SELECT 1 FROM auth.audit_log WHERE service = 'notifier' AND method = $1 AND path = $2 AND actor_token_id = $3 AND status = $4`, [r.method, r.path, tokens[r.role].tokenId, ok.status]);
        await waitFor(`audit row of ${r.method} ${r.path}`, async () => (await q()).rowCount! > 0);
      } finally {
        await c.end();
      }
    }
  });

  it('should keep health, readiness, metrics and the OpenAPI document open', async () => {
    for (const p of ['/health/live', '/metrics', '/openapi.json']) expect((await as(null)('GET', p)).status).toBe(200);
    // Ready or not (no event stream in this test), never a token question.
    expect([200, 503]).toContain((await as(null)('GET', '/health/ready')).status);
  });

  it('should write who created and who deleted a subscription to the audit log', async () => {
    const made = await as(tokens.operator.token)<{ id: string }>('POST', '/subscriptions', subscription('audited'));
    expect(made.status).toBe(201);
    expect((await as(tokens.admin.token)('DELETE', `/subscriptions/${made.body.id}`)).status).toBe(204);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const { rows } = await c.query(`SELECT actor, actor_token_id, actor_role, method, status FROM auth.audit_log WHERE service = 'notifier' AND path LIKE $1 ORDER BY id`, [`%${made.body.id}`]);
      expect(rows).toEqual([{ actor: 'admin-bot', actor_token_id: tokens.admin.tokenId, actor_role: 'admin', method: 'DELETE', status: 204 }]);
      const created = await c.query(`SELECT actor_token_id FROM auth.audit_log WHERE service = 'notifier' AND method = 'POST' AND path = '/subscriptions' AND status = 201`);
      expect(created.rows.map((r: { actor_token_id: string }) => r.actor_token_id)).toContain(tokens.operator.tokenId);
      // Reads are not audited.
      expect((await c.query(`SELECT count(*)::int AS n FROM auth.audit_log WHERE service = 'notifier' AND method = 'GET'`)).rows[0].n).toBe(0);
    } finally {
      await c.end();
    }
  });
});

describe('auth off, only when asked for', () => {
  it('should let a caller without a token in as an anonymous admin and still audit it', async () => {
    const open = await startNotifier({ DATABASE_URL: db.url, NATS_URL: nats.url, NOTIFIER_HTTP_PORT: '0', NOTIFIER_CONSUMER_NAME: 'notifier-open', LOG_LEVEL: 'silent', CHANGEOVER_AUTH: 'off' });
    try {
      const anyone = restClient(open.httpPort, null);
      expect((await anyone('GET', '/subscriptions')).status).toBe(200);
      const made = await anyone<{ id: string }>('POST', '/subscriptions', subscription('open-door'));
      expect(made.status).toBe(201);
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      try {
        await waitFor('the anonymous creation audited', async () => (await c.query(`SELECT 1 FROM auth.audit_log WHERE service = 'notifier' AND actor = 'anonymous' AND actor_role = 'admin' AND path = '/subscriptions' AND status = 201`)).rowCount! > 0);
      } finally {
        await c.end();
      }
    } finally {
      await open.close();
    }
  });
});

describe('notifier REST limits', () => {
  // Trailing whitespace is valid JSON: the same subscription, padded to exactly `size` bytes.
  const padded = (size: number) => {
    const text = JSON.stringify(subscription(`pad-${++seq}`));
    return text + ' '.repeat(size - text.length);
  };

  it('should take a body at the limit and refuse one byte over with 413 TOO_LARGE', async () => {
    const at = await as(tokens.operator.token)('POST', '/subscriptions', padded(MAX_BODY));
    expect(at.status).toBe(201);
    const over = await as(tokens.operator.token)('POST', '/subscriptions', padded(MAX_BODY + 1));
    expect(over.status).toBe(413);
    expect(over.body).toMatchObject({ code: 'TOO_LARGE' });
  });
});
