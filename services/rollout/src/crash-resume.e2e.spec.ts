import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import type { CloudEvent, ProgressReport, RolloutSummary } from '@changeover/contracts';
import { counterValue, healthy, http, isRunning, kill9, prng, startService, type Child } from './testing/processes.js';

// DESIGN §5 end: killing the rollout service at any moment and starting it again continues every
// rollout where it was, without sending a node the same changeover twice. The built services run
// as child processes (`npm test` builds first); the rollout service is SIGKILLed at random points
// drawn from a seeded PRNG (CRASH_RESUME_SEED replays a run) and restarted each time.

jest.setTimeout(240_000);

const SEED = Number(process.env['CRASH_RESUME_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const MAX_KILLS_PER_ROLLOUT = 12;
/** Largest step, in events, between two kills of one rollout. */
const STEP = 3;
/** Kills that must land while a rollout is unfinished. */
const MIN_INFLIGHT_KILLS = 10;
/** Rollouts added beyond PLANS when too few kills landed mid-rollout. */
const MAX_EXTRA_ROLLOUTS = 4;
const PER_CLASS = 20;
const FLEETS = [
  { classId: 'web', prefix: 'w', nodes: PER_CLASS },
  { classId: 'db', prefix: 'd', nodes: PER_CLASS },
] as const;
/** Nodes that register and then go away: a rollout naming them waits on its vote timer. */
const GONE = { classId: 'gone', prefix: 'g', nodes: 2 };

interface Plan {
  id: string;
  pkg: { name: string; version: string };
  classes: string[];
  policy: Record<string, unknown>;
  /** Nodes expected to change over (the rest are excluded). */
  live: number;
  /** Length of its stream when completed (spreads the kill points over it). */
  events: number;
}
const steady = { voteTimeoutMs: 60_000, changeoverTimeoutMs: 120_000, waves: { canary: 1, size: '25%' } };
const PLANS: Plan[] = [
  { id: 'cr-1', pkg: { name: 'app', version: '1.0.0' }, classes: ['web', 'db'], policy: steady, live: 2 * PER_CLASS, events: 90 },
  { id: 'cr-2', pkg: { name: 'app', version: '2.0.0' }, classes: ['web', 'db'], policy: steady, live: 2 * PER_CLASS, events: 90 },
  { id: 'cr-3', pkg: { name: 'app', version: '3.0.0' }, classes: ['web', 'db'], policy: steady, live: 2 * PER_CLASS, events: 90 },
  // The two gone nodes never vote: the vote deadline (a timer rebuilt from events on each restart) excludes them.
  { id: 'cr-4', pkg: { name: 'tool', version: '1.0.0' }, classes: ['web', 'gone'], policy: { ...steady, voteTimeoutMs: 4000, unreachable: 'exclude' }, live: PER_CLASS, events: 51 },
];

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let sql: pg.Pool;
let logDir: string;
let registryBase: string;
let rolloutPort: number;
let rolloutBase: string;
let rollout: Child | undefined;
const children: Child[] = [];
const fleetMetrics = new Map<string, string>();
/** Every terminal `completed` progress report the agents published: rollout → node → attempts seen. */
const completedReports = new Map<string, Map<string, number[]>>();

function startRolloutService(): Child {
  rollout = startService('rollout', 'services/rollout', [], {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    ROLLOUT_HTTP_PORT: String(rolloutPort),
    ROLLOUT_HTTP_HOST: '127.0.0.1',
    // The same id on every start: the restarted process takes its own leases back at once.
    ROLLOUT_INSTANCE_ID: 'crash-resume',
    ROLLOUT_RELAY: 'true',
    LOG_LEVEL: process.env['CRASH_RESUME_LOG'] ?? 'warn',
  }, logDir);
  return rollout;
}

async function publish(name: string, version: string): Promise<void> {
  const blob = Buffer.from(`${name} ${version}\n`);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const manifest = { name, version, description: '', modules: [{ name, version, processorType: 'any', size: blob.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
  const r = await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: blob.toString('base64') } });
  expect([200, 201]).toContain(r.status);
}

/** A client that survives the service dying under it: retries only if the rollout does not exist yet. */
async function createRollout(p: Plan): Promise<void> {
  const body = { rolloutId: p.id, update: { description: p.id, targets: [{ classes: p.classes, packages: [p.pkg] }] }, policy: p.policy };
  for (let tries = 0; tries < 50; tries++) {
    const r = await http('POST', `${rolloutBase}/rollouts`, body).catch(() => null);
    if (r?.status === 201) return;
    if (r && r.status < 500) throw new Error(`create ${p.id} refused: ${r.status} ${JSON.stringify(r.body)}`);
    await healthy(rolloutBase, 'the rollout service back');
    const seen = await http('GET', `${rolloutBase}/rollouts/${p.id}`).catch(() => null);
    if (seen?.status === 200) return;
  }
  throw new Error(`could not create ${p.id}`);
}

const show = async (id: string) => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${id}?nodes=true`)).body;

beforeAll(async () => {
  logDir = mkdtempSync(join(tmpdir(), 'changeover-crash-resume-'));
  [db, nats] = await Promise.all([createTestDatabase('rollout_crash'), startNats()]);
  const [registryPort, port, ...healthPorts] = await Promise.all([freePort(), freePort(), ...[...FLEETS, GONE].map(() => freePort())]);
  rolloutPort = port;
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  sql = new pg.Pool({ connectionString: db.url, max: 4 });
  nc = await connect({ servers: nats.url });
  // The agents' own terminal reports, heard directly (a plain subscription, as any observer would).
  nc.subscribe('changeover.agent.*.progress', {
    callback: (_e, msg) => {
      const r = msg.json<ProgressReport>();
      if (r.phase !== 'completed') return;
      const byNode = completedReports.get(r.rolloutId) ?? new Map<string, number[]>();
      completedReports.set(r.rolloutId, byNode);
      byNode.set(r.nodeId, [...(byNode.get(r.nodeId) ?? []), r.attempt]);
    },
  });
  await nc.flush();

  // The relay runs only in the rollout service, so the kills hit it too.
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '600000', LOG_LEVEL: 'warn' }, logDir));
  await healthy(registryBase, 'the registry');
  const fleets = [...FLEETS, GONE].map((f, i) => {
    const child = startService(`fleet-${f.classId}`, 'services/node-agent', ['--simulate', String(f.nodes), '--class', f.classId, '--node-prefix', f.prefix, '--heartbeat-ms', '1000'], { NATS_URL: nats.url, AGENT_HEALTH_PORT: String(healthPorts[i]), LOG_LEVEL: 'warn' }, logDir);
    children.push(child);
    fleetMetrics.set(f.classId, `http://127.0.0.1:${healthPorts[i]}/metrics`);
    return { ...f, child };
  });
  const total = fleets.reduce((n, f) => n + f.nodes, 0);
  await waitFor(`${total} nodes registered`, async () => Number((await sql.query(`SELECT count(*) AS n FROM registry_nodes`)).rows[0].n) >= total, { timeoutMs: 60_000, intervalMs: 200 });
  await kill9(fleets.find((f) => f.classId === GONE.classId)!.child);
  for (const p of PLANS) await publish(p.pkg.name, p.pkg.version);
}, 120_000);

afterAll(async () => {
  await kill9(rollout);
  for (const c of children) await kill9(c);
  await nc?.close();
  await sql?.end();
  await nats?.stop();
  await db?.drop();
}, 60_000);

describe('rollout service killed with SIGKILL at random points', () => {
  it('finishes every rollout, changes every node over once per rollout, and keeps each event stream and CHANGEOVER_EVENTS exact', async () => {
    console.log(`crash-resume seed ${SEED} (replay with CRASH_RESUME_SEED=${SEED}); logs in ${logDir}`);
    const random = prng(SEED);
    const creates: Promise<void>[] = [];
    const kills: { at: number; text: string; open: number }[] = [];
    startRolloutService();
    await healthy(rolloutBase, 'the rollout service');

    const streams = async () => {
      const r = await sql.query<{ id: string; n: string; done: boolean }>(`SELECT substr(stream_id, 9) AS id, count(*) AS n, bool_or(event_type = 'rollout.completed') AS done FROM events WHERE stream_id LIKE 'rollout-%' GROUP BY stream_id ORDER BY stream_id`);
      return new Map(r.rows.map((x) => [x.id, { n: Number(x.n), done: x.done }]));
    };
    // Rollouts can finish between two kills; more are added (bounded) until enough kills landed mid-rollout.
    const plans: Plan[] = [...PLANS];
    const extra = (n: number): Plan => ({ id: `cr-${n}`, pkg: { name: 'app', version: `${n}.0.0` }, classes: ['web', 'db'], policy: steady, live: 2 * PER_CLASS, events: 90 });
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i]!;
      // Created while the service keeps dying; the previous rollout may still be running beside it.
      creates.push(createRollout(plan));
      // Kill it again and again, a few events further each time, until it completes (bounded).
      for (let k = 0; k < MAX_KILLS_PER_ROLLOUT; k++) {
        const duringStartup = k > 0 && random() < 0.25;
        let point: string;
        if (duringStartup) {
          // Start-up: migrations, lease takeover, rebuilding state, re-sending, re-arming timers.
          const delayMs = Math.round(random() * 800);
          await new Promise((r) => setTimeout(r, delayMs)); // the fault injection itself
          point = `start-up +${delayMs} ms`;
        } else {
          // Running: at a random position a little further along the rollout's stream, plus a random delay (mid-append, mid-send).
          await healthy(rolloutBase, 'the rollout service');
          const from = (await streams()).get(plan.id)?.n ?? 0;
          if ((await streams()).get(plan.id)?.done) break;
          const target = from + 1 + Math.floor(random() * Math.min(STEP, Math.max(1, plan.events - from - 1)));
          await waitFor(`${plan.id} at event ${target}`, async () => {
            const s = (await streams()).get(plan.id);
            return !!s && (s.n >= target || s.done);
          }, { timeoutMs: 60_000, intervalMs: 5 });
          const delayMs = Math.round(random() * 60);
          await new Promise((r) => setTimeout(r, delayMs)); // the fault injection itself
          point = `event ≥${target} +${delayMs} ms`;
        }
        const seen = await streams();
        await kill9(rollout);
        const open = plans.slice(0, i + 1).filter((p) => !seen.get(p.id)?.done).length;
        kills.push({ at: Date.now(), open, text: `${point}, ${open} unfinished [${[...seen].map(([id, x]) => `${id}:${x.n}${x.done ? '✓' : ''}`).join(' ')}]` });
        startRolloutService();
      }
      const landed = kills.filter((x) => x.open > 0).length;
      if (i === plans.length - 1 && landed < MIN_INFLIGHT_KILLS && plans.length < PLANS.length + MAX_EXTRA_ROLLOUTS) {
        const next = extra(plans.length + 1);
        await publish(next.pkg.name, next.pkg.version);
        plans.push(next);
      }
    }
    console.log(`kills (events per rollout stream at each, ✓ completed):\n${kills.map((x, i) => `  ${i + 1}. ${x.text}`).join('\n')}`);
    const inflightKills = kills.filter((x) => x.open > 0).length;
    expect(inflightKills).toBeGreaterThanOrEqual(MIN_INFLIGHT_KILLS);
    await healthy(rolloutBase, 'the rollout service after the last kill');
    await Promise.all(creates);

    // 1. Every rollout reaches `completed`.
    for (const p of plans) {
      await waitFor(`${p.id} completed`, async () => (await show(p.id).catch(() => null))?.status === 'completed', { timeoutMs: 90_000, intervalMs: 250 });
      const s = await show(p.id);
      expect(s.phases).toEqual(p.live === PER_CLASS ? { completed: PER_CLASS, excluded: GONE.nodes } : { completed: p.live });
    }
    // The `rollouts` projection (rollout list) agrees with the streams: no update lost to a kill.
    const listed = async () => Object.fromEntries((await http<{ rollouts: { rolloutId: string; status: string }[] }>('GET', `${rolloutBase}/rollouts`)).body.rollouts.map((r) => [r.rolloutId, r.status]));
    await waitFor('the rollouts projection to settle', async () => Object.values(await listed()).filter((st) => st === 'completed').length === plans.length, { timeoutMs: 10_000, intervalMs: 100 }).catch(() => undefined);
    expect(await listed()).toEqual(Object.fromEntries(plans.map((p) => [p.id, 'completed'])));

    // 2. Each node changed over exactly once per rollout, by the agents' own account.
    for (const p of plans) {
      const byNode = completedReports.get(p.id) ?? new Map<string, number[]>();
      expect(byNode.size).toBe(p.live);
      for (const attempts of byNode.values()) expect(new Set(attempts)).toEqual(new Set([0]));
    }
    let repeats = 0;
    for (const f of FLEETS) {
      const text = await (await fetch(fleetMetrics.get(f.classId)!)).text();
      const expected = plans.filter((p) => p.classes.includes(f.classId)).length * f.nodes;
      // The agents count changeovers they carried out; repeats of a commit are answered from their record instead.
      expect({ fleet: f.classId, changeovers: counterValue(text, 'agent_changeovers_total'), completed: counterValue(text, 'agent_changeovers_total', { kind: 'commit', phase: 'completed' }) }).toEqual({ fleet: f.classId, changeovers: expected, completed: expected });
      repeats += counterValue(text, 'agent_repeats_answered_total');
    }

    // 3. Each rollout's stream is 1..n with unique event ids; the domain recorded each node's completion once.
    const rows = (await sql.query<{ stream_id: string; stream_position: number; event_id: string; event_type: string; data: { nodes?: (string | { nodeId: string })[] } }>(`SELECT stream_id, stream_position, event_id, event_type, data FROM events WHERE stream_id LIKE 'rollout-%' ORDER BY stream_id, stream_position`)).rows;
    for (const p of plans) {
      const stream = rows.filter((r) => r.stream_id === `rollout-${p.id}`);
      expect(stream.map((r) => r.stream_position)).toEqual(stream.map((_, i) => i + 1));
      expect(new Set(stream.map((r) => r.event_id)).size).toBe(stream.length);
      const count = (type: string) => stream.filter((r) => r.event_type === type).length;
      expect({ created: count('rollout.created'), completed: count('rollout.completed'), failed: count('rollout.node-failed') }).toEqual({ created: 1, completed: 1, failed: 0 });
      const completedNodes = stream.filter((r) => r.event_type === 'rollout.nodes-completed').flatMap((r) => (r.data.nodes ?? []).map((n) => (typeof n === 'string' ? n : n.nodeId)));
      expect(new Set(completedNodes).size).toBe(completedNodes.length);
      expect(completedNodes.length).toBe(p.live);
      const committed = stream.filter((r) => r.event_type === 'rollout.wave-started').flatMap((r) => (r.data.nodes ?? []) as string[]);
      expect(new Set(committed).size).toBe(committed.length);
      expect(committed.length).toBe(p.live);
    }

    // 4. The vote deadline outlived a kill: the service died between proposal and deadline, and the deadline still excluded the silent nodes.
    const timed = (await sql.query<{ event_type: string; data: { at: string; nodeIds?: string[]; treatedAs?: string } }>(`SELECT event_type, data FROM events WHERE stream_id = 'rollout-cr-4' AND event_type IN ('rollout.proposed', 'rollout.node-unreachable') ORDER BY stream_position`)).rows;
    const proposedAt = Date.parse(timed[0]!.data.at);
    const deadline = proposedAt + 4000;
    expect(kills.some((x) => x.at > proposedAt && x.at < deadline)).toBe(true);
    expect({ type: timed[1]?.event_type, nodes: [...(timed[1]?.data.nodeIds ?? [])].sort(), treatedAs: timed[1]?.data.treatedAs }).toEqual({ type: 'rollout.node-unreachable', nodes: [`${GONE.prefix}-1`, `${GONE.prefix}-2`], treatedAs: 'exclude' });
    expect(Date.parse(timed[1]!.data.at)).toBeGreaterThanOrEqual(deadline);

    // 5. CHANGEOVER_EVENTS holds every stored event exactly once, though the relay was killed with the service.
    const stored = (await sql.query<{ global_position: string; event_id: string; stream_id: string; stream_position: number; event_type: string }>(`SELECT global_position, event_id, stream_id, stream_position, event_type FROM events ORDER BY global_position`)).rows;
    const head = Number(stored.at(-1)!.global_position);
    await waitFor('the relay checkpoint at the head of the events table', async () => Number((await sql.query(`SELECT position FROM subscription_checkpoints WHERE subscription_id = 'outbox-relay'`)).rows[0]?.position ?? 0) >= head, { timeoutMs: 30_000, intervalMs: 100 });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info('CHANGEOVER_EVENTS');
    const ids: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq += 100) {
      const batch = await Promise.all(Array.from({ length: Math.min(100, info.state.last_seq - seq + 1) }, (_, i) => jsm.streams.getMessage('CHANGEOVER_EVENTS', { seq: seq + i })));
      for (const m of batch) if (m) ids.push(m.json<CloudEvent>().id);
    }
    const published = new Set(ids);
    // Named, so a failure says which events the relay passed without publishing.
    expect(stored.filter((r) => !published.has(r.event_id)).map((r) => `#${r.global_position} ${r.stream_id}@${r.stream_position} ${r.event_type}`)).toEqual([]);
    expect(published.size).toBe(ids.length);
    expect(ids.length).toBe(stored.length);

    console.log(`proved over ${kills.length} kills (${inflightKills} mid-rollout): ${plans.length} rollouts completed, ${plans.reduce((n, p) => n + p.live, 0)} node changeovers each carried out once (${repeats} repeated commands answered from the agents' records), ${rows.length} rollout events gap-free, ${ids.length} events on CHANGEOVER_EVENTS each once`);
    expect(isRunning(rollout)).toBe(true);
  });
});
