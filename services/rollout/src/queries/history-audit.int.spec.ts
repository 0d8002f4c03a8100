import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER } from '@changeover/test-kit';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { ListNodesRequest, subjects, type NodeRecord } from '@changeover/contracts';
import { serveRpc } from '@changeover/messaging';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';

const fleet: FakeNode[] = [
  { id: 'web-1', classId: 'web', arch: 'x86_64' },
  { id: 'db-1', classId: 'db', arch: 'x86_64' },
  { id: 'edge-1', classId: 'edge', arch: 'x86_64' },
  { id: 'edge-2', classId: 'edge', arch: 'x86_64' },
];
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- HTTP answers are checked field by field below
type Json = any;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let base: string;

async function http(method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const res = await fetch(`${base}${path}`, { method, headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: await res.json() };
}
const fast = { voteTimeoutMs: 2000, changeoverTimeoutMs: 5000 };
const create = (rolloutId: string, target: Record<string, unknown>, pkg: string, version: string) =>
  http('POST', '/rollouts', { rolloutId, update: { description: rolloutId, targets: [{ ...target, packages: [{ name: pkg, version }] }] }, policy: fast });

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_history'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app', '1.0.0'), manifest('app', '2.0.0'), manifest('tool', '1.0.0')]);
  agents = fakeAgents(nc, fleet, { veto: new Map([['db-1', 'db-compactor']]), hold: new Set(['edge-1']) });
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'hist-a', ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }));
  base = `http://127.0.0.1:${service.httpPort}`;
  // h1, h2 complete on web; h3 blocks on db (vetoed), then is cancelled.
  expect((await create('h1', { classes: ['web'] }, 'app', '1.0.0')).status).toBe(201);
  expect((await create('h2', { classes: ['web'] }, 'app', '2.0.0')).status).toBe(201);
  expect((await create('h3', { nodes: ['db-1'] }, 'tool', '1.0.0')).status).toBe(201);
  for (const id of ['h1', 'h2']) await waitFor(`${id} completed`, async () => ((await http('GET', `/rollouts/${id}`)).json.status === 'completed' ? true : null));
  await waitFor('h3 blocked', async () => ((await http('GET', '/rollouts/h3')).json.status === 'blocked' ? true : null));
  expect((await http('POST', '/rollouts/h3/cancel', { reason: 'compactor busy' })).status).toBe(200);
  await waitFor('projection rows', async () => ((await http('GET', '/rollouts?status=cancelled')).json.rollouts?.length === 1 ? true : null));
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

const ids = async (q: string) => {
  const r = await http('GET', `/rollouts?${q}`);
  expect([q, r.status]).toEqual([q, 200]);
  return (r.json.rollouts as Json[]).map((x) => x.rolloutId);
};

describe('rollout history and audit (real Postgres and NATS, through the REST API)', () => {
  it('filters by status, package, version, class and actor, newest first', async () => {
    expect(await ids('')).toEqual(['h3', 'h2', 'h1']);
    expect(await ids('status=completed')).toEqual(['h2', 'h1']);
    expect(await ids('status=cancelled,completed')).toEqual(['h3', 'h2', 'h1']);
    expect(await ids('package=app')).toEqual(['h2', 'h1']);
    expect(await ids('package=app&version=1.0.0')).toEqual(['h1']);
    expect(await ids('class=web')).toEqual(['h2', 'h1']);
    expect(await ids('class=db')).toEqual([]);
    expect(await ids('actor=bootstrap-admin')).toEqual(['h3', 'h2', 'h1']);
    expect(await ids('actor=nobody')).toEqual([]);
    expect(await ids('createdAfter=2000-01-01T00:00:00Z&createdBefore=2999-01-01T00:00:00Z')).toEqual(['h3', 'h2', 'h1']);
    expect(await ids('createdBefore=2000-01-01T00:00:00Z')).toEqual([]);
  });

  it('pages with an opaque cursor until nextCursor is null, each rollout once', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; json: Json } = await http('GET', `/rollouts?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.json.rollouts.map((x: Json) => x.rolloutId));
      cursor = r.json.nextCursor;
    } while (cursor);
    expect(seen).toEqual(['h3', 'h2', 'h1']);
  });

  it('refuses malformed queries with 400 VALIDATION_FAILED naming the field', async () => {
    const cases: [string, string][] = [
      ['status=sleeping', 'status'],
      ['version=1.0.0', 'version'],
      ['createdAfter=yesterday', 'createdAfter'],
      ['createdAfter=2030-01-02T00:00:00Z&createdBefore=2030-01-01T00:00:00Z', 'createdBefore'],
      ['limit=501', 'limit'],
      ['limit=0', 'limit'],
      ['cursor=!!', 'cursor'],
      [`cursor=${Buffer.from('["x"]').toString('base64url')}`, 'cursor'],
      ['surprise=1', 'surprise'],
    ];
    for (const [q, field] of cases) {
      const r = await http('GET', `/rollouts?${q}`);
      expect([q, r.status, r.json.code]).toEqual([q, 400, 'VALIDATION_FAILED']);
      expect([q, r.json.message]).toEqual([q, expect.stringContaining(field)]);
    }
  });

  it('the audit trail lists operator actions with actor, time, target and reason, filtered and paged', async () => {
    const all = await http('GET', '/audit');
    expect(all.status).toBe(200);
    expect(all.json.entries.map((e: Json) => [e.action, e.target.rolloutId])).toEqual([['cancel', 'h3'], ['create', 'h3'], ['create', 'h2'], ['create', 'h1']]);
    expect(all.json.entries[0]).toMatchObject({ actor: 'bootstrap-admin', actorRole: 'admin', reason: 'compactor busy', outcome: 'accepted', target: { kind: 'rollout', rolloutId: 'h3' } });
    expect(Number.isNaN(Date.parse(all.json.entries[0].at))).toBe(false);
    expect((await http('GET', '/audit?action=cancel')).json.entries).toHaveLength(1);
    expect((await http('GET', '/audit?rolloutId=h1')).json.entries.map((e: Json) => e.action)).toEqual(['create']);
    expect((await http('GET', '/audit?actor=nobody')).json.entries).toEqual([]);
    const first = await http('GET', '/audit?limit=3');
    const rest = await http('GET', `/audit?limit=3&cursor=${first.json.nextCursor}`);
    expect([...first.json.entries, ...rest.json.entries].map((e: Json) => e.id)).toEqual(all.json.entries.map((e: Json) => e.id));
    expect(rest.json.nextCursor).toBeNull();
    for (const q of ['action=delete', 'since=soon', 'limit=9999', 'rolloutId=a b']) {
      const r = await http('GET', `/audit?${q}`);
      expect([q, r.status, r.json.code]).toEqual([q, 400, 'VALIDATION_FAILED']);
    }
  });

  it('pause needs a reason and an applying rollout', async () => {
    expect(await http('POST', '/rollouts/h1/pause', {})).toMatchObject({ status: 400, json: { code: 'VALIDATION_FAILED' } });
    expect((await http('POST', '/rollouts/h1/pause', { reason: 'incident' })).json.code).toBe('INVALID_STATE');
    expect((await http('POST', '/rollouts/nope/pause', { reason: 'incident' })).json.code).toBe('NOT_FOUND');
  });

  it('an operator pause stops new waves while the node mid-changeover finishes; resume continues; both are audited', async () => {
    // Canary edge-1 (held mid-changeover), then a wave with edge-2.
    expect((await http('POST', '/rollouts', { rolloutId: 'p1', update: { targets: [{ nodes: ['edge-1', 'edge-2'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { ...fast, changeoverTimeoutMs: 60_000, waves: { canary: 1, size: 1 } } })).status).toBe(201);
    await waitFor('edge-1 mid-changeover', async () => (agents.holding('edge-1') ? true : null));
    const paused = await http('POST', '/rollouts/p1/pause', { reason: 'incident 42' });
    expect(paused).toMatchObject({ status: 200, json: { status: 'paused', stuck: { reason: 'paused by operator bootstrap-admin: incident 42' } } });
    agents.release('edge-1');
    const finished = await waitFor('edge-1 completed while paused', async () => {
      const s = (await http('GET', '/rollouts/p1')).json;
      return s.phases.completed === 1 ? s : null;
    });
    expect(finished).toMatchObject({ status: 'paused', phases: { completed: 1, accepted: 1 } });
    expect(finished.waves).toHaveLength(1);
    expect(agents.commits.get('edge-2')).toBeUndefined();
    expect((await http('POST', '/rollouts/p1/resume', { reason: 'incident over' })).status).toBe(200);
    await waitFor('p1 completed', async () => ((await http('GET', '/rollouts/p1')).json.status === 'completed' ? true : null));
    expect(agents.commits.get('edge-2')).toBe(1);
    const audit = (await http('GET', '/audit?rolloutId=p1')).json.entries;
    expect(audit.map((e: Json) => [e.action, e.reason])).toEqual([['resume', 'incident over'], ['pause', 'incident 42'], ['create', '']]);
  });

  it('a cluster-version adjustment, refused or carried out, is in the audit trail with who and why', async () => {
    // The registry's node list: one active agent that can run cluster versions 1 to `max`.
    let max = 1;
    const node = (): NodeRecord => ({ nodeId: 'web-1', classId: 'web', processorType: 'x86_64', characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} }, status: 'active', lastHeartbeatAt: new Date().toISOString(), agentVersion: '1.0.0', clusterVersions: { min: 1, max }, inventory: null });
    const rpc = serveRpc(nc, subjects.registry('list-nodes'), ListNodesRequest, () => ({ nodes: [node()], next: null }));
    try {
      const refused = await http('POST', '/cluster-version/adjust', { version: 2, reason: 'leader election for billing' });
      expect(refused).toMatchObject({ status: 409, json: { code: 'NODE_INCAPABLE' } });
      max = 2;
      expect(await http('POST', '/cluster-version/adjust', { version: 2, reason: 'agents upgraded' })).toMatchObject({ status: 200, json: { accepted: true } });
      const entries = (await http('GET', '/audit?action=cluster-version-adjust')).json.entries;
      expect(entries.map((e: Json) => [e.actor, e.actorRole, e.reason, e.outcome, e.target])).toEqual([
        ['bootstrap-admin', null, 'agents upgraded', 'accepted', { kind: 'cluster', version: 2 }],
        ['bootstrap-admin', null, 'leader election for billing', 'refused', { kind: 'cluster', version: 2 }],
      ]);
      expect((await http('GET', '/audit?actor=bootstrap-admin&action=cluster-version-adjust&limit=1')).json.entries[0].reason).toBe('agents upgraded');
    } finally {
      await rpc.stop();
    }
  });

  it('the OpenAPI document lists the history, audit and pause routes', async () => {
    const r = await http('GET', '/openapi.json');
    expect(Object.keys(r.json.paths)).toEqual(expect.arrayContaining(['/rollouts', '/audit', '/rollouts/{id}/pause']));
    expect(r.json.paths['/audit'].get['x-role']).toBe('operator');
    expect(r.json.paths['/rollouts'].get.parameters.map((p: Json) => p.name)).toEqual(['status', 'package', 'version', 'class', 'createdAfter', 'createdBefore', 'actor', 'cursor', 'limit']);
  });
});
