import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { counterValue, healthy, http, kill9, startService, type Child } from '../testing/processes.js';

// DESIGN §3: a node that joins a class after the class's rollout completed is brought to the class's
// configuration when it says hello. The built registry and rollout service and simulated fleets run
// as child processes; the late node's repeated hellos start no second rollout.

jest.setTimeout(180_000);

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let logDir: string;
let registryBase: string;
let rolloutBase: string;
const children: Child[] = [];
const hellos: Uint8Array[] = [];
let lateHealthPort: number;
let offHealthPort: number;

async function publish(name: string, version: string): Promise<void> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const r = await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } });
  expect([200, 201]).toContain(r.status);
}

const active = async (nodeId: string) => {
  const r = await http<{ inventory: { active: { name: string; version: string }[] } | null }>('GET', `${registryBase}/nodes/${nodeId}/inventory`);
  return r.status === 200 ? (r.body.inventory?.active.map((p) => `${p.name}@${p.version}`) ?? []) : null;
};
const reconciles = async () => (await http<{ rollouts: { rolloutId: string; status: string }[] }>('GET', `${rolloutBase}/rollouts?limit=500`)).body.rollouts.filter((r) => r.rolloutId.startsWith('reconcile-'));

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-reconcile-'));
  [db, nats] = await Promise.all([createTestDatabase('rollout_reconcile'), startNats()]);
  const [registryPort, rolloutPort, webHealth, lateHealth, offHealth] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  nc = await connect({ servers: nats.url });
  // The late node's hellos, as it sent them, to send again.
  nc.subscribe('changeover.agent.late-1.hello', { callback: (_e, m) => void hellos.push(m.data) });
  await nc.flush();

  const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn' };
  children.push(startService('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false' }, logDir));
  // One outbox relay for the shared database: the rollout service's.
  children.push(startService('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_RELAY: 'true' }, logDir));
  await Promise.all([healthy(registryBase, 'the registry'), healthy(rolloutBase, 'the rollout service')]);
  children.push(startService('fleet-web', 'services/node-agent', ['--simulate', '2', '--class', 'web', '--node-prefix', 'w', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(webHealth), LOG_LEVEL: 'warn' }, logDir));
  await waitFor('the class nodes registered', async () => (await active('w-2')) !== null, { timeoutMs: 60_000, intervalMs: 200 });
  await publish('app', '1.0.0');
  // The late node is started by the test itself.
  lateHealthPort = lateHealth;
  offHealthPort = offHealth;
}, 120_000);

afterAll(async () => {
  for (const c of children) await kill9(c);
  await nc?.close();
  await nats?.stop();
  await db?.drop();
}, 60_000);

const offFleet = () => startService('fleet-off', 'services/node-agent', ['--simulate', '1', '--class', 'web', '--node-prefix', 'off', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(offHealthPort), LOG_LEVEL: 'warn' }, logDir);

describe('a node joining a class after its rollout, or away during it', () => {
  it('is brought to the class configuration on hello, by one rollout however often it says hello', async () => {
    // A node of the class that is away during the class's rollout.
    const away = offFleet();
    await waitFor('the away node registered', async () => (await active('off-1')) !== null, { timeoutMs: 60_000, intervalMs: 200 });
    await kill9(away);
    const put = await http('PUT', `${registryBase}/classes/web`, { packages: [{ name: 'app', version: '1.0.0' }] });
    expect(put.status).toBe(200);
    const r = await http('POST', `${rolloutBase}/rollouts`, { rolloutId: 'rc-web', update: { description: 'web to app 1.0.0', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 3000, unreachable: 'exclude' } });
    expect(r.status).toBe(201);
    await waitFor('the class rollout completed', async () => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/rc-web`)).body.status === 'completed', { timeoutMs: 60_000, intervalMs: 100 });
    expect(await reconciles()).toEqual([]);

    expect(await active('off-1')).toEqual([]);

    // A node joins the class now, with nothing installed.
    children.push(startService('fleet-late', 'services/node-agent', ['--simulate', '1', '--class', 'web', '--node-prefix', 'late', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(lateHealthPort), LOG_LEVEL: 'warn' }, logDir));
    await waitFor('the late node on the class version', async () => (await active('late-1'))?.join() === 'app@1.0.0', { timeoutMs: 60_000, intervalMs: 100 });
    const [made, ...others] = await reconciles();
    expect(others).toEqual([]);
    expect(made?.status).toBe('completed');
    const shown = (await http<RolloutSummary & { nodePhases: Record<string, string> }>('GET', `${rolloutBase}/rollouts/${made!.rolloutId}?nodes=true`)).body;
    expect(shown.nodePhases).toEqual({ 'late-1': 'completed' });

    // Its first hello again, twice (a restart loop replaying the same state): the same reconcile, no second rollout.
    expect(hellos.length).toBeGreaterThan(0);
    const metrics = async (outcome: string) => counterValue(await (await fetch(`${rolloutBase}/metrics`)).text(), 'changeover_rollout_reconciles_total', { outcome });
    expect(await metrics('started')).toBe(1);
    const before = await metrics('duplicate');
    for (let i = 0; i < 2; i++) nc.publish('changeover.agent.late-1.hello', hellos[0]!);
    await waitFor('the replayed hellos handled', async () => (await metrics('duplicate')) >= before + 2, { timeoutMs: 30_000, intervalMs: 100 });
    expect((await reconciles()).map((x) => x.rolloutId)).toEqual([made!.rolloutId]);
    expect(await metrics('started')).toBe(1);
    // The class's own nodes were on the configuration: none got a reconcile rollout.
    expect(await active('w-1')).toEqual(['app@1.0.0']);

    // The away node comes back: its hello brings it to the class's configuration too.
    children.push(offFleet());
    await waitFor('the returning node on the class version', async () => (await active('off-1'))?.join() === 'app@1.0.0', { timeoutMs: 60_000, intervalMs: 100 });
    const after = await reconciles();
    expect(after).toHaveLength(2);
    expect(after.every((x) => x.status === 'completed')).toBe(true);
    expect(await metrics('started')).toBe(2);
  });
});
