import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import type { RolloutSummary } from '@changeover/contracts';
import { freePort, startNatsCluster, startPostgresServer, waitFor, type TestNatsCluster, type TestPostgresServer } from '@changeover/test-kit';
import { jetStreamEventIds, relayCaughtUp, startWebhookReceiver, storedEvents, type WebhookReceiver } from '../testing/event-checks.js';
import { http, isRunning, kill9, prng, startService, type Child } from '../testing/processes.js';
import { probe, publisher, servicePackage } from './real-module.js';

// `npm run test:chaos`: two instances of each service, a three-server NATS cluster and a Postgres of
// its own, a simulated fleet and two real node agents. Several rollouts run one after the other while
// a seeded random schedule kills (SIGKILL) and restarts a service instance, the second real agent, a
// NATS server or Postgres, one fault at a time. CHAOS_SEED replays a run's schedule.
// The probed agent is never killed: its kill takes the module's listening socket down with it by
// design (crash-recovery.e2e covers that); the other agent is killed after its node has changed over.

jest.setTimeout(900_000);

const SEED = Number(process.env['CHAOS_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const SIMULATED = 10;
/** The services' and agents' log level (CHAOS_LOG_LEVEL=info or debug for a post-mortem of a replayed seed). */
const LOG_LEVEL = process.env['CHAOS_LOG_LEVEL'] ?? 'warn';
const VERSIONS = ['1.0.0', '2.0.0', '3.0.0', '4.0.0'];
/** Faults per chaos rollout at most; every kind of fault is among the first ones. */
const MAX_FAULTS = 40;
const KINDS = ['registry', 'rollout', 'notifier', 'agent', 'nats', 'postgres'] as const;
type Kind = (typeof KINDS)[number];

let pgServer: TestPostgresServer;
let cluster: TestNatsCluster;
let nc: NatsConnection;
let sql: pg.Pool;
let hook: WebhookReceiver;
let logDir: string;
let databaseUrl: string;
let probePort: number;
let edgePort: number;
const signer = publisher();

interface Service {
  name: string;
  kind: Kind;
  base: string;
  /** The path that answers 200 once the process serves. */
  healthPath: string;
  start(): Child;
  child?: Child;
  ready(): Promise<void>;
}
/** The service instances (two of each kind). */
const services: Service[] = [];
/** Every process started, agents included, to be killed at the end. */
const started: Child[] = [];
/** Processes that ended without being killed by the schedule. */
const unexpectedExits: string[] = [];
const killedOnPurpose = new WeakSet<Child>();
const faults: string[] = [];
/** Aborted at teardown: exits then are not unexpected, and the waits a failed run leaves polling end. */
const over = new AbortController();
/** Rejects at the first process death the schedule did not cause: the run stops there instead of waiting out its deadlines. */
let died: (e: Error) => void = () => undefined;
const deaths = new Promise<never>((_, reject) => (died = reject));
deaths.catch(() => undefined); // raced below

function watch(s: Service): Child {
  const child = s.start();
  s.child = child;
  started.push(child);
  child.proc.once('exit', (code, signal) => {
    if (killedOnPurpose.has(child) || over.signal.aborted) return;
    unexpectedExits.push(`${s.name} exited (${code ?? signal}); see ${child.log}`);
    died(new Error(unexpectedExits.join('; ')));
  });
  return child;
}

const live = (base: string, path: string) => async () => {
  await waitFor(`${base}${path}`, async () => (await fetch(`${base}${path}`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok === true, { timeoutMs: 90_000, intervalMs: 100 });
};

/** A service instance of the product as a restartable child process. */
async function service(name: string, kind: Kind, pkg: string, env: (port: number) => Record<string, string>, argv: string[] = [], healthPath = '/health'): Promise<Service> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const s: Service = { name, kind, base, healthPath, start: () => startService(name, pkg, argv, env(port), logDir), ready: live(base, healthPath) };
  services.push(s);
  return s;
}

/** A live base URL of a kind of service (one instance may be down). */
async function baseOf(kind: Kind): Promise<string> {
  return waitFor(`a live ${kind}`, async () => {
    for (const s of services.filter((x) => x.kind === kind && isRunning(x.child))) {
      if ((await fetch(`${s.base}${s.healthPath}`, { signal: AbortSignal.timeout(2000) }).catch(() => null))?.ok) return s.base;
    }
    return undefined;
  }, { timeoutMs: 90_000, intervalMs: 100, signal: over.signal });
}

/** JSON over HTTP to a kind of service, retried on another instance while instances or Postgres restart. */
async function call<T>(kind: Kind, method: string, path: string, body?: unknown, ok: (status: number) => boolean = (s) => s < 300): Promise<{ status: number; body: T }> {
  return waitFor(`${method} ${kind} ${path}`, async () => {
    const r = await http<T>(method, `${await baseOf(kind)}${path}`, body, 10_000).catch(() => null);
    if (r && r.status < 500 && !ok(r.status)) throw new Error(`${method} ${path} refused: ${r.status} ${JSON.stringify(r.body)}`);
    return r && ok(r.status) ? r : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250, signal: over.signal });
}

type Summary = RolloutSummary & { nodePhases?: Record<string, string> };
const summary = (id: string) => call<Summary>('rollout', 'GET', `/rollouts/${id}?nodes=true`);

async function createRollout(id: string, version: string): Promise<void> {
  const body = {
    rolloutId: id,
    update: { description: id, targets: [{ classes: ['web'], packages: [{ name: 'chaos-api', version }] }, { classes: ['edge'], packages: [{ name: 'edge-api', version }] }] },
    policy: { voteTimeoutMs: 60_000, changeoverTimeoutMs: 120_000, waves: { canary: 1, size: '25%' } },
  };
  // Created once whichever instance answers: a create that died with its instance is found, not repeated.
  await waitFor(`rollout ${id} created`, async () => {
    const base = await baseOf('rollout');
    const r = await http('POST', `${base}/rollouts`, body, 10_000).catch(() => null);
    if (r?.status === 201) return true;
    if (r && r.status < 500 && r.status !== 409) throw new Error(`create ${id} refused: ${r.status} ${JSON.stringify(r.body)}`);
    return (await http('GET', `${base}/rollouts/${id}`, undefined, 10_000).catch(() => null))?.status === 200;
  }, { timeoutMs: 120_000, intervalMs: 250 });
}

let edgeAgent: Service;

/** One fault: kill -9 of one thing, a random pause, start it again and wait until it serves. */
async function fault(kind: Kind, random: () => number, current: string): Promise<void> {
  const pause = () => new Promise((r) => setTimeout(r, 300 + Math.round(random() * 1500))); // the fault's length, drawn from the seed
  const began = Date.now();
  if (kind === 'nats') {
    const server = cluster.servers[Math.floor(random() * cluster.servers.length)]!;
    await cluster.kill(server.name);
    await pause();
    await cluster.start(server.name);
    faults.push(`nats ${server.name}`);
  } else if (kind === 'postgres') {
    await pgServer.kill('SIGKILL');
    await pause();
    await pgServer.start();
    faults.push('postgres');
  } else {
    if (kind === 'agent') {
      // After its node changed over in the current rollout: a kill mid-changeover regresses the node by design.
      await waitFor('the edge node changed over', async () => ['completed', undefined].includes((await summary(current)).body.nodePhases?.['edge-1']), { timeoutMs: 120_000, intervalMs: 200 });
    }
    const pool = kind === 'agent' ? [edgeAgent] : services.filter((s) => s.kind === kind);
    const s = pool[Math.floor(random() * pool.length)]!;
    killedOnPurpose.add(s.child!);
    await kill9(s.child);
    await pause();
    watch(s);
    await s.ready();
    faults.push(s.name);
  }
  faults[faults.length - 1] += ` (${Date.now() - began} ms, during ${current})`;
  // As it happens, for a post-mortem of a run that does not finish.
  appendFileSync(join(logDir, 'faults.log'), `${new Date().toISOString()} ${faults.at(-1)}\n`);
}

/**
 * What a failed run leaves for its post-mortem, printed and kept in <logDir>/postmortem.txt: the
 * faults so far, each rollout instance's view of the rollout with its node phases, its events and
 * the lease rows. Each part is read once and may be missing (the thing it asks may be down).
 */
async function postMortem(current: string, error: unknown): Promise<string> {
  const lines = [`chaos seed ${SEED} failed during ${current}: ${error instanceof Error ? error.message : String(error)}`, 'faults:', ...faults.map((f) => `  ${f}`)];
  const part = async (title: string, read: () => Promise<string[]>) => {
    lines.push(`${title}:`);
    try {
      lines.push(...(await read()).map((l) => `  ${l}`));
    } catch (e) {
      lines.push(`  (unreadable: ${e instanceof Error ? e.message : String(e)})`);
    }
  };
  for (const s of services.filter((x) => x.kind === 'rollout')) {
    await part(`${s.name} (${isRunning(s.child) ? 'running' : 'down'}) GET /rollouts/${current}`, async () => {
      const r = await http<Summary>('GET', `${s.base}/rollouts/${current}?nodes=true`, undefined, 5000);
      return [`status ${r.body.status}, phases ${JSON.stringify(r.body.phases)}`, `nodes ${JSON.stringify(r.body.nodePhases)}`];
    });
  }
  await part(`events of ${current}`, async () => (await sql.query<{ stream_position: string; event_type: string; created_at: Date; data: string }>(`SELECT stream_position, event_type, created_at, left(data::text, 240) AS data FROM events WHERE stream_id = $1 ORDER BY stream_position`, [`rollout-${current}`])).rows.map((e) => `${e.stream_position} ${e.created_at.toISOString()} ${e.event_type} ${e.data}`));
  await part('leases', async () => (await sql.query<{ rollout_id: string; owner: string; expires_at: Date }>(`SELECT rollout_id, owner, expires_at FROM rollout_leases ORDER BY rollout_id`)).rows.map((l) => `${l.rollout_id} ${l.owner} until ${l.expires_at.toISOString()}`));
  const text = lines.join('\n');
  appendFileSync(join(logDir, 'postmortem.txt'), `${text}\n`);
  return text;
}

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-chaos-'));
  [pgServer, cluster, hook] = await Promise.all([startPostgresServer({ name: 'chaos-pg' }), startNatsCluster(3), startWebhookReceiver(10)]);
  databaseUrl = (await pgServer.createDatabase('chaos')).url;
  sql = new pg.Pool({ connectionString: databaseUrl, max: 4 });
  sql.on('error', () => undefined); // idle connections die with each Postgres kill
  nc = await connect({ servers: cluster.urls, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  [probePort, edgePort] = await Promise.all([freePort(), freePort()]);
  const common = { DATABASE_URL: databaseUrl, NATS_URL: cluster.url, NATS_STREAM_REPLICAS: '3', LOG_LEVEL };

  for (const x of ['a', 'b']) await service(`notifier-${x}`, 'notifier', 'services/notifier', (port) => ({ ...common, NOTIFIER_HTTP_PORT: String(port), NOTIFIER_HTTP_TIMEOUT_MS: '2000', NOTIFIER_BACKOFF_BASE_MS: '100', NOTIFIER_BACKOFF_MAX_MS: '1000', NOTIFIER_MAX_ATTEMPTS: '50', NOTIFIER_POLL_INTERVAL_MS: '100' }), [], '/health/live');
  for (const x of ['a', 'b']) await service(`registry-${x}`, 'registry', 'services/registry', (port) => ({ ...common, REGISTRY_HTTP_PORT: String(port), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_STALE_AFTER_MS: '600000', REGISTRY_TRUST_ROOTS: signer.trustRoots }));
  for (const x of ['a', 'b']) await service(`rollout-${x}`, 'rollout', 'services/rollout', (port) => ({ ...common, ROLLOUT_HTTP_PORT: String(port), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: `chaos-${x}`, ROLLOUT_LEASE_MS: '3000', ROLLOUT_REGISTRY_TIMEOUT_MS: '3000' }));
  for (const s of services.filter((x) => x.kind === 'notifier')) {
    watch(s);
    await s.ready();
  }
  // The subscription to every event comes before anything writes one.
  await call('notifier', 'POST', '/subscriptions', { name: 'everything', channel: { type: 'webhook', url: hook.url }, filter: { eventTypes: ['*'] } });
  for (const s of services.filter((x) => x.kind !== 'notifier')) {
    watch(s);
    await s.ready();
  }

  const fleetHealth = await freePort();
  const fleet: Service = { name: 'fleet', kind: 'agent', base: '', healthPath: '', start: () => startService('fleet', 'services/node-agent', ['--simulate', String(SIMULATED), '--class', 'web', '--node-prefix', 's', '--heartbeat-ms', '1000'], { NATS_URL: cluster.url, AGENT_HEALTH_PORT: String(fleetHealth), LOG_LEVEL }, logDir), ready: async () => undefined };
  watch(fleet);
  const agent = (nodeId: string, classId: string): Service => {
    const dir = join(logDir, nodeId);
    mkdirSync(dir, { recursive: true });
    return {
      name: `agent-${nodeId}`,
      kind: 'agent',
      base: '',
      healthPath: '',
      start: () => startService(`agent-${nodeId}`, 'services/node-agent', [], { NATS_URL: cluster.url, NODE_ID: nodeId, NODE_CLASS: classId, AGENT_STATE_DIR: join(dir, 'state'), AGENT_TRUST_ROOTS: signer.trustRoots, AGENT_HEARTBEAT_MS: '1000', AGENT_MIN_FREE_DISK_MB: '1', LOG_LEVEL }, logDir),
      ready: () => waitFor(`${nodeId} saying hello`, async () => (await http<{ status: string }>('GET', `${await baseOf('registry')}/nodes/${nodeId}`).catch(() => null))?.body?.status === 'active', { timeoutMs: 60_000, intervalMs: 200 }).then(() => undefined),
    };
  };
  const probed = agent('probe-1', 'web');
  edgeAgent = agent('edge-1', 'edge');
  watch(probed);
  watch(edgeAgent);
  await waitFor(`${SIMULATED + 2} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes`)).rows[0].n) >= SIMULATED + 2, { timeoutMs: 90_000, intervalMs: 200 });
  for (const v of VERSIONS) {
    await call('registry', 'POST', '/packages', servicePackage(signer, 'chaos-api', v, probePort));
    await call('registry', 'POST', '/packages', servicePackage(signer, 'edge-api', v, edgePort));
  }
}, 300_000);

afterAll(async () => {
  over.abort('the run is over');
  for (const c of started) await kill9(c);
  await nc?.close();
  await sql?.end();
  await hook?.close();
  await cluster?.stop();
  await pgServer?.stop();
}, 120_000);

describe('chaos: kill -9 and restart of services, an agent, a NATS server and Postgres during rollouts', () => {
  it('completes every rollout, leaves every node on the last version, relays and notifies every event once, and fails no request to the real module', async () => {
    console.log(`chaos seed ${SEED} (replay with CHAOS_SEED=${SEED}); logs in ${logDir}`);
    const random = prng(SEED);
    // The first version is installed before the chaos: the probe needs a module to ask.
    await createRollout('chaos-1', VERSIONS[0]!);
    await waitFor('chaos-1 completed', async () => (await summary('chaos-1')).body.status === 'completed', { timeoutMs: 180_000, intervalMs: 250 });
    const traffic = probe(probePort);
    await waitFor('the probe answered', () => traffic.stats.ok > 20, { timeoutMs: 30_000 });

    // Every kind first (in a seeded order), then drawn at random.
    const order: Kind[] = [...KINDS];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let drawn = 0;
    const next = (): Kind => order[drawn++] ?? KINDS[Math.floor(random() * KINDS.length)]!;
    const rollouts = VERSIONS.slice(1).map((v, i) => ({ id: `chaos-${i + 2}`, version: v }));
    for (const r of rollouts) {
      try {
        await createRollout(r.id, r.version);
        let done = false;
        // Stops polling once the run is over, whatever its outcome (a failed run must not leave it polling).
        const completed = waitFor(`${r.id} completed`, async () => (await summary(r.id)).body.status === 'completed', { timeoutMs: 300_000, intervalMs: 250, signal: over.signal }).then(() => (done = true));
        completed.catch(() => undefined); // awaited below, unless a fault fails first
        // Faults one at a time while the rollout runs; the last rollout also waits for every kind to have been hit.
        for (let k = 0; k < MAX_FAULTS && (!done || (r === rollouts.at(-1) && drawn < KINDS.length)); k++) {
          await Promise.race([fault(next(), random, r.id), deaths]);
          await new Promise((res) => setTimeout(res, 200 + Math.round(random() * 1500))); // time between faults, from the seed
        }
        await Promise.race([completed, deaths]);
      } catch (e) {
        console.log(await postMortem(r.id, e));
        throw e;
      }
    }
    await traffic.stop();
    console.log(`faults (${faults.length}):\n${faults.map((f, i) => `  ${i + 1}. ${f}`).join('\n')}`);
    console.log(`probe: ${traffic.stats.ok} requests answered, ${traffic.stats.failed} failed; bodies ${JSON.stringify(Object.fromEntries(traffic.stats.bodies))}`);

    // 1. Every rollout completed on every node; every kind of fault happened.
    const all = ['chaos-1', ...rollouts.map((r) => r.id)];
    for (const id of all) expect({ id, status: (await summary(id)).body.status, phases: (await summary(id)).body.phases }).toEqual({ id, status: 'completed', phases: { completed: SIMULATED + 2 } });
    expect(new Set(faults.map((f) => f.split(/[- ]/)[0]))).toEqual(new Set(KINDS));

    // 2. Every node on the last version: by the registry's record of each node, and by the real agents' own state.
    const last = VERSIONS.at(-1)!;
    const nodes = (await call<{ nodes: { nodeId: string; classId: string }[] }>('registry', 'GET', '/nodes?limit=100')).body.nodes;
    expect(nodes).toHaveLength(SIMULATED + 2);
    await waitFor('every node inventory on the last version', async () => {
      for (const n of nodes) {
        const inv = (await call<{ inventory: { active: { name: string; version: string }[] } | null }>('registry', 'GET', `/nodes/${n.nodeId}/inventory`)).body.inventory;
        const want = n.classId === 'edge' ? `edge-api@${last}` : `chaos-api@${last}`;
        if (inv?.active.map((p) => `${p.name}@${p.version}`).join() !== want) return false;
      }
      return true;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    const stateOf = (nodeId: string) => (JSON.parse(readFileSync(join(logDir, nodeId, 'state', 'state.json'), 'utf8')) as { state: { active: { manifest: { name: string; version: string } }[] } }).state.active.map((p) => `${p.manifest.name}@${p.manifest.version}`);
    expect(stateOf('probe-1')).toEqual([`chaos-api@${last}`]);
    expect(stateOf('edge-1')).toEqual([`edge-api@${last}`]);
    expect(await traffic.fetch()).toBe(`chaos-api@${last}`);

    // 3. Postgres events == JetStream events: the same ids, each once.
    const stored = await storedEvents(sql);
    const storedIds = stored.map((e) => e.event_id);
    expect(new Set(storedIds).size).toBe(storedIds.length);
    await waitFor('the relay at the head of the events table', () => relayCaughtUp(sql, stored.at(-1)!.global_position), { timeoutMs: 60_000, intervalMs: 200 });
    const jsm = await jetstreamManager(nc);
    const onStream = await waitFor('CHANGEOVER_EVENTS readable', () => jetStreamEventIds(jsm), { timeoutMs: 30_000, intervalMs: 500 });
    const storedLater = new Set((await storedEvents(sql)).map((e) => e.event_id));
    expect(new Set(onStream).size).toBe(onStream.length);
    expect(storedIds.filter((id) => !onStream.includes(id))).toEqual([]);
    expect(onStream.filter((id) => !storedLater.has(id))).toEqual([]);

    // 4. Webhooks: every stored event under its own id (none under an unknown id), one completion per rollout.
    await waitFor('every event notified', () => storedIds.every((id) => hook.ids().has(id)), { timeoutMs: 180_000, intervalMs: 500 });
    const allStored = new Set((await storedEvents(sql)).map((e) => e.event_id));
    expect([...hook.ids()].filter((id) => !allStored.has(id))).toEqual([]);
    for (const id of all) expect({ id, completions: new Set(hook.received.filter((h) => h.type === 'io.changeover.rollout.completed' && h.rolloutId === id).map((h) => h.id)).size }).toEqual({ id, completions: 1 });

    // 5. Zero failed requests to the real module, and no process died unless the schedule killed it.
    expect(traffic.stats.errors).toEqual([]);
    expect(traffic.stats.failed).toBe(0);
    expect(traffic.stats.bodies.get(`chaos-api@${last}`)).toBeGreaterThan(0);
    expect(unexpectedExits).toEqual([]);
    console.log(`chaos seed ${SEED}: ${all.length} rollouts completed on ${SIMULATED + 2} nodes through ${faults.length} faults; ${storedIds.length} events relayed once each; ${hook.received.length} webhook requests for ${hook.ids().size} event ids; ${traffic.stats.ok} probe requests, none failed`);
  });
});

