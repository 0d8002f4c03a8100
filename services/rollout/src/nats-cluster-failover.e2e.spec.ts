import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { CLUSTER_RECORD, MODULE_BUCKET, STREAMS, type RolloutSummary } from '@changeover/contracts';
import { createTestDatabase, freePort, startNatsCluster, waitFor, type TestDatabase, type TestNatsCluster } from '@changeover/test-kit';
import { relayedAgainstStored } from './testing/event-checks.js';
import { healthy, http, kill9, startService, type Child } from './testing/processes.js';

// The built registry, rollout service and a simulated fleet on a real three-server NATS cluster
// (NATS_URL lists all three, NATS_STREAM_REPLICAS=3). The events stream's leader is killed with
// SIGKILL in the middle of a rollout: POST /packages still answers, the rollout completes on every
// node, and CHANGEOVER_EVENTS ends with each Postgres event exactly once.

jest.setTimeout(240_000);
const NODES = 12;

let cluster: TestNatsCluster;
let db: TestDatabase;
let nc: NatsConnection;
let jsm: JetStreamManager;
let sql: pg.Pool;
let registryBase: string;
let rolloutBase: string;
const children: Child[] = [];

async function publish(name: string, version: string): Promise<number> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  return (await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } })).status;
}

const show = async (id: string) => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${id}?nodes=true`)).body;
const rolloutEvents = async (id: string) => Number((await sql.query(`SELECT count(*) AS n FROM events WHERE stream_id = $1`, [`rollout-${id}`])).rows[0].n);

beforeAll(async () => {
  const logDir = mkdtempSync(join(tmpdir(), 'changeover-failover-logs-'));
  [cluster, db] = await Promise.all([startNatsCluster(3), createTestDatabase('rollout_nats_cluster')]);
  const [registryPort, rolloutPort, fleetHealth] = await Promise.all([freePort(), freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  sql = new pg.Pool({ connectionString: db.url, max: 4 });
  nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  jsm = await jetstreamManager(nc);
  const nats = { NATS_URL: cluster.url, NATS_STREAM_REPLICAS: '3' };
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, ...nats, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_STALE_AFTER_MS: '600000', LOG_LEVEL: 'warn' }, logDir));
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: db.url, ...nats, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'nats-cluster', LOG_LEVEL: 'warn' }, logDir));
  await Promise.all([healthy(registryBase, 'the registry'), healthy(rolloutBase, 'the rollout service')]);
  children.push(startService('fleet-web', 'services/node-agent', ['--simulate', String(NODES), '--class', 'web', '--node-prefix', 'w', '--heartbeat-ms', '1000'], { ...nats, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL: 'warn' }, logDir));
  await waitFor(`${NODES} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes`)).rows[0].n) >= NODES, { timeoutMs: 60_000, intervalMs: 200 });
}, 180_000);

afterAll(async () => {
  for (const c of children) await kill9(c);
  await nc?.close();
  await sql?.end();
  await cluster?.stop();
  await db?.drop();
}, 60_000);

describe('rollout over a simulated fleet while a NATS server dies', () => {
  it('keeps every stream on three servers, answers POST /packages after the kill, completes the rollout and relays every event once', async () => {
    expect(await publish('app', '1.0.0')).toBe(201);
    for (const name of [STREAMS.events, STREAMS.groups, CLUSTER_RECORD.stream, `OBJ_${MODULE_BUCKET}`]) {
      const info = await jsm.streams.info(name);
      expect({ name, replicas: info.config.num_replicas }).toEqual({ name, replicas: 3 });
    }
    const body = { rolloutId: 'nc-1', update: { description: 'nc-1', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 120_000, waves: { canary: 1, size: '25%' } } };
    expect((await http('POST', `${rolloutBase}/rollouts`, body)).status).toBe(201);
    // Mid-rollout: some of its events are written, far from all.
    await waitFor('the rollout under way', async () => (await rolloutEvents('nc-1')) >= 6, { timeoutMs: 60_000, intervalMs: 20 });
    const leader = (await jsm.streams.info(STREAMS.events)).cluster!.leader!;
    await cluster.kill(leader);
    expect(await rolloutEvents('nc-1')).toBeLessThan(20);

    // The registry stores a new package on the two servers left (the failure once seen as a 500).
    expect(await publish('app', '2.0.0')).toBe(201);
    await waitFor('nc-1 completed', async () => (await show('nc-1').catch(() => null))?.status === 'completed', { timeoutMs: 120_000, intervalMs: 250 });
    expect((await show('nc-1')).phases).toEqual({ completed: NODES });
    // This test's own connection may have been on the killed server too: it asks again until answered.
    const newLeader = await waitFor('a new leader of the events stream', async () => (await jsm.streams.info(STREAMS.events)).cluster?.leader, { timeoutMs: 30_000, intervalMs: 100 });
    expect(newLeader).not.toBe(leader);

    // Nothing stored twice, nothing missing; the fleet may still report meanwhile (see relayedAgainstStored).
    const check = await relayedAgainstStored(jsm, async () => (await sql.query<{ event_id: string }>(`SELECT event_id FROM events ORDER BY global_position`)).rows.map((r) => r.event_id));
    expect(new Set(check.stored).size).toBe(check.stored.length);
    expect(check.repeated).toEqual([]);
    expect(check.notStored).toEqual([]);
  });
});
