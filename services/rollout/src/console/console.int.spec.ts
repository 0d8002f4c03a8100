import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { FleetPage, NodeRecord, RolloutStreamEntry, RolloutSummary } from '@changeover/contracts';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeNodeDirectory, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';
import { counterValue } from '../testing/processes.js';
import { digest } from '../testing/fixtures.js';

// The console's read routes on real Postgres and NATS: who am I, the fleet pages, the live rollout stream, the page itself.

const fleet: FakeNode[] = [{ id: 'n-1', classId: 'web', arch: 'x86_64' }, { id: 'n-2', classId: 'web', arch: 'x86_64' }];
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are checked field by field
type Json = any;
let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let a: RunningRollout;
let b: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
let directory: ReturnType<typeof fakeNodeDirectory>;
const tokens: Record<'viewer' | 'operator' | 'admin', string> = {} as never;

/** 2,500 registry nodes: classes by index, every 7th stale, every 5th on agent 2.0.0, every 3rd with app@2.0.0 active. */
const records: NodeRecord[] = Array.from({ length: 2500 }, (_, i) => ({
  nodeId: `node-${String(i).padStart(4, '0')}`,
  classId: i % 2 ? 'web' : 'db',
  processorType: 'x86_64',
  characteristics: { arch: 'x86_64', os: 'linux', memoryMb: 1024, labels: {} },
  status: i % 7 === 0 ? 'stale' : 'active',
  lastHeartbeatAt: '2026-12-07T09:00:00.000Z',
  agentVersion: i % 5 === 0 ? '2.0.0' : '1.0.0',
  clusterVersions: { min: 1, max: 2 },
  inventory: { active: i % 3 === 0 ? [{ name: 'app', version: '2.0.0', modules: [], requires: {}, provides: [], consumes: [] }] : [], previous: [], digest: digest('a') },
}));

async function call(base: string, method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<{ status: number; json: Json; headers: Headers; text: string }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  let json: Json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // A page or a module, not JSON.
  }
  return { status: res.status, json, headers: res.headers, text };
}
const baseA = () => `http://127.0.0.1:${a.httpPort}`;
const baseB = () => `http://127.0.0.1:${b.httpPort}`;

interface Frame { event: string; id?: string; data: Json }

/** An open event stream: frames as they come, and whether the server closed it. */
async function openStream(base: string, id: string, token: string, lastEventId?: number) {
  const res = await fetch(`${base}/rollouts/${id}/stream`, { headers: { authorization: `Bearer ${token}`, ...(lastEventId !== undefined ? { 'last-event-id': String(lastEventId) } : {}) } });
  const frames: Frame[] = [];
  let ended = false;
  const done = (async () => {
    if (!res.ok || !res.body) return;
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const lines = block.split('\n').filter((l) => !l.startsWith(':'));
        if (!lines.length) continue;
        const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
        frames.push({ event: field('event') ?? 'message', ...(field('id') ? { id: field('id')! } : {}), data: JSON.parse(field('data') ?? 'null') });
      }
    }
    ended = true;
  })();
  return { res, frames, done, ended: () => ended };
}

const metric = async (base: string, name: string, labels: Record<string, string> = {}) => counterValue(await (await fetch(`${base}/metrics`)).text(), name, labels);

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_console'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app')]);
  directory = fakeNodeDirectory(nc, records);
  agents = fakeAgents(nc, fleet, { veto: new Map([['n-2', 'web-frontend']]) });
  const env = { DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ROLLOUT_REGISTRY_TIMEOUT_MS: '5000' };
  a = await startRollout(loadConfig({ ...env, ROLLOUT_INSTANCE_ID: 'console-a' }));
  // A second instance with small stream limits: one stream at a time, each at most 1.5 s.
  b = await startRollout(loadConfig({ ...env, ROLLOUT_INSTANCE_ID: 'console-b', ROLLOUT_RELAY: 'false', ROLLOUT_RECONCILE: 'false', ROLLOUT_MAX_STREAMS: '1', ROLLOUT_STREAM_MAX_MS: '1500' }));
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    const r = await call(baseA(), 'POST', '/tokens', { token: TEST_ADMIN_TOKEN, body: { name: `${role}-console`, role } });
    expect(r.status).toBe(201);
    tokens[role] = r.json.token;
  }
});

afterAll(async () => {
  await b?.close();
  await a?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

describe('GET /whoami', () => {
  it('should name the caller and its role, and refuse no token', async () => {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const r = await call(baseA(), 'GET', '/whoami', { token: tokens[role] });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ name: `${role}-console`, role, tokenId: expect.stringMatching(/^tok_/) });
    }
    expect((await call(baseA(), 'GET', '/whoami')).json).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});

describe('GET /fleet', () => {
  const fleetPage = async (q: string) => {
    const r = await call(baseA(), 'GET', `/fleet?${q}`, { token: tokens.viewer });
    expect([q, r.status, r.json?.code]).toEqual([q, 200, undefined]);
    return r.json as FleetPage;
  };
  /** Every page of a query, following nextCursor. */
  const all = async (q: string) => {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: FleetPage = await fleetPage(`${q}${cursor ? `&cursor=${cursor}` : ''}`);
      ids.push(...page.nodes.map((n) => n.nodeId));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 100);
    return { ids, pages };
  };
  const expected = (keep: (n: NodeRecord) => boolean) => records.filter(keep).map((n) => n.nodeId);

  it('should page through every node in node id order, each once, across registry pages', async () => {
    const { ids, pages } = await all('limit=400');
    expect(ids).toEqual(records.map((n) => n.nodeId));
    expect(pages).toBe(7);
    const first = await fleetPage('limit=1');
    expect(first.nodes[0]).toEqual({ nodeId: 'node-0000', classId: 'db', processorType: 'x86_64', status: 'stale', lastHeartbeatAt: '2026-12-07T09:00:00.000Z', agentVersion: '2.0.0', clusterVersions: { min: 1, max: 2 }, packages: ['app@2.0.0'] });
  });

  it('should filter by class, status, agent version, package and node id, together', async () => {
    expect((await all('class=web&limit=500')).ids).toEqual(expected((n) => n.classId === 'web'));
    expect((await all('status=stale&limit=500')).ids).toEqual(expected((n) => n.status === 'stale'));
    expect((await all('agentVersion=2.0.0&limit=500')).ids).toEqual(expected((n) => n.agentVersion === '2.0.0'));
    expect((await all('package=app@2.0.0&limit=500')).ids).toEqual(expected((n) => n.inventory!.active.length > 0));
    // No match: the whole directory is read in registry pages of 1,000, one request a page.
    const asked = directory.requests;
    expect((await all('package=app@1.0.0')).ids).toEqual([]);
    expect(directory.requests - asked).toBe(3);
    expect((await all('search=NODE-012&limit=5')).ids).toEqual(expected((n) => n.nodeId.startsWith('node-012')));
    expect((await all('class=db&status=active&agentVersion=2.0.0&package=app&limit=7')).ids).toEqual(expected((n) => n.classId === 'db' && n.status === 'active' && n.agentVersion === '2.0.0' && n.inventory!.active.length > 0));
  });

  it('should answer a full page with a cursor that starts after its last node', async () => {
    const page = await fleetPage('search=node-00&limit=3');
    expect(page.nodes.map((n) => n.nodeId)).toEqual(['node-0000', 'node-0001', 'node-0002']);
    expect(page.scanned).toBe(3);
    const next = await fleetPage(`search=node-00&limit=3&cursor=${page.nextCursor}`);
    expect(next.nodes.map((n) => n.nodeId)).toEqual(['node-0003', 'node-0004', 'node-0005']);
  });

  it('should refuse malformed filters and foreign cursors with 400 naming the field, counted', async () => {
    const before = await metric(baseA(), 'changeover_rollout_http_errors_total', { code: 'VALIDATION_FAILED' });
    for (const [q, field] of [['status=gone', 'status'], ['limit=0', 'limit'], ['limit=501', 'limit'], ['search=a%20b', 'search'], ['package=App', 'package'], ['agentVersion=latest', 'agentVersion'], ['colour=red', 'colour'], ['cursor=not!a!cursor', 'cursor'], [`cursor=${Buffer.from('["rollouts","x"]').toString('base64url')}`, 'cursor']] as const) {
      const r = await call(baseA(), 'GET', `/fleet?${q}`, { token: tokens.viewer });
      expect([q, r.status, r.json.code]).toEqual([q, 400, 'VALIDATION_FAILED']);
      expect(r.json.message).toContain(field);
    }
    expect(await metric(baseA(), 'changeover_rollout_http_errors_total', { code: 'VALIDATION_FAILED' })).toBe(before + 9);
    expect((await call(baseA(), 'GET', '/fleet')).status).toBe(401);
  });
});

describe('GET /rollouts/{id}/stream', () => {
  it('should stream the stored events and summaries of a vetoed rollout until it is forced and completes, then end', async () => {
    const finishedBefore = await metric(baseA(), 'changeover_rollout_streams_total', { outcome: 'finished' });
    const created = await call(baseA(), 'POST', '/rollouts', { token: tokens.operator, body: { rolloutId: 'live-1', update: { description: 'live', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 30_000 } } });
    expect(created.status).toBe(201);
    const s = await openStream(baseA(), 'live-1', tokens.viewer);
    expect(s.res.status).toBe(200);
    expect(s.res.headers.get('content-type')).toContain('text/event-stream');
    const blocked = await waitFor('a blocked summary on the stream', () => s.frames.find((f) => f.event === 'summary' && f.data.status === 'blocked')?.data as RolloutSummary | undefined, { timeoutMs: 30_000, intervalMs: 50 });
    expect(blocked.vetoes).toEqual([expect.objectContaining({ nodeId: 'n-2', processId: 'web-frontend', reason: 'PROCESS_BUSY', message: 'busy' })]);
    const forced = await call(baseA(), 'POST', '/rollouts/live-1/force', { token: tokens.admin, body: { reason: 'maintenance window' } });
    expect(forced.status).toBe(200);
    await s.done;
    expect(s.ended()).toBe(true);
    const events = s.frames.filter((f) => f.event === 'event').map((f) => f.data as RolloutStreamEntry);
    // Every stored event once, in stream order, each frame's id its position.
    expect(events.map((e) => e.position)).toEqual(events.map((_, i) => i + 1));
    expect(s.frames.filter((f) => f.event === 'event').map((f) => Number(f.id))).toEqual(events.map((e) => e.position));
    const types = events.map((e) => e.type);
    for (const t of ['rollout.created', 'rollout.blocked', 'rollout.forced', 'rollout.completed']) expect(types).toContain(t);
    expect(events.find((e) => e.type === 'rollout.forced')!.actor).toBe('admin-console');
    const last = s.frames.at(-1)!;
    expect(last).toEqual({ event: 'end', data: { reason: 'finished', status: 'completed' } });
    const summaries = s.frames.filter((f) => f.event === 'summary').map((f) => f.data as RolloutSummary);
    expect(summaries.at(-1)).toMatchObject({ status: 'completed', forced: { by: 'admin-console', reason: 'maintenance window' } });
    expect(summaries.at(-1)!.version).toBe(events.at(-1)!.position);
    expect(await metric(baseA(), 'changeover_rollout_streams_total', { outcome: 'finished' })).toBe(finishedBefore + 1);

    // Reconnecting after event 3 gives the rest, from 4 on, and the end again.
    const again = await openStream(baseA(), 'live-1', tokens.viewer, 3);
    await again.done;
    const resumed = again.frames.filter((f) => f.event === 'event').map((f) => (f.data as RolloutStreamEntry).position);
    expect(resumed).toEqual(events.slice(3).map((e) => e.position));
    expect(again.frames.at(-1)!.event).toBe('end');
  });

  it('should refuse a bad Last-Event-ID, an unknown rollout, no token, and streams past ROLLOUT_MAX_STREAMS; expire a long one', async () => {
    expect((await call(baseA(), 'GET', '/rollouts/live-1/stream', { token: tokens.viewer, headers: { 'last-event-id': 'x1' } })).json).toMatchObject({ code: 'VALIDATION_FAILED' });
    expect((await call(baseA(), 'GET', '/rollouts/nope/stream', { token: tokens.viewer })).status).toBe(404);
    expect((await call(baseA(), 'GET', '/rollouts/bad%20id/stream', { token: tokens.viewer })).status).toBe(400);
    expect((await call(baseA(), 'GET', '/rollouts/live-1/stream')).status).toBe(401);

    // A rollout that stays blocked, watched on instance b (not its owner: b reads the store again each second).
    expect((await call(baseA(), 'POST', '/rollouts', { token: tokens.operator, body: { rolloutId: 'live-2', update: { description: 'stays blocked', targets: [{ nodes: ['n-2'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 30_000 } } })).status).toBe(201);
    await waitFor('live-2 blocked', async () => ((await call(baseA(), 'GET', '/rollouts/live-2', { token: tokens.viewer })).json.status === 'blocked' ? true : null), { timeoutMs: 30_000, intervalMs: 100 });
    const expiredBefore = await metric(baseB(), 'changeover_rollout_streams_total', { outcome: 'expired' });
    const first = await openStream(baseB(), 'live-2', tokens.viewer);
    expect(first.res.status).toBe(200);
    const second = await call(baseB(), 'GET', '/rollouts/live-2/stream', { token: tokens.viewer });
    expect([second.status, second.json.code]).toEqual([429, 'RATE_LIMITED']);
    await first.done;
    expect(first.frames.find((f) => f.event === 'summary')?.data.status).toBe('blocked');
    expect(first.frames.at(-1)).toEqual({ event: 'end', data: { reason: 'expired', status: 'blocked' } });
    expect(await metric(baseB(), 'changeover_rollout_streams_total', { outcome: 'expired' })).toBe(expiredBefore + 1);
    // The slot is free again once the stream closed.
    const third = await openStream(baseB(), 'live-2', tokens.viewer);
    expect(third.res.status).toBe(200);
    await third.done;
  });

  it('should count a client that goes away and free its slot', async () => {
    const before = await metric(baseB(), 'changeover_rollout_streams_total', { outcome: 'client' });
    const ctl = new AbortController();
    const res = await fetch(`${baseB()}/rollouts/live-2/stream`, { headers: { authorization: `Bearer ${tokens.viewer}` }, signal: ctl.signal });
    expect(res.status).toBe(200);
    ctl.abort();
    await waitFor('the stream counted as closed by the client', async () => ((await metric(baseB(), 'changeover_rollout_streams_total', { outcome: 'client' })) === before + 1 ? true : null), { timeoutMs: 10_000, intervalMs: 50 });
    const next = await openStream(baseB(), 'live-2', tokens.viewer);
    expect(next.res.status).toBe(200);
    await next.done;
    await waitFor('no stream open', async () => ((await metric(baseB(), 'changeover_rollout_streams_open')) === 0 ? true : null), { timeoutMs: 10_000, intervalMs: 50 });
  });
});

describe('a service stopping with streams open', () => {
  it('should end each stream with end: shutdown and close', async () => {
    const c = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN, ROLLOUT_INSTANCE_ID: 'console-c', ROLLOUT_RELAY: 'false', ROLLOUT_RECONCILE: 'false' }));
    const before = await metric(baseA(), 'changeover_rollout_streams_total', { outcome: 'shutdown' });
    const s = await openStream(`http://127.0.0.1:${c.httpPort}`, 'live-2', tokens.viewer);
    await waitFor('the first summary', () => s.frames.some((f) => f.event === 'summary') || null, { timeoutMs: 10_000, intervalMs: 20 });
    await c.close();
    await s.done;
    expect(s.frames.at(-1)).toEqual({ event: 'end', data: { reason: 'shutdown', status: 'blocked' } });
    expect(await metric(baseA(), 'changeover_rollout_streams_total', { outcome: 'shutdown' })).toBe(before + 1);
  });
});

describe('the console page', () => {
  it('should serve the page, its style sheet and modules without a token, under a strict content security policy', async () => {
    const page = await call(baseA(), 'GET', '/console');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.text).toContain('<script type="module" src="/console/app/main.js">');
    const css = await call(baseA(), 'GET', '/console/console.css');
    expect([css.status, css.headers.get('content-type')]).toEqual([200, 'text/css; charset=utf-8']);
    for (const m of ['main.js', 'api.js', 'live.js', 'stream.js', 'sse.js', 'pages.js', 'dom.js']) {
      const r = await call(baseA(), 'GET', `/console/app/${m}`);
      expect([m, r.status, r.headers.get('content-type')]).toEqual([m, 200, 'text/javascript; charset=utf-8']);
    }
    expect((await call(baseA(), 'GET', '/console/app/main.d.ts')).json).toMatchObject({ code: 'NOT_FOUND' });
    expect((await call(baseA(), 'GET', '/console/app/..%2F..%2Fapp.js')).status).toBe(404);
  });

  it('should document the console routes and their roles in the OpenAPI document', async () => {
    const doc = (await call(baseA(), 'GET', '/openapi.json')).json;
    expect(doc.paths['/whoami'].get['x-role']).toBe('viewer');
    expect(doc.paths['/fleet'].get['x-role']).toBe('viewer');
    expect(doc.paths['/fleet'].get.parameters.map((p: Json) => p.name)).toEqual(['class', 'status', 'agentVersion', 'package', 'search', 'cursor', 'limit']);
    expect(doc.paths['/rollouts/{id}/stream'].get['x-role']).toBe('viewer');
    expect(Object.keys(doc.paths['/rollouts/{id}/stream'].get.responses['200'].content)).toEqual(['text/event-stream']);
    expect(doc.paths['/console'].get['x-role']).toBe('none');
  });
});
