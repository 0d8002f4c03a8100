import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { createTestDatabase, freePort, startNats, TEST_ADMIN_TOKEN, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { applyMembership, decode, emptyGroupView, MembershipMessage, STREAMS, type ClusterVersionStatus, type GroupView, type RolloutSummary } from '@changeover/contracts';
import { healthy, http, kill9, REPO_ROOT, startService, type Child } from '../testing/processes.js';

// The whole story of the second document with the agent upgrade carried out as a rollout: three
// agents run under the launcher; a rollout of the agent's own package (changeover-agent 2.0.0) goes
// one node at a time; on each node the members leave, the agent restarts into the new version and
// the members rejoin before the rollout moves on; the group answers throughout; then the cluster
// version is adjusted and the version-2 function works.

jest.setTimeout(240_000);

const AGENT_SDK = join(REPO_ROOT, 'libs/agent-sdk/dist/index.js');
const MEMBER = join(REPO_ROOT, 'services/rollout/src/cluster-version/fixtures/group-member.cjs');
const LAUNCHER = join(REPO_ROOT, 'services/node-agent/dist/launcher.js');

let db: TestDatabase;
let nats: TestNats;
let nc: NatsConnection;
let dir: string;
let base: string;
let registryBase: string;
const children: Child[] = [];
const members = new Map<string, { proc: ChildProcess; port: number }>();
const launchers: ChildProcess[] = [];

async function status(): Promise<ClusterVersionStatus> {
  return (await http<ClusterVersionStatus>('GET', `${base}/cluster-version`)).body;
}

const memberGet = async (memberId: string, path = '/') => {
  const res = await fetch(`http://127.0.0.1:${members.get(memberId)!.port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-agent-upgrade-'));
  [db, nats] = await Promise.all([createTestDatabase('agent_upgrade'), startNats()]);
  nc = await connect({ servers: nats.url });
  const [registryPort, rolloutPort] = [await freePort(), await freePort()];
  registryBase = `http://127.0.0.1:${registryPort}`;
  base = `http://127.0.0.1:${rolloutPort}`;
  children.push(startService('registry', 'services/registry', [], { DATABASE_URL: db.url, NATS_URL: nats.url, REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_STALE_AFTER_MS: '10000', LOG_LEVEL: 'warn' }, dir));
  await healthy(registryBase, 'the registry');
  children.push(startService('rollout', 'services/rollout', [], { DATABASE_URL: db.url, NATS_URL: nats.url, ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'agent-upgrade', ROLLOUT_VALIDATE_TIMEOUT_MS: '1000', LOG_LEVEL: 'warn' }, dir));
  await healthy(base, 'the rollout service');
  for (const n of ['n1', 'n2', 'n3']) {
    // The launcher is what the node's supervisor runs; it starts the installed agent version.
    const log = join(dir, `launcher-${n}.log`);
    const out = openSync(log, 'a');
    const proc = spawn(process.execPath, [LAUNCHER], { env: { PATH: process.env['PATH'] ?? '', OTEL_SDK_DISABLED: 'true', NATS_URL: nats.url, NODE_ID: n, NODE_CLASS: 'up', AGENT_STATE_DIR: join(dir, n), AGENT_VERSION: '1.0.0', AGENT_CLUSTER_VERSIONS: '1-1', AGENT_HEARTBEAT_MS: '300', AGENT_MIN_FREE_DISK_MB: '1', AGENT_EXTERNAL_PROCESSES: 'proc-m1,proc-m2,proc-m3', LOG_LEVEL: 'warn' }, stdio: ['ignore', out, out], detached: true });
    // Its own process group: the agent it starts goes with it when the test ends.
    children.push({ name: `launcher-${n}`, proc, log });
    launchers.push(proc);
  }
  await waitFor('three agents 1.0.0 registered', async () => (await status()).nodes?.filter((x) => x.status === 'active' && x.agentVersion === '1.0.0').length === 3, { timeoutMs: 60_000, intervalMs: 200 });
  for (const [m, n] of [['m1', 'n1'], ['m2', 'n2'], ['m3', 'n3']] as const) {
    const port = await freePort();
    const proc = spawn(process.execPath, [MEMBER], { env: { PATH: process.env['PATH'] ?? '', AGENT_SDK, GROUP: 'orders', MEMBER_ID: m, PORT: String(port), CHANGEOVER_AGENT_SOCKET: join(dir, n, 'agent.sock'), CHANGEOVER_PROCESS_ID: `proc-${m}`, CHANGEOVER_PROCESS_TOKEN_FILE: join(dir, n, 'credentials', `proc-${m}.token`) }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    members.set(m, { proc, port });
    await waitFor(`${m} joined`, () => out.includes('"ready":true'), { timeoutMs: 30_000 });
  }
}, 180_000);

afterAll(async () => {
  for (const m of members.values()) m.proc.kill('SIGKILL');
  // The launcher and the agent version it runs, which a SIGKILL of the launcher alone would orphan.
  for (const l of launchers) {
    try {
      if (l.pid) process.kill(-l.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const c of children) await kill9(c);
  await nc?.close();
  await nats?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('agent upgrade as a rollout, then the cluster version adjustment', () => {
  it('upgrades the three agents one node at a time while the group answers every request, then adjusts to 2 and leader election works', async () => {
    // The "new agent version": the same agent code advertising 2.0.0 and cluster versions 1-4.
    const shim = Buffer.from(`'use strict';\nprocess.env.AGENT_VERSION = '2.0.0';\nprocess.env.AGENT_CLUSTER_VERSIONS = '1-4';\nimport(${JSON.stringify(join(REPO_ROOT, 'services/node-agent/dist/main.js'))});\n`);
    const digest = `sha256:${createHash('sha256').update(shim).digest('hex')}`;
    const manifest = { name: 'changeover-agent', version: '2.0.0', description: 'node agent', modules: [{ name: 'node-agent', version: '2.0.0', processorType: 'any', size: shim.length, digest, dependsOn: [], requires: {} }], requires: {}, provides: [], consumes: [] };
    expect([200, 201]).toContain((await http('POST', `${registryBase}/packages`, { package: { manifest }, blobs: { [digest]: shim.toString('base64') } })).status);

    const stats = { ok: 0, failed: 0 };
    let running = true;
    const loop = (async () => {
      while (running) {
        let answered = false;
        for (const m of ['m1', 'm2', 'm3']) {
          if ((await memberGet(m).catch(() => null))?.status === 200) {
            answered = true;
            break;
          }
        }
        if (answered) stats.ok++;
        else stats.failed++;
      }
    })();
    await waitFor('group requests answered', () => stats.ok > 20);

    const created = await http<RolloutSummary>('POST', `${base}/rollouts`, {
      rolloutId: 'agent-2-0-0',
      update: { description: 'node agent 2.0.0', targets: [{ nodes: ['n1', 'n2', 'n3'], packages: [{ name: 'changeover-agent', version: '2.0.0' }] }] },
      policy: { maxConcurrent: 1, waves: { canary: 1, size: 1, successThreshold: 1 }, voteTimeoutMs: 20_000, changeoverTimeoutMs: 60_000 },
    });
    expect(created.status).toBe(201);
    const done = await waitFor('rollout completed', async () => {
      const s = (await http<RolloutSummary>('GET', `${base}/rollouts/agent-2-0-0`)).body;
      if (['failed', 'aborted', 'cancelled', 'blocked'].includes(s.status)) throw new Error(`rollout ${s.status}: ${JSON.stringify(s.stuck ?? s.failures ?? s.vetoes)}`);
      return s.status === 'completed' ? s : undefined;
    }, { timeoutMs: 150_000, intervalMs: 300 });
    running = false;
    await loop;
    expect(done.waves.map((w) => w.nodes)).toEqual([1, 1, 1]);
    expect(stats.failed).toBe(0);
    expect(stats.ok).toBeGreaterThan(50);

    // One node at a time: each member left and rejoined before the next node's member left; never fewer than two members.
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(STREAMS.groups);
    let view: GroupView = emptyGroupView('orders');
    const moves: string[] = [];
    let fewest = Infinity;
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAMS.groups, { seq });
      if (!m) continue;
      const msg = decode(MembershipMessage, m.data);
      view = applyMembership(view, seq, msg);
      if (msg.reason !== 'ADJUST_VERSION') moves.push(`${msg.reason}:${msg.memberId}`);
      if (moves.length > 3) fewest = Math.min(fewest, view.members.length);
    }
    expect(moves).toEqual(['JOIN:m1', 'JOIN:m2', 'JOIN:m3', 'LEAVE:m1', 'JOIN:m1', 'LEAVE:m2', 'JOIN:m2', 'LEAVE:m3', 'JOIN:m3']);
    expect(fewest).toBe(2);

    const s = await waitFor('every agent 2.0.0', async () => {
      const st = await status();
      return st.nodes.every((n) => n.agentVersion === '2.0.0' && n.status === 'active') ? st : undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    expect(s.nodes.map((n) => n.clusterVersions)).toEqual([{ min: 1, max: 4 }, { min: 1, max: 4 }, { min: 1, max: 4 }]);
    expect(s).toMatchObject({ activeVersion: 1, candidateVersion: 4, ready: true });

    expect((await memberGet('m2', '/leader')).body).toMatchObject({ code: 'FEATURE_NOT_ACTIVE' });
    // The operator's command, waiting until every member has acknowledged.
    const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, [join(REPO_ROOT, 'cli/dist/main.js'), 'cluster-version', 'adjust', '2', '--wait'], { env: { PATH: process.env['PATH'] ?? '', CHANGEOVER_ROLLOUT_URL: base, CHANGEOVER_TOKEN: TEST_ADMIN_TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.once('exit', (code) => resolve({ code, out }));
    });
    expect(cli.code).toBe(0);
    expect(cli.out).toMatch(/adjusting to version 2 \(adj-2-[^)]+\) on 1 group\(s\)/);
    expect(cli.out).toContain('adjusted: 3/3 members acknowledged');
    expect((await status()).activeVersion).toBe(2);
    const leaders = await Promise.all(['m1', 'm2', 'm3'].map((m) => memberGet(m, '/leader')));
    for (const l of leaders) expect(l).toMatchObject({ status: 200, body: { version: 2 } });
    expect(new Set(leaders.map((l) => JSON.stringify(l.body['leader']))).size).toBe(1);
  });
});
