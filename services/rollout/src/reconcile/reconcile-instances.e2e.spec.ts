import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { counterValue, healthy, http, kill9, startService, type Child } from '../testing/processes.js';

// Reconcile with two rollout-service instances on one database and one NATS (each hello goes to one of
// them through the queue group): a node another instance's rollout has gets no reconcile rollout, and
// hellos of one node handled at once by both instances start one rollout between them.

jest.setTimeout(180_000);

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let sql: pg.Client;
let logDir: string;
let registryBase: string;
const instances: { name: string; base: string }[] = [];
const children: Child[] = [];
const hellos = new Map<string, Uint8Array>();

async function publish(name: string, version: string): Promise<void> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const r = await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } });
  expect([200, 201]).toContain(r.status);
}

/** The reconcile outcomes each instance counted. */
async function outcomes(outcome: string): Promise<number[]> {
  return Promise.all(instances.map(async (i) => counterValue(await (await fetch(`${i.base}/metrics`)).text(), 'changeover_rollout_reconciles_total', { outcome })));
}
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
/** Reconcile rollouts made for a node, from the event store itself (not a projection). */
const reconcilesOf = async (nodeId: string) =>
  (await sql.query<{ id: string }>(`SELECT stream_id AS id FROM events WHERE event_type = 'rollout.created' AND stream_id LIKE 'rollout-reconcile-%' AND data -> 'update' ->> 'description' = $1 ORDER BY 1`, [`reconcile ${nodeId} to class web`])).rows.map((r) => r.id);

/** A node's hello as its agent sent it, with its inventory digest replaced (another node state, so another reconcile id). */
function helloWithDigest(nodeId: string, seed: string): Uint8Array {
  const body = JSON.parse(Buffer.from(hellos.get(nodeId)!).toString('utf8')) as { inventory: { digest: string } };
  body.inventory.digest = `sha256:${createHash('sha256').update(seed).digest('hex')}`;
  return Buffer.from(JSON.stringify(body));
}

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-reconcile-instances-'));
  [db, nats] = await Promise.all([createTestDatabase('rollout_reconcile_instances'), startNats()]);
  const [registryPort, portA, portB, fleetHealth] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  nc = await connect({ servers: nats.url });
  for (const n of ['cov-1', 'dup-1']) nc.subscribe(`changeover.agent.${n}.hello`, { callback: (_e, m) => void (hellos.has(n) || hellos.set(n, m.data)) });
  await nc.flush();

  const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn' };
  children.push(startService('registry', 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false' }, logDir));
  await healthy(registryBase, 'the registry');
  // Two instances with leases; the hellos of this test come faster than the default per-node rate.
  for (const [name, port, relay] of [['a', portA, 'true'], ['b', portB, 'false']] as const) {
    children.push(startService(`rollout-${name}`, 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(port), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: `reconcile-${name}`, ROLLOUT_LEASE_MS: '5000', ROLLOUT_RELAY: relay, ROLLOUT_HELLO_RATE_PER_S: '1000', ROLLOUT_HELLO_BURST: '1000' }, logDir));
    instances.push({ name, base: `http://127.0.0.1:${port}` });
  }
  await Promise.all(instances.map((i) => healthy(i.base, `rollout instance ${i.name}`)));
  sql = new pg.Client({ connectionString: db.url });
  await sql.connect();

  // Two nodes of class web register (the class has no configuration yet), then go away.
  const fleet = startService('fleet-web', 'services/node-agent', ['--simulate', '1', '--class', 'web', '--node-prefix', 'cov', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL: 'warn' }, logDir);
  await waitFor('cov-1 registered', async () => (await http('GET', `${registryBase}/nodes/cov-1`)).status === 200 && hellos.has('cov-1'), { timeoutMs: 60_000, intervalMs: 200 });
  await kill9(fleet);
  const fleet2 = startService('fleet-web-2', 'services/node-agent', ['--simulate', '1', '--class', 'web', '--node-prefix', 'dup', '--heartbeat-ms', '500'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL: 'warn' }, logDir);
  await waitFor('dup-1 registered', async () => (await http('GET', `${registryBase}/nodes/dup-1`)).status === 200 && hellos.has('dup-1'), { timeoutMs: 60_000, intervalMs: 200 });
  await kill9(fleet2);
  await publish('app', '1.0.0');
  expect((await http('PUT', `${registryBase}/classes/web`, { packages: [{ name: 'app', version: '1.0.0' }] })).status).toBe(200);
}, 120_000);

afterAll(async () => {
  await sql?.end();
  for (const c of children) await kill9(c);
  await nc?.close();
  await nats?.stop();
  await db?.drop();
}, 60_000);

describe('reconcile across rollout-service instances', () => {
  it('starts no reconcile for a node that a rollout of the other instance has', async () => {
    // Instance a runs a rollout of the class's package to cov-1, held in its vote (the node is away).
    const created = await http('POST', `${instances[0]!.base}/rollouts`, { rolloutId: 'cov-held', update: { description: 'cov-1 to app 1.0.0', targets: [{ nodes: ['cov-1'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 150_000 } });
    expect(created.status).toBe(201);
    // cov-1's hello (its inventory lacks app@1.0.0), one at a time, until each instance handled some
    // with the class's configuration in view (an instance may hold the class's earlier lookup for a second).
    const kinds = ['in-rollout', 'no-configuration', 'started', 'in-step', 'duplicate', 'refused', 'failed'];
    const all = async () => Object.fromEntries(await Promise.all(kinds.map(async (k) => [k, await outcomes(k)] as const))) as Record<string, number[]>;
    const before = await all();
    const since = async () => {
      const now = await all();
      return Object.fromEntries(kinds.map((k) => [k, now[k]!.map((n, i) => n - before[k]![i]!)])) as Record<string, number[]>;
    };
    let sent = 0;
    let seen = await since();
    while (sent < 100 && !(seen['in-rollout']!.every((n) => n >= 3))) {
      nc.publish('changeover.agent.cov-1.hello', hellos.get('cov-1')!);
      sent++;
      await waitFor('the hello reconciled', async () => {
        seen = await since();
        return kinds.reduce((n, k) => n + sum(seen[k]!), 0) === sent;
      }, { timeoutMs: 30_000, intervalMs: 50 });
    }
    // Instance b does not own cov-held, yet saw it (through Postgres) for the hellos it handled.
    expect(seen['in-rollout']![1]).toBeGreaterThanOrEqual(3);
    expect(seen['in-rollout']![0]).toBeGreaterThanOrEqual(3);
    expect(sum(seen['in-rollout']!) + sum(seen['no-configuration']!)).toBe(sent);
    expect(sum(await outcomes('started'))).toBe(0);
    expect(await reconcilesOf('cov-1')).toEqual([]);
  });

  it('starts one rollout when both instances handle hellos of one node at once', async () => {
    // Ten hellos of dup-1, each with another inventory digest (so each would name another reconcile id), all at once.
    const counts = async () => sum(await outcomes('started')) + sum(await outcomes('in-rollout')) + sum(await outcomes('duplicate'));
    const before = await counts();
    for (let i = 0; i < 10; i++) nc.publish('changeover.agent.dup-1.hello', helloWithDigest('dup-1', `state-${i}`));
    await nc.flush();
    await waitFor('the hellos reconciled', async () => (await counts()) >= before + 10, { timeoutMs: 60_000, intervalMs: 100 });
    expect(await counts()).toBe(before + 10);
    expect(sum(await outcomes('started'))).toBe(1);
    expect(await reconcilesOf('dup-1')).toHaveLength(1);
    expect(sum(await outcomes('failed'))).toBe(0);
  });
});
