import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import type { RolloutSummary } from '@changeover/contracts';
import { freePort, multiHostUrl, startNats, startPostgresServer, waitFor, type TestNats, type TestPostgresServer } from '@changeover/test-kit';
import { healthy, http, isRunning, kill9, startService, type Child } from './testing/processes.js';
import { relayedAgainstStored } from './testing/event-checks.js';

// The built registry, rollout service and a simulated fleet on a Postgres of the test's own: a primary
// and a synchronous streaming replica, both hosts in DATABASE_URL (target_session_attrs=read-write).
// The primary is killed with SIGKILL and started again mid-rollout, then killed for good and the
// replica promoted mid-rollout: both rollouts complete on every node, the registry takes packages
// after each, and Postgres and CHANGEOVER_EVENTS hold each event exactly once.

jest.setTimeout(300_000);
const NODES = 8;

let primary: TestPostgresServer;
let replica: TestPostgresServer;
let database: string;
let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;
let registryBase: string;
let rolloutBase: string;
const children: Child[] = [];

/** A query on whichever server is the primary now (the test's own view, not the services'). */
async function onPrimary<T extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<T[]> {
  const server = (await replica.isInRecovery().catch(() => true)) ? primary : replica;
  const c = new pg.Client({ connectionString: server.url(database) });
  await c.connect();
  try {
    return (await c.query<T>(text, values)).rows;
  } finally {
    await c.end();
  }
}

async function publish(name: string, version: string): Promise<number> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  return (await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } })).status;
}

async function startRollout(id: string, version: string): Promise<void> {
  const body = { rolloutId: id, update: { description: id, targets: [{ classes: ['web'], packages: [{ name: 'app', version }] }] }, policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 120_000, waves: { canary: 1, size: '25%' } } };
  expect((await http('POST', `${rolloutBase}/rollouts`, body)).status).toBe(201);
}

const show = async (id: string) => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${id}?nodes=true`)).body;
const rolloutEvents = async (id: string) => Number((await onPrimary<{ n: string }>(`SELECT count(*) AS n FROM events WHERE stream_id = $1`, [`rollout-${id}`]))[0]!.n);

async function completes(id: string): Promise<void> {
  await waitFor(`${id} completed`, async () => (await show(id).catch(() => null))?.status === 'completed', { timeoutMs: 150_000, intervalMs: 250 });
  expect((await show(id)).phases).toEqual({ completed: NODES });
}

/** Every event in Postgres is on CHANGEOVER_EVENTS, once, and nothing else is. */
async function relayedExactlyOnce(): Promise<void> {
  const check = await relayedAgainstStored(jsm, async () => (await onPrimary<{ event_id: string }>(`SELECT event_id FROM events ORDER BY global_position`)).map((r) => r.event_id));
  expect(new Set(check.stored).size).toBe(check.stored.length);
  expect(check.repeated).toEqual([]);
  expect(check.notStored).toEqual([]);
}

beforeAll(async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'changeover-pg-failover-logs-'));
  [primary, nats] = await Promise.all([startPostgresServer({ name: 'pg-a' }), startNats()]);
  database = (await primary.createDatabase('rollout_pg_failover')).name;
  replica = await primary.createReplica({ name: 'pg-b', synchronous: true });
  const databaseUrl = multiHostUrl([primary, replica], database);
  const [registryPort, rolloutPort, fleetHealth] = await Promise.all([freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: databaseUrl, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_STALE_AFTER_MS: '600000', LOG_LEVEL: 'warn' }, logDir));
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: databaseUrl, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'pg-failover', LOG_LEVEL: 'warn' }, logDir));
  await Promise.all([healthy(registryBase, 'the registry'), healthy(rolloutBase, 'the rollout service')]);
  children.push(startService('fleet-web', 'services/node-agent', ['--simulate', String(NODES), '--class', 'web', '--node-prefix', 'w', '--heartbeat-ms', '1000'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL: 'warn' }, logDir));
  await waitFor(`${NODES} nodes registered`, async () => Number((await onPrimary<{ n: string }>(`SELECT count(*) AS n FROM registry_nodes`))[0]!.n) >= NODES, { timeoutMs: 60_000, intervalMs: 200 });
  expect(await publish('app', '1.0.0')).toBe(201);
}, 180_000);

afterAll(async () => {
  for (const c of children) await kill9(c);
  await nc?.close();
  await nats?.stop();
  await Promise.all([primary?.stop(), replica?.stop()]);
}, 60_000);

describe('services on a Postgres that restarts and fails over', () => {
  it('completes a rollout through kill -9 and start of the primary, and the registry takes a package after it', async () => {
    await startRollout('pg-1', '1.0.0');
    await waitFor('pg-1 under way', async () => (await rolloutEvents('pg-1')) >= 6, { timeoutMs: 60_000, intervalMs: 20 });
    await primary.restart('SIGKILL');

    await completes('pg-1');
    expect(await publish('app', '2.0.0')).toBe(201);
    expect(children.filter((c) => c.name !== 'fleet-web').map((c) => [c.name, isRunning(c)])).toEqual([
      ['registry', true],
      ['rollout', true],
    ]);
    await relayedExactlyOnce();
  });

  it('moves to the promoted replica when the primary dies mid-rollout: the rollout completes, the registry takes a package, each event once', async () => {
    await startRollout('pg-2', '2.0.0');
    await waitFor('pg-2 under way', async () => (await rolloutEvents('pg-2')) >= 6, { timeoutMs: 60_000, intervalMs: 20 });
    await primary.kill('SIGKILL');
    await replica.promote();

    await completes('pg-2');
    expect(await publish('app', '3.0.0')).toBe(201);
    expect(replica.running() && !(await replica.isInRecovery())).toBe(true);
    expect(children.filter((c) => c.name !== 'fleet-web').map((c) => [c.name, isRunning(c)])).toEqual([
      ['registry', true],
      ['rollout', true],
    ]);
    await relayedExactlyOnce();
  });
});
