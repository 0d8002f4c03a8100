import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, startService, type Child } from '../testing/processes.js';

// Claim 10 across the fleet: an API consumed by a rollout's nodes may be provided by a node the
// rollout does not touch. The built registry, rollout service, notifier and two simulated fleets
// run as child processes; the notifier delivers the rollout's discrepancies to a webhook here.

jest.setTimeout(180_000);

const STALE_AFTER_MS = 3000;
const WEB_NODES = 3;

let db: TestDatabase;
let nats: TestNats;
let logDir: string;
let registryBase: string;
let rolloutBase: string;
let notifierBase: string;
let provider: Child;
const children: Child[] = [];
let fleet: (classId: string, prefix: string, nodes: number, port: number) => Child;
let hooks: Server;
const received: { body: { type?: string; data?: { rolloutId?: string; discrepancy?: { kind: string; nodeId: string; missing: string } } } }[] = [];

async function publish(name: string, version: string, api: { provides?: string[]; consumes?: string[] }): Promise<void> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: api.provides ?? [], consumes: api.consumes ?? [] };
  const r = await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } });
  expect([200, 201]).toContain(r.status);
}

/** Starts a rollout of one package to one class (or to the given nodes). */
async function start(id: string, target: { classes: string[] } | { nodes: string[] }, pkg: { name: string; version: string }, policy: Record<string, unknown> = {}): Promise<void> {
  const r = await http('POST', `${rolloutBase}/rollouts`, { rolloutId: id, update: { description: id, targets: [{ ...target, packages: [pkg] }] }, policy: { voteTimeoutMs: 30_000, changeoverTimeoutMs: 60_000, ...policy } });
  expect(r.status).toBe(201);
}

/** Waits for a rollout's end; returns its summary. */
async function completed(id: string): Promise<RolloutSummary> {
  let summary: RolloutSummary | undefined;
  await waitFor(`${id} completed`, async () => {
    summary = (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${id}`)).body;
    return summary.status === 'completed';
  }, { timeoutMs: 90_000, intervalMs: 100 });
  return summary!;
}

/** Runs a rollout of one package to one class to its end; returns its summary. */
async function rollout(id: string, classId: string, pkg: { name: string; version: string }): Promise<RolloutSummary> {
  await start(id, { classes: [classId] }, pkg);
  return completed(id);
}

const inventoryHas = async (nodeId: string, name: string) => {
  const r = await http<{ inventory: { active: { name: string }[] } | null }>('GET', `${registryBase}/nodes/${nodeId}/inventory`);
  return r.status === 200 && !!r.body.inventory?.active.some((p) => p.name === name);
};

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-fleet-providers-'));
  [db, nats] = await Promise.all([createTestDatabase('rollout_fleet_providers'), startNats()]);
  const [registryPort, rolloutPort, notifierPort, provHealth, webHealth] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  notifierBase = `http://127.0.0.1:${notifierPort}`;
  hooks = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      received.push({ body: JSON.parse(text || '{}') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', r));

  const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn' };
  children.push(startService('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: String(STALE_AFTER_MS) }, logDir));
  // One outbox relay for the shared database: the rollout service's.
  children.push(startService('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_RELAY: 'true' }, logDir));
  children.push(startService('notifier', 'services/notifier', [], { ...common, NOTIFIER_HTTP_PORT: String(notifierPort), NOTIFIER_BACKOFF_BASE_MS: '5', NOTIFIER_BACKOFF_MAX_MS: '100', NOTIFIER_POLL_INTERVAL_MS: '50' }, logDir));
  await Promise.all([healthy(registryBase, 'the registry'), healthy(rolloutBase, 'the rollout service')]);
  await waitFor('the notifier ready', async () => (await fetch(`${notifierBase}/health/ready`).catch(() => null))?.status === 200, { timeoutMs: 60_000, intervalMs: 100 });
  const sub = await http('POST', `${notifierBase}/subscriptions`, { name: 'discrepancies', channel: { type: 'webhook', url: `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook` }, filter: { eventTypes: ['rollout.dependency-discrepancy'] } });
  expect(sub.status).toBe(201);

  fleet = (classId: string, prefix: string, nodes: number, port: number) =>
    startService(`fleet-${classId}`, 'services/node-agent', ['--simulate', String(nodes), '--class', classId, '--node-prefix', prefix, '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(port), LOG_LEVEL: 'warn' }, logDir);
  provider = fleet('auth', 'p', 1, provHealth);
  children.push(provider, fleet('web', 'w', WEB_NODES, webHealth));
  await waitFor('every node active', async () => (await http<{ nodes: unknown[] }>('GET', `${registryBase}/nodes?status=active`)).body.nodes.length === WEB_NODES + 1, { timeoutMs: 60_000, intervalMs: 200 });

  await publish('auth', '1.0.0', { provides: ['auth-api@1.4.0'] });
  await publish('billing', '1.0.0', { consumes: ['auth-api@^1'] });
  await publish('billing', '1.1.0', { consumes: ['auth-api@^1'] });
}, 120_000);

afterAll(async () => {
  for (const c of children) await kill9(c);
  await new Promise((r) => hooks?.close(r));
  await nats?.stop();
  await db?.drop();
}, 60_000);

describe('inter-node dependency check over the whole fleet', () => {
  it('counts a provider outside the rollout, and reports a consumer to the webhook once that provider is gone', async () => {
    expect((await rollout('fp-auth', 'auth', { name: 'auth', version: '1.0.0' })).discrepancies).toEqual([]);
    // The registry holds the provider's new inventory (from the rollout's completion event).
    await waitFor('the provider inventory in the registry', () => inventoryHas('p-1', 'auth'), { timeoutMs: 30_000, intervalMs: 100 });

    // The consumers' rollout does not include the provider's node: the registry's inventory satisfies them.
    const satisfied = await rollout('fp-billing-1', 'web', { name: 'billing', version: '1.0.0' });
    expect(satisfied.discrepancies).toEqual([]);

    // The provider's node goes silent: once the registry counts it inactive, nothing provides auth-api.
    await kill9(provider);
    await waitFor('the provider inactive', async () => (await http<{ status: string }>('GET', `${registryBase}/nodes/p-1`)).body.status !== 'active', { timeoutMs: 30_000, intervalMs: 200 });
    const unprovided = await rollout('fp-billing-2', 'web', { name: 'billing', version: '1.1.0' });
    expect(unprovided.discrepancies.map((d) => [d.kind, d.nodeId, d.missing]).sort()).toEqual(
      Array.from({ length: WEB_NODES }, (_, i) => ['API_UNPROVIDED', `w-${i + 1}`, 'auth-api@^1']),
    );

    // Each discrepancy reaches the webhook through the notifier; the satisfied rollout sent none.
    await waitFor('the discrepancies delivered', () => received.length >= WEB_NODES, { timeoutMs: 30_000, intervalMs: 100 });
    expect(received.every((r) => String(r.body.type).endsWith('rollout.dependency-discrepancy'))).toBe(true);
    expect(received.map((r) => [r.body.data?.rolloutId, r.body.data?.discrepancy?.kind, r.body.data?.discrepancy?.missing])).toEqual(Array.from({ length: WEB_NODES }, () => ['fp-billing-2', 'API_UNPROVIDED', 'auth-api@^1']));
  });

  it('counts a provider that joined the rollout\'s class after the rollout was created (and only it provides the API)', async () => {
    // The first test left no active provider of auth-api (p-1 is gone). A web node that is away holds
    // the new rollout in its vote until it comes back, so a node can join the class meanwhile.
    await publish('billing', '1.2.0', { consumes: ['auth-api@^1'] });
    const [holderPort, latePort, holderPort2] = await Promise.all([freePort(), freePort(), freePort()]);
    const holder = fleet('web', 'h', 1, holderPort);
    children.push(holder);
    await waitFor('the holder active', async () => (await http<{ status: string }>('GET', `${registryBase}/nodes/h-1`)).body?.status === 'active', { timeoutMs: 60_000, intervalMs: 200 });
    await kill9(holder);
    await start('fp-late', { classes: ['web'] }, { name: 'billing', version: '1.2.0' }, { voteTimeoutMs: 150_000, unreachable: 'exclude' });
    const created = (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/fp-late`)).body;
    expect(created.nodes).toBe(WEB_NODES + 1);

    // l-1 joins class web now, and is given the provider by a rollout of its own.
    children.push(fleet('web', 'l', 1, latePort));
    await waitFor('the late node active in class web', async () => {
      const r = await http<{ status: string; classId: string }>('GET', `${registryBase}/nodes/l-1`);
      return r.status === 200 && r.body.status === 'active' && r.body.classId === 'web';
    }, { timeoutMs: 60_000, intervalMs: 200 });
    await start('fp-late-auth', { nodes: ['l-1'] }, { name: 'auth', version: '1.0.0' });
    await completed('fp-late-auth');
    await waitFor('the late provider inventory in the registry', () => inventoryHas('l-1', 'auth'), { timeoutMs: 30_000, intervalMs: 100 });
    const held = (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/fp-late`)).body;
    expect(held.status).toBe('voting');

    // The holder comes back, votes, and the rollout runs to its check: l-1, in class web but not in
    // the rollout, is the only provider, and it satisfies every consumer.
    const before = received.length;
    children.push(fleet('web', 'h', 1, holderPort2));
    const done = await completed('fp-late');
    expect(done.phases).toEqual({ completed: WEB_NODES + 1 });
    expect(done.discrepancies).toEqual([]);
    expect(received.length).toBe(before);
  });
});
