import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, PermissionViolationError, type NatsConnection } from '@nats-io/transport-node';
import { startNats, type TestNats } from '@changeover/test-kit';
import { createAuthority, type Authority } from '../authority/authority.js';
import { serverConfig } from '../server/server-config.js';
import { nodeConnectionOptions, serviceConnectionOptions } from '../connect/node-connect.js';
import { mintNodeCredentials, mintServiceCredentials, type NodeCredentials } from '../credentials/mint.js';
import type { Revocation } from '../credentials/revocation.js';

/** A private nats-server in operator mode trusting a fresh authority (test helper). */
export async function startAuthServer(opts: { authority?: Authority; revocations?: Revocation[] } = {}): Promise<{ nats: TestNats; authority: Authority; stop(): Promise<void> }> {
  const authority = opts.authority ?? createAuthority();
  const resolverDir = await mkdtemp(join(tmpdir(), 'changeover-nats-jwt-'));
  const nats = await startNats(await serverConfig(authority, { resolverDir, ...(opts.revocations ? { revocations: opts.revocations } : {}) }));
  return {
    nats,
    authority,
    async stop() {
      await nats.stop();
      await rm(resolverDir, { recursive: true, force: true });
    },
  };
}

/** A node's connection that records the server's permission errors. */
export interface NodeConn {
  nc: NatsConnection;
  creds: NodeCredentials;
  violations: PermissionViolationError[];
}

export async function connectNode(url: string, creds: NodeCredentials, opts: { reconnect?: boolean } = {}): Promise<NodeConn> {
  const nc = await connect({ servers: url, reconnect: opts.reconnect ?? false, ...nodeConnectionOptions(creds.creds, creds.nodeId) });
  const violations: PermissionViolationError[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error' && s.error instanceof PermissionViolationError) violations.push(s.error);
  })();
  return { nc, creds, violations };
}

export async function enrollAndConnect(url: string, authority: Authority, nodeId: string, classId: string): Promise<NodeConn> {
  return connectNode(url, await mintNodeCredentials(authority, { nodeId, classId }));
}

export async function connectService(url: string, authority: Authority, service = 'registry'): Promise<NatsConnection> {
  return connect({ servers: url, ...serviceConnectionOptions((await mintServiceCredentials(authority, service)).creds) });
}
