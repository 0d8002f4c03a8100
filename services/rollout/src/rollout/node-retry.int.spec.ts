import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EventStore } from '@changeover/event-store';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER } from '@changeover/test-kit';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';

// Per-node retry through the REST API on real Postgres and NATS: a node fails (or stays silent until
// its wave times out) on its first commit and succeeds when an operator retries it.

const fleet: FakeNode[] = [
  { id: 'f-1', classId: 'web', arch: 'x86_64' },
  { id: 'ok-1', classId: 'web', arch: 'x86_64' },
  { id: 't-1', classId: 'edge', arch: 'x86_64' },
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
const show = async (id: string) => (await http('GET', `/rollouts/${id}`)).json;
const until = (id: string, what: string, ok: (s: Json) => boolean) => waitFor(`${id} ${what}`, async () => { const s = await show(id); return ok(s) ? s : null; }, { timeoutMs: 60_000 });

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_retry'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app', '1.0.0')]);
  agents = fakeAgents(nc, fleet, { failFirst: new Set(['f-1']), stallFirst: new Set(['t-1']) });
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'retry-a', ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }));
  base = `http://127.0.0.1:${service.httpPort}`;
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

describe('node retry (real Postgres and NATS, simulated nodes)', () => {
  it('a node whose changeover failed is retried with a new attempt and completes; the rest of the rollout follows on resume', async () => {
    // Canary f-1 fails: the error threshold (0) pauses the rollout before ok-1's wave.
    const created = await http('POST', '/rollouts', { rolloutId: 'rf', update: { targets: [{ nodes: ['f-1', 'ok-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 10_000, changeoverTimeoutMs: 60_000, waves: { canary: 1, size: 1 } } });
    expect(created.status).toBe(201);
    const paused = await until('rf', 'paused on the failed canary', (s) => s.status === 'paused');
    expect(paused).toMatchObject({ phases: { failed: 1, accepted: 1 }, failures: [{ nodeId: 'f-1', code: 'HEALTH_CHECK' }] });
    expect(paused.stuck.hint).toContain('changeover rollout retry rf');

    // Refusals: a node that did not fail (409), a node not in the rollout (404), no reason (400); nothing is written.
    expect(await http('POST', '/rollouts/rf/nodes/ok-1/retry', { reason: 'x' })).toMatchObject({ status: 409, json: { code: 'INVALID_STATE', details: { nodeId: 'ok-1', phase: 'accepted' } } });
    expect(await http('POST', '/rollouts/rf/nodes/ghost/retry', { reason: 'x' })).toMatchObject({ status: 404, json: { code: 'NOT_FOUND', details: { nodeId: 'ghost' } } });
    expect(await http('POST', '/rollouts/rf/nodes/f-1/retry', {})).toMatchObject({ status: 400, json: { code: 'VALIDATION_FAILED' } });
    expect(await http('POST', '/rollouts/rf/nodes/bad%20id/retry', { reason: 'x' })).toMatchObject({ status: 400, json: { code: 'VALIDATION_FAILED' } });
    expect((await show('rf')).version).toBe(paused.version);

    const retried = await http('POST', '/rollouts/rf/nodes/f-1/retry', { reason: 'disk freed on f-1' });
    expect(retried).toMatchObject({ status: 200, json: { status: 'paused', retries: [{ attempt: 1, by: 'bootstrap-admin', reason: 'disk freed on f-1', nodes: 1 }] } });
    const done = await until('rf', 'f-1 completed on retry', (s) => s.phases.completed === 1);
    expect(done).toMatchObject({ status: 'paused', phases: { completed: 1, accepted: 1 } });
    expect(done.failures).toBeUndefined();
    expect(agents.attempts().get('f-1')).toEqual([0, 1]);

    expect((await http('POST', '/rollouts/rf/resume', { reason: 'f-1 fixed' })).status).toBe(200);
    const completed = await until('rf', 'completed', (s) => s.status === 'completed');
    expect(completed.phases).toEqual({ completed: 2 });
    expect(agents.attempts().get('ok-1')).toEqual([0]);
  });

  it('a node that timed out is retried by the bulk form and completes; the retry is in the event stream and the audit trail', async () => {
    expect((await http('POST', '/rollouts', { rolloutId: 'rt', update: { targets: [{ nodes: ['t-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 10_000, changeoverTimeoutMs: 1500, waves: { canary: 0 } } })).status).toBe(201);
    const paused = await until('rt', 'paused on the timeout', (s) => s.status === 'paused');
    expect(paused.failures).toEqual([{ nodeId: 't-1', code: 'TIMEOUT', message: 'no completion within 1500 ms' }]);
    // The bulk form with nodeIds naming one that is fine refuses all of it.
    expect((await http('POST', '/rollouts/rt/retry', { reason: 'x', nodeIds: ['t-1', 'ghost'] })).status).toBe(404);
    const retried = await http('POST', '/rollouts/rt/retry', { reason: 'edge link back' });
    expect(retried).toMatchObject({ status: 200, json: { retries: [{ attempt: 1, nodes: 1, reason: 'edge link back' }] } });
    await until('rt', 't-1 completed', (s) => s.phases.completed === 1);
    expect(agents.attempts().get('t-1')).toEqual([0, 1]);
    // Nothing left failed: a second bulk retry has nothing to do.
    expect(await http('POST', '/rollouts/rt/retry', { reason: 'again' })).toMatchObject({ status: 409, json: { code: 'INVALID_STATE' } });
    expect((await http('POST', '/rollouts/rt/resume', {})).status).toBe(200);
    await until('rt', 'completed', (s) => s.status === 'completed');

    const store = await EventStore.connect({ url: db.url });
    try {
      const events = await store.readStream('rollout-rt');
      const retry = events.find((e) => e.type === 'rollout.nodes-retried')!;
      expect(retry.data).toMatchObject({ nodeIds: ['t-1'], attempt: 1, reason: 'edge link back', by: 'bootstrap-admin' });
      expect(retry.metadata).toMatchObject({ actor: 'bootstrap-admin', actorRole: 'admin' });
    } finally {
      await store.close();
    }
    const audit = (await http('GET', '/audit?action=retry')).json.entries;
    expect(audit.map((e: Json) => [e.target.rolloutId, e.actor, e.reason, e.nodes])).toEqual([
      ['rt', 'bootstrap-admin', 'edge link back', 1],
      ['rf', 'bootstrap-admin', 'disk freed on f-1', 1],
    ]);
  });

  it('the OpenAPI document lists both retry routes as operator routes', async () => {
    const paths = (await http('GET', '/openapi.json')).json.paths;
    expect(paths['/rollouts/{id}/nodes/{nodeId}/retry'].post).toMatchObject({ 'x-role': 'operator', parameters: [{ name: 'id' }, { name: 'nodeId' }] });
    expect(paths['/rollouts/{id}/retry'].post['x-role']).toBe('operator');
  });
});
