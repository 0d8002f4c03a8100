import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import type { RolloutSummary } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { jetStreamEventIds, relayCaughtUp, startWebhookReceiver, storedEvents, type WebhookReceiver } from '../testing/event-checks.js';
import { healthy, http, isRunning, kill9, startService, type Child } from '../testing/processes.js';

// Scale-out (several instances of the registry and the notifier): two registries (both run the
// outbox relay, one at a time by its lock) and two notifiers (one durable consumer, one delivery
// table) beside the rollout service and a simulated fleet, all as built processes. One registry and
// one notifier are killed with SIGKILL in the middle of a rollout: the rollout completes, every
// Postgres event is on CHANGEOVER_EVENTS once, and the webhook gets every event under its own id.

jest.setTimeout(300_000);
const NODES = 16;

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let sql: pg.Pool;
let hook: WebhookReceiver;
let logDir: string;
const registries: { child: Child; base: string }[] = [];
const notifiers: { child: Child; base: string }[] = [];
let rolloutBase: string;
const children: Child[] = [];

async function publish(base: string, name: string, version: string): Promise<number> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  return (await http('POST', `${base}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } })).status;
}

const rolloutEvents = async (id: string) => Number((await sql.query(`SELECT count(*) AS n FROM events WHERE stream_id = $1`, [`rollout-${id}`])).rows[0].n);
const live = (base: string, what: string) => waitFor(what, async () => (await fetch(`${base}/health/live`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok === true, { timeoutMs: 60_000, intervalMs: 100 });

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-scale-out-'));
  [db, nats, hook] = await Promise.all([createTestDatabase('scale_out'), startNats(), startWebhookReceiver(20)]);
  sql = new pg.Pool({ connectionString: db.url, max: 4 });
  nc = await connect({ servers: nats.url });
  const common = { DATABASE_URL: db.url, NATS_URL: nats.url, LOG_LEVEL: 'warn' };

  // The notifiers first, and the subscription to every event, so each event the others write is notified.
  for (const name of ['notifier-a', 'notifier-b']) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = startService(name, 'services/notifier', [], { ...common, NOTIFIER_HTTP_PORT: String(port), NOTIFIER_HTTP_TIMEOUT_MS: '2000', NOTIFIER_BACKOFF_BASE_MS: '50', NOTIFIER_BACKOFF_MAX_MS: '500', NOTIFIER_POLL_INTERVAL_MS: '50', NOTIFIER_CONCURRENCY: '8' }, logDir);
    children.push(child);
    notifiers.push({ child, base });
    await live(base, name);
  }
  const sub = await http('POST', `${notifiers[0]!.base}/subscriptions`, { name: 'everything', channel: { type: 'webhook', url: hook.url }, filter: { eventTypes: ['*'] } });
  expect(sub.status).toBe(201);

  // Registry A starts first, so its relay holds the relay lock; B's stands by.
  for (const name of ['registry-a', 'registry-b']) {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const child = startService(name, 'services/registry', [], { ...common, REGISTRY_HTTP_PORT: String(port), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_STALE_AFTER_MS: '600000' }, logDir);
    children.push(child);
    registries.push({ child, base });
    await healthy(base, name);
  }
  const [rolloutPort, fleetHealth] = await Promise.all([freePort(), freePort()]);
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  // The relay runs in the registries only, so the registry kill hits it.
  children.push(startService('rollout', 'services/rollout', [], { ...common, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'scale-out', ROLLOUT_RELAY: 'false', ROLLOUT_REGISTRY_TIMEOUT_MS: '3000' }, logDir));
  await healthy(rolloutBase, 'the rollout service');
  children.push(startService('fleet-web', 'services/node-agent', ['--simulate', String(NODES), '--class', 'web', '--node-prefix', 'w', '--heartbeat-ms', '1000'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL: 'warn' }, logDir));
  await waitFor(`${NODES} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes`)).rows[0].n) >= NODES, { timeoutMs: 60_000, intervalMs: 200 });
  await Promise.all(notifiers.map((n) => waitFor('notifier consuming', async () => (await fetch(`${n.base}/health/ready`).catch(() => null))?.ok === true, { timeoutMs: 60_000, intervalMs: 100 })));
}, 240_000);

afterAll(async () => {
  for (const c of children) await kill9(c);
  await nc?.close();
  await sql?.end();
  await hook?.close();
  await nats?.stop();
  await db?.drop();
}, 60_000);

describe('two registries and two notifiers, one of each killed with SIGKILL mid-rollout', () => {
  it('completes the rollout, relays every event once and notifies every event once per event id', async () => {
    console.log(`scale-out logs in ${logDir}`);
    expect(await publish(registries[0]!.base, 'app', '1.0.0')).toBe(201);
    const body = { rolloutId: 'so-1', update: { description: 'so-1', targets: [{ classes: ['web'], packages: [{ name: 'app', version: '1.0.0' }] }] }, policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 120_000, waves: { canary: 1, size: '25%' } } };
    expect((await http('POST', `${rolloutBase}/rollouts`, body)).status).toBe(201);

    // Mid-rollout: some of its events written and notified, far from all.
    await waitFor('the rollout under way and notified', async () => (await rolloutEvents('so-1')) >= 6 && hook.received.some((r) => r.rolloutId === 'so-1'), { timeoutMs: 60_000, intervalMs: 10 });
    await Promise.all([kill9(registries[0]!.child), kill9(notifiers[0]!.child)]);
    const atKill = await rolloutEvents('so-1');

    // The surviving registry answers (a package published after the kill), and the rollout completes.
    expect(await publish(registries[1]!.base, 'app', '2.0.0')).toBe(201);
    await waitFor('so-1 completed', async () => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/so-1?nodes=true`).catch(() => null))?.body.status === 'completed', { timeoutMs: 120_000, intervalMs: 250 });
    expect((await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/so-1?nodes=true`)).body.phases).toEqual({ completed: NODES });
    expect(await rolloutEvents('so-1')).toBeGreaterThan(atKill);

    // Postgres and CHANGEOVER_EVENTS: the same events, each once, though the relay's holder died. The
    // registries may still write (heartbeat-driven events): what was stored before is all on the stream,
    // and what is on the stream was all stored by the time it is read.
    const stored = await storedEvents(sql);
    const storedIds = stored.map((e) => e.event_id);
    expect(new Set(storedIds).size).toBe(storedIds.length);
    await waitFor('the surviving relay at the head of the events table', () => relayCaughtUp(sql, stored.at(-1)!.global_position), { timeoutMs: 60_000, intervalMs: 200 });
    const jsm = await jetstreamManager(nc);
    const onStream = await jetStreamEventIds(jsm);
    const storedLater = new Set((await storedEvents(sql)).map((e) => e.event_id));
    expect(new Set(onStream).size).toBe(onStream.length);
    expect(storedIds.filter((id) => !onStream.includes(id))).toEqual([]);
    expect(onStream.filter((id) => !storedLater.has(id))).toEqual([]);

    // The webhook: every stored event under its own id (repeats of one id are allowed, at least once),
    // nothing under an id that is not a stored event's, and the rollout's completion once.
    await waitFor('every event notified', () => storedIds.every((id) => hook.ids().has(id)), { timeoutMs: 120_000, intervalMs: 250 });
    const allStored = new Set((await storedEvents(sql)).map((e) => e.event_id));
    const got = hook.ids();
    expect([...got].filter((id) => !allStored.has(id))).toEqual([]);
    const completions = new Set(hook.received.filter((r) => r.type === 'io.changeover.rollout.completed' && r.rolloutId === 'so-1').map((r) => r.id));
    expect(completions.size).toBe(1);
    // The delivery log agrees: one delivery per event, each delivered.
    const deliveries = async () => (await sql.query<{ n: number; ids: number; delivered: number }>(`SELECT count(*)::int AS n, count(DISTINCT event_id)::int AS ids, count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM notifier.deliveries WHERE event_id = ANY($1)`, [storedIds])).rows[0]!;
    await waitFor('every delivery recorded as delivered', async () => (await deliveries()).delivered === storedIds.length, { timeoutMs: 30_000, intervalMs: 200 }).catch(() => undefined);
    expect(await deliveries()).toEqual({ n: storedIds.length, ids: storedIds.length, delivered: storedIds.length });
    const [unknown] = (await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM notifier.deliveries d WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = d.event_id)`)).rows;
    expect(unknown!.n).toBe(0);
    console.log(`scale-out: ${atKill} of ${await rolloutEvents('so-1')} rollout events written at the kill; ${storedIds.length} events stored, relayed once each; ${hook.received.length} webhook requests for ${got.size} event ids`);
    expect([isRunning(registries[1]!.child), isRunning(notifiers[1]!.child)]).toEqual([true, true]);
  });
});
