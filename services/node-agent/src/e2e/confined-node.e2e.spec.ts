import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Objm } from '@nats-io/obj';
import { createAuthority, exportAuthority, mintServiceCredentials, serverConfig, serviceConnectionOptions } from '@changeover/nats-auth';
import { decode, GetPackagesReply, MODULE_BUCKET, ProgressReport, type EnrollNodeReply, type PackageManifest, type RevokeNodeReply, type RolloutSummary, type SignedPackage } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import { createTestDatabase, freePort, startNats, waitFor, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { cleanUpAgents, spawnAgent, type AgentProcess } from '../testing/agent-harness.js';
import { digestOf, manifestOf, moduleOf } from '../testing/packages.js';
import { activePackages, connectAsNode, healthy, http, publisher, startService, trustRoots, type ServiceProcess } from '../testing/secure-fleet.js';

// DESIGN §4, §10 end to end: a private nats-server in operator mode; the registry mints each node's
// NATS credentials at enrollment and revokes them; real agents run with nothing but those
// credentials and take part in real rollouts (propose, vote, commit, fetch, changeover) driven by
// the rollout service; packages are checked against trust roots with key rotation (two active
// publisher keys, one retired) by the registry on publish and by the agents on vote and commit.

jest.setTimeout(300_000);

const NODES = ['node-a', 'node-b'] as const;
const CLASS = 'edge';

let dir: string;
let nats: TestNats;
let db: TestDatabase;
let registry: ServiceProcess;
let rollout: ServiceProcess;
let registryBase: string;
let rolloutBase: string;
let observer: NatsConnection;
const agents = new Map<string, AgentProcess>();
const enrolled = new Map<string, EnrollNodeReply>();
const stateDir = (node: string) => join(dir, node, 'state');

const old = publisher('release-2025');
const current = publisher('release-2026');
const next = publisher('release-2027');

function pkg(name: string, version: string, content = `${name} ${version}\n`): { manifest: PackageManifest; blob: string } {
  return { manifest: manifestOf(name, version, [moduleOf(name, version, content)]), blob: content };
}

const publish = (signed: SignedPackage, blob: string) => http(`POST`, `${registryBase}/packages`, { package: signed, blobs: { [digestOf(blob)]: Buffer.from(blob).toString('base64') } });

async function startRegistry(env: Record<string, string>, port: number): Promise<void> {
  registry = startService('registry', 'services/registry', {
    DATABASE_URL: db.url,
    NATS_URL: nats.url,
    NATS_CREDS: join(dir, 'registry.creds'),
    REGISTRY_NATS_AUTHORITY: join(dir, 'authority.json'),
    REGISTRY_HTTP_PORT: String(port),
    REGISTRY_HTTP_HOST: '127.0.0.1',
    REGISTRY_RELAY: 'false',
    REGISTRY_REQUIRE_ENROLLMENT: 'true',
    LOG_LEVEL: 'warn',
    ...env,
  }, dir);
  await healthy(registryBase, registry);
}

type Target = { nodes: string[] } | { classes: string[] };
async function rolloutOf(id: string, target: Target, p: { name: string; version: string }, policy: Record<string, unknown> = {}): Promise<void> {
  const r = await http('POST', `${rolloutBase}/rollouts`, { rolloutId: id, update: { description: id, targets: [{ ...target, packages: [p] }] }, policy: { voteTimeoutMs: 30_000, changeoverTimeoutMs: 60_000, ...policy } });
  expect(r.status).toBe(201);
}

const show = async (id: string) => (await http<RolloutSummary>('GET', `${rolloutBase}/rollouts/${id}?nodes=true`)).body;
const settled = (id: string, statuses: string[]) => waitFor(`${id} ${statuses.join('|')}`, async () => {
  const s = await show(id);
  return statuses.includes(s.status) ? s : null;
}, { timeoutMs: 120_000, intervalMs: 200 });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'changeover-confined-'));
  const authority = createAuthority();
  writeFileSync(join(dir, 'authority.json'), JSON.stringify(exportAuthority(authority)), { mode: 0o600 });
  mkdirSync(join(dir, 'jwt'));
  [nats, db] = await Promise.all([startNats(await serverConfig(authority, { resolverDir: join(dir, 'jwt') })), createTestDatabase('confined_e2e')]);
  for (const svc of ['registry', 'rollout', 'cli'] as const) writeFileSync(join(dir, `${svc}.creds`), (await mintServiceCredentials(authority, svc)).creds, { mode: 0o600 });
  observer = await connect({ servers: nats.url, ...serviceConnectionOptions((await mintServiceCredentials(authority, 'cli')).creds) });
  const [registryPort, rolloutPort] = await Promise.all([freePort(), freePort()]);
  registryBase = `http://127.0.0.1:${registryPort}`;
  rolloutBase = `http://127.0.0.1:${rolloutPort}`;

  // Before the rotation: release-2025 is still active; signatures are not yet required, so an unsigned package gets stored too.
  await startRegistry({ REGISTRY_TRUST_ROOTS: trustRoots([old, current]), REGISTRY_REQUIRE_SIGNATURES: 'false' }, registryPort);
  const legacy = pkg('legacy', '1.0.0');
  expect((await publish(old.sign(legacy.manifest), legacy.blob)).body).toMatchObject({ created: true, signedBy: 'release-2025' });
  const bare = pkg('bare', '1.0.0');
  expect((await publish({ manifest: bare.manifest }, bare.blob)).body).toMatchObject({ created: true, signatureVerdict: 'unsigned' });
  await registry.stop();

  // The rotation: release-2027 joins release-2026, release-2025 is retired; signatures are required.
  await startRegistry({ REGISTRY_TRUST_ROOTS: trustRoots([current, next], [old]), REGISTRY_RETIRED_KEYS: 'accept' }, registryPort);
  rollout = startService('rollout', 'services/rollout', { DATABASE_URL: db.url, NATS_URL: nats.url, NATS_CREDS: join(dir, 'rollout.creds'), ROLLOUT_HTTP_PORT: String(rolloutPort), ROLLOUT_HTTP_HOST: '127.0.0.1', ROLLOUT_INSTANCE_ID: 'confined-e2e', LOG_LEVEL: 'warn' }, dir);
  await healthy(rolloutBase, rollout);

  for (const node of NODES) {
    const r = await http<EnrollNodeReply>('POST', `${registryBase}/nodes`, { nodeId: node, classId: CLASS, processorType: 'x86_64', characteristics: { arch: 'x86_64', memoryMb: 1024 } });
    expect(r.status).toBe(201);
    enrolled.set(node, r.body);
    mkdirSync(join(dir, node), { recursive: true });
    writeFileSync(join(dir, node, 'nats.creds'), r.body.natsCredentials!.creds, { mode: 0o600 });
  }
  // node-a accepts the retired key's old packages; node-b refuses them.
  for (const [node, retired] of [['node-a', 'accept'], ['node-b', 'refuse']] as const) {
    agents.set(node, await spawnAgent({
      NATS_URL: nats.url,
      NATS_CREDS: join(dir, node, 'nats.creds'),
      NODE_ID: node,
      NODE_CLASS: CLASS,
      NODE_PROCESSOR_TYPE: 'x86_64',
      AGENT_STATE_DIR: stateDir(node),
      AGENT_TRUST_ROOTS: trustRoots([current, next], [old]),
      AGENT_RETIRED_KEYS: retired,
      AGENT_MIN_FREE_DISK_MB: '1',
      AGENT_HEARTBEAT_MS: '1000',
    }));
  }
  await waitFor('both agents said hello to the registry', async () => {
    for (const node of NODES) if ((await http<{ agentVersion: string | null }>('GET', `${registryBase}/nodes/${node}`)).body.agentVersion === null) return false;
    return true;
  }, { timeoutMs: 60_000, intervalMs: 200 });
}, 240_000);

afterAll(async () => {
  for (const a of agents.values()) await a.stop().catch(() => undefined);
  await cleanUpAgents(dir);
  await rollout?.stop();
  await registry?.stop();
  await observer?.close();
  await nats?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('node identity on NATS', () => {
  it('enrollment hands each node its own credentials and inbox, and those confine it', async () => {
    const a = enrolled.get('node-a')!;
    expect(a.natsCredentials).toMatchObject({ inboxPrefix: '_INBOX.node.node-a', userPublicKey: expect.stringMatching(/^U/) });
    expect(a.natsCredentials!.userPublicKey).not.toBe(enrolled.get('node-b')!.natsCredentials!.userPublicKey);

    const { nc, violations } = await connectAsNode(nats.url, a.natsCredentials!.creds, 'node-a');
    try {
      // Its own request subject is answered by the registry on its own inbox.
      const own = await requestRpc(nc, 'changeover.agent.node-a.get-packages', { packages: [{ name: 'legacy', version: '1.0.0' }] }, GetPackagesReply, { timeoutMs: 5000 });
      expect(own.packages[0]!.signature?.keyId).toBe('release-2025');
      // Not as another node, not another node's commands, not the services' request subjects.
      nc.publish('changeover.agent.node-b.hello', '{}');
      nc.subscribe('changeover.node.node-b.>');
      await expect(nc.request('changeover.registry.get-packages', '{}', { timeout: 1000 })).rejects.toThrow();
      await nc.flush();
      await waitFor('three permission violations', () => violations.length >= 3);
      expect(violations.map((v) => v.subject).sort()).toEqual(['changeover.agent.node-b.hello', 'changeover.node.node-b.>', 'changeover.registry.get-packages']);
    } finally {
      await nc.close();
    }
  });

  it('a confined agent takes part in real rollouts: by class and by node, fetching modules by message-get', async () => {
    const v1 = pkg('app', '1.0.0');
    expect((await publish(current.sign(v1.manifest), v1.blob)).status).toBe(201);
    await rolloutOf('app-1', { classes: [CLASS] }, { name: 'app', version: '1.0.0' });
    const done = await settled('app-1', ['completed', 'blocked', 'paused', 'failed', 'aborted']);
    expect({ status: done.status, vetoes: done.vetoes, failures: done.failures ?? [] }).toEqual({ status: 'completed', vetoes: [], failures: [] });
    for (const node of NODES) expect(activePackages(stateDir(node))).toContain('app@1.0.0');
    for (const node of NODES) expect(existsSync(join(stateDir(node), 'modules', digestOf(v1.blob).slice(7)))).toBe(true);
  });
});

describe('package trust with key rotation', () => {
  it('rolls out a package signed by the second active key', async () => {
    const v2 = pkg('app', '2.0.0');
    expect((await publish(next.sign(v2.manifest), v2.blob)).body).toMatchObject({ created: true, signedBy: 'release-2027' });
    await rolloutOf('app-2', { nodes: [...NODES] }, { name: 'app', version: '2.0.0' });
    expect((await settled('app-2', ['completed', 'blocked', 'paused', 'failed', 'aborted'])).status).toBe('completed');
    for (const node of NODES) expect(activePackages(stateDir(node))).toContain('app@2.0.0');
  });

  it('a retired key signs nothing new; its old package is accepted or refused by each policy', async () => {
    const fresh = pkg('tool', '1.0.0');
    const refused = await publish(old.sign(fresh.manifest), fresh.blob);
    expect(refused.body).toMatchObject({ code: 'UNTRUSTED_KEY' });
    expect(refused.body['message']).toMatch(/retired key release-2025/);
    // The version stored before the rotation may be published again (policy accept).
    const legacy = pkg('legacy', '1.0.0');
    expect((await publish(old.sign(legacy.manifest), legacy.blob)).body).toMatchObject({ created: false, signedBy: 'release-2025' });

    await rolloutOf('legacy-a', { nodes: ['node-a'] }, { name: 'legacy', version: '1.0.0' });
    expect((await settled('legacy-a', ['completed', 'blocked', 'paused', 'failed', 'aborted'])).status).toBe('completed');
    expect(activePackages(stateDir('node-a'))).toContain('legacy@1.0.0');

    await rolloutOf('legacy-b', { nodes: ['node-b'] }, { name: 'legacy', version: '1.0.0' });
    const blocked = await settled('legacy-b', ['completed', 'blocked', 'paused', 'failed', 'aborted']);
    expect(blocked.status).toBe('blocked');
    expect(blocked.vetoes).toEqual([expect.objectContaining({ nodeId: 'node-b', reason: 'SIGNATURE_INVALID', message: expect.stringMatching(/retired key release-2025/) })]);
    expect(activePackages(stateDir('node-b'))).not.toContain('legacy@1.0.0');
    expect((await http('POST', `${rolloutBase}/rollouts/legacy-b/cancel`, { reason: 'refused by node policy' })).status).toBe(200);
  });
});

describe('regression to a version only the registry keeps', () => {
  it('the confined agent asks for the signed manifest on its own subject and checks it by its policy', async () => {
    const extra = pkg('extra', '1.0.0');
    expect((await publish(current.sign(extra.manifest), extra.blob)).status).toBe(201);
    const regress = (node: string, to: { name: string; version: string }) => http('POST', `${rolloutBase}/rollouts/app-2/regress`, { nodes: [node], to: { kind: 'version', package: to.name, version: to.version }, reason: 'e2e' });
    expect((await regress('node-a', { name: 'extra', version: '1.0.0' })).status).toBe(200);
    await waitFor('extra@1.0.0 active on node-a', () => activePackages(stateDir('node-a')).includes('extra@1.0.0'), { timeoutMs: 60_000, intervalMs: 200 });
    expect(existsSync(join(stateDir('node-a'), 'modules', digestOf(extra.blob).slice(7)))).toBe(true);
    // node-b refuses the retired key's package it would have to get from the registry: its own report says why.
    const reports: ProgressReport[] = [];
    const sub = observer.subscribe('changeover.agent.node-b.progress', { callback: (_e, m) => void reports.push(decode(ProgressReport, m.data)) });
    await observer.flush();
    try {
      expect((await regress('node-b', { name: 'legacy', version: '1.0.0' })).status).toBe(200);
      const refused = await waitFor('node-b reports the regression failed', () => reports.find((r) => r.rolloutId === 'app-2' && r.phase === 'failed'), { timeoutMs: 60_000, intervalMs: 100 });
      expect(refused.error).toMatchObject({ code: 'UNTRUSTED_KEY', message: expect.stringMatching(/retired key release-2025/) });
    } finally {
      sub.unsubscribe();
    }
    expect(activePackages(stateDir('node-b'))).not.toContain('legacy@1.0.0');
  });
});

describe('a tampered module is never installed on any node', () => {
  it('the registry refuses unsigned, wrongly signed, altered and mismatched packages', async () => {
    const p = pkg('evil', '1.0.0');
    expect((await publish({ manifest: p.manifest }, p.blob)).body).toMatchObject({ code: 'SIGNATURE_INVALID' });
    const signed = current.sign(p.manifest);
    const altered = { ...signed, manifest: { ...signed.manifest, description: 'altered after signing' } };
    expect((await publish(altered, p.blob)).body).toMatchObject({ code: 'SIGNATURE_INVALID' });
    expect((await publish(publisher('release-2026').sign(p.manifest), p.blob)).body).toMatchObject({ code: 'SIGNATURE_INVALID' });
    expect((await publish(publisher('stranger').sign(p.manifest), p.blob)).body).toMatchObject({ code: 'UNTRUSTED_KEY' });
    const r = await http('POST', `${registryBase}/packages`, { package: signed, blobs: { [digestOf(p.blob)]: Buffer.from('evil 1.0.0 with a payload\n').toString('base64') } });
    expect(r.body).toMatchObject({ code: 'DIGEST_MISMATCH' });
  });

  it('agents veto an unsigned package the registry stored before signatures were required', async () => {
    await rolloutOf('bare', { classes: [CLASS] }, { name: 'bare', version: '1.0.0' });
    const blocked = await settled('bare', ['completed', 'blocked', 'paused', 'failed', 'aborted']);
    expect(blocked.status).toBe('blocked');
    expect(blocked.vetoes.map((v) => [v.nodeId, v.reason]).sort()).toEqual([['node-a', 'SIGNATURE_INVALID'], ['node-b', 'SIGNATURE_INVALID']]);
    for (const node of NODES) expect(activePackages(stateDir(node))).not.toContain('bare@1.0.0');
    expect((await http('POST', `${rolloutBase}/rollouts/bare/cancel`, { reason: 'unsigned' })).status).toBe(200);
  });

  it('agents refuse a module whose blob was replaced in the object store after publishing', async () => {
    const p = pkg('payload', '1.0.0');
    expect((await publish(current.sign(p.manifest), p.blob)).status).toBe(201);
    // Someone with write access to the store replaces the blob under its digest name, keeping its size
    // (a larger one is refused before it is read: TOO_LARGE against the signed size).
    const tampered = 'payload 6.6.6\n';
    expect(tampered.length).toBe(p.blob.length);
    const store = await new Objm(observer).open(MODULE_BUCKET);
    await store.putBlob({ name: digestOf(p.blob) }, new TextEncoder().encode(tampered));

    await rolloutOf('payload', { classes: [CLASS] }, { name: 'payload', version: '1.0.0' }, { waves: { canary: 0, size: '100%' } });
    const end = await settled('payload', ['completed', 'paused', 'failed', 'aborted']);
    expect(end.status).not.toBe('completed');
    await waitFor('both nodes failed', async () => {
      const s = await show('payload');
      return NODES.every((n) => s.nodePhases?.[n] === 'failed') ? s : null;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    const failures = (await show('payload')).failures ?? [];
    expect(failures.map((f) => [f.nodeId, f.code]).sort()).toEqual([['node-a', 'DIGEST_MISMATCH'], ['node-b', 'DIGEST_MISMATCH']]);
    for (const node of NODES) {
      expect(activePackages(stateDir(node))).not.toContain('payload@1.0.0');
      expect(existsSync(join(stateDir(node), 'modules', digestOf(p.blob).slice(7)))).toBe(false);
      // What was installed before is still what runs.
      expect(activePackages(stateDir(node))).toContain('app@2.0.0');
    }
  });
});

describe('revocation', () => {
  it('a revoked node is cut off and refused; the other node is untouched', async () => {
    const b = enrolled.get('node-b')!.natsCredentials!;
    const r = await http<RevokeNodeReply>('POST', `${registryBase}/nodes/node-b/revoke`, {});
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ nodeId: 'node-b', revokedKeys: [b.userPublicKey], revocations: 1 });
    await expect(connectAsNode(nats.url, b.creds, 'node-b')).rejects.toThrow(/Authorization Violation/i);
    // The registry stops hearing node-b's heartbeats; node-a's keep coming.
    const heartbeatOf = async (n: string) => (await http<{ lastHeartbeatAt: string | null }>('GET', `${registryBase}/nodes/${n}`)).body.lastHeartbeatAt;
    const a0 = await heartbeatOf('node-a');
    await waitFor('node-a heartbeats after the revocation', async () => (await heartbeatOf('node-a')) !== a0, { timeoutMs: 30_000, intervalMs: 200 });
    // Anything node-b sent before the revocation is written by now; nothing more may arrive.
    const bAt = await heartbeatOf('node-b');
    const a1 = await heartbeatOf('node-a');
    await waitFor('node-a heartbeats again', async () => (await heartbeatOf('node-a')) !== a1, { timeoutMs: 30_000, intervalMs: 200 });
    const a2 = await heartbeatOf('node-a');
    await waitFor('and again', async () => (await heartbeatOf('node-a')) !== a2, { timeoutMs: 30_000, intervalMs: 200 });
    expect(await heartbeatOf('node-b')).toBe(bAt);
    const a = await connectAsNode(nats.url, enrolled.get('node-a')!.natsCredentials!.creds, 'node-a');
    await a.nc.close();
    // Revoking again changes nothing and says so.
    expect((await http<RevokeNodeReply>('POST', `${registryBase}/nodes/node-b/revoke`, {})).body).toEqual({ nodeId: 'node-b', revokedKeys: [], revocations: 1 });
  });
});
