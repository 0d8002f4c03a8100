import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import { isChangeoverError } from '@changeover/contracts';
import { waitFor } from '@changeover/test-kit';
import { connectNode, connectService, startAuthServer, type NodeConn } from '../testing/auth-server.js';
import { pushAccountJwt } from '../server/push-account.js';
import { accountJwt } from './claims.js';
import { mintNodeCredentials, revokeNode, type NodeCredentials } from './mint.js';
import type { Revocation } from './revocation.js';

let server: Awaited<ReturnType<typeof startAuthServer>>;
let svc: NatsConnection;
let revoked: Revocation[] = [];
let oldA: NodeCredentials;
let b: NodeConn;

beforeAll(async () => {
  server = await startAuthServer();
  svc = await connectService(server.nats.url, server.authority);
  b = await connectNode(server.nats.url, await mintNodeCredentials(server.authority, { nodeId: 'node-b', classId: 'web' }));
});

afterAll(async () => {
  await b?.nc.close();
  await svc?.close();
  await server?.stop();
});

async function reportArrives(node: NodeConn): Promise<void> {
  const sub = svc.subscribe(`changeover.agent.${node.creds.nodeId}.heartbeat`, { max: 1 });
  await svc.flush();
  node.nc.publish(`changeover.agent.${node.creds.nodeId}.heartbeat`, 'alive');
  for await (const _m of sub) return;
}

describe('revoking a node', () => {
  it('closes its live connection once the account JWT is pushed, and refuses it at reconnect', async () => {
    oldA = await mintNodeCredentials(server.authority, { nodeId: 'node-a', classId: 'web' });
    const a = await connectNode(server.nats.url, oldA);
    await reportArrives(a);
    const r = await revokeNode(server.authority, { nodeId: 'node-a', userPublicKey: oldA.userPublicKey }, { revoked });
    revoked = r.revocations;
    await pushAccountJwt(server.authority, r.accountJwt, { servers: server.nats.url });
    const closed = await a.nc.closed();
    expect(String(closed)).toMatch(/revoked|authorization/i);
    await expect(connectNode(server.nats.url, oldA)).rejects.toThrow(/Authorization Violation/i);
  });

  it('leaves other nodes and services connected', async () => {
    expect(b.nc.isClosed()).toBe(false);
    await reportArrives(b);
  });

  it('lets the same node enroll again with new credentials (rotation: mint new, then revoke the old key)', async () => {
    const fresh = await connectNode(server.nats.url, await mintNodeCredentials(server.authority, { nodeId: 'node-a', classId: 'web' }));
    await reportArrives(fresh);
    await fresh.nc.close();
  });

  it('still refuses the revoked credentials after a server restart (the resolver keeps the pushed JWT)', async () => {
    await b.nc.close();
    await svc.close();
    await server.nats.restart();
    svc = await connectService(server.nats.url, server.authority);
    await expect(connectNode(server.nats.url, oldA)).rejects.toThrow(/Authorization Violation/i);
    b = await connectNode(server.nats.url, b.creds);
    await reportArrives(b);
  });

  it('is refused by a server started from a config that already carries the revocations', async () => {
    const fresh = await startAuthServer({ authority: server.authority, revocations: revoked });
    try {
      await expect(connectNode(fresh.nats.url, oldA)).rejects.toThrow(/Authorization Violation/i);
      const ok = await connectNode(fresh.nats.url, b.creds);
      await ok.nc.close();
    } finally {
      await fresh.stop();
    }
  });

  it('is lifted by an account JWT pushed without the stored list, and back once the full list is pushed (so keep the list durable)', async () => {
    const refused = (e: unknown) => /Authorization Violation/i.test(String(e));
    const connects = () => connectNode(server.nats.url, oldA).then(async (c) => { await c.nc.close(); return true; }, (e: unknown) => (refused(e) ? false : Promise.reject(e)));
    await pushAccountJwt(server.authority, await accountJwt(server.authority, []), { servers: server.nats.url });
    await waitFor('revoked key accepted again', connects);
    await pushAccountJwt(server.authority, await accountJwt(server.authority, revoked), { servers: server.nats.url });
    await waitFor('revoked key refused again', async () => !(await connects()));
  });

  it('fails with UNAVAILABLE when no server answers the push', async () => {
    const err = await pushAccountJwt(server.authority, await accountJwt(server.authority, revoked), { servers: '127.0.0.1:1', timeoutMs: 500 }).catch((e: unknown) => e);
    expect(isChangeoverError(err, 'UNAVAILABLE')).toBe(true);
  });
});
