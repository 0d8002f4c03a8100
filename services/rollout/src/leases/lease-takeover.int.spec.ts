import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, startNats, waitFor, type TestDatabase, type TestNats, TEST_ADMIN_TOKEN, TEST_AUTH_HEADER } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { EventStore } from '@changeover/event-store';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';

const fleet: FakeNode[] = [
  { id: 'n1', classId: 'c', arch: 'x86_64' },
  { id: 'n2', classId: 'c', arch: 'x86_64' },
  { id: 'late', classId: 'd', arch: 'x86_64' },
  { id: 'busy', classId: 'e', arch: 'x86_64' },
];

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let a: RunningRollout;
let b: RunningRollout;
const silent = new Set(['late']);
let agents: ReturnType<typeof fakeAgents>;

const start = (id: string) => startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: id, ROLLOUT_LEASE_MS: '1000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }));
const call = async (svc: RunningRollout, method: string, path: string, body?: unknown) => {
  const res = await fetch(`http://127.0.0.1:${svc.httpPort}${path}`, { method, headers: { ...TEST_AUTH_HEADER, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: res.status, json: (await res.json()) as RolloutSummary };
};

beforeAll(async () => {
  [db, nats] = await Promise.all([createTestDatabase('rollout_lease'), startNats()]);
  nc = await connect({ servers: nats.url });
  fakeRegistry(nc, fleet, [manifest('app')]);
  agents = fakeAgents(nc, fleet, { silent, veto: new Map([['busy', 'batch']]) });
  a = await start('instance-a');
  b = await start('instance-b');
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  agents?.stop();
  await nc?.close();
  await nats?.stop();
  await db?.drop();
});

describe('several rollout-service instances', () => {
  it('a REST command answered by the instance that does not own the rollout is carried out by the owner', async () => {
    await call(a, 'POST', '/rollouts', { rolloutId: 'shared', update: { targets: [{ nodes: ['busy', 'n1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { waves: { canary: 0 } } });
    expect(a.runner.isOwned('shared')).toBe(true);
    await waitFor('blocked', async () => (await call(b, 'GET', '/rollouts/shared')).json.status === 'blocked');
    const forced = await call(b, 'POST', '/rollouts/shared/force', { reason: 'approved' });
    expect(forced.status).toBe(200);
    await waitFor('completed via the owner', async () => (await call(b, 'GET', '/rollouts/shared')).json.status === 'completed');
    expect(b.runner.isOwned('shared')).toBe(false);
    expect(agents.commits.get('busy')).toBe(1);
  });

  it('when the owner dies the other instance takes the rollout over after the lease expires, timers and pending work included', async () => {
    const before = new Map(agents.commits);
    await call(a, 'POST', '/rollouts', { rolloutId: 'orphan', update: { targets: [{ nodes: ['n1', 'n2', 'late'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000, waves: { canary: 0 } } });
    expect(a.runner.isOwned('orphan')).toBe(true);
    await waitFor('two votes', async () => (await call(b, 'GET', '/rollouts/orphan')).json.phases['accepted'] === 2);
    await a.crash();
    await waitFor('takeover by b', () => b.runner.isOwned('orphan'), { timeoutMs: 10_000 });
    silent.delete('late');
    agents.hello('late'); // the node comes back: the new owner re-sends its proposal
    const done = await waitFor('completed by b', async () => {
      const s = (await call(b, 'GET', '/rollouts/orphan')).json;
      return s.status === 'completed' ? s : null;
    });
    expect(done.phases).toEqual({ completed: 3 });
    for (const n of ['n1', 'n2', 'late']) expect((agents.commits.get(n) ?? 0) - (before.get(n) ?? 0)).toBe(1);
    const store = await EventStore.connect({ url: db.url });
    const events = await store.readStream('rollout-orphan');
    await store.close();
    expect(events.map((e) => e.streamPosition)).toEqual(events.map((_e, i) => i + 1));
    expect(events.filter((e) => e.type === 'rollout.nodes-completed').flatMap((e) => (e.data as { nodes: { nodeId: string }[] }).nodes.map((n) => n.nodeId)).sort()).toEqual(['late', 'n1', 'n2']);
  });
});
