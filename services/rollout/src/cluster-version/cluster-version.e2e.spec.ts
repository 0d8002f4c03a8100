import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { createTestDatabase, freePort, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { applyMembership, decode, emptyGroupView, MembershipMessage, STREAMS, type AdjustClusterVersionReply, type ClusterVersionStatus, type ErrorBody, type GroupView } from '@changeover/contracts';
import { counterValue, healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';

// DESIGN §6 with real processes: three (then five) node agents, the registry, the rollout service,
// NATS with JetStream and Postgres. Group members are small processes that join through their
// agent's local API and answer group requests only while in the group.

jest.setTimeout(300_000);

const AGENT_SDK = join(REPO_ROOT, 'libs/agent-sdk/dist/index.js');
const MEMBER = join(REPO_ROOT, 'services/rollout/src/cluster-version/fixtures/group-member.cjs');

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let jsm: JetStreamManager;
let sql: pg.Pool;
let dir: string;
let base: string;
let rolloutPort: number;
let rollout: Child | undefined;
const children: Child[] = [];
const agents = new Map<string, Child>();
const members = new Map<string, { proc: ChildProcess; port: number; nodeId: string; group: string }>();
let starts = 0;

const socketOf = (nodeId: string) => join(dir, nodeId, 'agent.sock');

async function startAgent(nodeId: string, agentVersion: string, range: string, appends: 'direct' | 'mediated' = 'direct'): Promise<Child> {
  const child = startService(`agent-${nodeId}-${++starts}`, 'services/node-agent', [], {
    NATS_URL: nats.url,
    NODE_ID: nodeId,
    NODE_CLASS: 'cv',
    AGENT_STATE_DIR: join(dir, nodeId),
    AGENT_VERSION: agentVersion,
    AGENT_CLUSTER_VERSIONS: range,
    // The members below are started by the test, not by the agent: each reads its credential file.
    AGENT_EXTERNAL_PROCESSES: 'proc-m1,proc-m2,proc-m3,proc-m4,proc-b1,proc-b2,proc-p5',
    AGENT_HEARTBEAT_MS: '300',
    AGENT_GROUP_APPENDS: appends,
    AGENT_MIN_FREE_DISK_MB: '1',
    LOG_LEVEL: 'warn',
  }, dir);
  agents.set(nodeId, child);
  children.push(child);
  await waitFor(`agent ${nodeId} ready`, () => {
    if (child.proc.exitCode !== null) throw new Error(`agent ${nodeId} exited: ${readFileSync(child.log, 'utf8').slice(-2000)}`);
    return existsSync(child.log) && readFileSync(child.log, 'utf8').includes('"ready":true');
  }, { timeoutMs: 30_000 });
  await waitFor(`node ${nodeId} registered with agent ${agentVersion}`, async () => (await status()).nodes.some((n) => n.nodeId === nodeId && n.status === 'active' && n.agentVersion === agentVersion), { timeoutMs: 30_000, intervalMs: 100 });
  return child;
}

/** SIGTERM: the agent's members leave their groups, then it stops. */
async function stopAgent(nodeId: string): Promise<void> {
  const c = agents.get(nodeId)!;
  await new Promise<void>((r) => {
    c.proc.once('exit', () => r());
    c.proc.kill('SIGTERM');
  });
}

const memberOutput = new Map<string, () => string>();

async function startMember(memberId: string, nodeId: string, group: string, wait = true): Promise<void> {
  const port = await freePort();
  const proc = spawn(process.execPath, [MEMBER], { env: { PATH: process.env['PATH'] ?? '', AGENT_SDK, GROUP: group, MEMBER_ID: memberId, PORT: String(port), CHANGEOVER_AGENT_SOCKET: socketOf(nodeId), CHANGEOVER_PROCESS_ID: `proc-${memberId}`, CHANGEOVER_PROCESS_TOKEN_FILE: join(dir, nodeId, 'credentials', `proc-${memberId}.token`) }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  members.set(memberId, { proc, port, nodeId, group });
  memberOutput.set(memberId, () => out);
  if (wait) await waitFor(`member ${memberId} in group ${group}`, () => out.includes('"ready":true'), { timeoutMs: 30_000 });
}

const memberGet = async (memberId: string, path = '/') => {
  const res = await fetch(`http://127.0.0.1:${members.get(memberId)!.port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function status(version?: number): Promise<ClusterVersionStatus> {
  const r = await http<ClusterVersionStatus>('GET', `${base}/cluster-version${version ? `?version=${version}` : ''}`);
  if (r.status !== 200) throw new Error(`status ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

const adjust = (version: number, dryRun = false) => http<AdjustClusterVersionReply | ErrorBody>('POST', `${base}/cluster-version/adjust`, { version, dryRun });

/** Every message of the groups stream in order, read straight from JetStream. */
async function groupLog(): Promise<{ seq: number; msg: MembershipMessage }[]> {
  const info = await jsm.streams.info(STREAMS.groups);
  const out: { seq: number; msg: MembershipMessage }[] = [];
  for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(STREAMS.groups, { seq });
    if (m) out.push({ seq, msg: decode(MembershipMessage, m.data) });
  }
  return out;
}

const eventsOfType = async (type: string) => (await sql.query<{ data: Record<string, unknown> }>('SELECT data FROM events WHERE event_type = $1 ORDER BY global_position', [type])).rows.map((r) => r.data);

function startRolloutService(extra: Record<string, string> = {}): Child {
  rollout = startService(`rollout-${++starts}`, 'services/rollout', [], {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    ROLLOUT_HTTP_PORT: String(rolloutPort),
    ROLLOUT_HTTP_HOST: '127.0.0.1',
    ROLLOUT_INSTANCE_ID: 'cluster-version',
    ROLLOUT_VALIDATE_TIMEOUT_MS: '1000',
    ROLLOUT_RELAY: 'true',
    LOG_LEVEL: 'warn',
    ...extra,
  }, dir);
  return rollout;
}

/** The built `changeover` command line, run as its own process. */
function cli(...argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(REPO_ROOT, 'cli/dist/main.js'), ...argv], { env: { PATH: process.env['PATH'] ?? '', CHANGEOVER_ROLLOUT_URL: base, CHANGEOVER_TOKEN: TEST_ADMIN_TOKEN }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.once('exit', (code) => resolve({ code, out, err }));
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-cluster-version-'));
  [db, nats] = await Promise.all([createTestDatabase('cluster_version'), startNats()]);
  nc = await connect({ servers: nats.url });
  jsm = await jetstreamManager(nc);
  sql = new pg.Pool({ connectionString: db.url, max: 2 });
  const registryPort = await freePort();
  rolloutPort = await freePort();
  base = `http://127.0.0.1:${rolloutPort}`;
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '5000', REGISTRY_SWEEP_INTERVAL_MS: '200', LOG_LEVEL: 'warn' }, dir));
  await healthy(`http://127.0.0.1:${registryPort}`, 'the registry');
  startRolloutService();
  await healthy(base, 'the rollout service');
  for (const n of ['n1', 'n2', 'n3']) await startAgent(n, '1.0.0', '1-1');
  for (const [m, n] of [['m1', 'n1'], ['m2', 'n2'], ['m3', 'n3']] as const) await startMember(m, n, 'orders');
  for (const [m, n] of [['b1', 'n1'], ['b2', 'n2']] as const) await startMember(m, n, 'billing');
}, 180_000);

afterAll(async () => {
  for (const m of members.values()) m.proc.kill('SIGKILL');
  for (const a of agents.values()) a.proc.kill('SIGCONT');
  await kill9(rollout);
  for (const c of children) await kill9(c);
  await nc?.close();
  await sql?.end();
  await nats?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('cluster infrastructure version with real agents', () => {
  it('status shows each node with its agent version and range and each group at version 1 with its members; nothing to adjust yet', async () => {
    const s = await status();
    expect(s.activeVersion).toBe(1);
    expect(s.nodes.map((n) => [n.nodeId, n.agentVersion, n.clusterVersions])).toEqual([['n1', '1.0.0', { min: 1, max: 1 }], ['n2', '1.0.0', { min: 1, max: 1 }], ['n3', '1.0.0', { min: 1, max: 1 }]]);
    expect(s.groups.map((g) => [g.groupId, g.activeVersion, g.members.map((m) => `${m.memberId}@${m.nodeId}`)])).toEqual([
      ['billing', 1, ['b1@n1', 'b2@n2']],
      ['orders', 1, ['m1@n1', 'm2@n2', 'm3@n3']],
    ]);
    expect(s).toMatchObject({ candidateVersion: null, ready: false, adjustment: null });
    const shown = await cli('cluster-version', 'status');
    expect(shown.code).toBe(0);
    expect(shown.out).toContain('orders               1        m1@n1, m2@n2, m3@n3');
  });

  it('status is a viewer read; adjust needs the admin role (an operator gets FORBIDDEN, no token UNAUTHENTICATED)', async () => {
    const token = async (role: string) => (await http<{ token: string }>('POST', `${base}/tokens`, { name: `cv-${role}`, role })).body.token;
    const [viewer, operator] = [await token('viewer'), await token('operator')];
    const as = (t: string | null, method: string, path: string, body?: unknown) =>
      fetch(`${base}${path}`, { method, headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { code?: string } }));
    expect((await as(viewer, 'GET', '/cluster-version')).status).toBe(200);
    expect(await as(operator, 'POST', '/cluster-version/adjust', { version: 2, dryRun: true })).toMatchObject({ status: 403, body: { code: 'FORBIDDEN' } });
    expect(await as(null, 'POST', '/cluster-version/adjust', { version: 2 })).toMatchObject({ status: 401, body: { code: 'UNAUTHENTICATED' } });
    expect(await as(TEST_ADMIN_TOKEN, 'POST', '/cluster-version/adjust', { version: 'two' })).toMatchObject({ status: 400, body: { code: 'VALIDATION_FAILED' } });
  });

  it('a version-2 function (leader election) answers FEATURE_NOT_ACTIVE before the adjustment', async () => {
    const r = await memberGet('m1', '/leader');
    expect(r).toMatchObject({ status: 409, body: { code: 'FEATURE_NOT_ACTIVE' } });
    expect(String(r.body['message'])).toContain('needs cluster version 2');
  });

  it('adjusting to 2 before the agents are upgraded is refused NODE_INCAPABLE, naming every node and its range (REST and CLI)', async () => {
    const r = await adjust(2);
    expect(r.status).toBe(409);
    const body = r.body as ErrorBody;
    expect(body.code).toBe('NODE_INCAPABLE');
    expect((body.details!['blockers'] as { code: string; nodeId: string; range: unknown }[]).map((b) => [b.code, b.nodeId, b.range])).toEqual([
      ['NODE_INCAPABLE', 'n1', { min: 1, max: 1 }],
      ['NODE_INCAPABLE', 'n2', { min: 1, max: 1 }],
      ['NODE_INCAPABLE', 'n3', { min: 1, max: 1 }],
    ]);
    const c = await cli('cluster-version', 'adjust', '2');
    expect(c.code).toBe(3);
    expect(c.err).toContain('NODE_INCAPABLE');
    expect(c.err).toContain('node n2 (agent 1.0.0) runs cluster versions 1, not 2');
    expect((await eventsOfType('cluster-version.adjust-refused')).length).toBe(2);
  });

  it('rolling agent upgrade, one node at a time: members leave and rejoin, the group answers every request throughout', async () => {
    const stats = { ok: 0, failed: 0 };
    let running = true;
    // A group request goes to the members in turn; it fails only if no member answers.
    const loop = (async () => {
      while (running) {
        let answered = false;
        for (const m of ['m1', 'm2', 'm3']) {
          const r = await memberGet(m).catch(() => null);
          if (r?.status === 200) {
            answered = true;
            break;
          }
        }
        if (answered) stats.ok++;
        else stats.failed++;
      }
    })();
    await waitFor('group requests answered', () => stats.ok > 20);
    for (const [nodeId, memberId] of [['n1', 'm1'], ['n2', 'm2'], ['n3', 'm3']] as const) {
      await stopAgent(nodeId);
      expect((await memberGet(memberId)).status).toBe(503);
      const before = stats.ok;
      await waitFor(`group still answering while ${nodeId} is down`, () => stats.ok > before + 10);
      // n3 comes back as a node that may not write the logs: its member's JOIN goes through the rollout service.
      await startAgent(nodeId, '2.0.0', '1-4', nodeId === 'n3' ? 'mediated' : 'direct');
      await waitFor(`${memberId} back in the group`, async () => (await memberGet(memberId)).status === 200, { timeoutMs: 30_000 });
    }
    running = false;
    await loop;
    expect(stats.failed).toBe(0);
    expect(stats.ok).toBeGreaterThan(50);

    // The log: each node's member left and rejoined in order, and the group never had fewer than two members.
    const orders = (await groupLog()).filter((e) => e.msg.groupId === 'orders');
    let view: GroupView = emptyGroupView('orders');
    let fewest = Infinity;
    for (const e of orders) {
      view = applyMembership(view, e.seq, e.msg);
      if (e.seq > orders[2]!.seq) fewest = Math.min(fewest, view.members.length);
    }
    expect(fewest).toBe(2);
    const moves = orders.filter((e) => e.msg.reason !== 'ADJUST_VERSION').map((e) => `${e.msg.reason}:${'memberId' in e.msg ? e.msg.memberId : ''}`);
    expect(moves).toEqual(['JOIN:m1', 'JOIN:m2', 'JOIN:m3', 'LEAVE:m1', 'JOIN:m1', 'LEAVE:m2', 'JOIN:m2', 'LEAVE:m3', 'JOIN:m3']);
    // m3's JOIN after n3 came back went through the rollout service (mediated append).
    const metrics = await (await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` } })).text();
    expect(counterValue(metrics, 'changeover_group_mediated_appends_total', { outcome: 'appended' })).toBeGreaterThanOrEqual(1);
    const s = await status();
    expect(s.nodes.every((n) => n.agentVersion === '2.0.0')).toBe(true);
    expect(s).toMatchObject({ activeVersion: 1, candidateVersion: 4, ready: true, blockers: [] });
  });

  it('a mediated append names its own node only: a JOIN for another node is FORBIDDEN', async () => {
    const forged = { message: { reason: 'JOIN', groupId: 'orders', memberId: 'intruder', nodeId: 'n2', at: new Date().toISOString() }, expectedLastSequence: 0 };
    const reply = (await nc.request('changeover.agent.n3.group-append', JSON.stringify(forged), { timeout: 5000 })).json<{ ok: boolean; error?: { code: string } }>();
    expect(reply).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    const adjustForged = { message: { reason: 'ADJUST_VERSION', groupId: 'orders', version: 3, adjustmentId: 'mine', at: new Date().toISOString() }, expectedLastSequence: 0 };
    expect((await nc.request('changeover.agent.n3.group-append', JSON.stringify(adjustForged), { timeout: 5000 })).json()).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    expect((await status()).groups.find((g) => g.groupId === 'orders')!.members.map((m) => m.memberId)).toEqual(['m1', 'm2', 'm3']);
  });

  it('an agent advertising a lower range blocks with NODE_INCAPABLE naming it and its range', async () => {
    await startAgent('n4', '1.0.0', '1-1');
    const r = await adjust(2);
    expect(r.status).toBe(409);
    expect((r.body as ErrorBody).details!['blockers']).toEqual([expect.objectContaining({ code: 'NODE_INCAPABLE', nodeId: 'n4', range: { min: 1, max: 1 } })]);
    await stopAgent('n4');
    await startAgent('n4', '2.0.0', '1-4');
  });

  it('an agent stopped with SIGSTOP: first GROUP_PARTITIONED (naming the group and the member not reached), then NODE_NOT_ACTIVE once its heartbeats are missed', async () => {
    const n3 = agents.get('n3')!;
    n3.proc.kill('SIGSTOP');
    try {
      const r = await adjust(2);
      expect(r.status).toBe(409);
      const blockers = (r.body as ErrorBody).details!['blockers'] as { code: string; groupId?: string; members?: string[]; message: string }[];
      const partitioned = blockers.find((b) => b.code === 'GROUP_PARTITIONED');
      expect(partitioned).toMatchObject({ groupId: 'orders', members: ['m3'] });
      expect(partitioned!.message).toContain('m3 (node n3)');
      // billing has no member on n3: it is not partitioned.
      expect(blockers.some((b) => b.groupId === 'billing')).toBe(false);

      await waitFor('n3 stale in the registry', async () => (await status(2)).nodes.find((n) => n.nodeId === 'n3')?.status === 'stale', { timeoutMs: 30_000, intervalMs: 300 });
      const r2 = await adjust(2);
      expect(r2.status).toBe(409);
      expect((r2.body as ErrorBody).code).toBe('NODE_NOT_ACTIVE');
      expect((r2.body as ErrorBody).details!['blockers']).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'NODE_NOT_ACTIVE', nodeId: 'n3' })]));
      const s = await status(2);
      expect(s.ready).toBe(false);
      expect(s.blockers.map((b) => b.code)).toEqual(['NODE_NOT_ACTIVE', 'GROUP_PARTITIONED']);
    } finally {
      n3.proc.kill('SIGCONT');
    }
    await waitFor('cluster ready again', async () => (await status(2)).ready, { timeoutMs: 30_000, intervalMs: 300 });
  });

  it('a dry run reports the checks and changes nothing', async () => {
    const before = (await groupLog()).length;
    const requested = (await eventsOfType('cluster-version.adjust-requested')).length;
    const r = await adjust(2, true);
    expect(r).toMatchObject({ status: 200, body: { dryRun: true, accepted: true, adjustmentId: null, groups: 2, blockers: [] } });
    const c = await cli('cluster-version', 'adjust', '2', '--dry-run');
    expect(c).toMatchObject({ code: 0 });
    expect(c.out).toContain('nothing changed');
    expect((await groupLog()).length).toBe(before);
    expect((await eventsOfType('cluster-version.adjust-requested')).length).toBe(requested);
    expect((await status()).activeVersion).toBe(1);
  });

  it('two adjustments at once: one wins, the other gets a typed CONFLICT; a member joining meanwhile is adjusted too; every group gets one ADJUST_VERSION', async () => {
    // A concurrent join: a new member on n2 joins while the two adjustments are checked and one runs.
    const [a, b] = await Promise.all([adjust(2), adjust(2), startMember('m4', 'n2', 'orders')]);
    const won = [a, b].filter((r) => r.status === 200);
    const lost = [a, b].filter((r) => r.status !== 200);
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ status: 409, body: { code: 'CONFLICT' } });
    const adjustmentId = (won[0]!.body as AdjustClusterVersionReply).adjustmentId!;
    await waitFor('adjusted', async () => (await status()).adjustment?.state === 'adjusted', { timeoutMs: 60_000, intervalMs: 200 });
    const s = await status();
    expect(s.activeVersion).toBe(2);
    const log = await groupLog();
    // m4 joined before the orders ADJUST_VERSION (then it acknowledged it) or after it (then it joined at version 2).
    const m4Joined = log.find((e) => e.msg.reason === 'JOIN' && e.msg.memberId === 'm4')!.seq;
    const ordersAdjusted = log.find((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.groupId === 'orders')!.seq;
    const m4Acked = m4Joined < ordersAdjusted;
    expect(s.adjustment).toMatchObject({ adjustmentId, version: 2, state: 'adjusted', acknowledged: m4Acked ? 6 : 5 });
    expect(s.groups.map((g) => [g.groupId, g.activeVersion, g.members.length])).toEqual([['billing', 2, 2], ['orders', 2, 4]]);
    const adjusts = log.filter((e) => e.msg.reason === 'ADJUST_VERSION');
    expect(adjusts.map((e) => [e.msg.groupId, 'version' in e.msg ? e.msg.version : 0]).sort()).toEqual([['billing', 2], ['orders', 2]]);
    expect(await eventsOfType('cluster-version.adjusted')).toEqual([expect.objectContaining({ adjustmentId, version: 2, groups: 2 })]);
    // Emitted to other systems too: the CloudEvent on JetStream CHANGEOVER_EVENTS.
    const relayed = await waitFor('cluster-version.adjusted on CHANGEOVER_EVENTS', () => jsm.streams.getMessage(STREAMS.events, { last_by_subj: 'changeover.events.cluster-version.adjusted' }).catch(() => null), { timeoutMs: 30_000, intervalMs: 200 });
    expect(relayed.json<{ type: string; data: { adjustmentId: string } }>()).toMatchObject({ type: 'io.changeover.cluster-version.adjusted', data: { adjustmentId } });
    const acks = await eventsOfType('cluster-version.member-acknowledged');
    expect(acks.map((x) => `${String(x['groupId'])}/${String(x['memberId'])}`).sort()).toEqual(['billing/b1', 'billing/b2', 'orders/m1', 'orders/m2', 'orders/m3', ...(m4Acked ? ['orders/m4'] : [])]);
    for (const m of ['m1', 'm2', 'm3', 'm4']) expect((await memberGet(m)).body).toMatchObject({ joined: true, version: 2 });
  });

  it('after the adjustment the new function works on every member and they agree on the leader', async () => {
    const leaders = await Promise.all(['m1', 'm2', 'm3', 'm4'].map((m) => memberGet(m, '/leader')));
    for (const l of leaders) expect(l).toMatchObject({ status: 200, body: { groupId: 'orders', version: 2 } });
    expect(new Set(leaders.map((l) => JSON.stringify(l.body['leader']))).size).toBe(1);
    expect(leaders[0]!.body['leader']).toMatchObject({ memberId: 'm1', nodeId: 'n1' });
  });

  it('an adjustment interrupted by SIGKILL of the rollout service right after recording its target finishes after a restart', async () => {
    await kill9(rollout);
    const killed = startRolloutService({ ROLLOUT_FAULT_AT: 'after-target-recorded' });
    await healthy(base, 'the rollout service (with a fault point)');
    // The service dies before answering.
    expect(await adjust(3).then((x) => x.status, () => 'no answer')).toBe('no answer');
    await waitFor('the service killed itself', () => killed.proc.signalCode === 'SIGKILL');
    const requested = await eventsOfType('cluster-version.adjust-requested');
    expect(requested.at(-1)).toMatchObject({ version: 3 });
    expect((await groupLog()).some((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.version === 3)).toBe(false);

    startRolloutService();
    await healthy(base, 'the rollout service again');
    await waitFor('adjusted to 3 after the restart', async () => (await status()).activeVersion === 3, { timeoutMs: 60_000, intervalMs: 200 });
    const s = await status();
    expect(s.adjustment).toMatchObject({ version: 3, state: 'adjusted', adjustmentId: requested.at(-1)!['adjustmentId'] });
    const threes = (await groupLog()).filter((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.version === 3);
    expect(threes.map((e) => e.msg.groupId).sort()).toEqual(['billing', 'orders']);
    expect((await eventsOfType('cluster-version.adjusted')).map((x) => x['version'])).toEqual([2, 3]);
    const w = await cli('cluster-version', 'status', '--json');
    expect(JSON.parse(w.out)).toMatchObject({ activeVersion: 3, adjustment: { state: 'adjusted', version: 3 } });
  });

  it('killed after recording the target, the restarted service checks again: a member not reached then abandons the adjustment and the version stays', async () => {
    await kill9(rollout);
    const killed = startRolloutService({ ROLLOUT_FAULT_AT: 'after-target-recorded' });
    await healthy(base, 'the rollout service (with a fault point)');
    expect(await adjust(4).then((x) => x.status, () => 'no answer')).toBe('no answer');
    await waitFor('the service killed itself', () => killed.proc.signalCode === 'SIGKILL');
    const n1 = agents.get('n1')!;
    n1.proc.kill('SIGSTOP');
    try {
      startRolloutService();
      await healthy(base, 'the rollout service again');
      await waitFor('abandoned on the re-check', async () => (await eventsOfType('cluster-version.adjust-refused')).some((r) => r['version'] === 4), { timeoutMs: 30_000, intervalMs: 200 });
    } finally {
      n1.proc.kill('SIGCONT');
    }
    const refused = (await eventsOfType('cluster-version.adjust-refused')).find((r) => r['version'] === 4)!;
    expect(refused['blockers']).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'GROUP_PARTITIONED' })]));
    const s = await status();
    expect(s).toMatchObject({ activeVersion: 3, adjustment: { version: 4, state: 'refused' } });
    expect((await groupLog()).some((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.version === 4)).toBe(false);
    await waitFor('cluster ready again', async () => (await status(4)).ready, { timeoutMs: 30_000, intervalMs: 300 });
  });

  it('killed after the first group got its ADJUST_VERSION, the restarted service sends the rest and shows acknowledged/total until a paused member catches up', async () => {
    await kill9(rollout);
    const killed = startRolloutService({ ROLLOUT_FAULT_AT: 'after-first-group-adjusted' });
    await healthy(base, 'the rollout service (with a fault point)');
    // Accepted (the answer usually leaves before the first ADJUST_VERSION is appended and the service dies).
    expect([200, 'no answer']).toContain(await adjust(4).then((x) => x.status, () => 'no answer'));
    await waitFor('the service killed itself', () => killed.proc.signalCode === 'SIGKILL');
    expect((await groupLog()).filter((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.version === 4).map((e) => e.msg.groupId)).toEqual(['billing']);
    const n1 = agents.get('n1')!;
    n1.proc.kill('SIGSTOP');
    let during: ClusterVersionStatus | undefined;
    try {
      startRolloutService();
      await healthy(base, 'the rollout service again');
      // b1 and m1 live on the paused node: every other member acknowledges, the adjustment waits for them.
      during = await waitFor('4 of 6 acknowledged', async () => {
        const st = await status();
        return st.adjustment?.state === 'adjusting' && st.adjustment.acknowledged === 4 ? st : undefined;
      }, { timeoutMs: 30_000, intervalMs: 200 });
      const c = await cli('cluster-version', 'status');
      expect(c.out).toContain('4/6 members acknowledged');
    } finally {
      n1.proc.kill('SIGCONT');
    }
    expect(during!.adjustment).toMatchObject({ version: 4, total: 6, acknowledged: 4 });
    expect(during!.ready).toBe(false);
    await waitFor('adjusted to 4', async () => (await status()).activeVersion === 4, { timeoutMs: 60_000, intervalMs: 200 });
    expect((await status()).adjustment).toMatchObject({ version: 4, state: 'adjusted', acknowledged: 6 });
    expect((await groupLog()).filter((e) => e.msg.reason === 'ADJUST_VERSION' && e.msg.version === 4).map((e) => e.msg.groupId).sort()).toEqual(['billing', 'orders']);
  });

  it('an agent that cannot run the active version refuses a member\'s join with VERSION_UNSUPPORTED', async () => {
    await startAgent('n5', '2.0.0', '1-2', 'mediated');
    await startMember('p5', 'n5', 'orders', false);
    await waitFor('p5 refused', () => memberOutput.get('p5')!().includes('joinRefused'));
    const refusal = JSON.parse(memberOutput.get('p5')!().split('\n').find((l) => l.includes('joinRefused'))!) as { joinRefused: string; message: string };
    expect(refusal.joinRefused).toBe('VERSION_UNSUPPORTED');
    expect(refusal.message).toContain('group orders runs cluster version 4');
    expect((await status()).groups.find((g) => g.groupId === 'orders')!.members.map((m) => m.memberId)).not.toContain('p5');
  });
});
