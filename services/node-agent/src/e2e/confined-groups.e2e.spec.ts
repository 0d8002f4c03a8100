import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createAuthority, exportAuthority, mintServiceCredentials, serverConfig } from '@changeover/nats-auth';
import { encode, type ClusterVersionStatus, type EnrollNodeReply } from '@changeover/contracts';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { connectAsNode, healthy, http, REPO_ROOT, startService, type ServiceProcess } from '../testing/secure-fleet.js';

// Groups on confined nodes (DESIGN §6 with §10): agents holding nothing but the NATS credentials the
// registry minted read the group logs by message-get only and have their JOIN/LEAVE appended by the
// rollout service; validate rounds and acknowledgements work within their permissions, and the
// cluster version is adjusted end to end. A node cannot write a group log itself nor speak for another.

jest.setTimeout(240_000);

const NODES = ['gx-a', 'gx-b'] as const;
const MEMBER = join(REPO_ROOT, 'services/rollout/src/cluster-version/fixtures/group-member.cjs');
const AGENT_SDK = join(REPO_ROOT, 'libs/agent-sdk/dist/index.js');

let dir: string;
let nats: TestNats;
let db: TestDatabase;
let registry: ServiceProcess;
let rollout: ServiceProcess;
let rolloutBase: string;
const agents = new Map<string, AgentProcess>();
const creds = new Map<string, string>();
const members = new Map<string, { proc: ChildProcess; port: number }>();

const status = async () => (await http<ClusterVersionStatus>('GET', `${rolloutBase}/cluster-version`)).body;
const memberGet = async (memberId: string, path = '/') => {
  const res = await fetch(`http://127.0.0.1:${members.get(memberId)!.port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-confined-groups-'));
  const authority = createAuthority();
  writeFileSync(join(dir, 'authority.json'), JSON.stringify(exportAuthority(authority)), { mode: 0o600 });
  mkdirSync(join(dir, 'jwt'));
  [nats, db] = await Promise.all([startNats(await serverConfig(authority, { resolverDir: join(dir, 'jwt') })), createTestDatabase('confined_groups')]);
  for (const svc of ['registry', 'rollout'] as const) writeFileSync(join(dir, `${svc}.creds`), (await mintServiceCredentials(authority, svc)).creds, { mode: 0o600 });
  const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
  const registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;
  registry = startService('registry', 'services/registry', { DATABASE_URL: db.url, NATS_URL: nats.url, NATS_CREDS: join(dir, 'registry.creds'), REGISTRY_NATS_AUTHORITY: join(dir, 'authority.json'), REGISTRY_HTTP_PORT: String(registryPort), REGISTRY_HTTP_HOST: '127.0.0.1', REGISTRY_RELAY: 'false', REGISTRY_REQUIRE_ENROLLMENT: 'true', LOG_LEVEL: 'warn' }, dir);
  await healthy(registryBase, registry);
  // The rollout service creates the group streams: a confined agent may not.
  rollout = startService('rollout', 'services/rollout', { DATABASE_URL: db.url, NATS_URL: nats.url, NATS_CREDS: join(dir, 'rollout.creds'), ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'confined-groups', ROLLOUT_VALIDATE_TIMEOUT_MS: '2000', LOG_LEVEL: 'warn' }, dir);
  await healthy(rolloutBase, rollout);
  for (const node of NODES) {
    const r = await http<EnrollNodeReply>('POST', `${registryBase}/nodes`, { nodeId: node, classId: 'gx', processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 1024 } });
    expect(r.status).toBe(201);
    mkdirSync(join(dir, node), { recursive: true });
    writeFileSync(join(dir, node, 'nats.creds'), r.body.natsCredentials!.creds, { mode: 0o600 });
    creds.set(node, r.body.natsCredentials!.creds);
    // No AGENT_GROUP_APPENDS: with NATS_CREDS the appends are mediated by default.
    agents.set(node, await spawnAgent({ NATS_URL: nats.url, NATS_CREDS: join(dir, node, 'nats.creds'), NODE_ID: node, NODE_CLASS: 'gx', NODE_PROCESSOR_TYPE: 'x86_64', AGENT_STATE_DIR: join(dir, node, 'state'), AGENT_CLUSTER_VERSIONS: '1-2', AGENT_MIN_FREE_DISK_MB: '1', AGENT_HEARTBEAT_MS: '500', AGENT_EXTERNAL_PROCESSES: 'proc-ca,proc-cb' }));
  }
  await waitFor('both agents active', async () => (await status()).nodes?.filter((n) => n.status === 'active').length === 2, { timeoutMs: 60_000, intervalMs: 200 });
}, 200_000);

afterAll(async () => {
  for (const m of members.values()) m.proc.kill('SIGKILL');
  for (const a of agents.values()) await a.stop().catch(() => undefined);
  await cleanUpAgents(dir);
  await rollout?.stop();
  await registry?.stop();
  await nats?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('groups on confined nodes', () => {
  it('members join through their confined agents (appends mediated by the rollout service) and see one group', async () => {
    for (const [m, node] of [['ca', 'gx-a'], ['cb', 'gx-b']] as const) {
      const port = await freePort();
      const proc = spawn(process.execPath, [MEMBER], { env: { PATH: process.env['PATH'] ?? '', AGENT_SDK, GROUP: 'ledger', MEMBER_ID: m, PORT: String(port), CHANGEOVER_AGENT_SOCKET: join(dir, node, 'state', 'agent.sock'), CHANGEOVER_PROCESS_ID: `proc-${m}`, CHANGEOVER_PROCESS_TOKEN_FILE: join(dir, node, 'state', 'credentials', `proc-${m}.token`) }, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      members.set(m, { proc, port });
      await waitFor(`${m} joined`, () => out.includes('"ready":true'), { timeoutMs: 30_000 });
    }
    await waitFor('both members seen by each', async () => (await memberGet('ca')).body['members'] !== undefined && ((await memberGet('ca')).body['members'] as string[]).length === 2 && ((await memberGet('cb')).body['members'] as string[]).length === 2);
    expect((await status()).groups).toEqual([{ groupId: 'ledger', activeVersion: 1, lastSequence: expect.any(Number), members: [{ memberId: 'ca', nodeId: 'gx-a' }, { memberId: 'cb', nodeId: 'gx-b' }] }]);
  });

  it('a confined node cannot append to a group log itself, nor have the rollout service append for another node', async () => {
    const { nc, violations } = await connectAsNode(nats.url, creds.get('gx-b')!, 'gx-b');
    try {
      nc.publish('changeover.group.ledger.membership', encode({ reason: 'JOIN', groupId: 'ledger', memberId: 'x', nodeId: 'gx-b', at: new Date().toISOString() }));
      await waitFor('permission violation', () => violations.some((v) => /changeover\.group\.ledger\.membership/.test(String(v.message))));
      const forged = await nc.request('changeover.agent.gx-b.group-append', encode({ message: { reason: 'LEAVE', groupId: 'ledger', memberId: 'ca', nodeId: 'gx-a', at: new Date().toISOString(), cause: '' }, expectedLastSequence: 0 }), { timeout: 5000 });
      expect(forged.json()).toMatchObject({ ok: false, error: { code: 'FORBIDDEN' } });
    } finally {
      await nc.close();
    }
    expect((await status()).groups[0]!.members.map((m) => m.memberId)).toEqual(['ca', 'cb']);
  });

  it('validate rounds and acknowledgements work within the permissions: the adjustment to 2 completes and leader election works', async () => {
    expect((await memberGet('ca', '/leader')).body).toMatchObject({ code: 'FEATURE_NOT_ACTIVE' });
    const dry = await http('POST', `${rolloutBase}/cluster-version/adjust`, { version: 2, dryRun: true });
    expect(dry).toMatchObject({ status: 200, body: { accepted: true, blockers: [] } });
    expect((await http('POST', `${rolloutBase}/cluster-version/adjust`, { version: 2 })).status).toBe(200);
    await waitFor('adjusted', async () => (await status()).adjustment?.state === 'adjusted', { timeoutMs: 60_000, intervalMs: 200 });
    expect((await status()).adjustment).toMatchObject({ version: 2, acknowledged: 2, total: 2 });
    const leaders = await Promise.all(['ca', 'cb'].map((m) => memberGet(m, '/leader')));
    for (const l of leaders) expect(l).toMatchObject({ status: 200, body: { version: 2, leader: { memberId: 'ca' } } });
  });
});
