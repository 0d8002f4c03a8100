import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { EventStore } from '@changeover/event-store';
import { encode, subjects } from '@changeover/contracts';
import { registry } from '@changeover/telemetry';
import { createTestDatabase, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';

// Every route of the rollout REST API against its role: no token 401, a weaker role 403, the role itself passes; audit trail on the events.
// (The windows rows use class lab: a window on web would hold the rollouts below outside it.)

const fleet: FakeNode[] = [{ id: 'n-1', classId: 'web', arch: 'x86_64' }, { id: 'n-2', classId: 'web', arch: 'x86_64' }];
const MAX_BODY = 4096;
const MAX_IMAGE = 8192;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field
type Json = any;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let base: string;
const tokens: Record<'viewer' | 'operator' | 'admin', { token: string; tokenId: string }> = {} as never;

async function call(method: string, path: string, opts: { token?: string; body?: unknown; raw?: Uint8Array | string; contentType?: string } = {}): Promise<{ status: number; json: Json }> {
  const headers: Record<string, string> = {};
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  const body = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  if (body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

const create = (id: string) => ({ rolloutId: id, update: { description: `auth ${id}`, targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000 } });

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_auth'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app')]);
  // Agents that never answer: the rollouts stay put while the test steers them.
  agents = fakeAgents(nc, [], {});
  service = await startRollout(
    loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'auth-a', LOG_LEVEL: 'silent', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ROLLOUT_MAX_BODY_BYTES: String(MAX_BODY), ROLLOUT_MAX_IMAGE_BYTES: String(MAX_IMAGE), ROLLOUT_REGISTRY_TIMEOUT_MS: '2000', ROLLOUT_HELLO_RATE_PER_S: '0.001', ROLLOUT_HELLO_BURST: '2' }),
  );
  base = `http://127.0.0.1:${service.httpPort}`;
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    const r = await call('POST', '/tokens', { token: TEST_ADMIN_TOKEN, body: { name: `${role}-bot`, role } });
    expect(r.status).toBe(201);
    tokens[role] = { token: r.json.token, tokenId: r.json.tokenId };
  }
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

type Route = { method: string; path: string; role: 'viewer' | 'operator' | 'admin'; body?: () => unknown; raw?: () => Uint8Array };
let seq = 0;
const ROUTES: Route[] = [
  { method: 'GET', path: '/rollouts', role: 'viewer' },
  { method: 'GET', path: '/rollouts/fixed', role: 'viewer' },
  { method: 'POST', path: '/rollouts', role: 'operator', body: () => create(`c-${++seq}`) },
  { method: 'POST', path: '/rollouts/from-image?rolloutId=img-1', role: 'operator', raw: () => new Uint8Array([0x1f, 0x8b, 1, 2, 3]) },
  { method: 'POST', path: '/rollouts/fixed/cancel', role: 'operator', body: () => ({ reason: 'x' }) },
  { method: 'POST', path: '/rollouts/fixed/revote', role: 'operator', body: () => ({}) },
  { method: 'POST', path: '/rollouts/fixed/resume', role: 'operator', body: () => ({}) },
  { method: 'POST', path: '/rollouts/fixed/regress', role: 'operator', body: () => ({ reason: 'x' }) },
  { method: 'POST', path: '/rollouts/fixed/pause', role: 'operator', body: () => ({ reason: 'x' }) },
  { method: 'POST', path: '/rollouts/fixed/retry', role: 'operator', body: () => ({ reason: 'x' }) },
  { method: 'POST', path: '/rollouts/fixed/nodes/n-1/retry', role: 'operator', body: () => ({ reason: 'x' }) },
  { method: 'GET', path: '/audit', role: 'operator' },
  { method: 'GET', path: '/classes/lab/windows', role: 'viewer' },
  { method: 'PUT', path: '/classes/lab/windows', role: 'operator', body: () => ({ windows: [{ days: ['sat'], start: '22:00', end: '02:00', timeZone: 'UTC' }] }) },
  { method: 'POST', path: '/plans', role: 'operator', body: () => ({ update: create('p').update, voteTimeoutMs: 100 }) },
  { method: 'POST', path: '/rollouts/fixed/force', role: 'admin', body: () => ({ reason: 'x' }) },
  { method: 'GET', path: '/tokens', role: 'admin' },
  { method: 'POST', path: '/tokens', role: 'admin', body: () => ({ name: `t-${++seq}`, role: 'viewer' }) },
  { method: 'DELETE', path: '/tokens/tok_0000000000000000', role: 'admin' },
];
const weaker = { viewer: undefined, operator: 'viewer', admin: 'operator' } as const;

/** Waits for the audit_log row of a mutating request (written just after the answer). */
async function audited(method: string, path: string, tokenId: string, status: number): Promise<void> {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    await waitFor(`audit row of ${method} ${path}`, async () => (await c.query(`SELECT 1 FROM auth.audit_log WHERE service = 'rollout' AND method = $1 AND path = $2 AND actor_token_id = $3 AND status = $4`, [method, path, tokenId, status])).rowCount! > 0);
  } finally {
    await c.end();
  }
}
const send = (r: Route, token?: string) => call(r.method, r.path, { ...(token ? { token } : {}), ...(r.body ? { body: r.body() } : {}), ...(r.raw ? { raw: r.raw(), contentType: 'application/gzip' } : {}) });

describe('rollout REST API roles', () => {
  beforeAll(async () => {
    expect((await call('POST', '/rollouts', { token: tokens.operator.token, body: create('fixed') })).status).toBe(201);
  });

  it.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))('%s: no token 401, a weaker role 403, its role passes', async (_name, r) => {
    const none = await send(r);
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect((await send(r, 'chg_not-a-real-token')).status).toBe(401);
    const below = weaker[r.role];
    if (below) {
      const refused = await send(r, tokens[below].token);
      expect(refused.status).toBe(403);
      expect(refused.json).toMatchObject({ code: 'FORBIDDEN' });
    }
    const ok = await send(r, tokens[r.role].token);
    // Passing the role check: the answer is the route's own (success or a domain error), never 401/403.
    expect([401, 403]).not.toContain(ok.status);
    if (r.method !== 'GET') await audited(r.method, r.path.split('?')[0]!, tokens[r.role].tokenId, ok.status);
  });

  it('should keep health, readiness and the OpenAPI document open', async () => {
    for (const p of ['/health', '/health/live', '/openapi.json']) expect((await call('GET', p)).status).toBe(200);
  });

  it('should record who created and who cancelled in the event metadata and the audit log', async () => {
    expect((await call('POST', '/rollouts', { token: tokens.operator.token, body: create('audited') })).status).toBe(201);
    const cancelled = await call('POST', '/rollouts/audited/cancel', { token: tokens.admin.token, body: { reason: 'audit check' } });
    expect(cancelled.status).toBe(200);
    const store = await EventStore.connect({ url: db.url });
    try {
      const events = await store.readStream('rollout-audited');
      expect(events.find((e) => e.type === 'rollout.created')!.metadata).toMatchObject({ actor: 'operator-bot', actorTokenId: tokens.operator.tokenId, actorRole: 'operator' });
      expect(events.find((e) => e.type === 'rollout.cancelled')!.metadata).toMatchObject({ actor: 'admin-bot', actorTokenId: tokens.admin.tokenId, actorRole: 'admin' });
      const { rows } = await store.pool.query(`SELECT actor, actor_token_id, actor_role, method, path, status FROM auth.audit_log WHERE service = 'rollout' AND path LIKE '/rollouts/audited%' ORDER BY id`);
      expect(rows).toEqual([{ actor: 'admin-bot', actor_token_id: tokens.admin.tokenId, actor_role: 'admin', method: 'POST', path: '/rollouts/audited/cancel', status: 200 }]);
      const creations = await store.pool.query(`SELECT actor FROM auth.audit_log WHERE service = 'rollout' AND method = 'POST' AND path = '/rollouts' AND status = 201`);
      expect(creations.rows.map((r: { actor: string }) => r.actor)).toContain('operator-bot');
    } finally {
      await store.close();
    }
  });

  it('should refuse a revoked token at once', async () => {
    const made = await call('POST', '/tokens', { token: tokens.admin.token, body: { name: 'short-lived', role: 'viewer' } });
    expect((await call('GET', '/rollouts', { token: made.json.token })).status).toBe(200);
    const listed = await call('GET', '/tokens', { token: tokens.admin.token });
    expect(JSON.stringify(listed.json)).not.toContain(made.json.token);
    expect((await call('DELETE', `/tokens/${made.json.tokenId}`, { token: tokens.admin.token })).json).toMatchObject({ revokedBy: 'admin-bot' });
    expect((await call('GET', '/rollouts', { token: made.json.token })).status).toBe(401);
  });
});

describe('rollout audit trail per mutating route', () => {
  let voters: ReturnType<typeof fakeAgents>;
  beforeAll(() => {
    // Agents that answer from here on; n-2 vetoes until forced.
    voters = fakeAgents(nc, fleet, { veto: new Map([['n-2', 'db']]) });
  });
  afterAll(() => voters?.stop());

  /** Runs a request and returns the events it appended to the rollout's stream. */
  async function appendedBy(rolloutId: string, run: () => Promise<{ status: number }>) {
    const store = await EventStore.connect({ url: db.url });
    try {
      const before = (await store.readStream(`rollout-${rolloutId}`)).length;
      const r = await run();
      expect(r.status).toBeLessThan(300);
      return (await store.readStream(`rollout-${rolloutId}`)).slice(before);
    } finally {
      await store.close();
    }
  }
  const by = (who: 'operator' | 'admin') => ({ actor: `${who}-bot`, actorTokenId: tokens[who].tokenId, actorRole: who });
  const status = async (id: string) => (await call('GET', `/rollouts/${id}`, { token: tokens.viewer.token })).json.status as string;

  it('create, revote, force, regress and cancel each record their caller on the events they append', async () => {
    const created = await appendedBy('ev', () => call('POST', '/rollouts', { token: tokens.operator.token, body: { ...create('ev'), policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 10_000 } } }));
    expect(created.find((e) => e.type === 'rollout.created')!.metadata).toMatchObject(by('operator'));
    await waitFor('ev blocked by the veto', async () => (await status('ev')) === 'blocked', { timeoutMs: 20_000 });

    const revoted = await appendedBy('ev', () => call('POST', '/rollouts/ev/revote', { token: tokens.operator.token, body: { reason: 'again' } }));
    expect(revoted.find((e) => e.type === 'rollout.revote-requested')!.metadata).toMatchObject(by('operator'));
    await waitFor('ev blocked again', async () => (await status('ev')) === 'blocked', { timeoutMs: 20_000 });

    const forced = await appendedBy('ev', () => call('POST', '/rollouts/ev/force', { token: tokens.admin.token, body: { reason: 'window approved' } }));
    expect(forced.find((e) => e.type === 'rollout.forced')!.metadata).toMatchObject(by('admin'));
    await waitFor('ev completed', async () => (await status('ev')) === 'completed', { timeoutMs: 30_000 });

    const regressed = await appendedBy('ev', () => call('POST', '/rollouts/ev/regress', { token: tokens.operator.token, body: { nodes: ['n-1'], reason: 'back' } }));
    expect(regressed.find((e) => e.type === 'rollout.regress-requested')!.metadata).toMatchObject(by('operator'));

    const cancelled = await appendedBy('ev-c', async () => {
      expect((await call('POST', '/rollouts', { token: tokens.operator.token, body: { ...create('ev-c'), policy: { voteTimeoutMs: 60_000 } } })).status).toBe(201);
      return call('POST', '/rollouts/ev-c/cancel', { token: tokens.operator.token, body: { reason: 'not today' } });
    });
    expect(cancelled.find((e) => e.type === 'rollout.cancelled')!.metadata).toMatchObject(by('operator'));

  });

  it('resume records its caller on the events it appends', async () => {
    voters.stop();
    // From here n-1 fails its changeover: any failure pauses a rollout (errorThreshold 0).
    voters = fakeAgents(nc, fleet, { fail: new Set(['n-1']) });
    const body = { rolloutId: 'ev-p', update: { description: 'pauses', targets: [{ nodes: ['n-1', 'n-2'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 10_000, waves: { canary: 1, size: '100%' } } };
    expect((await call('POST', '/rollouts', { token: tokens.operator.token, body })).status).toBe(201);
    await waitFor('ev-p paused by the failure', async () => (await status('ev-p')) === 'paused', { timeoutMs: 20_000 });
    const resumed = await appendedBy('ev-p', () => call('POST', '/rollouts/ev-p/resume', { token: tokens.operator.token, body: {} }));
    expect(resumed.find((e) => e.type === 'rollout.resumed')!.metadata).toMatchObject(by('operator'));
  });
});

describe('rollout NATS limits', () => {
  it('should act on at most the burst of hellos from one node and drop the rest as RATE_LIMITED, counted', async () => {
    const limited = async () => {
      const { values } = await registry.getSingleMetric('changeover_rejected_messages_total')!.get();
      return values.filter((v) => v.labels['subject_kind'] === 'agent' && v.labels['code'] === 'RATE_LIMITED').reduce((a, v) => a + v.value, 0);
    };
    const before = await limited();
    const hello = (nodeId: string) => encode({ nodeId, classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, agentVersion: '1.0.0', clusterVersions: { min: 1, max: 1 }, inventory: { active: [], previous: [], digest: `sha256:${'e'.repeat(64)}` }, startedAt: new Date().toISOString() });
    for (let i = 0; i < 5; i++) nc.publish(subjects.agent('hello-flood', 'hello'), hello('hello-flood'));
    // Another node keeps its own budget.
    nc.publish(subjects.agent('hello-calm', 'hello'), hello('hello-calm'));
    await waitFor('three hellos of one node dropped', async () => (await limited()) - before === 3);
    await nc.flush();
    expect((await limited()) - before).toBe(3);
  });
});

describe('rollout REST limits', () => {
  const padded = (size: number) => {
    const body = create(`pad-${++seq}`);
    const bare = JSON.stringify(body).length;
    body.update.description = `${body.update.description}${'x'.repeat(size - bare)}`;
    expect(JSON.stringify(body).length).toBe(size);
    return JSON.stringify(body);
  };

  it('should take a JSON body at the limit and refuse one byte over with 413 TOO_LARGE', async () => {
    const at = await call('POST', '/rollouts', { token: tokens.operator.token, raw: padded(MAX_BODY) });
    expect(at.status).not.toBe(413);
    const over = await call('POST', '/rollouts', { token: tokens.operator.token, raw: padded(MAX_BODY + 1) });
    expect(over.status).toBe(413);
    expect(over.json).toMatchObject({ code: 'TOO_LARGE' });
  });
});
