import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { EnrollNodeReply, RevokeNodeReply, subjects } from '@changeover/contracts';
import { requestRpc } from '@changeover/messaging';
import { createAuthority, exportAuthority, mintServiceCredentials, nodeConnectionOptions, serverConfig, serviceConnectionOptions, type Authority } from '@changeover/nats-auth';
import { createTestDatabase, startNats, TEST_ADMIN_TOKEN, type TestDatabase, type TestNats } from '@changeover/test-kit';
import { loadConfig } from '../config.js';
import { startRegistry, type RunningRegistry } from '../registry.app.js';
import { startTestRegistry, type TestRegistry } from '../testing/registry.fixtures.js';

// Enrollment mints node credentials and revocation pushes them, against a private operator-mode
// nats-server; the registry itself connects with its own service user (NATS_CREDS).

const enrollment = (nodeId: string) => ({ nodeId, classId: 'edge', processorType: 'x86_64' as const, characteristics: { arch: 'x86_64' as const, memoryMb: 512 } });
const refused = (e: unknown) => /Authorization Violation/i.test(String(e));

describe('node credentials with the NATS authority', () => {
  let dir: string;
  let authority: Authority;
  let nats: TestNats;
  let db: TestDatabase;
  let registry: RunningRegistry;
  let nc: NatsConnection;
  const rpc = <T>(op: string, body: unknown, schema: { parse(v: unknown): T }) => requestRpc(nc, subjects.registry(op), body, schema as never, { timeoutMs: 10_000 }) as Promise<T>;
  const start = () =>
    startRegistry(
      loadConfig({
        DATABASE_URL: db.url,
        NATS_URL: nats.url,
        NATS_CREDS: join(dir, 'registry.creds'),
        REGISTRY_NATS_AUTHORITY: join(dir, 'authority.json'),
        REGISTRY_HTTP_PORT: '0',
        REGISTRY_HTTP_HOST: '127.0.0.1',
        REGISTRY_SWEEP_INTERVAL_MS: '3600000',
        CHANGEOVER_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        LOG_LEVEL: 'silent',
      }),
    );
  const connects = async (creds: string, nodeId: string) => {
    try {
      const c = await connect({ servers: nats.url, reconnect: false, ...nodeConnectionOptions(creds, nodeId) });
      await c.close();
      return true;
    } catch (e) {
      if (refused(e)) return false;
      throw e;
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'registry-identity-'));
    authority = createAuthority();
    writeFileSync(join(dir, 'authority.json'), JSON.stringify(exportAuthority(authority)));
    writeFileSync(join(dir, 'registry.creds'), (await mintServiceCredentials(authority, 'registry')).creds);
    mkdirSync(join(dir, 'jwt'));
    [nats, db] = await Promise.all([startNats(await serverConfig(authority, { resolverDir: join(dir, 'jwt') })), createTestDatabase('registry_identity')]);
    registry = await start();
    nc = await connect({ servers: nats.url, ...serviceConnectionOptions((await mintServiceCredentials(authority, 'cli')).creds) });
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await registry?.close();
    await nats?.stop();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('mints a new confined identity at every enrollment and stores only its public key', async () => {
    const first = await rpc('enroll-node', enrollment('n1'), EnrollNodeReply);
    const second = await rpc('enroll-node', enrollment('n1'), EnrollNodeReply);
    expect(first.natsCredentials?.inboxPrefix).toBe('_INBOX.node.n1');
    expect(second.natsCredentials!.userPublicKey).not.toBe(first.natsCredentials!.userPublicKey);
    expect(await connects(first.natsCredentials!.creds, 'n1')).toBe(true);
    expect(await connects(second.natsCredentials!.creds, 'n1')).toBe(true);
    const rows = await registry.db.query<{ user_public_key: string; revoked_at: Date | null }>(`SELECT user_public_key, revoked_at FROM registry_node_credentials WHERE node_id = 'n1' ORDER BY issued_at`);
    expect(rows.map((r) => r.user_public_key).sort()).toEqual([first.natsCredentials!.userPublicKey, second.natsCredentials!.userPublicKey].sort());
    const seed = /^(SU[A-Z2-7]+)$/m.exec(first.natsCredentials!.creds)![1]!;
    expect(JSON.stringify(await registry.db.query(`SELECT * FROM registry_node_credentials`))).not.toContain(seed);
    expect(registry.domain.counters.get('registry_node_credentials_issued_total')).toBe(2);
  });

  it('finishes a rotation with keepLatest, then revokes the rest; the list survives a registry restart', async () => {
    const old = await rpc('enroll-node', enrollment('n2'), EnrollNodeReply);
    const fresh = await rpc('enroll-node', enrollment('n2'), EnrollNodeReply);
    const rotated = await rpc('revoke-node', { nodeId: 'n2', keepLatest: true }, RevokeNodeReply);
    expect(rotated).toEqual({ nodeId: 'n2', revokedKeys: [old.natsCredentials!.userPublicKey], revocations: 1 });
    expect(await connects(old.natsCredentials!.creds, 'n2')).toBe(false);
    expect(await connects(fresh.natsCredentials!.creds, 'n2')).toBe(true);

    await registry.close();
    registry = await start();
    const all = await rpc('revoke-node', { nodeId: 'n2' }, RevokeNodeReply);
    expect(all).toEqual({ nodeId: 'n2', revokedKeys: [fresh.natsCredentials!.userPublicKey], revocations: 2 });
    expect(await connects(fresh.natsCredentials!.creds, 'n2')).toBe(false);
    expect(await connects(old.natsCredentials!.creds, 'n2')).toBe(false);
    // Another node is untouched.
    const other = await rpc('enroll-node', enrollment('n3'), EnrollNodeReply);
    expect(await connects(other.natsCredentials!.creds, 'n3')).toBe(true);
  });

  it('answers NOT_FOUND for a node it never issued credentials to, and refuses a bad id', async () => {
    await expect(rpc('revoke-node', { nodeId: 'ghost' }, RevokeNodeReply)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(rpc('revoke-node', { nodeId: 'a.>' }, RevokeNodeReply)).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
  });
});

describe('without the NATS authority', () => {
  let t: TestRegistry;
  beforeAll(async () => {
    t = await startTestRegistry();
  }, 60_000);
  afterAll(() => t?.stop());

  it('enrolls without credentials and answers FEATURE_NOT_ACTIVE to a revocation', async () => {
    const reply = await t.rpc('enroll-node', enrollment('plain'), EnrollNodeReply);
    expect(reply.nodeId).toBe('plain');
    expect(reply.natsCredentials).toBeUndefined();
    await expect(t.rpc('revoke-node', { nodeId: 'plain' }, RevokeNodeReply)).rejects.toMatchObject({ code: 'FEATURE_NOT_ACTIVE' });
  });
});
