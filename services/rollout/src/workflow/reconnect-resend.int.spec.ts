import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, startNatsCluster, waitFor, type TestDatabase, type TestNatsCluster, TEST_ADMIN_TOKEN } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { registry } from '@changeover/telemetry';
import { startRollout, type RunningRollout } from '../app.js';
import { loadConfig } from '../config.js';
import { fakeAgents, fakeRegistry, manifest, type FakeNode } from '../testing/fake-fleet.js';
import { http } from '../testing/processes.js';

// The owning instance's NATS server dies while a node's vote is on its way: core NATS keeps nothing for
// a subscriber that is gone, so that vote reaches no one, and the node (on another server, still
// connected) has no reason to say hello again. After its reconnect the owner proposes again to the
// nodes that have not voted; the rollout goes on long before the vote deadline instead of blocking on it.

jest.setTimeout(120_000);

const fleet: FakeNode[] = [
  { id: 'a-1', classId: 'web', arch: 'x86_64' },
  { id: 'b-1', classId: 'web', arch: 'x86_64' },
];
let db: TestDatabase;
let cluster: TestNatsCluster;
let nc: NatsConnection;
let service: RunningRollout;
let agents: ReturnType<typeof fakeAgents>;
// b-1's vote to the first proposal is the one lost: it stays silent until the owner's server is gone.
const silent = new Set(['b-1']);

const rollout = <T>(method: string, path: string, body?: unknown) => http<T>(method, `http://127.0.0.1:${service.httpPort}${path}`, body);
type Shown = RolloutSummary & { nodePhases?: Record<string, string> };
const resent = async () => (await registry.getSingleMetric('changeover_rollout_commands_resent_total')?.get())?.values.find((v) => v.labels['reason'] === 'reconnect')?.value ?? 0;

beforeAll(async () => {
  [db, cluster] = await Promise.all([createTestDatabase('rollout_reconnect'), startNatsCluster(3)]);
  const [n1, n2] = cluster.servers;
  // The fleet and the registry's stand-in on n2; the rollout service is given n1 alone and learns the others from it.
  nc = await connect({ servers: n2!.url, maxReconnectAttempts: -1 });
  fakeRegistry(nc, fleet, [manifest('app', '1.0.0')]);
  agents = fakeAgents(nc, fleet, { silent });
  service = await startRollout(loadConfig({ DATABASE_URL: db.url, NATS_URL: n1!.url, ROLLOUT_HTTP_PORT: '0', ROLLOUT_INSTANCE_ID: 'reconnect-a', ROLLOUT_LEASE_MS: '2000', LOG_LEVEL: 'warn', CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN }));
});

afterAll(async () => {
  await service?.close();
  agents?.stop();
  await nc?.close();
  await cluster?.stop();
  await db?.drop();
});

describe('a rollout whose owner reconnects to another NATS server (real cluster and Postgres, simulated nodes)', () => {
  it('proposes again to the node whose vote was lost, and completes well before the vote deadline', async () => {
    const before = await resent();
    const created = await rollout('POST', '/rollouts', { rolloutId: 'rc', update: { targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 90_000, changeoverTimeoutMs: 90_000, waves: { canary: 0, size: '100%' } } });
    expect(created.status).toBe(201);
    await waitFor('a-1 voted', () => agents.proposals.includes('a-1'), { timeoutMs: 20_000 });
    await waitFor('a-1 vote recorded', async () => (await rollout<Shown>('GET', '/rollouts/rc?nodes=true')).body.nodePhases?.['a-1'] === 'accepted', { timeoutMs: 20_000 });
    expect(agents.proposals).toEqual(['a-1']);

    // The owner's server dies; from now on b-1 would answer, but it has nothing to answer to unless asked again.
    await cluster.kill('n1');
    silent.delete('b-1');
    const done = await waitFor('rc completed', async () => {
      const s = (await rollout<Shown>('GET', '/rollouts/rc')).body;
      return s.status === 'completed' ? s : null;
    }, { timeoutMs: 45_000, intervalMs: 200 });
    expect(done).toMatchObject({ status: 'completed', phases: { completed: 2 } });
    // The proposal went again to b-1 alone (a-1 had voted), after the reconnect.
    expect(agents.proposals).toEqual(['a-1', 'b-1']);
    expect(await resent()).toBeGreaterThan(before);
  });
});
